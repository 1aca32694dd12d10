//! Repository mirrors (Quay's): one per mirrored repository, with where it copies from, how
//! often, under which robot, which tags, and how its last sync went.

use berth_core::{AccountId, RepoId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::Result;
use crate::db::{Exec, Tx, run};
use crate::secrets::Sealed;

/// One row of `repository_mirror`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MirrorRow {
    /// The mirrored repository.
    #[sqlx(try_from = "i64")]
    pub repository_id: RepoId,
    /// Whether it syncs on its schedule.
    pub is_enabled: bool,
    /// `host[:port]/path` of the upstream repository.
    pub external_reference: String,
    /// The upstream user, if any.
    pub username: Option<String>,
    /// The upstream password, sealed.
    pub password: Option<Sealed>,
    /// Seconds between syncs.
    pub sync_interval: i64,
    /// When the first sync is due.
    pub sync_start_date: DateTime<Utc>,
    /// The robot whose identity writes the synced tags.
    #[sqlx(try_from = "i64")]
    pub robot_id: AccountId,
    /// The most a sync may take, in seconds.
    pub timeout_secs: i64,
    /// `{"rule_kind": "tag_glob_csv", "rule_value": [...]}`.
    pub root_rule: Json<serde_json::Value>,
    /// `{"verify_tls", "unsigned_images", "proxy"}`.
    pub registry_config: Json<serde_json::Value>,
    /// The architectures an index is narrowed to (empty: all).
    pub architecture_filter: Json<serde_json::Value>,
    /// `NEVER_RUN`, `SYNC_NOW`, `SYNCING`, `SUCCESS`, `FAIL` or `CANCEL`.
    pub sync_status: String,
    /// While syncing, when the sync's time runs out.
    pub sync_expiration_date: Option<DateTime<Utc>>,
    /// Failed syncs left before the mirror waits for its next interval.
    pub sync_retries_remaining: i32,
    /// Why the last sync failed.
    pub last_error: Option<String>,
    /// What the last sync did, line by line.
    pub last_log: String,
}

/// What [`upsert`] stores (everything but the sync's own state).
#[derive(Debug, Clone)]
pub struct MirrorConfig<'a> {
    /// Whether it syncs on its schedule.
    pub is_enabled: bool,
    /// `host[:port]/path`.
    pub external_reference: &'a str,
    /// The upstream user.
    pub username: Option<&'a str>,
    /// The upstream password, sealed.
    pub password: Option<&'a Sealed>,
    /// Seconds between syncs.
    pub sync_interval: i64,
    /// When the first sync is due.
    pub sync_start_date: DateTime<Utc>,
    /// The robot that writes.
    pub robot_id: AccountId,
    /// The most a sync may take, in seconds.
    pub timeout_secs: i64,
    /// The tag rule.
    pub root_rule: &'a serde_json::Value,
    /// The registry options.
    pub registry_config: &'a serde_json::Value,
    /// The architectures.
    pub architecture_filter: &'a serde_json::Value,
}

macro_rules! columns {
    () => {
        "repository_id, is_enabled, external_reference, username, password, sync_interval, sync_start_date, robot_id, \
         timeout_secs, root_rule, registry_config, architecture_filter, sync_status, sync_expiration_date, \
         sync_retries_remaining, last_error, last_log"
    };
}

/// The mirror of `repo`.
pub async fn get(ex: &mut impl Exec, repo: RepoId) -> Result<Option<MirrorRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM repository_mirror WHERE repository_id = $1"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, MirrorRow>(sql).bind(repo.0).fetch_optional(c).await)?)
}

/// Creates (`NEVER_RUN`) or replaces the configuration of the mirror of `repo`; its sync state
/// stays on a replace.
pub async fn upsert(tx: &mut Tx, repo: RepoId, m: &MirrorConfig<'_>) -> Result<()> {
    let sql = "INSERT INTO repository_mirror (repository_id, is_enabled, external_reference, username, password, \
               sync_interval, sync_start_date, robot_id, timeout_secs, root_rule, registry_config, architecture_filter, \
               created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
               ON CONFLICT (repository_id) DO UPDATE SET is_enabled = excluded.is_enabled, \
               external_reference = excluded.external_reference, username = excluded.username, \
               password = excluded.password, sync_interval = excluded.sync_interval, \
               sync_start_date = excluded.sync_start_date, robot_id = excluded.robot_id, \
               timeout_secs = excluded.timeout_secs, root_rule = excluded.root_rule, \
               registry_config = excluded.registry_config, architecture_filter = excluded.architecture_filter, \
               updated_at = excluded.updated_at";
    run!(tx, c => sqlx::query(sql)
        .bind(repo.0).bind(m.is_enabled).bind(m.external_reference).bind(m.username).bind(m.password)
        .bind(m.sync_interval).bind(m.sync_start_date).bind(m.robot_id.0).bind(m.timeout_secs)
        .bind(Json(m.root_rule)).bind(Json(m.registry_config)).bind(Json(m.architecture_filter)).bind(Utc::now())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Sets the sync state: its status, when a running sync's time ends, the retries left, and, when
/// given, the error and the log of the sync that ended.
pub async fn set_status(
    tx: &mut Tx,
    repo: RepoId,
    status: &str,
    expires: Option<DateTime<Utc>>,
    retries: Option<i32>,
    ended: Option<(Option<&str>, &str)>,
) -> Result<()> {
    let sql = "UPDATE repository_mirror SET sync_status = $2, sync_expiration_date = $3, \
               sync_retries_remaining = COALESCE($4, sync_retries_remaining), \
               last_error = CASE WHEN $5 THEN $6 ELSE last_error END, \
               last_log = CASE WHEN $5 THEN $7 ELSE last_log END, updated_at = $8 WHERE repository_id = $1";
    let (has_end, error, log) = match ended {
        Some((e, l)) => (true, e, l),
        None => (false, None, ""),
    };
    run!(tx, c => sqlx::query(sql)
        .bind(repo.0).bind(status).bind(expires).bind(retries).bind(has_end).bind(error).bind(log).bind(Utc::now())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}
