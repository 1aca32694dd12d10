//! The build worker: claims build jobs one at a time, runs each build's steps (fetch, build,
//! push) through the build runner, moves it through its phases and records how it ended,
//! raising the build events on the way.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_core::{BuildPhase, JobQueue, RepoId};
use berth_notify::EventKind;
use berth_store::builds::{self as store, BuildRow};
use berth_store::queue::Claimed;
use berth_store::repos::RepoRow;
use berth_store::{accounts, registry as reg, repos};
use chrono::Utc;
use serde_json::{Value, json};

use super::BUILD_USERNAME;
use super::log::LogSink;
use super::runner::Step;
use crate::jobs::{JobEnd, JobWorker, end_job};
use crate::secret::{random_token, token_hash};
use crate::{App, AppError, Result};

impl App {
    /// Runs build jobs forever, one at a time per process.
    pub async fn run_build_worker(&self) {
        let s = &self.settings.builds;
        let jobs = JobWorker {
            queue: JobQueue::Build,
            lease: s.lease,
            poll: s.poll_interval,
            wake: &self.build_wake,
        };
        let worker = JobWorker::id('b');
        loop {
            let job = jobs.next(self, &worker).await;
            self.run_build_job(job).await;
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
pub(super) enum End {
    Complete { image_id: String, digests: Vec<String> },
    Failed(String),
    Expired(String),
    Cancelled,
}

/// Whether a job should run again.
#[derive(Debug)]
enum Retry {
    No,
    Yes(String),
}

pub(super) fn io(e: std::io::Error) -> AppError {
    AppError::Unavailable(format!("build directory: {e}"))
}

/// A build's run root: short (podman refuses paths over 50 characters), under the temp dir.
fn runroot_of(uuid: &str) -> PathBuf {
    let short: String = uuid.chars().filter(char::is_ascii_hexdigit).take(16).collect();
    std::env::temp_dir().join(format!("berth-run-{short}"))
}

#[cfg(test)]
mod tests {
    //! The build's phases, run with scripted commands instead of processes.

    use std::sync::Arc;

    use berth_core::{AccountKind, BuildSource, Visibility};
    use berth_store::Store;
    use berth_store::accounts::NewAccount;
    use berth_store::builds::NewBuild;
    use berth_testkit::{DbKind, TestDb, backend_test};
    use tokio::sync::{Notify, mpsc};

    use super::super::{BuildRunner, BuildSettings, Exit};
    use super::*;

    /// What a scripted command does.
    enum Script {
        /// Writes these lines, then exits so.
        Exit(Exit, Vec<&'static str>),
        /// Runs until it is stopped.
        Hang,
    }

    /// A runner whose commands do what the test's script says, given their arguments (and may
    /// write files, as `git clone` and the pusher's digest file do).
    struct Scripted(Box<ScriptFn>);

    /// What a scripted command does, given its arguments.
    type ScriptFn = dyn Fn(&[String]) -> Script + Send + Sync;

    #[async_trait::async_trait]
    impl BuildRunner for Scripted {
        async fn run(&self, args: &[String], _dir: &Path, lines: mpsc::Sender<String>, stop: &Notify) -> Result<Exit> {
            match (self.0)(args) {
                Script::Exit(exit, out) => {
                    for l in out {
                        let _ = lines.send(l.to_owned()).await;
                    }
                    Ok(exit)
                }
                Script::Hang => {
                    stop.notified().await;
                    Ok(Exit::Stopped)
                }
            }
        }
    }

    /// A git clone writes a Dockerfile into its target; the pusher writes its digest file.
    fn fetch_and_push(args: &[String]) -> Option<Script> {
        match args.first().map(String::as_str) {
            Some("git") => {
                if args.get(1).is_some_and(|a| a == "clone") {
                    let target = PathBuf::from(args.last()?);
                    std::fs::write(target.join("Dockerfile"), "FROM scratch\n").ok()?;
                }
                Some(Script::Exit(Exit::Success, vec![]))
            }
            Some("push") => {
                std::fs::write(&args[1], "sha256:pushed\n").ok()?;
                Some(Script::Exit(Exit::Success, vec!["pushed"]))
            }
            _ => None,
        }
    }

    struct Fixture {
        app: App,
        build: BuildRow,
        _db: TestDb,
    }

    /// An app on a fresh database of `kind` whose builds run `script`, with one queued git build
    /// of `owner/web` tagged `v1`.
    async fn fixture(kind: DbKind, script: impl Fn(&[String]) -> Script + Send + Sync + 'static) -> Fixture {
        let db = TestDb::new(kind).await;
        let dir = db.dir();
        let store = Store::connect(&db.url, &Default::default()).await.unwrap();
        store.migrate().await.unwrap();
        let builds = BuildSettings {
            enabled: true,
            build_command: vec!["build".into(), "{context}".into()],
            push_command: vec!["push".into(), "{digestfile}".into(), "{destination}".into()],
            workdir: dir.join("builds"),
            ..BuildSettings::default()
        };
        let settings = crate::Settings {
            server_hostname: "registry.test".into(),
            preferred_url_scheme: "http".into(),
            registry_token_ttl: Duration::from_secs(300),
            method_policy: Default::default(),
            delivery: Default::default(),
            mail: None,
            email_code_ttl: Duration::from_secs(3600),
            secscan: Default::default(),
            builds,
            max_notifications_per_repository: 10,
            mirror_lease: Duration::from_secs(60),
        };
        let (key, _) = crate::sealing::SecretKey::generate().unwrap();
        let blobs = Arc::new(berth_blob::LocalBlobStore::new(dir.join("blobs")));
        let mut app = App::new(store, blobs, settings, crate::sealing::Keyring::new(key, vec![]))
            .await
            .unwrap();
        app.build_runner = Arc::new(Scripted(Box::new(script)));
        let mut tx = app.store.begin().await.unwrap();
        let owner = accounts::insert(
            &mut tx,
            &NewAccount {
                name: "owner",
                kind: AccountKind::User,
                email: None,
                password_hash: None,
                superuser: false,
                robot_owner: None,
                robot_token: None,
                description: "",
            },
        )
        .await
        .unwrap();
        let repo = repos::insert(&mut tx, owner.id, "web", Visibility::Private, "")
            .await
            .unwrap();
        let source = BuildSource::Git {
            url: "https://git.test/web.git".into(),
            commit: "abc123".into(),
        };
        let build = store::insert(
            &mut tx,
            &NewBuild {
                uuid: &uuid::Uuid::new_v4().to_string(),
                repo: repo.id,
                display_name: "abc123",
                docker_tags: &["v1".to_owned()],
                source: &source,
                dockerfile_path: "Dockerfile",
                context: "",
                trigger_id: None,
                trigger_metadata: &json!({}),
                manual_user: None,
                performer_id: Some(owner.id.0),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        Fixture { app, build, _db: db }
    }

    impl Fixture {
        async fn row(&self) -> BuildRow {
            let mut conn = self.app.store.conn().await.unwrap();
            store::by_id(&mut conn, self.build.id).await.unwrap().unwrap()
        }

        async fn log(&self) -> Vec<String> {
            let mut conn = self.app.store.conn().await.unwrap();
            let (lines, _) = store::logs(&mut conn, self.build.id, 0, 1000).await.unwrap();
            lines.into_iter().map(|l| format!("{} {}", l.kind, l.message)).collect()
        }
    }

    #[backend_test]
    async fn a_build_moves_through_its_phases_to_complete(kind: DbKind) {
        let f = fixture(kind, |args| {
            fetch_and_push(args).unwrap_or(Script::Exit(Exit::Success, vec!["STEP 1/1: FROM scratch"]))
        })
        .await;
        assert!(matches!(f.app.execute(&f.build.uuid, true).await.unwrap(), Retry::No));
        let row = f.row().await;
        assert_eq!(row.phase, BuildPhase::Complete);
        assert_eq!(row.manifest_digests.0, ["sha256:pushed"]);
        let phases: Vec<String> = f.log().await.into_iter().filter(|l| l.starts_with("phase ")).collect();
        assert_eq!(
            phases,
            ["phase pulling", "phase building", "phase pushing", "phase complete"]
        );
        let log = f.log().await;
        assert!(log.contains(&"output STEP 1/1: FROM scratch".to_owned()), "{log:?}");
        assert!(
            log.iter()
                .any(|l| l.starts_with("command push ") && l.ends_with("registry.test/owner/web:v1")),
            "{log:?}"
        );
    }

    #[backend_test]
    async fn a_failing_builder_ends_the_build_in_error_with_its_last_words(kind: DbKind) {
        let f = fixture(kind, |args| {
            fetch_and_push(args).unwrap_or(Script::Exit(
                Exit::Failed("status 1".into()),
                vec!["STEP 2/2: RUN false", "error building at STEP \"RUN false\"", ""],
            ))
        })
        .await;
        assert!(matches!(f.app.execute(&f.build.uuid, true).await.unwrap(), Retry::No));
        let row = f.row().await;
        assert_eq!(row.phase, BuildPhase::Error);
        assert_eq!(
            row.error.as_deref(),
            Some("build exited with status 1: error building at STEP \"RUN false\"")
        );
    }

    #[backend_test]
    async fn a_cancel_request_stops_a_running_builder(kind: DbKind) {
        let f = fixture(kind, |args| fetch_and_push(args).unwrap_or(Script::Hang)).await;
        let app = f.app.clone();
        let id = f.build.id;
        let canceller = tokio::spawn(async move {
            loop {
                let mut tx = app.store.begin().await.unwrap();
                let building = store::by_id(&mut tx, id).await.unwrap().unwrap().phase == BuildPhase::Building;
                if building {
                    store::request_cancel(&mut tx, id).await.unwrap();
                }
                tx.commit().await.unwrap();
                if building {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        assert!(matches!(f.app.execute(&f.build.uuid, true).await.unwrap(), Retry::No));
        canceller.await.unwrap();
        assert_eq!(f.row().await.phase, BuildPhase::Cancelled);
    }

    #[backend_test]
    async fn a_failing_push_is_retried_while_tries_are_left(kind: DbKind) {
        let f = fixture(kind, |args| match args.first().map(String::as_str) {
            Some("push") => Script::Exit(Exit::Failed("status 3".into()), vec!["registry unavailable"]),
            _ => fetch_and_push(args).unwrap_or(Script::Exit(Exit::Success, vec![])),
        })
        .await;
        let again = f.app.execute(&f.build.uuid, true).await.unwrap();
        assert!(
            matches!(&again, Retry::Yes(e) if e.contains("pushing v1: push exited with status 3: registry unavailable")),
            "{again:?}"
        );
        assert_eq!(f.row().await.phase, BuildPhase::Waiting);
        assert!(matches!(f.app.execute(&f.build.uuid, false).await.unwrap(), Retry::No));
        let row = f.row().await;
        assert_eq!(row.phase, BuildPhase::InternalError);
        assert!(row.error.unwrap().starts_with("internal error: "));
    }
}
