//! Dockerfile builds as use cases: starting builds by hand or from a trigger, listing, logs and
//! cancelling; the submodules hold uploads (`filedrop`), the worker (`worker`), fetching the
//! context (`source`), running commands (`runner`) and the build log (`log`).
//!
//! A build is a row plus a job in the durable queue (`build`), committed together with its
//! `build_queued` deliveries. The worker claims the job, fetches the context (an upload, an archive
//! URL behind the SSRF guard, or a git commit), runs the configured builder (`buildah bud
//! --isolation chroot` by default) in a per-build directory with its own container storage,
//! streams its output into the build log, and pushes the image into this registry under the
//! requested tags with a credential that only works for this build's repository while it runs.
//!
//! Outcomes: success records the image and raises `build_success` then `repo_push` (in that order,
//! in one transaction: pushes made with a build credential raise no `repo_push` of their own); a
//! build error (bad Dockerfile, failing `RUN`, unknown commit) is final: `error` and
//! `build_failure` with the message; an infrastructure error is retried (3 tries, as in Quay) and
//! ends in `internalerror`; running past the timeout is `expired`; a cancel request kills the
//! builder's whole process group and ends in `cancelled` with `build_cancelled`.

mod filedrop;
mod log;
mod runner;
mod source;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use berth_core::{BuildPhase, BuildSource, JobQueue, RepoRole, Tag};
use berth_notify::EventKind;
use berth_notify::events::BuildFacts;
use berth_store::builds::{self as store, BuildRow, NewBuild, TriggerRow};
use berth_store::queue;
use berth_store::repos::RepoRow;
use berth_store::{Tx, accounts};
use chrono::Utc;
use serde_json::json;

pub use runner::{BuildRunner, Exit, ProcessRunner};

use crate::secret::token_hash;
use crate::{App, AppError, Ctx, Result};

/// The Basic-auth user name of a build's push credential.
pub const BUILD_USERNAME: &str = "$build";

/// How builds run.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// Whether builds are accepted and the build worker runs.
    pub enabled: bool,
    /// The builder command, with placeholders `{context}`, `{dockerfile}`, `{image}`,
    /// `{storage}`, `{runroot}`, `{authfile}`, `{tls_verify}`.
    pub build_command: Vec<String>,
    /// The push command, with the same placeholders plus `{destination}` and `{digestfile}`.
    pub push_command: Vec<String>,
    /// How long one build may run.
    pub timeout: Duration,
    /// Where per-build directories go.
    pub workdir: PathBuf,
    /// Largest uploaded or downloaded build context.
    pub max_context_bytes: u64,
    /// `host[:port]` the builder pushes to (and pulls this registry's base images from); defaults
    /// to the server hostname.
    pub registry_host: Option<String>,
    /// Whether the builder verifies TLS (off for a plain-HTTP registry, as in tests).
    pub tls_verify: bool,
    /// Tries per build for infrastructure failures.
    pub tries: i32,
    /// Wait before the second try; doubled for each later one.
    pub retry_delay: Duration,
    /// How long an idle worker waits before looking for builds again.
    pub poll_interval: Duration,
    /// How long a claimed build job is leased (renewed while it runs).
    pub lease: Duration,
    /// How many builds one worker instance runs at once.
    pub concurrency: usize,
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

impl Default for BuildSettings {
    fn default() -> BuildSettings {
        let storage = [
            "--storage-driver",
            "vfs",
            "--root",
            "{storage}",
            "--runroot",
            "{runroot}",
        ];
        let mut build = strings(&["buildah", "bud", "--isolation", "chroot"]);
        build.extend(strings(&storage));
        build.extend(strings(&[
            "--authfile",
            "{authfile}",
            "--tls-verify={tls_verify}",
            "-f",
            "{dockerfile}",
            "-t",
            "{image}",
            "{context}",
        ]));
        let mut push = strings(&["buildah", "push"]);
        push.extend(strings(&storage));
        push.extend(strings(&[
            "--authfile",
            "{authfile}",
            "--tls-verify={tls_verify}",
            "--digestfile",
            "{digestfile}",
            "{image}",
            "docker://{destination}",
        ]));
        BuildSettings {
            enabled: false,
            build_command: build,
            push_command: push,
            timeout: Duration::from_secs(3600),
            workdir: PathBuf::from("./berth-data/builds"),
            max_context_bytes: 256 << 20,
            registry_host: None,
            tls_verify: true,
            tries: 3,
            retry_delay: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            concurrency: 1,
        }
    }
}

/// What starting a build by hand takes (Quay's `POST …/build/` body).
#[derive(Debug, Clone, Default)]
pub struct StartBuild {
    /// An uploaded context (a tar, a tar.gz, or a single Dockerfile).
    pub file_id: Option<String>,
    /// A context to download.
    pub archive_url: Option<String>,
    /// Legacy: the directory holding the Dockerfile, which is also the context.
    pub subdirectory: Option<String>,
    /// The Dockerfile, relative to the source root.
    pub dockerfile_path: Option<String>,
    /// The context directory, relative to the source root.
    pub context: Option<String>,
    /// Tags to push (`latest` when none).
    pub docker_tags: Vec<String>,
}

/// A build with what its views need besides the row.
#[derive(Debug, Clone)]
pub struct BuildView {
    /// The build.
    pub build: BuildRow,
    /// Its repository.
    pub repo: RepoRow,
    /// Its trigger, if it still exists.
    pub trigger: Option<TriggerRow>,
    /// Whether the caller may start and cancel builds here.
    pub can_write: bool,
}

/// Resolves a path inside the source: relative, no `..`, no absolute parts.
fn inside(root: &str) -> std::result::Result<String, String> {
    let trimmed = root.trim().trim_start_matches('/');
    let mut parts = Vec::new();
    for p in trimmed.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(format!("'{root}' leaves the build context")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// `(dockerfile_path, context)` relative to the source root, from Quay's three fields.
pub fn layout(
    subdirectory: Option<&str>,
    dockerfile_path: Option<&str>,
    context: Option<&str>,
) -> std::result::Result<(String, String), String> {
    let context = match (context, subdirectory) {
        (Some(c), _) => inside(c)?,
        (None, Some(s)) => inside(s)?,
        (None, None) => String::new(),
    };
    let dockerfile = match dockerfile_path {
        Some(d) => inside(d)?,
        None if context.is_empty() => "Dockerfile".to_owned(),
        None => format!("{context}/Dockerfile"),
    };
    if dockerfile.is_empty() {
        return Err("dockerfile_path names no file".into());
    }
    Ok((dockerfile, context))
}

/// Checks requested tags; empty means `latest`.
fn checked_tags(tags: &[String]) -> Result<Vec<String>> {
    if tags.is_empty() {
        return Ok(vec!["latest".into()]);
    }
    let mut out = Vec::new();
    for t in tags {
        let tag = Tag::parse(t).map_err(|e| AppError::invalid(format!("invalid docker_tags entry '{t}': {e}")))?;
        if !out.contains(&tag.as_str().to_owned()) {
            out.push(tag.as_str().to_owned());
        }
    }
    Ok(out)
}

impl App {
    /// 503 naming the setting when builds are off.
    pub(crate) fn builds_enabled(&self) -> Result<()> {
        if self.settings.builds.enabled {
            Ok(())
        } else {
            Err(AppError::NotConfigured(
                "builds are not enabled on this server (builds.enabled)".into(),
            ))
        }
    }

    /// Starts a build from an upload or an archive URL (repository `write`).
    pub async fn start_build(&self, ctx: &Ctx, namespace: &str, name: &str, req: &StartBuild) -> Result<BuildRow> {
        self.builds_enabled()?;
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Write).await?;
        let p = ctx.caller.principal()?;
        let (dockerfile, context) = layout(
            req.subdirectory.as_deref(),
            req.dockerfile_path.as_deref(),
            req.context.as_deref(),
        )
        .map_err(AppError::invalid)?;
        let tags = checked_tags(&req.docker_tags)?;
        let (source, display) = match (&req.file_id, &req.archive_url) {
            (Some(id), None) => {
                let mut conn = self.store.conn().await?;
                match store::filedrop(&mut conn, id).await? {
                    Some(d) if d.owner_id == p.id.0 && d.size.is_some() => {
                        let digest = d.digest.unwrap_or_default();
                        let hex = digest.strip_prefix("sha256:").unwrap_or(&digest);
                        let display = hex.get(..7).unwrap_or("upload").to_owned();
                        (BuildSource::Upload { file_id: id.clone() }, display)
                    }
                    Some(d) if d.owner_id == p.id.0 => {
                        return Err(AppError::invalid(format!("file_id {id} has no uploaded content yet")));
                    }
                    _ => return Err(AppError::invalid(format!("unknown file_id: {id}"))),
                }
            }
            (None, Some(url)) => {
                let parsed =
                    url::Url::parse(url).map_err(|e| AppError::invalid(format!("invalid archive_url '{url}': {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(AppError::invalid(format!(
                        "archive_url must be http or https, not '{}'",
                        parsed.scheme()
                    )));
                }
                if self.settings.delivery.guard.literal_refused(url) {
                    return Err(AppError::invalid(format!(
                        "archive_url '{url}' is not a public address (see notifications.allowed_networks)"
                    )));
                }
                let digest = berth_core::Digest::from_bytes(berth_core::DigestAlgorithm::Sha256, url.as_bytes());
                (BuildSource::Archive { url: url.clone() }, digest.hex()[..7].to_owned())
            }
            (Some(_), Some(_)) => return Err(AppError::invalid("give file_id or archive_url, not both")),
            (None, None) => return Err(AppError::invalid("a build needs a file_id or an archive_url")),
        };
        let new = NewBuild {
            uuid: &uuid::Uuid::new_v4().to_string(),
            repo: repo.id,
            display_name: &display,
            docker_tags: &tags,
            source: &source,
            dockerfile_path: &dockerfile,
            context: &context,
            trigger_id: None,
            trigger_metadata: &json!({}),
            manual_user: Some(&p.name),
            performer_id: Some(p.id.0),
        };
        self.queue_build(ctx, &repo, &new, None).await
    }

    /// Inserts a build, enqueues its job and raises `build_queued`, in one transaction.
    pub(crate) async fn queue_build(
        &self,
        ctx: &Ctx,
        repo: &RepoRow,
        new: &NewBuild<'_>,
        trigger: Option<&TriggerRow>,
    ) -> Result<BuildRow> {
        let mut tx = self.store.begin().await?;
        let build = store::insert(&mut tx, new).await?;
        let body = json!({"build": build.uuid});
        queue::enqueue(
            &mut tx,
            JobQueue::Build,
            &format!("{}/{}", JobQueue::Build, build.uuid),
            &body,
            self.settings.builds.tries.max(1),
        )
        .await?;
        let facts = facts(&build, trigger);
        let data = berth_notify::events::build_queued(&crate::events::repo_context(&self.settings, repo), &facts);
        self.raise(
            &mut tx,
            repo,
            EventKind::BuildQueued.name(),
            &data,
            ctx.caller.account(),
        )
        .await?;
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "build_uuid": build.uuid});
        crate::audit::record(
            &mut tx,
            ctx,
            "build_dockerfile",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        self.build_wake.notify_one();
        Ok(build)
    }

    async fn view(&self, repo: RepoRow, build: BuildRow, can_write: bool) -> Result<BuildView> {
        let trigger = match build.trigger_id {
            Some(id) => store::trigger_by_id(&mut self.store.conn().await?, id).await?,
            None => None,
        };
        Ok(BuildView {
            build,
            repo,
            trigger,
            can_write,
        })
    }

    /// The builds of a repository, newest first (repository `read`).
    pub async fn list_builds(&self, ctx: &Ctx, namespace: &str, name: &str, limit: i64) -> Result<Vec<BuildView>> {
        let (repo, role) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Read).await?;
        let rows = store::list(&mut self.store.conn().await?, repo.id, limit.clamp(1, 100)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for b in rows {
            out.push(self.view(repo.clone(), b, role >= RepoRole::Write).await?);
        }
        Ok(out)
    }

    /// One build (repository `read`).
    pub async fn get_build(&self, ctx: &Ctx, namespace: &str, name: &str, uuid: &str) -> Result<BuildView> {
        let (repo, role) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Read).await?;
        let build = store::by_uuid(&mut self.store.conn().await?, repo.id, uuid)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no build {uuid} in {namespace}/{name}")))?;
        self.view(repo, build, role >= RepoRole::Write).await
    }

    /// A build's log lines from `start` (repository `read`), and the total so far.
    pub async fn build_logs(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        uuid: &str,
        start: i64,
    ) -> Result<(Vec<store::LogLine>, i64)> {
        let v = self.get_build(ctx, namespace, name, uuid).await?;
        Ok(store::logs(&mut self.store.conn().await?, v.build.id, start.max(0), 1000).await?)
    }

    /// Cancels a build (repository `write`): a waiting one at once, a running one by killing its
    /// builder (within a second). A finished build cannot be cancelled (400).
    pub async fn cancel_build(&self, ctx: &Ctx, namespace: &str, name: &str, uuid: &str) -> Result<BuildRow> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Write).await?;
        let mut tx = self.store.begin().await?;
        let build = store::by_uuid(&mut tx, repo.id, uuid)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no build {uuid} in {namespace}/{name}")))?;
        if build.phase.is_final() {
            return Err(AppError::invalid(format!(
                "the build is {} and cannot be cancelled",
                build.phase
            )));
        }
        if build.phase == BuildPhase::Waiting {
            store::set_phase(&mut tx, build.id, BuildPhase::Cancelled, None, Utc::now()).await?;
            self.raise_build(&mut tx, &repo, build.id, EventKind::BuildCancelled)
                .await?;
        } else {
            store::request_cancel(&mut tx, build.id).await?;
        }
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "build_uuid": uuid});
        crate::audit::record(
            &mut tx,
            ctx,
            "cancel_build",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        Ok(store::by_uuid(&mut self.store.conn().await?, repo.id, uuid)
            .await?
            .unwrap_or(build))
    }

    /// Raises a build event for the build's current row, in `tx`.
    async fn raise_build(&self, tx: &mut Tx, repo: &RepoRow, build_id: i64, kind: EventKind) -> Result<usize> {
        let Some(build) = store::by_id(tx, build_id).await? else {
            return Ok(0);
        };
        let trigger = match build.trigger_id {
            Some(id) => store::trigger_by_id(tx, id).await?,
            None => None,
        };
        let data = berth_notify::events::build_update(
            &crate::events::repo_context(&self.settings, repo),
            &facts(&build, trigger.as_ref()),
        );
        self.raise(tx, repo, kind.name(), &data, None).await
    }

    /// Where a trigger's service posts its pushes.
    pub fn trigger_webhook_url(&self, trigger_uuid: &str) -> String {
        format!("{}/webhooks/push/trigger/{trigger_uuid}", self.settings.base_url())
    }

    /// Authenticates a build's push credential: the build's performer, capped to `write` on the
    /// build's repository (and what anyone may read), while the build runs.
    pub(crate) async fn authenticate_build(&self, token: &str) -> Result<crate::Principal> {
        let bad = || AppError::BadCredentials("Invalid build credential".into());
        let mut conn = self.store.conn().await?;
        let build = store::by_credential(&mut conn, &token_hash(token), Utc::now())
            .await?
            .ok_or_else(bad)?;
        let performer = build.performer_id.ok_or_else(bad)?;
        let account = accounts::by_id(&mut conn, berth_core::AccountId(performer))
            .await?
            .ok_or_else(bad)?;
        let scopes = berth_core::ScopeSet::parse("repo:write").map_err(|e| AppError::Internal(e.to_string()))?;
        let mut p = crate::auth::principal(account, Some(scopes));
        p.build_repo = Some(build.repository_id);
        Ok(p)
    }
}

/// The payload facts of a build.
fn facts<'a>(build: &'a BuildRow, trigger: Option<&'a TriggerRow>) -> BuildFacts<'a> {
    BuildFacts {
        build_id: &build.uuid,
        build_name: &build.display_name,
        docker_tags: &build.docker_tags.0,
        trigger_id: trigger.map(|t| t.uuid.as_str()),
        trigger_kind: trigger.map(|t| t.service.as_str()),
        trigger_metadata: Some(&build.trigger_metadata.0),
        is_manual: build.manual_user.is_some(),
        manual_user: build.manual_user.as_deref(),
        image_id: build.image_id.as_deref(),
        manifest_digests: &build.manifest_digests.0,
        error_message: build.error.as_deref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        assert_eq!(layout(None, None, None).unwrap(), ("Dockerfile".into(), String::new()));
        assert_eq!(
            layout(Some("/app"), None, None).unwrap(),
            ("app/Dockerfile".into(), "app".into())
        );
        assert_eq!(
            layout(None, Some("/docker/Dockerfile.prod"), Some("/")).unwrap(),
            ("docker/Dockerfile.prod".into(), String::new())
        );
        assert!(
            layout(None, Some("../etc/passwd"), None)
                .unwrap_err()
                .contains("leaves the build context")
        );
        assert!(layout(None, None, Some("a/../../b")).is_err());
        assert!(layout(None, Some("/"), None).is_err());
    }

    #[test]
    fn tags() {
        assert_eq!(checked_tags(&[]).unwrap(), ["latest"]);
        assert_eq!(
            checked_tags(&["v1".into(), "v1".into(), "prod".into()]).unwrap(),
            ["v1", "prod"]
        );
        assert!(checked_tags(&["bad tag".into()]).is_err());
    }
}
