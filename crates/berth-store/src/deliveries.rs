//! The delivery log: one `delivery` row per (event occurrence, notification) with its status, and
//! one `delivery_attempt` row per attempt with what was sent and received. Rows are written in the
//! same transactions as the queue changes they describe, so the log never disagrees with the queue.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::Result;
use crate::db::{Exec, Tx, run};

/// Where a delivery stands.
pub mod status {
    /// Queued or being retried.
    pub const PENDING: &str = "pending";
    /// A receiver accepted it.
    pub const DELIVERED: &str = "delivered";
    /// Every attempt failed, or one failed for good.
    pub const FAILED: &str = "failed";
    /// The notification was disabled when the event happened; recover can send it later.
    pub const SKIPPED: &str = "skipped";
    /// The notification's event configuration (e.g. `ref-regex`) did not match.
    pub const FILTERED: &str = "filtered";
    /// Every status, for validating filters.
    pub const ALL: [&str; 5] = [PENDING, DELIVERED, FAILED, SKIPPED, FILTERED];
}

/// One row of `delivery`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Row id.
    pub id: i64,
    /// The public id, the same in `webhook-id` on every attempt.
    pub public_id: String,
    /// The notification.
    pub notification_id: i64,
    /// The event name.
    pub event: String,
    /// `pending`, `delivered`, `failed`, `skipped` or `filtered`.
    pub status: String,
    /// The job body (event data, performer, ids).
    pub body: Json<serde_json::Value>,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
}

/// One row of `delivery_attempt`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// Attempt number, from 1.
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// Where it went (secrets masked).
    pub request_url: String,
    /// Headers sent.
    pub request_headers: Json<Vec<(String, String)>>,
    /// Body sent.
    pub request_body: String,
    /// Status received.
    pub response_status: Option<i32>,
    /// Headers received.
    pub response_headers: Option<Json<Vec<(String, String)>>>,
    /// Body received (capped).
    pub response_body: Option<String>,
    /// The error, when no answer came.
    pub error: Option<String>,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
}

/// What [`add_attempt`] stores.
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    /// Attempt number, from 1.
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// Where it went (secrets masked).
    pub request_url: &'a str,
    /// Headers sent.
    pub request_headers: &'a [(String, String)],
    /// Body sent.
    pub request_body: &'a str,
    /// Status received.
    pub response_status: Option<i32>,
    /// Headers received.
    pub response_headers: Option<&'a [(String, String)]>,
    /// Body received.
    pub response_body: Option<&'a str>,
    /// The error.
    pub error: Option<&'a str>,
    /// `delivered`, `retry` or `failed`.
    pub outcome: &'a str,
}

macro_rules! columns {
    () => {
        "id, public_id, notification_id, event, status, body, attempts, last_error, created_at, updated_at"
    };
}

/// Records a delivery. A public id seen before (a redelivery or recovery) keeps its row and
/// goes back to `status`.
pub async fn upsert(
    tx: &mut Tx,
    public_id: &str,
    notification_id: i64,
    event: &str,
    status: &str,
    body: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<()> {
    let sql = "INSERT INTO delivery (public_id, notification_id, event, status, body, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $6) \
               ON CONFLICT (public_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at";
    run!(tx, c => sqlx::query(sql).bind(public_id).bind(notification_id).bind(event).bind(status).bind(Json(body)).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Appends an attempt to a delivery and sets its status and last error.
pub async fn add_attempt(
    tx: &mut Tx,
    public_id: &str,
    a: &NewAttempt<'_>,
    status: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    // One statement each for the attempt and the status; jobs queued before the log existed have
    // no delivery row, and then both touch nothing.
    let sql = "INSERT INTO delivery_attempt (delivery_id, attempt, started_at, duration_ms, request_url, request_headers, \
               request_body, response_status, response_headers, response_body, error, outcome) \
               SELECT id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM delivery WHERE public_id = $1";
    run!(tx, c => sqlx::query(sql).bind(public_id).bind(a.attempt).bind(a.started_at).bind(a.duration_ms).bind(a.request_url)
        .bind(Json(a.request_headers)).bind(a.request_body).bind(a.response_status).bind(a.response_headers.map(Json))
        .bind(a.response_body).bind(a.error).bind(a.outcome)
        .execute(c).await.map(|r| r.rows_affected()))?;
    let upd = "UPDATE delivery SET status = $2, attempts = attempts + 1, last_error = $3, updated_at = $4 WHERE public_id = $1";
    run!(tx, c => sqlx::query(upd).bind(public_id).bind(status).bind(a.error).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Sets a delivery's status without an attempt (e.g. dropped by a filter).
pub async fn set_status(
    tx: &mut Tx,
    public_id: &str,
    status: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let sql =
        "UPDATE delivery SET status = $2, last_error = COALESCE($3, last_error), updated_at = $4 WHERE public_id = $1";
    run!(tx, c => sqlx::query(sql).bind(public_id).bind(status).bind(note).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A notification's deliveries, newest first, optionally of one status.
pub async fn list(
    ex: &mut impl Exec,
    notification_id: i64,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<DeliveryRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM delivery WHERE notification_id = $1 AND ($2 IS NULL OR status = $2) ORDER BY id DESC LIMIT $3 OFFSET $4"
    );
    Ok(
        run!(ex, c => sqlx::query_as::<_, DeliveryRow>(sql).bind(notification_id).bind(status).bind(limit).bind(offset)
        .fetch_all(c).await)?,
    )
}

/// One delivery of a notification.
pub async fn get(ex: &mut impl Exec, notification_id: i64, public_id: &str) -> Result<Option<DeliveryRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM delivery WHERE notification_id = $1 AND public_id = $2"
    );
    Ok(
        run!(ex, c => sqlx::query_as::<_, DeliveryRow>(sql).bind(notification_id).bind(public_id).fetch_optional(c).await)?,
    )
}

/// A delivery's attempts, in order.
pub async fn attempts(ex: &mut impl Exec, delivery_id: i64) -> Result<Vec<AttemptRow>> {
    let sql = "SELECT attempt, started_at, duration_ms, request_url, request_headers, request_body, response_status, \
               response_headers, response_body, error, outcome FROM delivery_attempt WHERE delivery_id = $1 ORDER BY id";
    Ok(run!(ex, c => sqlx::query_as::<_, AttemptRow>(sql).bind(delivery_id).fetch_all(c).await)?)
}

/// A notification's failed and skipped deliveries since `since`, oldest first (for recovery).
pub async fn unsent_since(ex: &mut impl Exec, notification_id: i64, since: DateTime<Utc>) -> Result<Vec<DeliveryRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM delivery WHERE notification_id = $1 AND status IN ('failed', 'skipped') AND created_at >= $2 ORDER BY id"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, DeliveryRow>(sql).bind(notification_id).bind(since).fetch_all(c).await)?)
}

/// Deletes deliveries (and their attempts) created before `cutoff`. Returns how many.
pub async fn delete_before(tx: &mut Tx, cutoff: DateTime<Utc>) -> Result<u64> {
    let sql = "DELETE FROM delivery WHERE created_at < $1 AND status <> 'pending'";
    Ok(run!(tx, c => sqlx::query(sql).bind(cutoff).execute(c).await.map(|r| r.rows_affected()))?)
}
