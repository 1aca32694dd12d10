//! Dockerfile builds: the build rows with their phase and results, their log lines, uploaded build
//! contexts (filedrop) and build triggers.

use berth_core::{BuildPhase, BuildSource, RepoId};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use crate::Result;
use crate::db::{Exec, Tx, run};

macro_rules! build_select {
    ($rest:literal) => {
        concat!(
            "SELECT id, uuid, repository_id, phase, display_name, docker_tags, source, dockerfile_path, context, \
             trigger_id, trigger_metadata, manual_user, performer_id, error, image_id, manifest_digests, \
             cancel_requested, created_at, started_at, completed_at FROM build ",
            $rest
        )
    };
}

/// One build.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BuildRow {
    /// Row id.
    pub id: i64,
    /// Public id.
    pub uuid: String,
    /// The repository it builds for.
    #[sqlx(try_from = "i64")]
    pub repository_id: RepoId,
    /// Where it stands.
    #[sqlx(try_from = "String")]
    pub phase: BuildPhase,
    /// Short commit SHA, or a short hash of the uploaded context.
    pub display_name: String,
    /// Tags to push.
    pub docker_tags: Json<Vec<String>>,
    /// Where the context comes from (stored as JSON tagged by `kind`).
    pub source: Json<BuildSource>,
    /// The Dockerfile, relative to the context.
    pub dockerfile_path: String,
    /// The context directory, relative to the source root.
    pub context: String,
    /// The trigger that started it.
    pub trigger_id: Option<i64>,
    /// Quay's `trigger_metadata` (`{}` for uploads).
    pub trigger_metadata: Json<Value>,
    /// Who started it by hand.
    pub manual_user: Option<String>,
    /// The account it acts for (pushes, audit).
    pub performer_id: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The pushed image's config digest.
    pub image_id: Option<String>,
    /// The pushed manifests.
    pub manifest_digests: Json<Vec<String>>,
    /// A cancel was requested while it ran.
    pub cancel_requested: bool,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub completed_at: Option<DateTime<Utc>>,
}

/// What [`insert`] stores.
#[derive(Debug, Clone)]
pub struct NewBuild<'a> {
    /// Public id.
    pub uuid: &'a str,
    /// Repository.
    pub repo: RepoId,
    /// Display name.
    pub display_name: &'a str,
    /// Tags.
    pub docker_tags: &'a [String],
    /// Source.
    pub source: &'a BuildSource,
    /// Dockerfile path.
    pub dockerfile_path: &'a str,
    /// Context directory.
    pub context: &'a str,
    /// Trigger row id.
    pub trigger_id: Option<i64>,
    /// Trigger metadata.
    pub trigger_metadata: &'a Value,
    /// Manual starter.
    pub manual_user: Option<&'a str>,
    /// The account it acts for.
    pub performer_id: Option<i64>,
}

/// Queues a build.
pub async fn insert(tx: &mut Tx, b: &NewBuild<'_>) -> Result<BuildRow> {
    let sql = concat!(
        "INSERT INTO build (uuid, repository_id, phase, display_name, docker_tags, source, dockerfile_path, context, \
         trigger_id, trigger_metadata, manual_user, performer_id, manifest_digests, cancel_requested, created_at) \
         VALUES ($1, $2, 'waiting', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, FALSE, $13) RETURNING ",
        "id, uuid, repository_id, phase, display_name, docker_tags, source, dockerfile_path, context, \
         trigger_id, trigger_metadata, manual_user, performer_id, error, image_id, manifest_digests, cancel_requested, \
         created_at, started_at, completed_at"
    );
    let empty: Vec<String> = Vec::new();
    Ok(run!(tx, c => sqlx::query_as::<_, BuildRow>(sql)
        .bind(b.uuid).bind(b.repo.0).bind(b.display_name).bind(Json(b.docker_tags)).bind(Json(b.source))
        .bind(b.dockerfile_path).bind(b.context).bind(b.trigger_id).bind(Json(b.trigger_metadata))
        .bind(b.manual_user).bind(b.performer_id).bind(Json(&empty)).bind(Utc::now())
        .fetch_one(c).await)?)
}

/// A build of `repo` by uuid.
pub async fn by_uuid(ex: &mut impl Exec, repo: RepoId, uuid: &str) -> Result<Option<BuildRow>> {
    let sql = build_select!("WHERE repository_id = $1 AND uuid = $2");
    Ok(run!(ex, c => sqlx::query_as::<_, BuildRow>(sql).bind(repo.0).bind(uuid).fetch_optional(c).await)?)
}

/// A build by row id.
pub async fn by_id(ex: &mut impl Exec, id: i64) -> Result<Option<BuildRow>> {
    let sql = build_select!("WHERE id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, BuildRow>(sql).bind(id).fetch_optional(c).await)?)
}

/// Whether a cancel was requested for a build.
pub async fn cancel_requested(ex: &mut impl Exec, id: i64) -> Result<bool> {
    let sql = "SELECT cancel_requested FROM build WHERE id = $1";
    Ok(run!(ex, c => sqlx::query_scalar::<_, bool>(sql).bind(id).fetch_optional(c).await)?.unwrap_or(false))
}

/// A build by uuid, in any repository (the executor's lookup).
pub async fn by_uuid_any(ex: &mut impl Exec, uuid: &str) -> Result<Option<BuildRow>> {
    let sql = build_select!("WHERE uuid = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, BuildRow>(sql).bind(uuid).fetch_optional(c).await)?)
}

/// The builds of a repository, newest first.
pub async fn list(ex: &mut impl Exec, repo: RepoId, limit: i64) -> Result<Vec<BuildRow>> {
    let sql = build_select!("WHERE repository_id = $1 ORDER BY id DESC LIMIT $2");
    Ok(run!(ex, c => sqlx::query_as::<_, BuildRow>(sql).bind(repo.0).bind(limit).fetch_all(c).await)?)
}

/// Moves a build to `phase`, unless it already finished; records the start when it starts
/// building and the end when it finishes. Returns whether it moved.
pub async fn set_phase(tx: &mut Tx, id: i64, to: BuildPhase, error: Option<&str>, now: DateTime<Utc>) -> Result<bool> {
    let sql = "UPDATE build SET phase = $2, error = COALESCE($3, error), \
               started_at = CASE WHEN $2 = 'building' AND started_at IS NULL THEN $4 ELSE started_at END, \
               completed_at = CASE WHEN $2 IN ('complete', 'error', 'cancelled', 'internalerror', 'expired') THEN $4 ELSE completed_at END \
               WHERE id = $1 AND phase NOT IN ('complete', 'error', 'cancelled', 'internalerror', 'expired')";
    let n = run!(tx, c => sqlx::query(sql).bind(id).bind(to.as_str()).bind(error).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Records what a successful build pushed.
pub async fn set_result(tx: &mut Tx, id: i64, image_id: &str, digests: &[String]) -> Result<()> {
    let sql = "UPDATE build SET image_id = $2, manifest_digests = $3 WHERE id = $1";
    run!(tx, c => sqlx::query(sql).bind(id).bind(image_id).bind(Json(digests)).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// Asks a running build to stop. Returns whether it was running.
pub async fn request_cancel(tx: &mut Tx, id: i64) -> Result<bool> {
    let sql = "UPDATE build SET cancel_requested = TRUE \
               WHERE id = $1 AND phase NOT IN ('complete', 'error', 'cancelled', 'internalerror', 'expired')";
    let n = run!(tx, c => sqlx::query(sql).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Gives a running build a push credential (its hash) valid until `until`; `None` revokes it.
pub async fn set_credential(tx: &mut Tx, id: i64, hash: Option<&str>, until: Option<DateTime<Utc>>) -> Result<()> {
    let sql = "UPDATE build SET credential_hash = $2, credential_until = $3 WHERE id = $1";
    run!(tx, c => sqlx::query(sql).bind(id).bind(hash).bind(until).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// The running build whose credential hashes to `hash`, if still valid at `now`.
pub async fn by_credential(ex: &mut impl Exec, hash: &str, now: DateTime<Utc>) -> Result<Option<BuildRow>> {
    let sql = build_select!("WHERE credential_hash = $1 AND credential_until > $2");
    Ok(run!(ex, c => sqlx::query_as::<_, BuildRow>(sql).bind(hash).bind(now).fetch_optional(c).await)?)
}

/// One log line.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogLine {
    /// Its number, from 0.
    pub seq: i32,
    /// `phase`, `command`, `output` or `error`.
    pub kind: String,
    /// The text.
    pub message: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Appends log lines after the last one. Returns the number of lines now stored.
pub async fn append_log(tx: &mut Tx, build: i64, lines: &[(&str, &str)], now: DateTime<Utc>) -> Result<i64> {
    let count = "SELECT COUNT(*) FROM build_log WHERE build_id = $1";
    let mut next = run!(tx, c => sqlx::query_scalar::<_, i64>(count).bind(build).fetch_one(c).await)?;
    let sql = "INSERT INTO build_log (build_id, seq, kind, message, created_at) VALUES ($1, $2, $3, $4, $5)";
    for (kind, message) in lines {
        let seq = i32::try_from(next).unwrap_or(i32::MAX);
        run!(tx, c => sqlx::query(sql).bind(build).bind(seq).bind(*kind).bind(*message).bind(now).execute(c).await.map(|_| ()))?;
        next += 1;
    }
    Ok(next)
}

/// Log lines from `start`, at most `limit`, and the total count.
pub async fn logs(ex: &mut impl Exec, build: i64, start: i64, limit: i64) -> Result<(Vec<LogLine>, i64)> {
    let sql =
        "SELECT seq, kind, message, created_at FROM build_log WHERE build_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3";
    let lines =
        run!(ex, c => sqlx::query_as::<_, LogLine>(sql).bind(build).bind(start).bind(limit).fetch_all(c).await)?;
    let count = "SELECT COUNT(*) FROM build_log WHERE build_id = $1";
    let total = run!(ex, c => sqlx::query_scalar::<_, i64>(count).bind(build).fetch_one(c).await)?;
    Ok((lines, total))
}

/// Creates an empty filedrop with a one-time upload token (its hash).
pub async fn create_filedrop(tx: &mut Tx, id: &str, owner: i64, token_hash: &str, mime: &str) -> Result<()> {
    let sql = "INSERT INTO filedrop (id, owner_id, token_hash, mime_type, created_at) VALUES ($1, $2, $3, $4, $5)";
    run!(tx, c => sqlx::query(sql).bind(id).bind(owner).bind(token_hash).bind(mime).bind(Utc::now()).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// Starts the upload of filedrop `id` if `token_hash` is its token, it is not filled, and no
/// other upload is arriving (one that started before `stale_before` is taken over, its pieces
/// dropped). Returns whether it did; nothing is read from the caller before this.
pub async fn begin_filedrop_upload(
    ex: &mut impl Exec,
    id: &str,
    token_hash: &str,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> Result<bool> {
    let sql = "UPDATE filedrop SET receiving_at = $3 WHERE id = $1 AND token_hash = $2 AND size IS NULL \
               AND content IS NULL AND (receiving_at IS NULL OR receiving_at < $4)";
    let n = run!(ex, c => sqlx::query(sql).bind(id).bind(token_hash).bind(now).bind(stale_before).execute(c).await.map(|r| r.rows_affected()))?;
    if n == 1 {
        let drop = "DELETE FROM filedrop_chunk WHERE filedrop_id = $1";
        run!(ex, c => sqlx::query(drop).bind(id).execute(c).await.map(|_| ()))?;
    }
    Ok(n == 1)
}

/// Stores piece `seq` of an upload in the database, as versions before contexts moved to the blob
/// store did (the application now only reads such pieces, through [`filedrop_content`]; tests
/// make them with this).
pub async fn add_filedrop_chunk(ex: &mut impl Exec, id: &str, seq: i64, data: &[u8]) -> Result<()> {
    let sql = "INSERT INTO filedrop_chunk (filedrop_id, seq, data) VALUES ($1, $2, $3)";
    run!(ex, c => sqlx::query(sql).bind(id).bind(seq).bind(data).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// Marks an arrived upload filled, with its size and digest. Returns whether it did (`false`: it
/// was taken over as stale meanwhile).
pub async fn finish_filedrop_upload(
    ex: &mut impl Exec,
    id: &str,
    started: DateTime<Utc>,
    size: i64,
    digest: &str,
) -> Result<bool> {
    let sql = "UPDATE filedrop SET size = $3, digest = $4, receiving_at = NULL \
               WHERE id = $1 AND receiving_at = $2 AND size IS NULL";
    let n = run!(ex, c => sqlx::query(sql).bind(id).bind(started).bind(size).bind(digest).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Gives up an upload that failed: its pieces go, and the filedrop can be uploaded again.
pub async fn abort_filedrop_upload(ex: &mut impl Exec, id: &str, started: DateTime<Utc>) -> Result<()> {
    let sql = "UPDATE filedrop SET receiving_at = NULL WHERE id = $1 AND receiving_at = $2 AND size IS NULL";
    let n = run!(ex, c => sqlx::query(sql).bind(id).bind(started).execute(c).await.map(|r| r.rows_affected()))?;
    if n == 1 {
        let drop = "DELETE FROM filedrop_chunk WHERE filedrop_id = $1";
        run!(ex, c => sqlx::query(drop).bind(id).execute(c).await.map(|_| ()))?;
    }
    Ok(())
}

/// A filedrop as builds see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FiledropRow {
    /// Who asked for it.
    pub owner_id: i64,
    /// Its size once filled.
    pub size: Option<i64>,
    /// The digest of its content, once filled (`None` also for contents stored before digests).
    pub digest: Option<String>,
}

/// A filedrop's owner and, once filled, size and digest.
pub async fn filedrop(ex: &mut impl Exec, id: &str) -> Result<Option<FiledropRow>> {
    let sql = "SELECT owner_id, size, digest FROM filedrop WHERE id = $1";
    Ok(run!(ex, c => sqlx::query_as::<_, FiledropRow>(sql).bind(id).fetch_optional(c).await)?)
}

/// A filled filedrop's content, its pieces joined in order (`None` while not filled).
pub async fn filedrop_content(ex: &mut impl Exec, id: &str) -> Result<Option<Vec<u8>>> {
    let Some(row) = filedrop(ex, id).await? else {
        return Ok(None);
    };
    let Some(size) = row.size else { return Ok(None) };
    let sql = "SELECT data FROM filedrop_chunk WHERE filedrop_id = $1 ORDER BY seq";
    let pieces = run!(ex, c => sqlx::query_scalar::<_, Vec<u8>>(sql).bind(id).fetch_all(c).await)?;
    let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for p in pieces {
        content.extend_from_slice(&p);
    }
    Ok(Some(content))
}

/// Removes filedrops created before `before` that no unfinished build still needs.
pub async fn delete_filedrops_before(tx: &mut Tx, before: DateTime<Utc>) -> Result<u64> {
    let chunks = "DELETE FROM filedrop_chunk WHERE filedrop_id IN (SELECT id FROM filedrop WHERE created_at < $1)";
    run!(tx, c => sqlx::query(chunks).bind(before).execute(c).await.map(|_| ()))?;
    let sql = "DELETE FROM filedrop WHERE created_at < $1";
    Ok(run!(tx, c => sqlx::query(sql).bind(before).execute(c).await.map(|r| r.rows_affected()))?)
}

/// A build trigger.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TriggerRow {
    /// Row id.
    pub id: i64,
    /// Public id.
    pub uuid: String,
    /// Repository.
    #[sqlx(try_from = "i64")]
    pub repository_id: RepoId,
    /// `custom-git`, `github` or `gitlab`.
    pub service: String,
    /// Its configuration (`build_source`, `dockerfile_path`, `context`, `branchtag_regex`,
    /// `default_tag_from_ref`, `latest_for_default_branch`, `tag_templates`).
    pub config: Json<Value>,
    /// The webhook secret, sealed.
    pub secret: crate::secrets::Sealed,
    /// Whether its webhook starts builds.
    pub activated: bool,
    /// The user builds act for.
    pub connected_user_id: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Creates an inactive trigger.
pub async fn insert_trigger(
    tx: &mut Tx,
    uuid: &str,
    repo: RepoId,
    service: &str,
    secret: &crate::secrets::Sealed,
    user: i64,
) -> Result<TriggerRow> {
    let sql = "INSERT INTO build_trigger (uuid, repository_id, service, config, secret, activated, connected_user_id, created_at) \
               VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7) \
               RETURNING id, uuid, repository_id, service, config, secret, activated, connected_user_id, created_at";
    let empty = serde_json::json!({});
    Ok(
        run!(tx, c => sqlx::query_as::<_, TriggerRow>(sql).bind(uuid).bind(repo.0).bind(service).bind(Json(&empty))
        .bind(secret).bind(user).bind(Utc::now()).fetch_one(c).await)?,
    )
}

/// A trigger of `repo` by uuid.
pub async fn trigger(ex: &mut impl Exec, repo: RepoId, uuid: &str) -> Result<Option<TriggerRow>> {
    let sql = "SELECT id, uuid, repository_id, service, config, secret, activated, connected_user_id, created_at \
               FROM build_trigger WHERE repository_id = $1 AND uuid = $2";
    Ok(run!(ex, c => sqlx::query_as::<_, TriggerRow>(sql).bind(repo.0).bind(uuid).fetch_optional(c).await)?)
}

/// A trigger by uuid in any repository (its webhook).
pub async fn trigger_any(ex: &mut impl Exec, uuid: &str) -> Result<Option<TriggerRow>> {
    let sql = "SELECT id, uuid, repository_id, service, config, secret, activated, connected_user_id, created_at \
               FROM build_trigger WHERE uuid = $1";
    Ok(run!(ex, c => sqlx::query_as::<_, TriggerRow>(sql).bind(uuid).fetch_optional(c).await)?)
}

/// A trigger by row id.
pub async fn trigger_by_id(ex: &mut impl Exec, id: i64) -> Result<Option<TriggerRow>> {
    let sql = "SELECT id, uuid, repository_id, service, config, secret, activated, connected_user_id, created_at \
               FROM build_trigger WHERE id = $1";
    Ok(run!(ex, c => sqlx::query_as::<_, TriggerRow>(sql).bind(id).fetch_optional(c).await)?)
}

/// The triggers of a repository, oldest first.
pub async fn triggers(ex: &mut impl Exec, repo: RepoId) -> Result<Vec<TriggerRow>> {
    let sql = "SELECT id, uuid, repository_id, service, config, secret, activated, connected_user_id, created_at \
               FROM build_trigger WHERE repository_id = $1 ORDER BY id";
    Ok(run!(ex, c => sqlx::query_as::<_, TriggerRow>(sql).bind(repo.0).fetch_all(c).await)?)
}

/// Stores a trigger's configuration and activates it.
pub async fn activate_trigger(tx: &mut Tx, id: i64, config: &Value) -> Result<()> {
    let sql = "UPDATE build_trigger SET config = $2, activated = TRUE WHERE id = $1";
    run!(tx, c => sqlx::query(sql).bind(id).bind(Json(config)).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// Deletes a trigger (its builds keep their history, without the link).
pub async fn delete_trigger(tx: &mut Tx, id: i64) -> Result<bool> {
    let sql = "DELETE FROM build_trigger WHERE id = $1";
    let n = run!(tx, c => sqlx::query(sql).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
