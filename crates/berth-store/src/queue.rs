//! The durable job queue: one table for every kind of background work. This module holds the
//! enqueue side, which callers use inside their own transaction (the outbox rule: the change and
//! the work it causes commit together or not at all).

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::Result;
use crate::db::{Exec, Tx, run};

/// The PostgreSQL `NOTIFY` channel that announces committed jobs to every process.
pub const CHANNEL: &str = "berth_queue";

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
    enqueue_with_retries(tx, queue, name, body, DEFAULT_RETRIES).await
}

/// Adds a job that gets `retries` attempts.
pub async fn enqueue_with_retries(
    tx: &mut Tx,
    queue: &str,
    name: &str,
    body: &serde_json::Value,
    retries: i32,
) -> Result<i64> {
    let sql = "INSERT INTO queue_item (queue, name, body, available_after, retries_remaining, state_id, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $4) RETURNING id";
    let state = format!("new-{}", Utc::now().timestamp_nanos_opt().unwrap_or_default());
    let id = run!(tx, c => sqlx::query_scalar::<_, i64>(sql)
        .bind(queue).bind(name).bind(Json(body)).bind(Utc::now()).bind(retries).bind(state)
        .fetch_one(c).await)?;
    announce(tx, queue).await?;
    Ok(id)
}

/// On PostgreSQL, tells listening workers of every process that `queue` has work; delivered when
/// the transaction commits (and not at all if it rolls back). SQLite serves one process, whose
/// worker the caller wakes in memory.
pub async fn announce(tx: &mut Tx, queue: &str) -> Result<()> {
    if let crate::db::Handle::Postgres(c) = crate::db::Exec::handle(tx) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(queue)
            .execute(c)
            .await?;
    }
    Ok(())
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

/// The due jobs a claim may take, oldest first, with a fair share per queue name (Quay's names
/// carry the repository and event): a name that already holds `per_name` leased jobs is skipped,
/// and no name gets more than `per_name` of this claim, so a flood for one repository leaves slots
/// for the others. The window is bounded (the oldest `8 × limit` due jobs), and leased jobs are
/// found through `queue_item_leased`. On PostgreSQL the window's rows are locked with
/// `SKIP LOCKED`, so concurrent claimers look at disjoint windows.
macro_rules! fair_pick {
    ($columns:literal, $lock:literal) => {
        concat!(
            "SELECT ", $columns, " FROM (SELECT id, state_id, available_after, \
             ROW_NUMBER() OVER (PARTITION BY name ORDER BY available_after, id) AS rn \
             FROM (SELECT id, state_id, name, available_after FROM queue_item \
             WHERE queue = $1 AND available_after <= $2 AND (processing_expires IS NULL OR processing_expires < $2) \
             AND retries_remaining > 0 AND name NOT IN (SELECT name FROM queue_item WHERE queue = $1 \
             AND processing_expires >= $2 GROUP BY name HAVING COUNT(*) >= $4) \
             ORDER BY available_after, id LIMIT $5",
            $lock,
            ") head) ranked WHERE rn <= $4 ORDER BY available_after, id LIMIT $3"
        )
    };
}

/// Claims up to `limit` runnable jobs of `queue` for `lease`, at most `per_name` per queue name
/// (see `fair_pick!`).
///
/// - On PostgreSQL: one `UPDATE … WHERE id IN (… FOR UPDATE SKIP LOCKED …)`, so concurrent
///   workers of any number of processes take disjoint jobs without waiting on each other.
/// - On SQLite (one writer): a portable optimistic claim: a job is taken only if its `state_id`
///   did not change between the read and the update.
///
/// Either way the lease is written with the claim, and the new `state_id` is the claim's token.
#[allow(clippy::too_many_arguments)]
pub async fn claim(
    tx: &mut Tx,
    queue: &str,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
    per_name: i64,
    worker: &str,
) -> Result<Vec<Claimed>> {
    let token = format!("{worker}-{}", now.timestamp_nanos_opt().unwrap_or_default());
    let per_name = per_name.max(1);
    let window = limit.saturating_mul(8);
    if let crate::db::Handle::Postgres(c) = crate::db::Exec::handle(tx) {
        let sql = concat!(
            "UPDATE queue_item SET state_id = $7 || '-' || id, processing_expires = $6, \
             retries_remaining = retries_remaining - 1, attempt = attempt + 1 \
             WHERE id IN (",
            fair_pick!("id", " FOR UPDATE SKIP LOCKED"),
            ") RETURNING id, name, body, attempt, retries_remaining, state_id"
        );
        let mut rows = sqlx::query_as::<_, Claimed>(sql)
            .bind(queue)
            .bind(now)
            .bind(limit)
            .bind(per_name)
            .bind(window)
            .bind(now + lease)
            .bind(&token)
            .fetch_all(c)
            .await?;
        rows.sort_by_key(|r| r.id);
        return Ok(rows);
    }
    let pick = fair_pick!("id, state_id", "");
    let candidates = run!(tx, c => sqlx::query_as::<_, (i64, String)>(pick)
        .bind(queue).bind(now).bind(limit).bind(per_name).bind(window).fetch_all(c).await)?;
    let mut out = Vec::with_capacity(candidates.len());
    for (id, old_state) in candidates {
        let new_state = format!("{token}-{id}");
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

/// Extends a running job's lease to `until`. Returns false when the claim was lost.
pub async fn heartbeat(tx: &mut Tx, id: i64, state_id: &str, until: DateTime<Utc>) -> Result<bool> {
    let sql = "UPDATE queue_item SET processing_expires = $3 WHERE id = $1 AND state_id = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(id).bind(state_id).bind(until).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Depth of one queue and how long its oldest due job has waited.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Jobs that will still run (not dead).
    pub depth: i64,
    /// Due time of the oldest job that is due and not leased.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Statistics of every queue with live jobs.
pub async fn stats(ex: &mut impl Exec, now: DateTime<Utc>) -> Result<Vec<QueueStats>> {
    let sql = "SELECT queue, COUNT(*) AS depth, MIN(CASE WHEN available_after <= $1 \
               AND (processing_expires IS NULL OR processing_expires < $1) THEN available_after END) AS oldest_due \
               FROM queue_item WHERE retries_remaining > 0 GROUP BY queue ORDER BY queue";
    Ok(run!(ex, c => sqlx::query_as::<_, QueueStats>(sql).bind(now).fetch_all(c).await)?)
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
