//! The mirror worker: takes sync jobs from the durable queue (any worker instance, with a lease
//! renewed while it runs) and runs one sync within the mirror's timeout. A sync raises
//! `repo_mirror_sync_started` in the transaction that marks it `SYNCING`, copies each upstream
//! tag that matches the globs (blobs streamed and their digests verified, an index narrowed to
//! the chosen architectures, manifests stored byte for byte, each tag through the registry's own
//! use case so it raises `repo_push` under the robot's name), removes the tags that matching
//! upstream ones no longer have (raising `tag_deleted`), and ends with
//! `repo_mirror_sync_success` or `repo_mirror_sync_failed` in the transaction that records the
//! outcome and schedules the next sync. A tag points only at a manifest whose blobs are all
//! stored, so a sync killed half-way leaves nothing half-copied visible.

use std::time::Duration;

use berth_core::{Digest, JobQueue, Reference, RepoId, RepoState, Tag};
use berth_notify::EventKind;
use berth_store::mirrors::{self, MirrorRow};
use berth_store::queue::Claimed;
use berth_store::repos::RepoRow;
use berth_store::{accounts, registry as reg, repos};
use chrono::Utc;
use serde_json::Value;

use super::client::{Client, Credentials, Upstream};
use super::{RETRIES, schedule, status};
use crate::jobs::{JobEnd, JobWorker, end_job};
use crate::registry::{DOCKER_LIST, OCI_INDEX};
use crate::sealing::Purpose;
use crate::{App, AppError, Caller, Ctx, Result};

/// How often an idle mirror worker looks for due jobs at most (it is woken for asked-for ones,
/// and looks at least once per lease, to take over a crashed worker's sync when its lease ends).
const POLL: Duration = Duration::from_secs(30);
/// How many bytes of a blob go into one upload append.
const SEGMENT: usize = 8 << 20;
/// How soon a failed sync is tried again while retries remain.
const RETRY_AFTER: chrono::Duration = chrono::Duration::minutes(1);

/// How a sync ended.
enum Ended {
    /// Every matching tag is here.
    Synced,
    /// Cancelled before the end.
    Cancelled,
}

impl App {
    /// Runs the mirror worker forever: one sync at a time.
    pub async fn run_mirror_worker(&self) {
        let lease = self.settings.mirror_lease;
        let jobs = JobWorker {
            queue: JobQueue::Mirror,
            lease,
            poll: POLL.min(lease),
            wake: &self.mirror_wake,
        };
        let worker = JobWorker::id('m');
        loop {
            let job = jobs.next(self, &worker).await;
            if let Err(e) = self.run_mirror_job(&job).await {
                tracing::warn!(job = job.id, error = %e, "a mirror job failed; it comes back when its lease ends");
            }
        }
    }

    /// Runs one claimed sync job to its end.
    pub(crate) async fn run_mirror_job(&self, job: &Claimed) -> Result<()> {
        let heartbeat = self.keep_leased(job.id, job.state_id.clone(), self.settings.mirror_lease);
        let body: Value = job.decode().unwrap_or_default();
        let repo_id = RepoId(body["repository_id"].as_i64().unwrap_or_default());
        // A job claimed again after its lease ended: the worker that ran it died mid-sync.
        let taken_over = job.attempt > 1;
        let outcome = self
            .sync_mirror(repo_id, body["asked"].as_bool().unwrap_or(false), taken_over)
            .await;
        drop(heartbeat);
        let mut tx = self.store.begin().await?;
        end_job(&mut tx, job, JobEnd::Done).await?;
        tx.commit().await?;
        outcome
    }

    /// Syncs the mirror of `repo` now, unless it is gone or already syncing elsewhere (a sync
    /// `taken_over` from a worker that died is not elsewhere); a scheduled sync (`asked` false)
    /// only while the mirror is enabled, one asked for with sync-now only if it was not cancelled
    /// before it started.
    pub(crate) async fn sync_mirror(&self, repo: RepoId, asked: bool, taken_over: bool) -> Result<()> {
        let (mirror, repo) = {
            let mut conn = self.store.conn().await?;
            let (Some(m), Some(r)) = (
                mirrors::get(&mut conn, repo).await?,
                repos::by_id(&mut conn, repo).await?,
            ) else {
                return Ok(());
            };
            (m, r)
        };
        let syncing = mirror.sync_status == status::SYNCING;
        let busy = syncing && !taken_over && mirror.sync_expiration_date.is_some_and(|t| t > Utc::now());
        let wanted = if asked {
            mirror.sync_status == status::SYNC_NOW || syncing && taken_over
        } else {
            mirror.is_enabled
        };
        if busy || !wanted {
            return Ok(());
        }
        let message = describe(&mirror);
        let timeout = sync_timeout(&mirror);
        let mut tx = self.store.begin().await?;
        let until = Utc::now() + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::hours(12));
        mirrors::set_status(&mut tx, repo.id, status::SYNCING, Some(until), None, None).await?;
        self.raise_mirror(&mut tx, &repo, EventKind::MirrorStarted, &message)
            .await?;
        tx.commit().await?;

        let mut log = Vec::new();
        let outcome = match tokio::time::timeout(timeout, self.copy(&mirror, &repo, &mut log)).await {
            Ok(r) => r,
            Err(_) => Err(AppError::Unavailable(format!(
                "the sync took longer than its {}s timeout",
                mirror.timeout_secs
            ))),
        };
        let log_text = log.join("\n");
        let next = Utc::now() + chrono::Duration::seconds(mirror.sync_interval);
        // What the outcome records: the status, the retries left, the error, the event, and when
        // the next sync runs.
        let (state, retries, error, event, at) = match outcome {
            Ok(Ended::Synced) => (status::SUCCESS, RETRIES, None, EventKind::MirrorSuccess, next),
            Ok(Ended::Cancelled) => (
                status::CANCEL,
                RETRIES,
                Some("cancelled".to_owned()),
                EventKind::MirrorFailed,
                next,
            ),
            Err(e) => {
                let error = match &e {
                    AppError::Internal(_) => "INTERNAL ERROR".to_owned(),
                    other => other.to_string(),
                };
                tracing::warn!(repository = %format!("{}/{}", repo.namespace, repo.name), error = %error, "a mirror sync failed");
                let left = mirror.sync_retries_remaining - 1;
                let (retries, at) = if left > 0 {
                    (left, Utc::now() + RETRY_AFTER)
                } else {
                    (RETRIES, next)
                };
                (status::FAIL, retries, Some(error), EventKind::MirrorFailed, at)
            }
        };
        let mut tx = self.store.begin().await?;
        mirrors::set_status(
            &mut tx,
            repo.id,
            state,
            None,
            Some(retries),
            Some((error.as_deref(), &log_text)),
        )
        .await?;
        let said = match &error {
            Some(e) => format!("{message}: {e}"),
            None => message,
        };
        self.raise_mirror(&mut tx, &repo, event, &said).await?;
        if mirror.is_enabled {
            schedule(&mut tx, repo.id, at, false).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn raise_mirror(
        &self,
        tx: &mut berth_store::Tx,
        repo: &RepoRow,
        event: EventKind,
        message: &str,
    ) -> Result<()> {
        let data = berth_notify::events::mirror_sync(&crate::events::repo_context(&self.settings, repo), message);
        self.raise(tx, repo, event.name(), &data, None).await?;
        Ok(())
    }

    /// Copies what the upstream has that matches, and removes what it no longer has.
    async fn copy(&self, mirror: &MirrorRow, repo: &RepoRow, log: &mut Vec<String>) -> Result<Ended> {
        if repo.state != RepoState::Mirror {
            return Err(AppError::invalid(format!(
                "{}/{} is not in the MIRROR state (PUT …/changestate)",
                repo.namespace, repo.name
            )));
        }
        let upstream = Upstream::parse(&mirror.external_reference).map_err(AppError::invalid)?;
        let password = match &mirror.password {
            Some(p) => Some(self.keyring.open(Purpose::MirrorPassword, p)?),
            None => None,
        };
        let verify_tls = mirror.registry_config.0["verify_tls"].as_bool().unwrap_or(true);
        let http = self
            .sender()?
            .registry_client(verify_tls, sync_timeout(mirror))
            .map_err(AppError::Internal)?;
        let credentials = Credentials {
            username: mirror.username.clone(),
            password,
        };
        let mut client = Client::connect(http, upstream, credentials, verify_tls)
            .await
            .map_err(AppError::Upstream)?;
        let globs: Vec<&str> = globs(mirror).into_iter().map(str::trim).collect();
        let arches: Vec<String> = mirror
            .architecture_filter
            .0
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        let mut upstream_tags: Vec<String> = client
            .tags()
            .await
            .map_err(AppError::Upstream)?
            .into_iter()
            .filter(|t| globs.iter().any(|g| glob_match(g, t)))
            .collect();
        upstream_tags.sort();
        log.push(format!(
            "{} upstream tags match {}",
            upstream_tags.len(),
            globs.join(",")
        ));
        let robot = {
            let mut conn = self.store.conn().await?;
            accounts::by_id(&mut conn, mirror.robot_id)
                .await?
                .ok_or_else(|| AppError::invalid("the mirror's robot no longer exists"))?
        };
        let ctx = Ctx {
            caller: Caller::Account(crate::auth::principal(robot, None)),
            ip: None,
        };
        for tag in &upstream_tags {
            while self.failpoints.hit(crate::failpoint::MIRROR_HOLD_BEFORE_TAG) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if self.cancelled(repo.id).await? {
                log.push("cancelled".into());
                return Ok(Ended::Cancelled);
            }
            let digest = self.copy_tag(&mut client, repo, &ctx, tag, &arches).await?;
            log.push(format!("{tag}: {digest}"));
        }
        // Tags the upstream no longer has (among those the globs take) go, as in Quay.
        let local = {
            let mut conn = self.store.conn().await?;
            reg::tags(&mut conn, repo.id, None, 100_000).await?
        };
        for tag in local {
            if globs.iter().any(|g| glob_match(g, &tag)) && upstream_tags.binary_search(&tag).is_err() {
                let t = Tag::parse(&tag).map_err(|e| AppError::Internal(e.to_string()))?;
                self.delete_manifest(&ctx, repo, &Reference::Tag(t)).await?;
                log.push(format!("{tag}: removed (gone upstream)"));
            }
        }
        Ok(Ended::Synced)
    }

    async fn cancelled(&self, repo: RepoId) -> Result<bool> {
        let mut conn = self.store.conn().await?;
        Ok(mirrors::get(&mut conn, repo)
            .await?
            .is_none_or(|m| m.sync_status == status::CANCEL))
    }

    /// Copies one tag: its manifest (an index's children first, narrowed to `arches`) and blobs.
    /// Returns the digest the tag now points at.
    async fn copy_tag(
        &self,
        client: &mut Client,
        repo: &RepoRow,
        ctx: &Ctx,
        tag: &str,
        arches: &[String],
    ) -> Result<Digest> {
        let top = client.manifest(tag).await.map_err(AppError::Upstream)?;
        let doc: Value = serde_json::from_slice(&top.bytes)
            .map_err(|e| AppError::Upstream(format!("the upstream manifest of {tag} is not JSON: {e}")))?;
        let reference = Reference::Tag(Tag::parse(tag).map_err(|e| AppError::Upstream(e.to_string()))?);
        if top.media_type != OCI_INDEX && top.media_type != DOCKER_LIST {
            self.copy_blobs(client, repo, &doc).await?;
            let pushed = self
                .put_manifest(ctx, repo, &reference, Some(&top.media_type), &top.bytes)
                .await?;
            return Ok(pushed.digest);
        }
        let children = doc["manifests"].as_array().cloned().unwrap_or_default();
        let kept: Vec<Value> = children
            .iter()
            .filter(|c| {
                arches.is_empty()
                    || c["platform"]["architecture"]
                        .as_str()
                        .is_some_and(|a| arches.iter().any(|x| x == a))
            })
            .cloned()
            .collect();
        if kept.is_empty() {
            return Err(AppError::Upstream(format!(
                "{tag} has no manifest for {}",
                arches.join(", ")
            )));
        }
        for child in &kept {
            let digest = child["digest"].as_str().unwrap_or_default();
            let m = client.manifest(digest).await.map_err(AppError::Upstream)?;
            let child_doc: Value = serde_json::from_slice(&m.bytes).unwrap_or_default();
            self.copy_blobs(client, repo, &child_doc).await?;
            let d = Digest::parse(digest).map_err(|e| AppError::Upstream(e.to_string()))?;
            self.put_manifest(ctx, repo, &Reference::Digest(d), Some(&m.media_type), &m.bytes)
                .await?;
        }
        // Every child kept: the index byte for byte (its digest stays the upstream's); else a
        // narrowed index listing only the kept ones.
        let bytes = if kept.len() == children.len() {
            top.bytes
        } else {
            let mut narrowed = doc.clone();
            narrowed["manifests"] = Value::Array(kept);
            serde_json::to_vec(&narrowed).map_err(|e| AppError::Internal(e.to_string()))?
        };
        let pushed = self
            .put_manifest(ctx, repo, &reference, Some(&top.media_type), &bytes)
            .await?;
        Ok(pushed.digest)
    }

    /// Makes every blob an image manifest references present in the repository: linked when this
    /// registry has it, else streamed from the upstream and verified against its digest.
    async fn copy_blobs(&self, client: &mut Client, repo: &RepoRow, doc: &Value) -> Result<()> {
        let digests = doc["config"]["digest"].as_str().into_iter().chain(
            doc["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["digest"].as_str()),
        );
        for d in digests {
            let digest =
                Digest::parse(d).map_err(|e| AppError::Upstream(format!("the upstream names a bad digest: {e}")))?;
            let here = reg::repo_blob_size(&mut self.store.conn().await?, repo.id, digest.as_str())
                .await?
                .is_some();
            if !here && !self.link_stored_blob(repo, &digest, None).await? {
                self.fetch_blob(client, repo, &digest).await?;
            }
        }
        Ok(())
    }

    /// Streams one blob into an upload of the repository, in segments, and commits it only when
    /// its digest matches.
    async fn fetch_blob(&self, client: &mut Client, repo: &RepoRow, digest: &Digest) -> Result<()> {
        let mut response = client.blob(digest).await.map_err(AppError::Upstream)?;
        let upload = self.start_upload(repo, digest.algorithm()).await?;
        let result = async {
            let mut buffer = Vec::with_capacity(SEGMENT);
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| AppError::Upstream(format!("reading the upstream blob {digest}: {e}")))?
            {
                buffer.extend_from_slice(&chunk);
                if buffer.len() >= SEGMENT {
                    self.append_upload(repo, &upload.id, None, &mut buffer.as_slice())
                        .await?;
                    buffer.clear();
                }
            }
            self.finish_upload(repo, &upload.id, digest, &mut buffer.as_slice())
                .await
        }
        .await;
        if result.is_err() {
            // A failed finish discards the upload itself; anything earlier leaves it to discard.
            let _ = self.cancel_upload(repo, &upload.id).await;
        }
        result
    }
}

/// The tag globs of a mirror's `root_rule`, as configured.
fn globs(m: &MirrorRow) -> Vec<&str> {
    m.root_rule.0["rule_value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// How long one sync of the mirror may take.
fn sync_timeout(m: &MirrorRow) -> Duration {
    Duration::from_secs(u64::try_from(m.timeout_secs).unwrap_or(300))
}

/// Quay's message about a mirror: `'<reference>' with tag pattern '<globs>'`.
fn describe(m: &MirrorRow) -> String {
    format!("'{}' with tag pattern '{}'", m.external_reference, globs(m).join(","))
}

/// Whether `name` matches the shell glob `pattern` as a whole (`*` any run, `?` one character,
/// `[...]` a set), as Quay's `fnmatch` does.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn at(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| at(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && at(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                    return n.first() == Some(&'[') && at(&p[1..], &n[1..]);
                };
                let Some(c) = n.first() else {
                    return false;
                };
                let set = &p[1..end];
                let (negated, set) = match set.first() {
                    Some('!' | '^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= (set[i]..=set[i + 2]).contains(c);
                        i += 3;
                    } else {
                        hit |= set[i] == *c;
                        i += 1;
                    }
                }
                hit != negated && at(&p[end + 1..], &n[1..])
            }
            Some(c) => n.first() == Some(c) && at(&p[1..], &n[1..]),
        }
    }
    at(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_whole_tags_as_fnmatch_does() {
        for (glob, tag) in [
            ("latest", "latest"),
            ("v1.*", "v1.2"),
            ("v1.*", "v1."),
            ("*", "anything"),
            ("v?", "v7"),
            ("v[0-9]", "v5"),
            ("v[!0-9]", "vx"),
            ("*-alpine", "3.20-alpine"),
        ] {
            assert!(glob_match(glob, tag), "{glob} {tag}");
        }
        for (glob, tag) in [
            ("latest", "latest2"),
            ("v1.*", "v2.0"),
            ("v?", "v10"),
            ("v[0-9]", "vx"),
            ("v[!0-9]", "v5"),
            ("*-alpine", "3.20"),
            ("", "x"),
        ] {
            assert!(!glob_match(glob, tag), "{glob} {tag}");
        }
    }
}
