//! Notifications: "when this event occurs in this repository, notify by this method", each held
//! by one repository or, namespace-wide (Berth), by a namespace, where it fires for every
//! repository.

use berth_core::{AccountId, RepoId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::Result;
use crate::db::{Exec, Handle, Tx, run};
use crate::secrets::Sealed;

/// One row of `repository_notification`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    /// Row id.
    pub id: i64,
    /// Public id.
    pub uuid: String,
    /// Its repository, or its namespace when it is namespace-wide.
    #[sqlx(flatten)]
    pub scope: NotificationScope,
    /// Quay event name, e.g. `repo_push`.
    pub event: String,
    /// Quay method name, e.g. `webhook`.
    pub method: String,
    /// Optional title.
    pub title: Option<String>,
    /// Method configuration.
    pub config: Json<serde_json::Value>,
    /// Event configuration (filters).
    pub event_config: Json<serde_json::Value>,
    /// Consecutive failures.
    pub number_of_failures: i32,
    /// Whether deliveries are enqueued and performed.
    pub enabled: bool,
    /// Why it was disabled, when it was.
    pub disabled_reason: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The signing secret (`whsec_…`), sealed; `None` only for rows from before signing existed.
    pub secret: Option<Sealed>,
    /// The secret before the last rotation, sealed, still signing until `previous_secret_until`.
    pub previous_secret: Option<Sealed>,
    /// End of the rotation grace period.
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Since when every attempt failed (cleared by a success).
    pub failing_since: Option<DateTime<Utc>>,
}

/// What holds a notification: one repository, or a namespace (namespace-wide: every repository
/// of the namespace, present and future).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationScope {
    /// One repository.
    Repository(RepoId),
    /// A whole namespace (an organization or a user).
    Namespace(AccountId),
}

impl NotificationScope {
    /// The repository, for a repository's notification.
    pub fn repository(self) -> Option<RepoId> {
        match self {
            NotificationScope::Repository(r) => Some(r),
            NotificationScope::Namespace(_) => None,
        }
    }

    /// The two columns: `(repository_id, namespace_id)`, one of them `NULL`.
    fn columns(self) -> (Option<i64>, Option<i64>) {
        match self {
            NotificationScope::Repository(r) => (Some(r.0), None),
            NotificationScope::Namespace(a) => (None, Some(a.0)),
        }
    }
}

impl<'r, R> sqlx::FromRow<'r, R> for NotificationScope
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> std::result::Result<Self, sqlx::Error> {
        let repository: Option<i64> = row.try_get("repository_id")?;
        let namespace: Option<i64> = row.try_get("namespace_id")?;
        match (repository, namespace) {
            (Some(r), _) => Ok(NotificationScope::Repository(RepoId(r))),
            (None, Some(a)) => Ok(NotificationScope::Namespace(AccountId(a))),
            (None, None) => Err(sqlx::Error::ColumnDecode {
                index: "repository_id".into(),
                source: "a notification with neither a repository nor a namespace".into(),
            }),
        }
    }
}

/// What [`insert`] stores.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    /// Public id.
    pub uuid: &'a str,
    /// Its repository or namespace.
    pub scope: NotificationScope,
    /// Event name.
    pub event: &'a str,
    /// Method name.
    pub method: &'a str,
    /// Optional title.
    pub title: Option<&'a str>,
    /// Method configuration.
    pub config: &'a serde_json::Value,
    /// Event configuration.
    pub event_config: &'a serde_json::Value,
    /// The signing secret, sealed.
    pub secret: &'a Sealed,
}

macro_rules! columns {
    () => {
        "id, uuid, repository_id, namespace_id, event, method, title, config, event_config, number_of_failures, enabled, disabled_reason, created_at, \
         secret, previous_secret, previous_secret_until, disabled_at, failing_since"
    };
}

/// Stores a notification.
pub async fn insert(tx: &mut Tx, n: &NewNotification<'_>) -> Result<NotificationRow> {
    let sql = concat!(
        "INSERT INTO repository_notification (uuid, repository_id, namespace_id, event, method, title, config, event_config, created_at, secret) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ",
        columns!()
    );
    let (repository, namespace) = n.scope.columns();
    Ok(run!(tx, c => sqlx::query_as::<_, NotificationRow>(sql)
        .bind(n.uuid).bind(repository).bind(namespace).bind(n.event).bind(n.method).bind(n.title)
        .bind(Json(n.config)).bind(Json(n.event_config)).bind(Utc::now()).bind(n.secret)
        .fetch_one(c).await)?)
}

/// The notifications for `event` of repository `repo` in namespace `namespace`: the repository's
/// own and the namespace's, enabled or not, oldest first.
pub async fn for_event(
    ex: &mut impl Exec,
    repo: RepoId,
    namespace: AccountId,
    event: &str,
) -> Result<Vec<NotificationRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM repository_notification WHERE (repository_id = $1 OR namespace_id = $2) AND event = $3 ORDER BY id"
    );
    Ok(
        run!(ex, c => sqlx::query_as::<_, NotificationRow>(sql).bind(repo.0).bind(namespace.0).bind(event).fetch_all(c).await)?,
    )
}

/// The notifications for `event` of the repository `namespace/name`, its own and its
/// namespace's, enabled or not, oldest first: [`for_event`] by the repository's path, in one
/// round trip (empty when there is no such repository).
pub async fn for_event_at(
    ex: &mut impl Exec,
    namespace: &str,
    name: &str,
    event: &str,
) -> Result<Vec<NotificationRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM repository_notification WHERE event = $3 AND (\
         repository_id = (SELECT r.id FROM repository r JOIN account a ON a.id = r.namespace_id WHERE a.name = $1 AND r.name = $2) \
         OR namespace_id = (SELECT r.namespace_id FROM repository r JOIN account a ON a.id = r.namespace_id WHERE a.name = $1 AND r.name = $2)) \
         ORDER BY id"
    );
    Ok(
        run!(ex, c => sqlx::query_as::<_, NotificationRow>(sql).bind(namespace).bind(name).bind(event).fetch_all(c).await)?,
    )
}

/// Every notification for `event`, of any repository or namespace, oldest first (for the
/// periodic sources, such as expiring tags).
pub async fn of_event(ex: &mut impl Exec, event: &str) -> Result<Vec<NotificationRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM repository_notification WHERE event = $1 ORDER BY id"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, NotificationRow>(sql).bind(event).fetch_all(c).await)?)
}

/// The namespace-wide notifications of `namespace` for `event`, enabled or not, oldest first (for
/// events about the namespace itself).
pub async fn for_namespace_event(
    ex: &mut impl Exec,
    namespace: AccountId,
    event: &str,
) -> Result<Vec<NotificationRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM repository_notification WHERE namespace_id = $1 AND event = $2 ORDER BY id"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, NotificationRow>(sql).bind(namespace.0).bind(event).fetch_all(c).await)?)
}

/// Turns a notification off (or back on, with `reason` `None`).
pub async fn set_enabled(tx: &mut Tx, id: i64, enabled: bool, reason: Option<&str>) -> Result<()> {
    let sql = "UPDATE repository_notification SET enabled = $2, disabled_reason = $3, disabled_at = $4 WHERE id = $1";
    let at = (!enabled).then(Utc::now);
    run!(tx, c => sqlx::query(sql).bind(id).bind(enabled).bind(reason).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Changes a notification's title and configuration; its event, method, state and secrets stay.
pub async fn update(
    tx: &mut Tx,
    id: i64,
    title: Option<&str>,
    config: &serde_json::Value,
    event_config: &serde_json::Value,
) -> Result<NotificationRow> {
    let sql = concat!(
        "UPDATE repository_notification SET title = $2, config = $3, event_config = $4 WHERE id = $1 RETURNING ",
        columns!()
    );
    Ok(run!(tx, c => sqlx::query_as::<_, NotificationRow>(sql)
        .bind(id).bind(title).bind(Json(config)).bind(Json(event_config))
        .fetch_one(c).await)?)
}

/// A configuration a notification had before an edit.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevisionRow {
    /// Row id (what deliveries are stamped with).
    pub id: i64,
    /// The notification.
    pub notification_id: i64,
    /// The method configuration then.
    pub config: Json<serde_json::Value>,
    /// The event configuration then.
    pub event_config: Json<serde_json::Value>,
}

/// Keeps a notification's current configuration as a revision, before an edit replaces it.
pub async fn keep_revision(tx: &mut Tx, n: &NotificationRow) -> Result<i64> {
    let sql = "INSERT INTO notification_revision (notification_id, config, event_config, created_at) \
               VALUES ($1, $2, $3, $4) RETURNING id";
    Ok(run!(tx, c => sqlx::query_scalar::<_, i64>(sql)
        .bind(n.id).bind(Json(&n.config.0)).bind(Json(&n.event_config.0)).bind(Utc::now())
        .fetch_one(c).await)?)
}

/// The revisions with these ids, in one query (for the delivery worker's batches).
pub async fn revisions(ex: &mut impl Exec, ids: &[i64]) -> Result<Vec<RevisionRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match ex.handle() {
        Handle::Sqlite(c) => {
            let sql = "SELECT id, notification_id, config, event_config FROM notification_revision \
                       WHERE id IN (SELECT value FROM json_each($1))";
            let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
            sqlx::query_as::<_, RevisionRow>(sql).bind(list).fetch_all(c).await?
        }
        Handle::Postgres(c) => {
            let sql = "SELECT id, notification_id, config, event_config FROM notification_revision WHERE id = ANY($1)";
            sqlx::query_as::<_, RevisionRow>(sql).bind(ids).fetch_all(c).await?
        }
    })
}

/// Disables a notification that is enabled, with the reason and time. Returns whether it was
/// enabled (so that whoever disables it tells the admins once).
pub async fn disable(tx: &mut Tx, id: i64, reason: &str, at: DateTime<Utc>) -> Result<bool> {
    let sql = "UPDATE repository_notification SET enabled = FALSE, disabled_reason = $2, disabled_at = $3 \
               WHERE id = $1 AND enabled";
    let n = run!(tx, c => sqlx::query(sql).bind(id).bind(reason).bind(at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A statement over the notifications `scope` holds, in its two spellings (by repository or by
/// namespace, each with its index), with the id that `$1` binds.
macro_rules! in_scope {
    ($scope:expr, $head:expr, $tail:expr) => {
        match $scope {
            NotificationScope::Repository(r) => (concat!($head, " repository_id = $1", $tail), r.0),
            NotificationScope::Namespace(a) => (concat!($head, " namespace_id = $1", $tail), a.0),
        }
    };
}

/// The notifications held by `scope` (a repository's own, or a namespace's namespace-wide ones),
/// oldest first.
pub async fn of_scope(ex: &mut impl Exec, scope: NotificationScope) -> Result<Vec<NotificationRow>> {
    let (sql, id) = in_scope!(
        scope,
        concat!("SELECT ", columns!(), " FROM repository_notification WHERE"),
        " ORDER BY id"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, NotificationRow>(sql).bind(id).fetch_all(c).await)?)
}

/// A notification held by `scope`, by uuid; another repository's or namespace's uuid finds
/// nothing.
pub async fn by_uuid(ex: &mut impl Exec, scope: NotificationScope, uuid: &str) -> Result<Option<NotificationRow>> {
    let (sql, id) = in_scope!(
        scope,
        concat!("SELECT ", columns!(), " FROM repository_notification WHERE"),
        " AND uuid = $2"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, NotificationRow>(sql).bind(id).bind(uuid).fetch_optional(c).await)?)
}

/// Deletes a notification. Returns whether it existed.
pub async fn delete(tx: &mut Tx, id: i64) -> Result<bool> {
    let sql = "DELETE FROM repository_notification WHERE id = $1";
    let n = run!(tx, c => sqlx::query(sql).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Clears the failure count and re-enables the notification.
pub async fn reset(tx: &mut Tx, id: i64) -> Result<()> {
    let sql = "UPDATE repository_notification SET number_of_failures = 0, enabled = TRUE, disabled_reason = NULL, \
               disabled_at = NULL, failing_since = NULL WHERE id = $1";
    run!(tx, c => sqlx::query(sql).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A notification by uuid, in any repository.
pub async fn by_uuid_any(ex: &mut impl Exec, uuid: &str) -> Result<Option<NotificationRow>> {
    let sql = concat!("SELECT ", columns!(), " FROM repository_notification WHERE uuid = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, NotificationRow>(sql).bind(uuid).fetch_optional(c).await)?)
}

/// The notifications with these uuids, in any repository, in one query (for the delivery
/// worker's batches). Uuids that match nothing are left out.
pub async fn by_uuids(ex: &mut impl Exec, uuids: &[String]) -> Result<Vec<NotificationRow>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match ex.handle() {
        Handle::Sqlite(c) => {
            let sql = concat!(
                "SELECT ",
                columns!(),
                " FROM repository_notification WHERE uuid IN (SELECT value FROM json_each($1))"
            );
            let list = serde_json::to_string(uuids).unwrap_or_else(|_| "[]".into());
            sqlx::query_as::<_, NotificationRow>(sql)
                .bind(list)
                .fetch_all(c)
                .await?
        }
        Handle::Postgres(c) => {
            let sql = concat!(
                "SELECT ",
                columns!(),
                " FROM repository_notification WHERE uuid = ANY($1)"
            );
            sqlx::query_as::<_, NotificationRow>(sql)
                .bind(uuids)
                .fetch_all(c)
                .await?
        }
    })
}

/// Clears the failure count and `failing_since` of these notifications after successes, in one
/// statement that writes only the rows that had failures.
pub async fn clear_failures(tx: &mut Tx, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    match tx.handle() {
        Handle::Sqlite(c) => {
            let sql = "UPDATE repository_notification SET number_of_failures = 0, failing_since = NULL \
                       WHERE id IN (SELECT value FROM json_each($1)) AND (number_of_failures <> 0 OR failing_since IS NOT NULL)";
            let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
            sqlx::query(sql).bind(list).execute(c).await?;
        }
        Handle::Postgres(c) => {
            let sql = "UPDATE repository_notification SET number_of_failures = 0, failing_since = NULL \
                       WHERE id = ANY($1) AND (number_of_failures <> 0 OR failing_since IS NOT NULL)";
            sqlx::query(sql).bind(ids).execute(c).await?;
        }
    }
    Ok(())
}

/// Counts `failures` consecutive failed attempts, the first at `first_at`: added to the count,
/// or, when a success came just before them (`after_success`), as the whole count. Sets
/// `failing_since` if unset (or, after a success, to `first_at`). Returns the updated row so the
/// caller can decide whether to disable it; `None` if it no longer exists.
pub async fn add_failures(
    tx: &mut Tx,
    id: i64,
    failures: i32,
    first_at: DateTime<Utc>,
    after_success: bool,
) -> Result<Option<NotificationRow>> {
    let sql = concat!(
        "UPDATE repository_notification SET \
         number_of_failures = CASE WHEN $4 THEN $2 ELSE number_of_failures + $2 END, \
         failing_since = CASE WHEN $4 THEN $3 ELSE COALESCE(failing_since, $3) END WHERE id = $1 RETURNING ",
        columns!()
    );
    Ok(run!(tx, c => sqlx::query_as::<_, NotificationRow>(sql)
        .bind(id).bind(failures).bind(first_at).bind(after_success).fetch_optional(c).await)?)
}

/// Replaces the signing secret; the previous one keeps signing until `previous_until`.
pub async fn set_secret(
    tx: &mut Tx,
    id: i64,
    secret: &Sealed,
    previous: Option<&Sealed>,
    previous_until: Option<DateTime<Utc>>,
) -> Result<()> {
    let sql = "UPDATE repository_notification SET secret = $2, previous_secret = $3, previous_secret_until = $4 WHERE id = $1";
    run!(tx, c => sqlx::query(sql).bind(id).bind(secret).bind(previous).bind(previous_until)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// How many notifications `scope` holds.
pub async fn count_in(ex: &mut impl Exec, scope: NotificationScope) -> Result<i64> {
    let (sql, id) = in_scope!(scope, "SELECT COUNT(*) FROM repository_notification WHERE", "");
    Ok(run!(ex, c => sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(c).await)?)
}

/// How many notifications are disabled (a metric).
pub async fn count_disabled(ex: &mut impl Exec) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM repository_notification WHERE NOT enabled";
    Ok(run!(ex, c => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await)?)
}
