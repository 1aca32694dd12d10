//! Dockerfile builds as use cases: uploads (filedrop), starting builds by hand or from a trigger,
//! listing, logs, cancelling, and the build worker with its executor.
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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_core::{BuildPhase, RepoId, RepoRole, Tag};
use berth_notify::EventKind;
use berth_notify::events::BuildFacts;
use berth_store::builds::{self as store, BuildRow, NewBuild, TriggerRow};
use berth_store::queue::{self, Claimed};
use berth_store::repos::RepoRow;
use berth_store::{Tx, accounts, registry as reg, repos};
use chrono::Utc;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::jobs::{JobEnd, end_job};
use crate::secret::{random_token, token_hash};
use crate::{App, AppError, Ctx, Result};

/// Uploads are read and stored in pieces of this size.
const UPLOAD_PIECE: usize = 1 << 20;
/// An upload still arriving after this long may be replaced by a new one.
const UPLOAD_STALE_MINUTES: i64 = 30;

/// Why an upload was not received.
enum Received {
    /// It went past the limit (at least this many bytes).
    TooLarge(u64),
    /// Reading or storing failed.
    Failed(AppError),
}

/// The queue that carries build jobs.
pub const BUILD_QUEUE: &str = "build";

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
        let tag = Tag::parse(t).map_err(|e| AppError::Invalid(format!("invalid docker_tags entry '{t}': {e}")))?;
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

    /// Creates an empty upload slot and returns `(file_id, upload token)`; the file is then
    /// PUT to `/filedrop/{file_id}?token=…` (Quay's signed upload URL).
    pub async fn request_filedrop(&self, ctx: &Ctx, mime_type: &str) -> Result<(String, String)> {
        self.builds_enabled()?;
        let p = ctx.caller.principal()?;
        if p.build_repo.is_some() {
            return Err(AppError::forbidden());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let token = random_token(32);
        let mut tx = self.store.begin().await?;
        store::create_filedrop(&mut tx, &id, p.id.0, &token_hash(&token), mime_type).await?;
        tx.commit().await?;
        Ok((id, token))
    }

    /// Stores an upload slot's content (once, with its token), read from `body` only after the
    /// feature, the id and the token were checked and the slot was taken for this upload; then in
    /// pieces of [`UPLOAD_PIECE`] bytes, each stored (in a short transaction of its own) as it
    /// arrives, up to `builds.max_context_bytes`. A `declared` length (`Content-Length`) over the
    /// limit is refused before anything is read. Returns the size.
    pub async fn fill_filedrop(
        &self,
        id: &str,
        token: &str,
        declared: Option<u64>,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    ) -> Result<u64> {
        self.builds_enabled()?;
        let started = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let stale = started - chrono::Duration::minutes(UPLOAD_STALE_MINUTES);
        let mut tx = self.store.begin().await?;
        let taken = store::begin_filedrop_upload(&mut tx, id, &token_hash(token), started, stale).await?;
        tx.commit().await?;
        if !taken {
            return Err(AppError::NotFound(
                "no empty upload with this id and token (or another upload to it is arriving)".into(),
            ));
        }
        let limit = self.settings.builds.max_context_bytes;
        let received = match declared.filter(|n| *n > limit) {
            Some(n) => Err(Received::TooLarge(n)),
            None => self.receive_pieces(id, limit, body).await,
        };
        let failure = match received {
            Ok((size, digest)) => {
                let mut tx = self.store.begin().await?;
                let size_i = i64::try_from(size).unwrap_or(i64::MAX);
                let finished = store::finish_filedrop_upload(&mut tx, id, started, size_i, &digest).await?;
                tx.commit().await?;
                if finished {
                    return Ok(size);
                }
                AppError::Conflict("the upload took so long that another one replaced it".into())
            }
            Err(Received::TooLarge(n)) => AppError::TooLarge(format!(
                "the upload is {n} bytes or more, over the limit of {limit} (builds.max_context_bytes)"
            )),
            Err(Received::Failed(e)) => e,
        };
        let mut tx = self.store.begin().await?;
        store::abort_filedrop_upload(&mut tx, id, started).await?;
        tx.commit().await?;
        Err(failure)
    }

    /// Reads `body` in pieces into filedrop `id`; returns its size and digest.
    async fn receive_pieces(
        &self,
        id: &str,
        limit: u64,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    ) -> std::result::Result<(u64, String), Received> {
        use sha2::Digest as _;
        use tokio::io::AsyncReadExt;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut piece = Vec::with_capacity(UPLOAD_PIECE);
        for seq in 0i64.. {
            piece.clear();
            // Fill one piece (or reach the end), reading at most one byte past the limit.
            while piece.len() < UPLOAD_PIECE {
                let room = (UPLOAD_PIECE - piece.len()) as u64;
                let allowed = (limit + 1).saturating_sub(size + piece.len() as u64).min(room);
                if allowed == 0 {
                    break;
                }
                let n = (&mut *body)
                    .take(allowed)
                    .read_buf(&mut piece)
                    .await
                    .map_err(|e| Received::Failed(AppError::Invalid(format!("reading the upload: {e}"))))?;
                if n == 0 {
                    break;
                }
            }
            if piece.is_empty() {
                break;
            }
            size += piece.len() as u64;
            if size > limit {
                return Err(Received::TooLarge(size));
            }
            hasher.update(&piece);
            let stored = async {
                let mut tx = self.store.begin().await?;
                store::add_filedrop_chunk(&mut tx, id, seq, &piece).await?;
                tx.commit().await?;
                Ok::<_, berth_store::StoreError>(())
            };
            stored.await.map_err(|e| Received::Failed(e.into()))?;
            if piece.len() < UPLOAD_PIECE {
                break;
            }
        }
        Ok((size, format!("sha256:{}", hex::encode(hasher.finalize()))))
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
        .map_err(AppError::Invalid)?;
        let tags = checked_tags(&req.docker_tags)?;
        let (source, display) = match (&req.file_id, &req.archive_url) {
            (Some(id), None) => {
                let mut conn = self.store.conn().await?;
                match store::filedrop(&mut conn, id).await? {
                    Some(d) if d.owner_id == p.id.0 && d.size.is_some() => {
                        let digest = d.digest.unwrap_or_default();
                        let hex = digest.strip_prefix("sha256:").unwrap_or(&digest);
                        let display = hex.get(..7).unwrap_or("upload").to_owned();
                        (json!({"kind": "upload", "file_id": id}), display)
                    }
                    Some(d) if d.owner_id == p.id.0 => {
                        return Err(AppError::Invalid(format!("file_id {id} has no uploaded content yet")));
                    }
                    _ => return Err(AppError::Invalid(format!("unknown file_id: {id}"))),
                }
            }
            (None, Some(url)) => {
                let parsed =
                    url::Url::parse(url).map_err(|e| AppError::Invalid(format!("invalid archive_url '{url}': {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(AppError::Invalid(format!(
                        "archive_url must be http or https, not '{}'",
                        parsed.scheme()
                    )));
                }
                if self.settings.delivery.guard.literal_refused(url) {
                    return Err(AppError::Invalid(format!(
                        "archive_url '{url}' is not a public address (see notifications.allowed_networks)"
                    )));
                }
                let digest = berth_core::Digest::from_bytes(berth_core::DigestAlgorithm::Sha256, url.as_bytes());
                (json!({"kind": "archive", "url": url}), digest.hex()[..7].to_owned())
            }
            (Some(_), Some(_)) => return Err(AppError::Invalid("give file_id or archive_url, not both".into())),
            (None, None) => return Err(AppError::Invalid("a build needs a file_id or an archive_url".into())),
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
            BUILD_QUEUE,
            &format!("{BUILD_QUEUE}/{}", build.uuid),
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
            return Err(AppError::Invalid(format!(
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

    /// Runs build jobs forever, one at a time per process.
    pub async fn run_build_worker(&self) {
        let worker = format!(
            "b{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        loop {
            let claimed = async {
                let lease =
                    chrono::Duration::from_std(self.settings.builds.lease).unwrap_or(chrono::Duration::minutes(1));
                let mut tx = self.store.begin().await?;
                let now = Utc::now();
                let jobs = queue::claim(&mut tx, BUILD_QUEUE, now, now + lease, 1, &worker, &[]).await?;
                tx.commit().await?;
                Ok::<Option<Claimed>, AppError>(jobs.into_iter().next())
            };
            match claimed.await {
                Ok(Some(job)) => self.run_build_job(job).await,
                Ok(None) => {
                    let _ = tokio::time::timeout(self.settings.builds.poll_interval, self.build_wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim a build job");
                    tokio::time::sleep(self.settings.builds.poll_interval).await;
                }
            }
        }
    }

    /// Runs one claimed build job to its end, keeping its lease alive.
    async fn run_build_job(&self, job: Claimed) {
        let heartbeat = self.keep_leased(job.id, job.state_id.clone(), self.settings.builds.lease);
        let body: serde_json::Value = job.decode().unwrap_or_default();
        let Some(uuid) = body["build"].as_str().map(str::to_owned) else {
            drop(heartbeat);
            self.finish_job(&job, Err("malformed build job".into()), false).await;
            return;
        };
        let outcome = self.execute(&uuid, job.retries_remaining > 0).await;
        drop(heartbeat);
        let (result, retry) = match outcome {
            Ok(Retry::No) => (Ok(()), false),
            Ok(Retry::Yes(e)) => (Err(e), true),
            // The store failed while recording the build: try again while tries are left, and
            // never leave the build looking busy when none is.
            Err(e) => {
                if job.retries_remaining == 0 {
                    self.give_up(&uuid, &e.to_string()).await;
                }
                (Err(e.to_string()), job.retries_remaining > 0)
            }
        };
        self.finish_job(&job, result, retry).await;
    }

    /// Marks a build `internalerror` (best effort: the store may be what failed).
    async fn give_up(&self, uuid: &str, error: &str) {
        let done = async {
            let mut tx = self.store.begin().await?;
            if let Some(b) = store::by_uuid_any(&mut tx, uuid).await?
                && let Some(repo) = repos::by_id(&mut tx, b.repository_id).await?
                && store::set_phase(
                    &mut tx,
                    b.id,
                    BuildPhase::InternalError,
                    Some(&format!("internal error: {error}")),
                    Utc::now(),
                )
                .await?
            {
                self.raise_build(&mut tx, &repo, b.id, EventKind::BuildFailure).await?;
            }
            tx.commit().await?;
            Ok::<(), AppError>(())
        };
        if let Err(e) = done.await {
            tracing::error!(build = uuid, error = %e, "could not mark a failed build");
        }
    }

    /// Completes, retries or buries a job.
    async fn finish_job(&self, job: &Claimed, result: std::result::Result<(), String>, retry: bool) {
        let done = async {
            let end = match &result {
                Ok(()) => JobEnd::Done,
                Err(error) if retry => JobEnd::Retry {
                    after: self.settings.builds.retry_delay * (1u32 << (job.attempt - 1).clamp(0, 8)),
                    error,
                },
                Err(error) => JobEnd::Bury(error),
            };
            let mut tx = self.store.begin().await?;
            end_job(&mut tx, job, end).await?;
            tx.commit().await?;
            Ok::<(), AppError>(())
        };
        if let Err(e) = done.await {
            tracing::warn!(job = job.id, error = %e, "could not record a build job's outcome; its lease will expire");
        }
    }

    /// Runs a build. `Retry::Yes` asks for another try (infrastructure trouble with tries left).
    async fn execute(&self, uuid: &str, may_retry: bool) -> Result<Retry> {
        let Some(build) = store::by_uuid_any(&mut self.store.conn().await?, uuid).await? else {
            return Ok(Retry::No);
        };
        if build.phase.is_final() {
            return Ok(Retry::No);
        }
        let Some(repo) = repos::by_id(&mut self.store.conn().await?, build.repository_id).await? else {
            return Ok(Retry::No);
        };
        let dir = self.settings.builds.workdir.join(&build.uuid);
        let mut log = LogSink::new(self.clone(), build.id);
        let started = Instant::now();
        let end = self.run_steps(&build, &repo, &dir, &mut log).await;
        for d in [dir.clone(), runroot_of(&build.uuid)] {
            if let Err(e) = tokio::fs::remove_dir_all(&d).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(build = uuid, dir = %d.display(), error = %e, "could not remove a build directory");
            }
        }
        let (to, kind, error, retry) = match end {
            Ok(End::Complete { image_id, digests }) => {
                log.line("phase", "complete").await;
                log.flush().await;
                self.complete_build(&repo, &build, &image_id, &digests).await?;
                metrics::counter!("berth_builds_total", "phase" => BuildPhase::Complete.as_str()).increment(1);
                tracing::info!(
                    build = uuid,
                    seconds = started.elapsed().as_secs_f64(),
                    "build complete"
                );
                return Ok(Retry::No);
            }
            Ok(End::Failed(msg)) => (BuildPhase::Error, EventKind::BuildFailure, Some(msg), None),
            Ok(End::Expired(msg)) => (BuildPhase::Expired, EventKind::BuildFailure, Some(msg), None),
            Ok(End::Cancelled) => (BuildPhase::Cancelled, EventKind::BuildCancelled, None, None),
            Err(e) if may_retry => (BuildPhase::Waiting, EventKind::BuildFailure, None, Some(e.to_string())),
            Err(e) => (
                BuildPhase::InternalError,
                EventKind::BuildFailure,
                Some(format!("internal error: {e}")),
                None,
            ),
        };
        if let Some(e) = &retry {
            log.line("error", &format!("internal error, the build will be retried: {e}"))
                .await;
        } else {
            log.line("phase", to.as_str()).await;
        }
        if let Some(msg) = &error {
            log.line("error", msg).await;
        }
        log.flush().await;
        let mut tx = self.store.begin().await?;
        store::set_credential(&mut tx, build.id, None, None).await?;
        if retry.is_some() {
            store::set_phase(&mut tx, build.id, BuildPhase::Waiting, None, Utc::now()).await?;
        } else if store::set_phase(&mut tx, build.id, to, error.as_deref(), Utc::now()).await? {
            self.raise_build(&mut tx, &repo, build.id, kind).await?;
        }
        tx.commit().await?;
        metrics::counter!("berth_builds_total", "phase" => to.as_str()).increment(1);
        tracing::info!(
            build = uuid,
            phase = to.as_str(),
            error = error.as_deref().unwrap_or(""),
            "build ended"
        );
        Ok(match retry {
            Some(e) => Retry::Yes(e),
            None => Retry::No,
        })
    }

    /// Fetch, build, push. Errors are infrastructure trouble; build problems are `End`s.
    async fn run_steps(&self, build: &BuildRow, repo: &RepoRow, dir: &Path, log: &mut LogSink) -> Result<End> {
        let s = &self.settings.builds;
        let deadline = Instant::now() + s.timeout;
        let _ = tokio::fs::remove_dir_all(dir).await;
        let src = dir.join("src");
        tokio::fs::create_dir_all(&src).await.map_err(io)?;
        if !self.move_to(build, BuildPhase::Pulling, log).await? {
            return Ok(End::Cancelled);
        }
        if let Err(end) = self.fetch_source(build, &src, deadline, log).await? {
            return Ok(end);
        }
        let context = src.join(&build.context);
        let dockerfile = src.join(&build.dockerfile_path);
        if !tokio::fs::try_exists(&dockerfile).await.unwrap_or(false) {
            return Ok(End::Failed(format!(
                "no Dockerfile at '{}' in the build context",
                build.dockerfile_path
            )));
        }
        // The push credential: only for this build's repository, only while it runs.
        let token = random_token(40);
        let until = Utc::now()
            + chrono::Duration::from_std(s.timeout + Duration::from_secs(600)).unwrap_or(chrono::Duration::hours(2));
        {
            let mut tx = self.store.begin().await?;
            store::set_credential(&mut tx, build.id, Some(&token_hash(&token)), Some(until)).await?;
            tx.commit().await?;
        }
        let host = s
            .registry_host
            .clone()
            .unwrap_or_else(|| self.settings.server_hostname.clone());
        let authfile = dir.join("auth.json");
        let auth = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{BUILD_USERNAME}:{token}"),
        );
        // The push host is often the listen address; base images named by this registry's public
        // name (`FROM <server_hostname>/ns/base`) are pulled with the same credential.
        let mut auths = serde_json::Map::new();
        auths.insert(host.clone(), json!({"auth": auth}));
        auths.insert(self.settings.server_hostname.clone(), json!({"auth": auth}));
        tokio::fs::write(&authfile, json!({"auths": auths}).to_string())
            .await
            .map_err(io)?;
        let image = format!("localhost/berth-build-{}", build.uuid);
        // The run root holds sockets and locks; podman wants its path under 50 characters.
        let runroot = runroot_of(&build.uuid);
        let fill = |template: &[String], extra: &[(&str, String)]| -> Vec<String> {
            let mut values: Vec<(&str, String)> = vec![
                ("{context}", context.display().to_string()),
                ("{dockerfile}", dockerfile.display().to_string()),
                ("{image}", image.clone()),
                ("{storage}", dir.join("storage").display().to_string()),
                ("{runroot}", runroot.display().to_string()),
                ("{authfile}", authfile.display().to_string()),
                ("{tls_verify}", s.tls_verify.to_string()),
            ];
            values.extend_from_slice(extra);
            template
                .iter()
                .map(|arg| values.iter().fold(arg.clone(), |a, (k, v)| a.replace(k, v)))
                .collect()
        };
        if !self.move_to(build, BuildPhase::Building, log).await? {
            return Ok(End::Cancelled);
        }
        {
            let mut tx = self.store.begin().await?;
            self.raise_build(&mut tx, repo, build.id, EventKind::BuildStart).await?;
            tx.commit().await?;
        }
        match self
            .run_command(build, &fill(&s.build_command, &[]), dir, deadline, log)
            .await?
        {
            Step::Ok => {}
            Step::Failed(msg) => return Ok(End::Failed(msg)),
            other => return Ok(other.end(s.timeout)),
        }
        if !self.move_to(build, BuildPhase::Pushing, log).await? {
            return Ok(End::Cancelled);
        }
        let mut digests = Vec::new();
        for tag in &build.docker_tags.0 {
            let digestfile = dir.join(format!("digest-{tag}"));
            let destination = format!("{host}/{}/{}:{tag}", repo.namespace, repo.name);
            let args = fill(
                &s.push_command,
                &[
                    ("{destination}", destination),
                    ("{digestfile}", digestfile.display().to_string()),
                ],
            );
            match self.run_command(build, &args, dir, deadline, log).await? {
                Step::Ok => {}
                // Our own registry refused or failed: infrastructure, worth another try.
                Step::Failed(msg) => return Err(AppError::Unavailable(format!("pushing {tag}: {msg}"))),
                other => return Ok(other.end(s.timeout)),
            }
            let digest = tokio::fs::read_to_string(&digestfile).await.map_err(io)?;
            digests.push(digest.trim().to_owned());
        }
        let image_id = self
            .config_digest(repo.id, digests.first().map(String::as_str).unwrap_or_default())
            .await?;
        Ok(End::Complete { image_id, digests })
    }

    /// The config digest of a pushed manifest (Quay's image id).
    async fn config_digest(&self, repo: RepoId, manifest: &str) -> Result<String> {
        let row = reg::manifest_by_digest(&mut self.store.conn().await?, repo, manifest).await?;
        let doc: Value = row
            .map(|r| serde_json::from_slice(&r.content).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        Ok(doc["config"]["digest"].as_str().unwrap_or_default().to_owned())
    }

    /// Moves the build to its next phase; `false` when it was finished meanwhile (cancelled
    /// while waiting), and the executor must stop.
    async fn move_to(&self, build: &BuildRow, to: BuildPhase, log: &mut LogSink) -> Result<bool> {
        let mut tx = self.store.begin().await?;
        let moved = store::set_phase(&mut tx, build.id, to, None, Utc::now()).await?;
        tx.commit().await?;
        if moved {
            log.line("phase", to.as_str()).await;
            log.flush().await;
        }
        Ok(moved)
    }

    /// Puts the build context in `src`; the inner error is a build error (bad archive, unknown
    /// commit), the outer one infrastructure.
    async fn fetch_source(
        &self,
        build: &BuildRow,
        src: &Path,
        deadline: Instant,
        log: &mut LogSink,
    ) -> Result<std::result::Result<(), End>> {
        let source = &build.source.0;
        match source["kind"].as_str() {
            Some("upload") => {
                let id = source["file_id"].as_str().unwrap_or_default();
                let content = store::filedrop_content(&mut self.store.conn().await?, id).await?;
                let Some(bytes) = content else {
                    return Ok(Err(End::Failed(format!("the uploaded context {id} is gone"))));
                };
                log.line("command", "unpacking the uploaded context").await;
                Ok(unpack(bytes, src.to_path_buf()).await.map_err(End::Failed))
            }
            Some("archive") => {
                let url = source["url"].as_str().unwrap_or_default();
                log.line("command", &format!("downloading {url}")).await;
                match self.download(url).await {
                    Ok(bytes) => Ok(unpack(bytes, src.to_path_buf()).await.map_err(End::Failed)),
                    Err(e) => Ok(Err(End::Failed(e))),
                }
            }
            Some("git") => {
                let url = source["url"].as_str().unwrap_or_default().to_owned();
                let commit = source["commit"].as_str().unwrap_or_default().to_owned();
                let target = src.display().to_string();
                let clone = vec![
                    "git".to_owned(),
                    "clone".into(),
                    "--quiet".into(),
                    "--".into(),
                    url.clone(),
                    target.clone(),
                ];
                match self.run_command(build, &clone, src, deadline, log).await? {
                    Step::Ok => {}
                    Step::Failed(msg) => return Ok(Err(End::Failed(format!("git clone of {url} failed: {msg}")))),
                    other @ (Step::Cancelled | Step::TimedOut) => {
                        return Ok(Err(other.end(self.settings.builds.timeout)));
                    }
                }
                let checkout = vec![
                    "git".to_owned(),
                    "-C".into(),
                    target,
                    "checkout".into(),
                    "--quiet".into(),
                    "--detach".into(),
                    commit.clone(),
                ];
                match self.run_command(build, &checkout, src, deadline, log).await? {
                    Step::Ok => Ok(Ok(())),
                    Step::Failed(msg) => Ok(Err(End::Failed(format!(
                        "commit {commit} could not be checked out: {msg}"
                    )))),
                    other @ (Step::Cancelled | Step::TimedOut) => Ok(Err(other.end(self.settings.builds.timeout))),
                }
            }
            _ => Ok(Err(End::Failed(format!("unknown build source: {source}")))),
        }
    }

    /// Downloads an archive through the SSRF guard, within the size limit.
    async fn download(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
        let guard = self.settings.delivery.guard.clone();
        if guard.literal_refused(url) {
            return Err(format!("{url} is not a public address"));
        }
        let client = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(guard))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| e.to_string())?;
        let mut resp = client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("downloading {url}: {e}"))?;
        let max = self.settings.builds.max_context_bytes;
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("downloading {url}: {e}"))? {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > max {
                return Err(format!("{url} is larger than builds.max_context_bytes ({max})"));
            }
        }
        Ok(out)
    }

    /// Runs one command in its own process group, streaming its output into the log; stops it
    /// (the whole group) on a cancel request or at the deadline.
    async fn run_command(
        &self,
        build: &BuildRow,
        args: &[String],
        dir: &Path,
        deadline: Instant,
        log: &mut LogSink,
    ) -> Result<Step> {
        let Some((program, rest)) = args.split_first() else {
            return Ok(Step::Failed("no command configured".into()));
        };
        log.line("command", &shown(args)).await;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest)
            .current_dir(dir)
            .env("BUILDAH_ISOLATION", "chroot")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Err(AppError::Unavailable(format!("could not run {program}: {e}"))),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let pid = child.id();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last = Vec::new();
        let status = loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(l) => {
                        log.line("output", &l).await;
                        last.push(l);
                        if last.len() > 5 {
                            last.remove(0);
                        }
                    }
                    None => break child.wait().await.map_err(io)?,
                },
                _ = tick.tick() => {
                    log.flush().await;
                    let stop = if Instant::now() > deadline {
                        Some(Step::TimedOut)
                    } else if self.cancel_requested(build.id).await? {
                        Some(Step::Cancelled)
                    } else {
                        None
                    };
                    if let Some(step) = stop {
                        kill_group(pid).await;
                        let _ = child.kill().await;
                        return Ok(step);
                    }
                }
            }
        };
        log.flush().await;
        if status.success() {
            return Ok(Step::Ok);
        }
        let tail = last
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_default();
        let code = status
            .code()
            .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
        Ok(Step::Failed(format!("{program} exited with {code}: {tail}")))
    }

    async fn cancel_requested(&self, id: i64) -> Result<bool> {
        Ok(store::cancel_requested(&mut self.store.conn().await?, id).await?)
    }

    /// Records success and raises `build_success` then `repo_push`, in one transaction.
    async fn complete_build(&self, repo: &RepoRow, build: &BuildRow, image_id: &str, digests: &[String]) -> Result<()> {
        let mut tx = self.store.begin().await?;
        store::set_result(&mut tx, build.id, image_id, digests).await?;
        store::set_credential(&mut tx, build.id, None, None).await?;
        if store::set_phase(&mut tx, build.id, BuildPhase::Complete, None, Utc::now()).await? {
            self.raise_build(&mut tx, repo, build.id, EventKind::BuildSuccess)
                .await?;
            let tags: Vec<&str> = build.docker_tags.0.iter().map(String::as_str).collect();
            let digests: Vec<&str> = digests.iter().map(String::as_str).collect();
            let data =
                berth_notify::events::repo_push(&crate::events::repo_context(&self.settings, repo), &tags, &digests);
            let performer = match build.performer_id {
                Some(id) => accounts::by_id(&mut tx, berth_core::AccountId(id))
                    .await?
                    .map(|a| crate::auth::principal(a, None)),
                None => None,
            };
            self.raise(&mut tx, repo, EventKind::RepoPush.name(), &data, performer.as_ref())
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// How a build ended (besides infrastructure errors).
enum End {
    Complete { image_id: String, digests: Vec<String> },
    Failed(String),
    Expired(String),
    Cancelled,
}

/// How one command ended.
enum Step {
    Ok,
    Failed(String),
    Cancelled,
    TimedOut,
}

impl Step {
    fn end(self, timeout: Duration) -> End {
        match self {
            Step::Cancelled => End::Cancelled,
            Step::TimedOut => End::Expired(format!(
                "the build took longer than {} seconds (builds.timeout_secs)",
                timeout.as_secs()
            )),
            Step::Failed(m) => End::Failed(m),
            Step::Ok => End::Failed("unexpected success".into()),
        }
    }
}

/// Whether a job should run again.
enum Retry {
    No,
    Yes(String),
}

fn io(e: std::io::Error) -> AppError {
    AppError::Unavailable(format!("build directory: {e}"))
}

/// A command line for the log, with the credential file's contents never shown (only its path is
/// an argument).
fn shown(args: &[String]) -> String {
    args.join(" ")
}

/// A build's run root: short (podman refuses paths over 50 characters), under the temp dir.
fn runroot_of(uuid: &str) -> PathBuf {
    let short: String = uuid.chars().filter(char::is_ascii_hexdigit).take(16).collect();
    std::env::temp_dir().join(format!("berth-run-{short}"))
}

/// Kills a process group (the builder and everything it started). `kill(1)` rather than a
/// syscall, because this workspace forbids `unsafe`.
async fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = tokio::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status()
            .await;
    }
}

/// Unpacks an uploaded or downloaded context: a tar (optionally gzipped) is extracted (entries
/// that would leave the directory are refused by the tar reader); anything else is taken as the
/// Dockerfile itself.
async fn unpack(bytes: Vec<u8>, dst: PathBuf) -> std::result::Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .map_err(|e| format!("the context is not a valid gzip file: {e}"))?;
            out
        } else {
            bytes
        };
        let is_tar = raw.len() >= 262 && &raw[257..262] == b"ustar";
        if is_tar {
            tar::Archive::new(&raw[..])
                .unpack(&dst)
                .map_err(|e| format!("the context is not a valid tar archive: {e}"))
        } else {
            std::fs::write(dst.join("Dockerfile"), &raw).map_err(|e| format!("writing the Dockerfile: {e}"))
        }
    })
    .await
    .unwrap_or_else(|e| Err(format!("unpacking stopped: {e}")))
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

/// Buffers log lines and writes them in batches (at most every second, from the command loop).
struct LogSink {
    app: App,
    build: i64,
    pending: Vec<(String, String)>,
}

impl LogSink {
    fn new(app: App, build: i64) -> LogSink {
        LogSink {
            app,
            build,
            pending: Vec::new(),
        }
    }

    async fn line(&mut self, kind: &str, message: &str) {
        let message: String = message.chars().take(4096).collect();
        self.pending.push((kind.to_owned(), message));
        if self.pending.len() >= 200 {
            self.flush().await;
        }
    }

    /// Writes what is buffered; a failure is logged and the lines are kept for the next flush.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let lines: Vec<(&str, &str)> = self.pending.iter().map(|(k, m)| (k.as_str(), m.as_str())).collect();
        let written = async {
            let mut tx = self.app.store.begin().await?;
            store::append_log(&mut tx, self.build, &lines, Utc::now()).await?;
            tx.commit().await?;
            Ok::<(), AppError>(())
        };
        match written.await {
            Ok(()) => self.pending.clear(),
            Err(e) => tracing::warn!(build = self.build, error = %e, "could not write build log lines"),
        }
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
