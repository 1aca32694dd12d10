//! Repository mirroring (Quay's): a repository in the `MIRROR` state copies the tags of a
//! repository of another registry that match its globs, on a schedule or when asked, under a
//! robot's identity. `mod.rs` holds the configuration use cases with Quay's body and messages
//! (the upstream password sealed at rest and never shown), sync-now and sync-cancel; `sync` the
//! worker and the copy; `client` Berth's own OCI client.

pub mod client;
pub mod sync;

use berth_core::{AccountKind, JobQueue};
use berth_store::mirrors::{self, MirrorConfig, MirrorRow};
use berth_store::{accounts, queue};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};

use crate::audit::record;
use crate::sealing::Purpose;
use crate::{App, AppError, Caller, Ctx, Result};

/// The shortest sync timeout Quay allows, in seconds.
pub const MIN_TIMEOUT_SECS: i64 = 300;
/// The longest, in seconds (12 hours).
pub const MAX_TIMEOUT_SECS: i64 = 43_200;
/// Claims a sync job gets: more than one, so that a worker that dies mid-sync is taken over.
const JOB_TRIES: i32 = 5;
/// Failed syncs retried before a mirror waits for its next interval.
pub const RETRIES: i32 = 3;
/// The architectures an index may be narrowed to.
pub const ARCHITECTURES: [&str; 7] = ["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"];

/// A mirror's configuration as the API shows it (the password never).
#[derive(Debug, Clone)]
pub struct MirrorView {
    /// The stored row.
    pub row: MirrorRow,
    /// The robot's name.
    pub robot_username: String,
}

/// A mirror's sync status, as Quay spells it.
pub mod status {
    /// Never synced.
    pub const NEVER_RUN: &str = "NEVER_RUN";
    /// Asked to sync now.
    pub const SYNC_NOW: &str = "SYNC_NOW";
    /// Syncing.
    pub const SYNCING: &str = "SYNCING";
    /// The last sync succeeded.
    pub const SUCCESS: &str = "SUCCESS";
    /// The last sync failed.
    pub const FAIL: &str = "FAIL";
    /// The last sync was cancelled.
    pub const CANCEL: &str = "CANCEL";
}

/// The queue name of a repository's sync jobs.
pub(crate) fn job_name(repo: berth_core::RepoId) -> String {
    format!("{}/{}", JobQueue::Mirror, repo.0)
}

/// Queues a sync of `repo` at `at`: a scheduled one (it runs while the mirror is enabled), or one
/// asked for with sync-now (`asked`: it runs unless cancelled before it starts).
pub(crate) async fn schedule(
    tx: &mut berth_store::Tx,
    repo: berth_core::RepoId,
    at: DateTime<Utc>,
    asked: bool,
) -> Result<()> {
    let body = json!({"repository_id": repo.0, "asked": asked});
    queue::enqueue_at(tx, JobQueue::Mirror, &job_name(repo), &body, JOB_TRIES, at).await?;
    Ok(())
}

/// The mirror of `repo` with its robot's name: 404 when it has none.
async fn mirror_view(ex: &mut impl berth_store::Exec, repo: &berth_store::repos::RepoRow) -> Result<MirrorView> {
    let row = mirrors::get(ex, repo.id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No mirror configuration for {}/{}", repo.namespace, repo.name)))?;
    let robot_username = accounts::by_id(ex, row.robot_id)
        .await?
        .map(|a| a.name)
        .unwrap_or_default();
    Ok(MirrorView { row, robot_username })
}

impl App {
    /// The mirror of a repository (admin): 404 when it has none.
    pub async fn get_mirror(&self, caller: &Caller, namespace: &str, name: &str) -> Result<MirrorView> {
        let repo = self.admin_repo(caller, namespace, name).await?;
        mirror_view(&mut self.store.conn().await?, &repo).await
    }

    /// Creates (`create`: 409 when one exists) or changes (404 when none) the mirror of a
    /// repository (admin), from Quay's body; fields a change leaves out stay. Each field is
    /// checked, with a 400 naming it.
    pub async fn put_mirror(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        body: &Value,
        create: bool,
    ) -> Result<MirrorView> {
        let repo = self.admin_repo(&ctx.caller, namespace, name).await?;
        let Some(obj) = body.as_object() else {
            return Err(AppError::invalid("the mirror configuration must be a JSON object"));
        };
        let mut tx = self.store.begin().await?;
        let existing = mirrors::get(&mut tx, repo.id).await?;
        match (&existing, create) {
            (Some(_), true) => {
                return Err(AppError::Conflict(format!(
                    "{namespace}/{name} already has a mirror configuration: change it with PUT"
                )));
            }
            (None, false) => {
                return Err(AppError::NotFound(format!(
                    "No mirror configuration for {namespace}/{name}"
                )));
            }
            _ => {}
        }
        let given = |k: &str| obj.get(k).filter(|v| !v.is_null());
        let is_enabled = match given("is_enabled") {
            Some(v) => v
                .as_bool()
                .ok_or_else(|| AppError::invalid_field("is_enabled", "is_enabled must be true or false"))?,
            None => existing.as_ref().is_none_or(|m| m.is_enabled),
        };
        let external_reference = match given("external_reference") {
            Some(v) => {
                let text = v.as_str().unwrap_or_default();
                let upstream = client::Upstream::parse(text).map_err(|e| {
                    AppError::invalid_field("external_reference", format!("invalid external_reference: {e}"))
                })?;
                if self.sender()?.refuses(&format!("https://{}/", upstream.host)) {
                    return Err(AppError::invalid_field(
                        "external_reference",
                        format!(
                            "invalid external_reference: {} is not a public address (see notifications.allowed_networks)",
                            upstream.host
                        ),
                    ));
                }
                text.trim().to_owned()
            }
            None => existing
                .as_ref()
                .map(|m| m.external_reference.clone())
                .ok_or_else(|| AppError::invalid_field("external_reference", "external_reference is required"))?,
        };
        let text = |k: &'static str| -> Result<Option<Option<String>>> {
            match obj.get(k) {
                None => Ok(None),
                Some(Value::Null) => Ok(Some(None)),
                Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
                Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
                Some(_) => Err(AppError::invalid_field(k, format!("{k} must be a string"))),
            }
        };
        let username = match text("external_registry_username")? {
            Some(u) => u,
            None => existing.as_ref().and_then(|m| m.username.clone()),
        };
        let password = match text("external_registry_password")? {
            Some(Some(p)) => Some(self.keyring.seal(Purpose::MirrorPassword, &p)?),
            Some(None) => None,
            None => existing.as_ref().and_then(|m| m.password.clone()),
        };
        let sync_interval = match given("sync_interval") {
            Some(v) => v.as_i64().filter(|n| *n > 0).ok_or_else(|| {
                AppError::invalid_field(
                    "sync_interval",
                    format!("sync_interval must be a positive number of seconds, not {v}"),
                )
            })?,
            None => existing
                .as_ref()
                .map(|m| m.sync_interval)
                .ok_or_else(|| AppError::invalid_field("sync_interval", "sync_interval is required"))?,
        };
        let sync_start_date = match given("sync_start_date") {
            Some(v) => {
                let t = v.as_str().unwrap_or_default();
                NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%SZ")
                    .map_err(|_| {
                        AppError::invalid_field(
                            "sync_start_date",
                            format!("sync_start_date must be YYYY-MM-DDTHH:MM:SSZ, not {v}"),
                        )
                    })?
                    .and_utc()
            }
            None => existing
                .as_ref()
                .map(|m| m.sync_start_date)
                .ok_or_else(|| AppError::invalid_field("sync_start_date", "sync_start_date is required"))?,
        };
        let robot_id = match given("robot_username") {
            Some(v) => {
                let robot = v.as_str().unwrap_or_default();
                let found = accounts::by_name(&mut tx, robot).await?.filter(|a| {
                    a.kind == AccountKind::Robot && robot.split_once('+').is_some_and(|(ns, _)| ns == repo.namespace)
                });
                found
                    .ok_or_else(|| {
                        AppError::invalid_field(
                            "robot_username",
                            format!(
                                "invalid robot_username: {robot} is not a robot account of {}",
                                repo.namespace
                            ),
                        )
                    })?
                    .id
            }
            None => existing
                .as_ref()
                .map(|m| m.robot_id)
                .ok_or_else(|| AppError::invalid_field("robot_username", "robot_username is required"))?,
        };
        let timeout_secs = match given("skopeo_timeout_interval") {
            Some(v) => v
                .as_i64()
                .filter(|n| (MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(n))
                .ok_or_else(|| {
                    AppError::invalid_field(
                        "skopeo_timeout_interval",
                        format!("skopeo_timeout_interval must be from {MIN_TIMEOUT_SECS} to {MAX_TIMEOUT_SECS} seconds, not {v}"),
                    )
                })?,
            None => existing.as_ref().map_or(MIN_TIMEOUT_SECS, |m| m.timeout_secs),
        };
        let root_rule = match given("root_rule") {
            Some(v) => {
                let kind_ok = v["rule_kind"].as_str() == Some("tag_glob_csv");
                let globs = v["rule_value"]
                    .as_array()
                    .filter(|a| !a.is_empty() && a.iter().all(|g| g.as_str().is_some_and(|s| !s.trim().is_empty())));
                if !kind_ok || globs.is_none() {
                    return Err(AppError::invalid_field(
                        "root_rule",
                        "root_rule must be {\"rule_kind\": \"tag_glob_csv\", \"rule_value\": [\"<glob>\", ...]} with at least one glob",
                    ));
                }
                json!({"rule_kind": "tag_glob_csv", "rule_value": globs})
            }
            None => existing
                .as_ref()
                .map(|m| m.root_rule.0.clone())
                .ok_or_else(|| AppError::invalid_field("root_rule", "root_rule is required"))?,
        };
        let registry_config = match given("external_registry_config") {
            Some(v) => {
                let Some(c) = v.as_object() else {
                    return Err(AppError::invalid_field(
                        "external_registry_config",
                        "external_registry_config must be an object",
                    ));
                };
                for key in ["verify_tls", "unsigned_images"] {
                    if c.get(key).is_some_and(|b| !b.is_boolean() && !b.is_null()) {
                        return Err(AppError::invalid_field(
                            "external_registry_config",
                            format!("external_registry_config.{key} must be true or false"),
                        ));
                    }
                }
                if c.get("proxy").is_some_and(|p| !p.is_object() && !p.is_null()) {
                    return Err(AppError::invalid_field(
                        "external_registry_config",
                        "external_registry_config.proxy must be an object",
                    ));
                }
                v.clone()
            }
            None => existing.as_ref().map_or_else(
                || json!({"verify_tls": true, "unsigned_images": false, "proxy": {}}),
                |m| m.registry_config.0.clone(),
            ),
        };
        let architecture_filter = match given("architecture_filter") {
            Some(v) => {
                let list = v.as_array().ok_or_else(|| {
                    AppError::invalid_field(
                        "architecture_filter",
                        "architecture_filter must be a list of architectures",
                    )
                })?;
                for a in list {
                    if !a.as_str().is_some_and(|a| ARCHITECTURES.contains(&a)) {
                        return Err(AppError::invalid_field(
                            "architecture_filter",
                            format!(
                                "invalid architecture_filter: {a} is not one of: {}",
                                ARCHITECTURES.join(", ")
                            ),
                        ));
                    }
                }
                v.clone()
            }
            None => existing
                .as_ref()
                .map_or_else(|| json!([]), |m| m.architecture_filter.0.clone()),
        };
        mirrors::upsert(
            &mut tx,
            repo.id,
            &MirrorConfig {
                is_enabled,
                external_reference: &external_reference,
                username: username.as_deref(),
                password: password.as_ref(),
                sync_interval,
                sync_start_date,
                robot_id,
                timeout_secs,
                root_rule: &root_rule,
                registry_config: &registry_config,
                architecture_filter: &architecture_filter,
            },
        )
        .await?;
        if is_enabled
            && (create
                || existing
                    .as_ref()
                    .is_some_and(|m| !m.is_enabled || m.sync_start_date != sync_start_date))
        {
            schedule(&mut tx, repo.id, sync_start_date, false).await?;
        }
        let kind = if create {
            "repo_mirror_enabled"
        } else {
            "repo_mirror_config_changed"
        };
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "external_reference": external_reference});
        record(&mut tx, ctx, kind, Some(repo.namespace_id), Some(repo.id), meta).await?;
        let view = mirror_view(&mut tx, &repo).await?;
        tx.commit().await?;
        self.mirror_wake.notify_one();
        Ok(view)
    }

    /// Asks for a sync now (admin): the status becomes `SYNC_NOW` and a worker takes it.
    pub async fn mirror_sync_now(&self, ctx: &Ctx, namespace: &str, name: &str) -> Result<()> {
        let view = self.get_mirror(&ctx.caller, namespace, name).await?;
        if view.row.sync_status == status::SYNCING {
            return Err(AppError::Conflict("a sync is running: cancel it first, or wait".into()));
        }
        let mut tx = self.store.begin().await?;
        mirrors::set_status(
            &mut tx,
            view.row.repository_id,
            status::SYNC_NOW,
            None,
            Some(RETRIES),
            None,
        )
        .await?;
        schedule(&mut tx, view.row.repository_id, Utc::now(), true).await?;
        tx.commit().await?;
        self.mirror_wake.notify_one();
        Ok(())
    }

    /// Cancels the running or asked-for sync (admin): a running sync stops before its next tag.
    pub async fn mirror_sync_cancel(&self, ctx: &Ctx, namespace: &str, name: &str) -> Result<()> {
        let view = self.get_mirror(&ctx.caller, namespace, name).await?;
        let mut tx = self.store.begin().await?;
        mirrors::set_status(&mut tx, view.row.repository_id, status::CANCEL, None, None, None).await?;
        tx.commit().await?;
        Ok(())
    }
}
