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
