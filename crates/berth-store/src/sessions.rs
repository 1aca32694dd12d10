//! Web UI sign-in sessions: a hashed cookie token, the account, the form (CSRF) token and an
//! expiry.

use chrono::{DateTime, Utc};

use crate::Result;
use crate::db::{Exec, Tx, run};

/// A live session: the account and its form token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    /// The signed-in account.
    pub account_id: i64,
    /// The token every form of this session carries.
    pub csrf: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// Starts a session.
pub async fn insert(tx: &mut Tx, token_hash: &str, account: i64, csrf: &str, expires: DateTime<Utc>) -> Result<()> {
    let sql =
        "INSERT INTO ui_session (token_hash, account_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
    run!(tx, c => sqlx::query(sql).bind(token_hash).bind(account).bind(csrf).bind(Utc::now()).bind(expires)
        .execute(c).await.map(|_| ()))?;
    Ok(())
}

/// The session whose token hashes to `token_hash`, if it has not expired at `now`.
pub async fn live(ex: &mut impl Exec, token_hash: &str, now: DateTime<Utc>) -> Result<Option<SessionRow>> {
    let sql = "SELECT account_id, csrf, expires_at FROM ui_session WHERE token_hash = $1 AND expires_at > $2";
    Ok(run!(ex, c => sqlx::query_as::<_, SessionRow>(sql).bind(token_hash).bind(now).fetch_optional(c).await)?)
}

/// Ends a session.
pub async fn delete(tx: &mut Tx, token_hash: &str) -> Result<()> {
    let sql = "DELETE FROM ui_session WHERE token_hash = $1";
    run!(tx, c => sqlx::query(sql).bind(token_hash).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// Removes sessions that ended before `now`.
pub async fn delete_expired(tx: &mut Tx, now: DateTime<Utc>) -> Result<u64> {
    let sql = "DELETE FROM ui_session WHERE expires_at <= $1";
    Ok(run!(tx, c => sqlx::query(sql).bind(now).execute(c).await.map(|r| r.rows_affected()))?)
}
