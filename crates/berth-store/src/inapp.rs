//! In-app ("bell") notifications, one row per receiving account.

use berth_core::AccountId;
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::Result;
use crate::db::{Exec, Tx, run};

/// One row of `user_notification`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InAppRow {
    /// Public id.
    pub uuid: String,
    /// The event name (Quay's notification kind).
    pub kind: String,
    /// The organization it was sent to, when it reached the user as an organization admin.
    pub organization: Option<String>,
    /// The event data.
    pub metadata: Json<serde_json::Value>,
    /// Whether the user dismissed it.
    pub dismissed: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Stores one notification for one account.
pub async fn insert(
    tx: &mut Tx,
    uuid: &str,
    kind: &str,
    target: AccountId,
    organization: Option<&str>,
    metadata: &serde_json::Value,
) -> Result<()> {
    let sql = "INSERT INTO user_notification (uuid, kind, target_id, organization, metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
    run!(tx, c => sqlx::query(sql).bind(uuid).bind(kind).bind(target.0).bind(organization).bind(Json(metadata)).bind(Utc::now())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A user's undismissed notifications, newest first.
pub async fn active_for(ex: &mut impl Exec, target: AccountId, limit: i64, offset: i64) -> Result<Vec<InAppRow>> {
    let sql = "SELECT uuid, kind, organization, metadata, dismissed, created_at FROM user_notification \
               WHERE target_id = $1 AND NOT dismissed ORDER BY id DESC LIMIT $2 OFFSET $3";
    Ok(run!(ex, c => sqlx::query_as::<_, InAppRow>(sql).bind(target.0).bind(limit).bind(offset).fetch_all(c).await)?)
}

/// How many undismissed notifications a user has.
pub async fn count_active(ex: &mut impl Exec, target: AccountId) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM user_notification WHERE target_id = $1 AND NOT dismissed";
    Ok(run!(ex, c => sqlx::query_scalar::<_, i64>(sql).bind(target.0).fetch_one(c).await)?)
}

/// One of a user's notifications, dismissed or not.
pub async fn get(ex: &mut impl Exec, target: AccountId, uuid: &str) -> Result<Option<InAppRow>> {
    let sql = "SELECT uuid, kind, organization, metadata, dismissed, created_at FROM user_notification WHERE target_id = $1 AND uuid = $2";
    Ok(run!(ex, c => sqlx::query_as::<_, InAppRow>(sql).bind(target.0).bind(uuid).fetch_optional(c).await)?)
}

/// Dismisses or restores one of a user's notifications. Returns whether it exists.
pub async fn set_dismissed(tx: &mut Tx, target: AccountId, uuid: &str, dismissed: bool) -> Result<bool> {
    let sql = "UPDATE user_notification SET dismissed = $3 WHERE target_id = $1 AND uuid = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(target.0).bind(uuid).bind(dismissed).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
