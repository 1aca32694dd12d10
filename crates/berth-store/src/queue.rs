//! The durable job queue: one table (`queue_item`) for every kind of background work.
//!
//! - **Enqueue** happens inside the caller's transaction (the outbox rule: the change and the work
//!   it causes commit together or not at all); [`enqueue_many`] writes a whole batch in one
//!   statement and announces it once.
//! - **Claim** takes a batch of due jobs with a lease, in one statement: `FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL, and on SQLite (one writer) a plain `UPDATE … WHERE id IN (…)`. Each claimed job
//!   gets a new `state_id` (the claim's token, needed to move it later) and its `available_after`
//!   moves to the lease's end, so held jobs leave the due part of the index and come back by
//!   themselves if their worker dies.
//! - **Leases** of everything a worker holds are renewed with one statement ([`renew`]).
//! - **Moves** (complete, retry, bury, release) check the token and end the claim; the batch forms
//!   return which jobs were still held, so a worker whose claim was taken over learns it and
//!   records nothing.

use berth_core::JobQueue;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Sqlite};

use crate::Result;
use crate::db::{Exec, Handle, Tx, run};

/// The PostgreSQL `NOTIFY` channel that announces committed jobs to every process.
pub const CHANNEL: &str = "berth_queue";

/// Rows per multi-row statement on SQLite (its limit is 32,766 bound values).
const SQLITE_CHUNK: usize = 1000;

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

/// A job to enqueue: its name and its body, already serialized as JSON.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Quay-style name, e.g. `notification/acme/web/repo_push/`.
    pub name: String,
    /// The job, as JSON text.
    pub body: String,
}

/// Adds a job, runnable now, that gets `retries` attempts (how many is the caller's rule).
pub async fn enqueue(tx: &mut Tx, queue: JobQueue, name: &str, body: &serde_json::Value, retries: i32) -> Result<i64> {
    enqueue_at(tx, queue, name, body, retries, Utc::now()).await
}

/// Adds a job runnable from `at` (a schedule), that gets `retries` attempts.
pub async fn enqueue_at(
    tx: &mut Tx,
    queue: JobQueue,
    name: &str,
    body: &serde_json::Value,
    retries: i32,
    at: DateTime<Utc>,
) -> Result<i64> {
    let queue = queue.as_str();
    let sql = "INSERT INTO queue_item (queue, name, body, available_after, retries_remaining, state_id, created_at) \
               VALUES ($1, $2, $3, $4, $5, 'new', $6) RETURNING id";
    let id = run!(tx, c => sqlx::query_scalar::<_, i64>(sql)
        .bind(queue).bind(name).bind(Json(body)).bind(at).bind(retries).bind(Utc::now())
        .fetch_one(c).await)?;
    announce(tx, queue).await?;
    Ok(id)
}

/// Adds jobs runnable now, with `retries` attempts each, in one statement (per 1,000 on SQLite),
/// and announces them once.
pub async fn enqueue_many(tx: &mut Tx, queue: JobQueue, jobs: &[NewJob], retries: i32) -> Result<()> {
    let queue = queue.as_str();
    if jobs.is_empty() {
        return Ok(());
    }
    insert_many(tx, queue, jobs, None, retries).await?;
    announce(tx, queue).await
}

/// Adds jobs already claimed by a worker of this process, which performs them as soon as the
/// transaction commits: leased until `until`, their first attempt counted, each with the claim
/// token `<token>-<n>`. Nobody is told (no other worker may take them until the lease ends).
/// Returns them as claimed, in the order given. Each gets `retries` attempts, this one included.
pub async fn enqueue_claimed(
    tx: &mut Tx,
    queue: JobQueue,
    jobs: &[NewJob],
    token: &str,
    until: DateTime<Utc>,
    retries: i32,
) -> Result<Vec<Claimed>> {
    let queue = queue.as_str();
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let ids = insert_many(tx, queue, jobs, Some((token, until)), retries).await?;
    let mut by_state: std::collections::HashMap<String, i64> = ids.into_iter().map(|(id, state)| (state, id)).collect();
    jobs.iter()
        .enumerate()
        .map(|(n, j)| {
            let state_id = format!("{token}-{n}");
            let id = by_state
                .remove(&state_id)
                .ok_or_else(|| crate::StoreError::Corrupt(format!("the claimed job {state_id} was not inserted")))?;
            Ok(Claimed {
                id,
                name: j.name.clone(),
                body: j.body.clone(),
                attempt: 1,
                retries_remaining: retries - 1,
                state_id,
            })
        })
        .collect()
}

/// Inserts jobs, free (`claim` `None`: due now, state `new`) or claimed (leased until the given
/// time, state `<token>-<n>`, one attempt counted). Returns each one's id and state.
async fn insert_many(
    tx: &mut Tx,
    queue: &str,
    jobs: &[NewJob],
    claim: Option<(&str, DateTime<Utc>)>,
    retries: i32,
) -> Result<Vec<(i64, String)>> {
    let now = Utc::now();
    let (due, leased, attempt, retries) = match claim {
        None => (now, None, 0, retries),
        Some((_, until)) => (until, Some(until), 1, retries - 1),
    };
    let state = |n: usize| claim.map_or_else(|| "new".to_owned(), |(token, _)| format!("{token}-{n}"));
    let mut out = Vec::with_capacity(jobs.len());
    match tx.handle() {
        Handle::Sqlite(c) => {
            for (i, chunk) in jobs.chunks(SQLITE_CHUNK).enumerate() {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO queue_item (queue, name, body, available_after, processing_expires, retries_remaining, \
                     attempt, state_id, created_at) ",
                );
                q.push_values(chunk.iter().enumerate(), |mut b, (j, job)| {
                    b.push_bind(queue)
                        .push_bind(&job.name)
                        .push_bind(&job.body)
                        .push_bind(due)
                        .push_bind(leased)
                        .push_bind(retries)
                        .push_bind(attempt)
                        .push_bind(state(i * SQLITE_CHUNK + j))
                        .push_bind(now);
                });
                q.push(" RETURNING id, state_id");
                out.extend(q.build_query_as::<(i64, String)>().fetch_all(&mut *c).await?);
            }
        }
        Handle::Postgres(c) => {
            let sql = "INSERT INTO queue_item (queue, name, body, available_after, processing_expires, retries_remaining, \
                       attempt, state_id, created_at) \
                       SELECT $1, n, b::jsonb, $4, $5, $6, $7, s, $8 FROM UNNEST($2::text[], $3::text[], $9::text[]) AS t(n, b, s) \
                       RETURNING id, state_id";
            let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
            let bodies: Vec<&str> = jobs.iter().map(|j| j.body.as_str()).collect();
            let states: Vec<String> = (0..jobs.len()).map(state).collect();
            out.extend(
                sqlx::query_as::<_, (i64, String)>(sql)
                    .bind(queue)
                    .bind(names)
                    .bind(bodies)
                    .bind(due)
                    .bind(leased)
                    .bind(retries)
                    .bind(attempt)
                    .bind(now)
                    .bind(states)
                    .fetch_all(&mut *c)
                    .await?,
            );
        }
    }
    Ok(out)
}

/// On PostgreSQL, tells listening workers of every process that `queue` has work; delivered when
/// the transaction commits (and not at all if it rolls back). SQLite serves one process, whose
/// worker the caller wakes in memory.
async fn announce(tx: &mut Tx, queue: &str) -> Result<()> {
    if let Handle::Postgres(c) = tx.handle() {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(queue)
            .execute(c)
            .await?;
    }
    Ok(())
}

/// The jobs of a queue, oldest first (for inspection and tests).
pub async fn list(ex: &mut impl Exec, queue: JobQueue) -> Result<Vec<QueueItem>> {
    let queue = queue.as_str();
    let sql = "SELECT id, queue, name, body, available_after, retries_remaining, attempt FROM queue_item \
               WHERE queue = $1 ORDER BY id";
    Ok(run!(ex, c => sqlx::query_as::<_, QueueItem>(sql).bind(queue).fetch_all(c).await)?)
}

/// A job claimed by a worker, leased until the lease given to [`claim`] ends.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    /// Row id.
    pub id: i64,
    /// Quay-style name.
    pub name: String,
    /// The job, as JSON text (see [`Claimed::decode`]).
    pub body: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// Attempts left after this one.
    pub retries_remaining: i32,
    /// The claim's token: completing or retrying needs it, so a worker whose lease expired and was
    /// taken over cannot touch the job.
    pub state_id: String,
}

impl Claimed {
    /// The job, read as `T` (straight from its text: no intermediate JSON tree).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(&self.body)
    }

    /// The job and its claim token, as the batch moves take them.
    pub fn key(&self) -> (i64, String) {
        (self.id, self.state_id.clone())
    }
}

/// The claim statement, around the backend's way of skipping names and locking.
macro_rules! claim_sql {
    ($skip:literal, $lock:literal) => {
        concat!(
            "UPDATE queue_item SET state_id = $5 || '-' || id, processing_expires = $4, available_after = $4, \
             retries_remaining = retries_remaining - 1, attempt = attempt + 1 \
             WHERE id IN (SELECT id FROM queue_item WHERE queue = $1 AND retries_remaining > 0 AND available_after <= $2 \
             AND (processing_expires IS NULL OR processing_expires < $2) ",
            $skip,
            " ORDER BY available_after, id LIMIT $3",
            $lock,
            ") RETURNING id, name, CAST(body AS TEXT) AS body, attempt, retries_remaining, state_id"
        )
    };
}

/// Claims up to `limit` due jobs of `queue`, oldest first, leased until `lease_until`, skipping
/// jobs whose name is in `skip_names` (names that already hold their fair share in the claiming
/// worker). One statement on both backends; on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so
/// concurrent workers of any number of processes take disjoint jobs without waiting on each other.
/// The returned jobs are in id order; each one's `state_id` is `<worker>-<nanos>-<id>`.
pub async fn claim(
    tx: &mut Tx,
    queue: JobQueue,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
    worker: &str,
    skip_names: &[String],
) -> Result<Vec<Claimed>> {
    let queue = queue.as_str();
    let token = format!("{worker}-{}", now.timestamp_nanos_opt().unwrap_or_default());
    let mut rows = match tx.handle() {
        Handle::Sqlite(c) => {
            let sql = claim_sql!("AND name NOT IN (SELECT value FROM json_each($6))", "");
            let skip = serde_json::to_string(skip_names).unwrap_or_else(|_| "[]".into());
            sqlx::query_as::<_, Claimed>(sql)
                .bind(queue)
                .bind(now)
                .bind(limit)
                .bind(lease_until)
                .bind(&token)
                .bind(skip)
                .fetch_all(c)
                .await?
        }
        Handle::Postgres(c) => {
            let sql = claim_sql!("AND name <> ALL($6::text[])", " FOR UPDATE SKIP LOCKED");
            sqlx::query_as::<_, Claimed>(sql)
                .bind(queue)
                .bind(now)
                .bind(limit)
                .bind(lease_until)
                .bind(&token)
                .bind(skip_names)
                .fetch_all(c)
                .await?
        }
    };
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// Extends the leases of held jobs (`(id, state_id)` pairs) to `until`, in one statement. Returns
/// the ids still held; a job missing from the answer was taken over or finished elsewhere.
pub async fn renew(tx: &mut Tx, held: &[(i64, String)], until: DateTime<Utc>) -> Result<Vec<i64>> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(held.len());
    match tx.handle() {
        Handle::Sqlite(c) => {
            for chunk in held.chunks(SQLITE_CHUNK) {
                let mut q = QueryBuilder::<Sqlite>::new("UPDATE queue_item SET processing_expires = ");
                q.push_bind(until)
                    .push(", available_after = ")
                    .push_bind(until)
                    .push(" WHERE (id, state_id) IN (");
                push_pairs(&mut q, chunk);
                q.push(") RETURNING id");
                out.extend(q.build_query_scalar::<i64>().fetch_all(&mut *c).await?);
            }
        }
        Handle::Postgres(c) => {
            let sql = "UPDATE queue_item SET processing_expires = $3, available_after = $3 \
                       WHERE (id, state_id) IN (SELECT * FROM UNNEST($1::bigint[], $2::text[])) RETURNING id";
            let (ids, states) = split_pairs(held);
            out.extend(
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(ids)
                    .bind(states)
                    .bind(until)
                    .fetch_all(&mut *c)
                    .await?,
            );
        }
    }
    Ok(out)
}

/// Extends a running job's lease to `until`. Returns false when the claim was lost.
pub async fn heartbeat(tx: &mut Tx, id: i64, state_id: &str, until: DateTime<Utc>) -> Result<bool> {
    Ok(!renew(tx, &[(id, state_id.to_owned())], until).await?.is_empty())
}

/// `VALUES (id, state), …` for SQLite's row-value `IN`.
fn push_pairs(q: &mut QueryBuilder<Sqlite>, pairs: &[(i64, String)]) {
    q.push("VALUES ");
    let mut sep = q.separated(", ");
    for (id, state) in pairs {
        sep.push("(");
        sep.push_bind_unseparated(*id);
        sep.push_unseparated(", ");
        sep.push_bind_unseparated(state.clone());
        sep.push_unseparated(")");
    }
}

fn split_pairs(pairs: &[(i64, String)]) -> (Vec<i64>, Vec<String>) {
    pairs.iter().cloned().unzip()
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
    Ok(!complete_many(tx, &[(id, state_id.to_owned())]).await?.is_empty())
}

/// Finishes jobs (removes them), in one statement. Returns the ids that were still held.
pub async fn complete_many(tx: &mut Tx, held: &[(i64, String)]) -> Result<Vec<i64>> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(held.len());
    match tx.handle() {
        Handle::Sqlite(c) => {
            for chunk in held.chunks(SQLITE_CHUNK) {
                let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM queue_item WHERE (id, state_id) IN (");
                push_pairs(&mut q, chunk);
                q.push(") RETURNING id");
                out.extend(q.build_query_scalar::<i64>().fetch_all(&mut *c).await?);
            }
        }
        Handle::Postgres(c) => {
            let sql = "DELETE FROM queue_item WHERE (id, state_id) IN \
                       (SELECT * FROM UNNEST($1::bigint[], $2::text[])) RETURNING id";
            let (ids, states) = split_pairs(held);
            out.extend(
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(ids)
                    .bind(states)
                    .fetch_all(&mut *c)
                    .await?,
            );
        }
    }
    Ok(out)
}

/// How a held job is put back: its new due time and the note kept as its last error.
#[derive(Debug, Clone)]
pub struct PutBack {
    /// The job.
    pub id: i64,
    /// The claim's token.
    pub state_id: String,
    /// When it runs again.
    pub at: DateTime<Utc>,
    /// Why (the attempt's error, or why it was released).
    pub note: String,
}

/// What [`put_back_many`] does with the attempt the claim consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutBackKind {
    /// The attempt failed and counts: the job runs again at its time (a retry).
    Retry,
    /// The job was not attempted: the consumed attempt is given back (released or deferred).
    Release,
}

/// Hands held jobs back to run again at their time, in one statement. Returns the ids that were
/// still held.
pub async fn put_back_many(tx: &mut Tx, jobs: &[PutBack], kind: PutBackKind) -> Result<Vec<i64>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let restore = match kind {
        PutBackKind::Retry => "",
        PutBackKind::Release => ", retries_remaining = retries_remaining + 1, attempt = attempt - 1",
    };
    let mut out = Vec::with_capacity(jobs.len());
    match tx.handle() {
        Handle::Sqlite(c) => {
            for chunk in jobs.chunks(SQLITE_CHUNK) {
                let mut q = QueryBuilder::<Sqlite>::new(format!(
                    "UPDATE queue_item SET available_after = v.column3, processing_expires = NULL, state_id = 'free', \
                     last_error = v.column4{restore} FROM ("
                ));
                q.push_values(chunk, |mut b, j| {
                    b.push_bind(j.id)
                        .push_bind(j.state_id.clone())
                        .push_bind(j.at)
                        .push_bind(j.note.clone());
                });
                q.push(") AS v WHERE queue_item.id = v.column1 AND queue_item.state_id = v.column2 RETURNING queue_item.id");
                out.extend(q.build_query_scalar::<i64>().fetch_all(&mut *c).await?);
            }
        }
        Handle::Postgres(c) => {
            let mut q = QueryBuilder::<Postgres>::new(format!(
                "UPDATE queue_item q SET available_after = t.at, processing_expires = NULL, state_id = 'free', last_error = t.note{restore} \
                 FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[], $4::text[]) AS t(id, st, at, note) \
                 WHERE q.id = t.id AND q.state_id = t.st RETURNING q.id"
            ));
            let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
            let states: Vec<&str> = jobs.iter().map(|j| j.state_id.as_str()).collect();
            let ats: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.at).collect();
            let notes: Vec<&str> = jobs.iter().map(|j| j.note.as_str()).collect();
            out.extend(
                q.build_query_scalar::<i64>()
                    .bind(ids)
                    .bind(states)
                    .bind(ats)
                    .bind(notes)
                    .fetch_all(&mut *c)
                    .await?,
            );
        }
    }
    Ok(out)
}

/// Hands a job back to run again at `at`, recording the error. Returns false when the claim was lost.
pub async fn retry_at(tx: &mut Tx, id: i64, state_id: &str, at: DateTime<Utc>, error: &str) -> Result<bool> {
    let job = PutBack {
        id,
        state_id: state_id.to_owned(),
        at,
        note: error.to_owned(),
    };
    Ok(!put_back_many(tx, &[job], PutBackKind::Retry).await?.is_empty())
}

/// Puts a job back until `at` without counting the attempt (the consumed retry is restored), for
/// work this process cannot do yet.
pub async fn defer(tx: &mut Tx, id: i64, state_id: &str, at: DateTime<Utc>, note: &str) -> Result<bool> {
    let job = PutBack {
        id,
        state_id: state_id.to_owned(),
        at,
        note: note.to_owned(),
    };
    Ok(!put_back_many(tx, &[job], PutBackKind::Release).await?.is_empty())
}

/// Marks jobs dead (`(id, state_id, error)`): they stay in the table with their last error and are
/// never claimed again. Returns the ids that were still held.
pub async fn bury_many(tx: &mut Tx, jobs: &[(i64, String, String)]) -> Result<Vec<i64>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(jobs.len());
    match tx.handle() {
        Handle::Sqlite(c) => {
            for chunk in jobs.chunks(SQLITE_CHUNK) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "UPDATE queue_item SET retries_remaining = 0, processing_expires = NULL, state_id = 'dead', last_error = v.column3 FROM (",
                );
                q.push_values(chunk, |mut b, (id, state, error)| {
                    b.push_bind(*id).push_bind(state.clone()).push_bind(error.clone());
                });
                q.push(") AS v WHERE queue_item.id = v.column1 AND queue_item.state_id = v.column2 RETURNING queue_item.id");
                out.extend(q.build_query_scalar::<i64>().fetch_all(&mut *c).await?);
            }
        }
        Handle::Postgres(c) => {
            let sql = "UPDATE queue_item q SET retries_remaining = 0, processing_expires = NULL, state_id = 'dead', last_error = t.err \
                       FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS t(id, st, err) \
                       WHERE q.id = t.id AND q.state_id = t.st RETURNING q.id";
            let ids: Vec<i64> = jobs.iter().map(|j| j.0).collect();
            let states: Vec<&str> = jobs.iter().map(|j| j.1.as_str()).collect();
            let errors: Vec<&str> = jobs.iter().map(|j| j.2.as_str()).collect();
            out.extend(
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(ids)
                    .bind(states)
                    .bind(errors)
                    .fetch_all(&mut *c)
                    .await?,
            );
        }
    }
    Ok(out)
}

/// Marks a job dead: it stays in the table with its last error and is never claimed again.
/// Returns false when the claim was lost.
pub async fn bury(tx: &mut Tx, id: i64, state_id: &str, error: &str) -> Result<bool> {
    Ok(!bury_many(tx, &[(id, state_id.to_owned(), error.to_owned())])
        .await?
        .is_empty())
}
