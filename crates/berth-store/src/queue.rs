//! The durable job queue: one table for every kind of background work. This module holds the
//! enqueue side, which callers use inside their own transaction (the outbox rule: the change and
//! the work it causes commit together or not at all).

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::Result;
use crate::db::{Exec, Tx, run};

/// Attempts a job gets before it is dead.
pub const DEFAULT_RETRIES: i32 = 8;

/// One row of `queue_item`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueItem {
    /// Row id.
    pub id: i64,
    /// Queue, e.g. `notification`.
    pub queue: String,
    /// Quay-style name, e.g. `notification/acme/web/repo_push/`.
    pub name: String,
    /// The job.
    pub body: Json<serde_json::Value>,
    /// When it may run.
    pub available_after: DateTime<Utc>,
    /// Attempts left.
    pub retries_remaining: i32,
    /// Attempts made.
    pub attempt: i32,
}

/// Adds a job, runnable now.
pub async fn enqueue(tx: &mut Tx, queue: &str, name: &str, body: &serde_json::Value) -> Result<i64> {
    let sql = "INSERT INTO queue_item (queue, name, body, available_after, retries_remaining, state_id, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $4) RETURNING id";
    let state = format!("new-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    Ok(run!(tx, c => sqlx::query_scalar::<_, i64>(sql)
        .bind(queue).bind(name).bind(Json(body)).bind(Utc::now()).bind(DEFAULT_RETRIES).bind(state)
        .fetch_one(c).await)?)
}

/// The jobs of a queue, oldest first (for inspection and tests).
pub async fn list(ex: &mut impl Exec, queue: &str) -> Result<Vec<QueueItem>> {
    let sql = "SELECT id, queue, name, body, available_after, retries_remaining, attempt FROM queue_item \
               WHERE queue = $1 ORDER BY id";
    Ok(run!(ex, c => sqlx::query_as::<_, QueueItem>(sql).bind(queue).fetch_all(c).await)?)
}

/// A job claimed by a worker, leased until `processing_expires`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// Row id.
    pub id: i64,
    /// Quay-style name.
    pub name: String,
    /// The job.
    pub body: Json<serde_json::Value>,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// Attempts left after this one.
    pub retries_remaining: i32,
    /// The claim's token: completing or retrying needs it, so a worker whose lease expired and was
    /// taken over cannot touch the job.
    pub state_id: String,
}

/// Claims up to `limit` runnable jobs of `queue` for `lease`. Portable optimistic claim: a job is
/// taken only if its `state_id` did not change between the read and the update, so two workers
/// (or processes) never both win it.
pub async fn claim(
    tx: &mut Tx,
    queue: &str,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
    worker: &str,
) -> Result<Vec<Claimed>> {
    let pick = "SELECT id, state_id FROM queue_item WHERE queue = $1 AND available_after <= $2 \
                AND (processing_expires IS NULL OR processing_expires < $2) AND retries_remaining > 0 \
                ORDER BY available_after, id LIMIT $3";
    let candidates =
        run!(tx, c => sqlx::query_as::<_, (i64, String)>(pick).bind(queue).bind(now).bind(limit).fetch_all(c).await)?;
    let mut out = Vec::with_capacity(candidates.len());
    for (id, old_state) in candidates {
        let new_state = format!("{worker}-{id}-{}", now.timestamp_nanos_opt().unwrap_or_default());
        let take = "UPDATE queue_item SET state_id = $3, processing_expires = $4, retries_remaining = retries_remaining - 1, \
                    attempt = attempt + 1 WHERE id = $1 AND state_id = $2 \
                    RETURNING id, name, body, attempt, retries_remaining, state_id";
        let got = run!(tx, c => sqlx::query_as::<_, Claimed>(take)
            .bind(id).bind(&old_state).bind(&new_state).bind(now + lease)
            .fetch_optional(c).await)?;
        out.extend(got);
    }
    Ok(out)
}

/// Finishes a job (removes it). Returns false when the claim was lost.
pub async fn complete(tx: &mut Tx, id: i64, state_id: &str) -> Result<bool> {
    let sql = "DELETE FROM queue_item WHERE id = $1 AND state_id = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(id).bind(state_id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Hands a job back to run again at `at`, recording the error. Returns false when the claim was lost.
pub async fn retry_at(tx: &mut Tx, id: i64, state_id: &str, at: DateTime<Utc>, error: &str) -> Result<bool> {
    let sql = "UPDATE queue_item SET available_after = $3, processing_expires = NULL, last_error = $4 WHERE id = $1 AND state_id = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(id).bind(state_id).bind(at).bind(error).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Marks a job dead: it stays in the table with its last error and is never claimed again.
pub async fn bury(tx: &mut Tx, id: i64, state_id: &str, error: &str) -> Result<bool> {
    let sql = "UPDATE queue_item SET retries_remaining = 0, processing_expires = NULL, last_error = $3 WHERE id = $1 AND state_id = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(id).bind(state_id).bind(error).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Puts a job back until `at` without counting the attempt (the consumed retry is restored), for
/// work this process cannot do yet.
pub async fn defer(tx: &mut Tx, id: i64, state_id: &str, at: DateTime<Utc>, note: &str) -> Result<bool> {
    let sql = "UPDATE queue_item SET available_after = $3, processing_expires = NULL, last_error = $4, \
               retries_remaining = retries_remaining + 1, attempt = attempt - 1 WHERE id = $1 AND state_id = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(id).bind(state_id).bind(at).bind(note).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
