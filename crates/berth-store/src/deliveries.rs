//! The delivery log: one `delivery` row per (event occurrence, notification) with its status, and
//! one `delivery_attempt` row per attempt with what was sent and received. Rows are written in the
//! same transactions as the queue changes they describe, so the log never disagrees with the queue.

use berth_core::DeliveryStatus;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{QueryBuilder, Sqlite};

use crate::Result;
use crate::db::{Exec, Handle, Tx, run};

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
    /// Where it stands.
    #[sqlx(try_from = "String")]
    pub status: DeliveryStatus,
    /// What it sends (event data, performer, ids), as JSON text, byte for byte as written: every
    /// attempt sends the same bytes.
    pub body: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
    /// When the next attempt is due, while it waits to be retried after a failed one.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One row of `delivery_attempt`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// Its number among the delivery's attempts, from 1, counted on across redeliveries.
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

/// An attempt to record: what [`record_attempts`] stores for a delivery.
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    /// The delivery's row id.
    pub delivery: i64,
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
    /// The delivery's status after it.
    pub status: DeliveryStatus,
    /// When the next attempt is due, when it is to be retried.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, public_id, notification_id, event, status, body, attempts, last_error, created_at, updated_at, next_attempt_at"
    };
}

/// A delivery to log as it is enqueued.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// The public id (`<event id>.<notification uuid>`).
    pub public_id: &'a str,
    /// The notification.
    pub notification_id: i64,
    /// The event name.
    pub event: &'a str,
    /// Its status: `Pending`, or `Skipped` for a disabled notification.
    pub status: DeliveryStatus,
    /// What it sends, as JSON text (kept for redelivery and shown in the log).
    pub body: &'a str,
}

/// Rows per multi-row statement on SQLite (its limit is 32,766 bound values).
const SQLITE_CHUNK: usize = 1000;

/// Records deliveries in one statement (per 1,000 on SQLite). A public id seen before keeps its
/// row and goes back to the new status. Returns each one's row id with its public id, in no
/// particular order.
pub async fn insert_many(tx: &mut Tx, rows: &[NewDelivery<'_>], now: DateTime<Utc>) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::with_capacity(rows.len());
    if rows.is_empty() {
        return Ok(out);
    }
    match tx.handle() {
        Handle::Sqlite(c) => {
            for chunk in rows.chunks(SQLITE_CHUNK) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO delivery (public_id, notification_id, event, status, body, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, d| {
                    b.push_bind(d.public_id)
                        .push_bind(d.notification_id)
                        .push_bind(d.event)
                        .push_bind(d.status.as_str())
                        .push_bind(d.body)
                        .push_bind(now)
                        .push_bind(now);
                });
                q.push(
                    " ON CONFLICT (public_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at \
                     RETURNING id, public_id",
                );
                out.extend(q.build_query_as::<(i64, String)>().fetch_all(&mut *c).await?);
            }
        }
        Handle::Postgres(c) => {
            let sql = "INSERT INTO delivery (public_id, notification_id, event, status, body, created_at, updated_at) \
                       SELECT p, n, e, s, b, $6, $6 \
                       FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[]) AS t(p, n, e, s, b) \
                       ON CONFLICT (public_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at \
                       RETURNING id, public_id";
            out.extend(
                sqlx::query_as::<_, (i64, String)>(sql)
                    .bind(rows.iter().map(|d| d.public_id).collect::<Vec<_>>())
                    .bind(rows.iter().map(|d| d.notification_id).collect::<Vec<_>>())
                    .bind(rows.iter().map(|d| d.event).collect::<Vec<_>>())
                    .bind(rows.iter().map(|d| d.status.as_str()).collect::<Vec<_>>())
                    .bind(rows.iter().map(|d| d.body).collect::<Vec<_>>())
                    .bind(now)
                    .fetch_all(&mut *c)
                    .await?,
            );
        }
    }
    Ok(out)
}

fn json_text(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".into())
}

/// Appends attempts to their deliveries and sets each delivery's status, attempt count and last
/// error: two statements for the whole batch (per 1,000 on SQLite).
pub async fn record_attempts(tx: &mut Tx, attempts: &[NewAttempt<'_>], now: DateTime<Utc>) -> Result<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let sent: Vec<String> = attempts.iter().map(|a| json_text(a.request_headers)).collect();
    let received: Vec<Option<String>> = attempts.iter().map(|a| a.response_headers.map(json_text)).collect();
    match tx.handle() {
        Handle::Sqlite(c) => {
            for (i, chunk) in attempts.chunks(SQLITE_CHUNK).enumerate() {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO delivery_attempt (delivery_id, attempt, started_at, duration_ms, request_url, request_headers, \
                     request_body, response_status, response_headers, response_body, error, outcome) ",
                );
                q.push_values(chunk.iter().enumerate(), |mut b, (j, a)| {
                    let k = i * SQLITE_CHUNK + j;
                    b.push_bind(a.delivery)
                        .push_bind(a.attempt)
                        .push_bind(a.started_at)
                        .push_bind(a.duration_ms)
                        .push_bind(a.request_url)
                        .push_bind(sent[k].as_str())
                        .push_bind(a.request_body)
                        .push_bind(a.response_status)
                        .push_bind(received[k].as_deref())
                        .push_bind(a.response_body)
                        .push_bind(a.error)
                        .push_bind(a.outcome);
                });
                q.build().execute(&mut *c).await?;
            }
        }
        Handle::Postgres(c) => {
            let sql = "INSERT INTO delivery_attempt (delivery_id, attempt, started_at, duration_ms, request_url, request_headers, \
                       request_body, response_status, response_headers, response_body, error, outcome) \
                       SELECT d, a, s, ms, u, rh::jsonb, rb, st, sh::jsonb, sb, e, o FROM UNNEST($1::bigint[], $2::int[], \
                       $3::timestamptz[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[], $10::text[], \
                       $11::text[], $12::text[]) AS t(d, a, s, ms, u, rh, rb, st, sh, sb, e, o)";
            sqlx::query(sql)
                .bind(attempts.iter().map(|a| a.delivery).collect::<Vec<_>>())
                .bind(attempts.iter().map(|a| a.attempt).collect::<Vec<_>>())
                .bind(attempts.iter().map(|a| a.started_at).collect::<Vec<_>>())
                .bind(attempts.iter().map(|a| a.duration_ms).collect::<Vec<_>>())
                .bind(attempts.iter().map(|a| a.request_url).collect::<Vec<_>>())
                .bind(&sent)
                .bind(attempts.iter().map(|a| a.request_body).collect::<Vec<_>>())
                .bind(attempts.iter().map(|a| a.response_status).collect::<Vec<_>>())
                .bind(&received)
                .bind(attempts.iter().map(|a| a.response_body).collect::<Vec<_>>())
                .bind(attempts.iter().map(|a| a.error).collect::<Vec<_>>())
                .bind(attempts.iter().map(|a| a.outcome).collect::<Vec<_>>())
                .execute(&mut *c)
                .await?;
        }
    }
    // One change per delivery: its attempts counted, the last one's status and error kept.
    let mut changes: Vec<StatusChange<'_>> = Vec::with_capacity(attempts.len());
    for a in attempts {
        match changes.iter_mut().find(|c| c.delivery == a.delivery) {
            Some(c) => {
                c.status = a.status;
                c.note = a.error;
                c.attempts += 1;
                c.next_attempt_at = a.next_attempt_at;
            }
            None => changes.push(StatusChange {
                delivery: a.delivery,
                status: a.status,
                note: a.error,
                attempts: 1,
                next_attempt_at: a.next_attempt_at,
            }),
        }
    }
    set_statuses(tx, &changes, now).await
}

/// A delivery's new status: after attempts (which count, and whose last error, or none, becomes
/// the last error), or without one (a note, when given, becomes the last error).
#[derive(Debug, Clone)]
pub struct StatusChange<'a> {
    /// The delivery's row id.
    pub delivery: i64,
    /// The new status.
    pub status: DeliveryStatus,
    /// The attempt's error, or the note.
    pub note: Option<&'a str>,
    /// Attempts made (0 for a change without one). One change per delivery in a call.
    pub attempts: i32,
    /// When the next attempt is due (`None`: now, or never).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Sets deliveries' statuses in one statement (per 1,000 on SQLite).
pub async fn set_statuses(tx: &mut Tx, changes: &[StatusChange<'_>], now: DateTime<Utc>) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    match tx.handle() {
        Handle::Sqlite(c) => {
            for chunk in changes.chunks(SQLITE_CHUNK) {
                let mut q = QueryBuilder::<Sqlite>::new("UPDATE delivery SET updated_at = ");
                q.push_bind(now).push(
                    ", status = v.column2, attempts = attempts + v.column4, next_attempt_at = v.column5, \
                     last_error = CASE WHEN v.column4 > 0 THEN v.column3 ELSE COALESCE(v.column3, last_error) END FROM (",
                );
                q.push_values(chunk, |mut b, s| {
                    b.push_bind(s.delivery)
                        .push_bind(s.status.as_str())
                        .push_bind(s.note)
                        .push_bind(s.attempts)
                        .push_bind(s.next_attempt_at);
                });
                q.push(") AS v WHERE delivery.id = v.column1");
                q.build().execute(&mut *c).await?;
            }
        }
        Handle::Postgres(c) => {
            let sql = "UPDATE delivery d SET updated_at = $5, status = t.s, attempts = d.attempts + t.a, next_attempt_at = t.x, \
                       last_error = CASE WHEN t.a > 0 THEN t.n ELSE COALESCE(t.n, d.last_error) END \
                       FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::int[], $6::timestamptz[]) AS t(id, s, n, a, x) \
                       WHERE d.id = t.id";
            sqlx::query(sql)
                .bind(changes.iter().map(|s| s.delivery).collect::<Vec<_>>())
                .bind(changes.iter().map(|s| s.status.as_str()).collect::<Vec<_>>())
                .bind(changes.iter().map(|s| s.note).collect::<Vec<_>>())
                .bind(changes.iter().map(|s| s.attempts).collect::<Vec<_>>())
                .bind(now)
                .bind(changes.iter().map(|s| s.next_attempt_at).collect::<Vec<_>>())
                .execute(&mut *c)
                .await?;
        }
    }
    Ok(())
}

/// Sets a delivery's status without an attempt (e.g. dropped by a filter).
pub async fn set_status(
    tx: &mut Tx,
    public_id: &str,
    status: DeliveryStatus,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let sql = "UPDATE delivery SET status = $2, last_error = COALESCE($3, last_error), updated_at = $4, next_attempt_at = NULL \
         WHERE public_id = $1";
    run!(tx, c => sqlx::query(sql).bind(public_id).bind(status.as_str()).bind(note).bind(now)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A notification's deliveries, newest first, optionally of one status.
pub async fn list(
    ex: &mut impl Exec,
    notification_id: i64,
    status: Option<DeliveryStatus>,
    limit: i64,
    offset: i64,
) -> Result<Vec<DeliveryRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM delivery WHERE notification_id = $1 AND ($2 IS NULL OR status = $2) ORDER BY id DESC LIMIT $3 OFFSET $4"
    );
    Ok(
        run!(ex, c => sqlx::query_as::<_, DeliveryRow>(sql).bind(notification_id).bind(status.map(DeliveryStatus::as_str)).bind(limit).bind(offset)
        .fetch_all(c).await)?,
    )
}

/// The bodies of these deliveries, as JSON text (for the delivery worker's batches), each with
/// the configuration revision it was stamped with by an edit (`None`: the notification's current
/// configuration); rows that no longer exist are left out.
pub async fn bodies(ex: &mut impl Exec, ids: &[i64]) -> Result<Vec<(i64, String, Option<i64>)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match ex.handle() {
        Handle::Sqlite(c) => {
            let sql = "SELECT id, body, revision_id FROM delivery WHERE id IN (SELECT value FROM json_each($1))";
            let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
            sqlx::query_as::<_, (i64, String, Option<i64>)>(sql)
                .bind(list)
                .fetch_all(c)
                .await?
        }
        Handle::Postgres(c) => {
            let sql = "SELECT id, body, revision_id FROM delivery WHERE id = ANY($1)";
            sqlx::query_as::<_, (i64, String, Option<i64>)>(sql)
                .bind(ids)
                .fetch_all(c)
                .await?
        }
    })
}

/// Stamps a notification's pending deliveries that have no revision yet with `revision` (an
/// edit's snapshot of the configuration they were made under). Returns how many.
pub async fn stamp_revision(tx: &mut Tx, notification_id: i64, revision: i64) -> Result<u64> {
    let sql = "UPDATE delivery SET revision_id = $2 WHERE notification_id = $1 AND status = $3 AND revision_id IS NULL";
    Ok(
        run!(tx, c => sqlx::query(sql).bind(notification_id).bind(revision).bind(DeliveryStatus::Pending.as_str())
        .execute(c).await.map(|r| r.rows_affected()))?,
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
    // Numbered in order across redeliveries (each redelivery's job counts its own attempts from 1).
    let sql = "SELECT CAST(ROW_NUMBER() OVER (ORDER BY id) AS INTEGER) AS attempt, started_at, duration_ms, request_url, \
               request_headers, request_body, response_status, response_headers, response_body, error, outcome \
               FROM delivery_attempt WHERE delivery_id = $1 ORDER BY id";
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
