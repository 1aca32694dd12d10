//! Vulnerability scanning as a use case. Every manifest push enqueues a scan job (in the push's
//! transaction); the scan worker indexes the image's layers with `berth_scan` (each layer once,
//! whatever image it belongs to), stores the image index, and announces what it matches.
//!
//! Announcing: the vulnerabilities of a tagged manifest are matched against the stored OSV
//! advisories; each (manifest, vulnerability) pair not seen before is recorded and raises
//! `vulnerability_found` in every repository whose tags point at the manifest (directly or
//! through an index), in the same transaction. Importing advisories re-matches the stored
//! indexes, which is how an image pushed last month "gains" a vulnerability.
//!
//! Bursts: per repository and per announcement, at most `max_events_per_scan` events; past that,
//! the most severe `max - 1` go out one by one and the rest in one summary event (Quay's
//! `vulnerabilities` list, headed by its most severe entry so the `level` filter still applies).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use berth_core::{Digest, JobQueue, RepoId, RepoRole};
use berth_scan::layer::Facts;
use berth_scan::{Advisory, ImageIndex, LayerIndex, Severity};
use berth_store::queue::{self, Claimed};
use berth_store::secscan::{self as store, status};
use berth_store::{registry as reg, repos};
use chrono::Utc;
use serde_json::{Value, json};

use crate::jobs::{JobEnd, JobWorker, end_job};
use crate::{App, AppError, Caller, Result};

/// How scanning runs.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    /// Whether pushes are scanned (and the worker runs).
    pub enabled: bool,
    /// Largest compressed layer that is read.
    pub max_layer_bytes: u64,
    /// Largest uncompressed layer.
    pub max_unpacked_bytes: u64,
    /// Most entries in one layer.
    pub max_files: u64,
    /// Largest file that is read inside a layer.
    pub max_file_bytes: u64,
    /// Time for indexing one manifest.
    pub time_budget: Duration,
    /// Events per repository per announcement before the rest is summarised.
    pub max_events_per_scan: usize,
    /// An OSV export (zip or JSON) to fetch periodically, if any.
    pub feed_url: Option<String>,
    /// How often to fetch it.
    pub feed_interval: Duration,
    /// How long an idle worker waits before looking for jobs again.
    pub poll_interval: Duration,
    /// How long a claimed job is leased (renewed while it runs).
    pub lease: Duration,
}

impl Default for ScanSettings {
    fn default() -> ScanSettings {
        ScanSettings {
            enabled: true,
            max_layer_bytes: 4 << 30,
            max_unpacked_bytes: 16 << 30,
            max_files: 1_000_000,
            max_file_bytes: 64 << 20,
            time_budget: Duration::from_secs(600),
            max_events_per_scan: 10,
            feed_url: None,
            feed_interval: Duration::from_secs(86_400),
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(120),
        }
    }
}

/// A vulnerability of an image: the advisory and the packages it affects.
#[derive(Debug, Clone)]
pub struct Vulnerability {
    /// The advisory.
    pub advisory: Advisory,
    /// Its normalised severity.
    pub severity: Severity,
    /// Affected packages: index into the image's packages, and the fixing version.
    pub packages: Vec<(usize, Option<String>)>,
}

impl Vulnerability {
    /// Whether any affected package has a fixed version.
    pub fn has_fix(&self) -> bool {
        self.packages.iter().any(|(_, f)| f.is_some())
    }

    /// The `vulnerability` object of a `vulnerability_found` payload.
    fn payload(&self) -> Value {
        json!({
            "id": self.advisory.id,
            "description": self.advisory.description(),
            "link": self.advisory.link(),
            "priority": self.severity.as_str(),
            "has_fix": self.has_fix(),
        })
    }
}

/// Where a manifest's scan stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanState {
    /// Not indexed yet.
    Queued,
    /// Indexed.
    Scanned,
    /// Indexing failed, with the reason.
    Failed(String),
    /// Not something we index, with the reason.
    Unsupported(String),
}

impl ScanState {
    /// Quay's `status` word.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScanState::Queued => "queued",
            ScanState::Scanned => "scanned",
            ScanState::Failed(_) => "failed",
            ScanState::Unsupported(_) => "unsupported",
        }
    }
}

/// The security report of a manifest.
#[derive(Debug, Clone)]
pub struct SecurityReport {
    /// The manifest.
    pub digest: String,
    /// Scan state.
    pub state: ScanState,
    /// The image index, when scanned.
    pub image: Option<ImageIndex>,
    /// Its vulnerabilities, most severe first.
    pub vulnerabilities: Vec<Vulnerability>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Advisories stored (new or changed).
    pub stored: usize,
    /// Advisories already stored with the same `modified` time.
    pub unchanged: usize,
}

impl ImportSummary {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: ImportSummary) {
        self.stored += other.stored;
        self.unchanged += other.unchanged;
    }
}

/// Image config media types: anything else (Helm charts, signatures, SBOMs) is an artifact.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// What the scanner needs of a manifest's JSON.
enum Shape {
    Image(Vec<(String, u64)>),
    Index(Vec<String>),
    Unsupported(String),
}

fn shape(content: &[u8]) -> Shape {
    let Ok(doc) = serde_json::from_slice::<Value>(content) else {
        return Shape::Unsupported("the manifest is not JSON".into());
    };
    if let Some(children) = doc["manifests"].as_array() {
        return Shape::Index(
            children
                .iter()
                .filter_map(|m| m["digest"].as_str().map(str::to_owned))
                .collect(),
        );
    }
    let config = doc["config"]["mediaType"].as_str().unwrap_or_default();
    if !IMAGE_CONFIGS.contains(&config) {
        return Shape::Unsupported(format!("not a container image (config media type {config:?})"));
    }
    let layers = doc["layers"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|l| Some((l["digest"].as_str()?.to_owned(), l["size"].as_u64().unwrap_or(0))))
                .collect()
        })
        .unwrap_or_default();
    Shape::Image(layers)
}

impl App {
    /// Signalled when scan jobs were enqueued.
    pub fn scan_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.scan_wake.clone()
    }

    /// Enqueues the scan of a pushed manifest, in the push's transaction.
    pub(crate) async fn enqueue_scan(&self, tx: &mut berth_store::Tx, repo: RepoId, digest: &str) -> Result<bool> {
        if !self.settings.secscan.enabled {
            return Ok(false);
        }
        let body = json!({"kind": "manifest", "repository_id": repo.0, "digest": digest});
        let name = format!("{}/{digest}", JobQueue::Secscan);
        queue::enqueue(tx, JobQueue::Secscan, &name, &body, crate::jobs::DEFAULT_RETRIES).await?;
        Ok(true)
    }

    /// Runs scan jobs forever, one at a time (indexing is CPU- and I/O-bound; one per process
    /// leaves the cores to requests and deliveries).
    pub async fn run_secscan_worker(&self) {
        let s = &self.settings.secscan;
        let jobs = JobWorker {
            queue: JobQueue::Secscan,
            lease: s.lease,
            poll: s.poll_interval,
            wake: &self.scan_wake,
        };
        let worker = JobWorker::id('s');
        loop {
            let job = jobs.next(self, &worker).await;
            self.run_scan_job(job).await;
        }
    }

    /// Runs one claimed job, renewing its lease meanwhile; infrastructure errors are retried
    /// with backoff, then the job is buried with the error.
    async fn run_scan_job(&self, job: Claimed) {
        let heartbeat = self.keep_leased(job.id, job.state_id.clone(), self.settings.secscan.lease);
        let started = std::time::Instant::now();
        let body: serde_json::Value = job.decode().unwrap_or_default();
        let outcome = self.scan_job(&body).await;
        drop(heartbeat);
        metrics::histogram!("berth_secscan_job_seconds").record(started.elapsed().as_secs_f64());
        let finish = async {
            let mut tx = self.store.begin().await?;
            match &outcome {
                Ok(()) => end_job(&mut tx, &job, JobEnd::Done).await?,
                Err(e) if job.retries_remaining > 0 => {
                    tracing::warn!(job = job.id, attempt = job.attempt, error = %e, "scan job failed; will retry");
                    let after = Duration::from_secs(5u64 << job.attempt.clamp(0, 10));
                    end_job(
                        &mut tx,
                        &job,
                        JobEnd::Retry {
                            after,
                            error: &e.to_string(),
                        },
                    )
                    .await?;
                }
                Err(e) => {
                    tracing::error!(job = job.id, error = %e, "scan job failed for good");
                    end_job(&mut tx, &job, JobEnd::Bury(&e.to_string())).await?;
                    // The report says so rather than staying "queued" forever.
                    if let Some(digest) = body["digest"].as_str()
                        && store::manifest(&mut tx, digest).await?.is_none()
                    {
                        let reason = format!("the scan failed on every try: {e}");
                        store::put_manifest(&mut tx, digest, status::FAILED, Some(&reason), None, Utc::now()).await?;
                    }
                }
            }
            tx.commit().await?;
            Ok::<(), AppError>(())
        };
        if let Err(e) = finish.await {
            tracing::warn!(job = job.id, error = %e, "could not record a scan job's outcome; its lease will expire");
        }
    }

    /// Runs one scan job body: `{"kind": "manifest", "repository_id", "digest"}` or
    /// `{"kind": "rematch", "packages": [[ecosystem, name], …] | null}`.
    pub async fn scan_job(&self, body: &Value) -> Result<()> {
        match body["kind"].as_str() {
            Some("manifest") => {
                let (Some(repo), Some(digest)) = (body["repository_id"].as_i64(), body["digest"].as_str()) else {
                    return Err(AppError::invalid(format!("malformed scan job: {body}")));
                };
                self.scan_pushed(RepoId(repo), digest).await
            }
            Some("rematch") => {
                let names: Option<HashSet<(String, String)>> = body["packages"].as_array().map(|list| {
                    list.iter()
                        .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())))
                        .collect()
                });
                self.rematch(names.as_ref()).await.map(|_| ())
            }
            _ => Err(AppError::invalid(format!("unknown scan job: {body}"))),
        }
    }

    /// Indexes a pushed manifest (an index: each child) if needed, then announces.
    async fn scan_pushed(&self, repo: RepoId, digest: &str) -> Result<()> {
        let manifest = {
            let mut conn = self.store.conn().await?;
            if repos::by_id(&mut conn, repo).await?.is_none() {
                return Ok(());
            }
            reg::manifest_by_digest(&mut conn, repo, digest).await?
        };
        // Deleted since the push: nothing to do.
        let Some(manifest) = manifest else { return Ok(()) };
        let targets = match shape(&manifest.content) {
            Shape::Index(children) => {
                let mut tx = self.store.begin().await?;
                let reason = "an index: each platform's manifest is scanned";
                store::put_manifest(&mut tx, digest, status::UNSUPPORTED, Some(reason), None, Utc::now()).await?;
                tx.commit().await?;
                children
            }
            _ => vec![digest.to_owned()],
        };
        for d in targets {
            let known = store::manifest(&mut self.store.conn().await?, &d).await?;
            if known.is_none() {
                self.index_manifest(repo, &d).await?;
            }
            self.announce(&d).await?;
        }
        Ok(())
    }

    /// Indexes one manifest of `repo` and stores the result: scanned, failed (with the reason)
    /// or unsupported. Errors are for infrastructure only (storage), so the job is retried.
    pub(crate) async fn index_manifest(&self, repo: RepoId, digest: &str) -> Result<()> {
        let content = match reg::manifest_by_digest(&mut self.store.conn().await?, repo, digest).await? {
            Some(m) => m.content,
            None => return Ok(()),
        };
        let started = std::time::Instant::now();
        let (state, image) = match shape(&content) {
            Shape::Image(layers) => match self.index_layers(&layers).await? {
                Ok(image) => (status::SCANNED, Ok(image)),
                Err(reason) => (status::FAILED, Err(reason)),
            },
            Shape::Index(_) => (
                status::UNSUPPORTED,
                Err("an index: each platform's manifest is scanned".into()),
            ),
            Shape::Unsupported(reason) => (status::UNSUPPORTED, Err(reason)),
        };
        let (image, reason) = match image {
            Ok(i) => (
                Some(serde_json::to_value(&i).map_err(|e| AppError::Internal(e.to_string()))?),
                None,
            ),
            Err(r) => (None, Some(r)),
        };
        let mut tx = self.store.begin().await?;
        store::put_manifest(&mut tx, digest, state, reason.as_deref(), image.as_ref(), Utc::now()).await?;
        tx.commit().await?;
        metrics::counter!("berth_secscan_manifests_total", "status" => state).increment(1);
        tracing::info!(
            digest,
            status = state,
            reason = reason.as_deref().unwrap_or(""),
            seconds = started.elapsed().as_secs_f64(),
            "manifest indexed"
        );
        Ok(())
    }

    /// Indexes the layers (reusing stored layer indexes) and stacks them. The inner error is the
    /// reason the image could not be indexed.
    async fn index_layers(&self, layers: &[(String, u64)]) -> Result<Result<ImageIndex, String>> {
        let s = &self.settings.secscan;
        let deadline = std::time::Instant::now() + s.time_budget;
        let mut stacked = Vec::with_capacity(layers.len());
        for (digest, declared) in layers {
            let stored = store::layer(&mut self.store.conn().await?, digest).await?;
            if let Some(facts) = stored.and_then(|v| serde_json::from_value::<LayerIndex>(v).ok()) {
                stacked.push((digest.clone(), facts));
                continue;
            }
            let parsed = Digest::parse(digest).map_err(|e| AppError::Internal(e.to_string()))?;
            let size = self.blobs.stat(&parsed).await?.unwrap_or(*declared);
            if size > s.max_layer_bytes {
                return Ok(Err(format!(
                    "layer {digest} is {size} bytes, over max_layer_bytes ({})",
                    s.max_layer_bytes
                )));
            }
            let reader = self.blobs.read(&parsed, 0, size).await?;
            let limits = berth_scan::Limits {
                max_unpacked_bytes: s.max_unpacked_bytes,
                max_files: s.max_files,
                max_file_bytes: s.max_file_bytes,
                deadline: Some(deadline),
            };
            let bridge = tokio_util::io::SyncIoBridge::new(reader);
            let indexed = tokio::task::spawn_blocking(move || berth_scan::layer::index_layer(bridge, &limits)).await;
            let mut layer = match indexed {
                Ok(Ok(layer)) => layer,
                Ok(Err(e)) => return Ok(Err(format!("layer {digest}: {e}"))),
                Err(e) => return Ok(Err(format!("layer {digest}: the indexer stopped: {e}"))),
            };
            for (path, bytes) in std::mem::take(&mut layer.rpm_databases) {
                layer.files.insert(path, read_rpm_database(&bytes).await);
            }
            let facts = serde_json::to_value(&layer).map_err(|e| AppError::Internal(e.to_string()))?;
            let mut tx = self.store.begin().await?;
            store::put_layer(&mut tx, digest, &facts, Utc::now()).await?;
            tx.commit().await?;
            stacked.push((digest.clone(), layer));
        }
        Ok(Ok(berth_scan::image::stack(&stacked)))
    }

    /// Matches an image index against the stored advisories, most severe first.
    pub async fn vulnerabilities(&self, image: &ImageIndex) -> Result<Vec<Vulnerability>> {
        let mut conn = self.store.conn().await?;
        let distro = image.distro.as_ref();
        let mut cache: HashMap<(&'static str, String), Arc<Vec<Advisory>>> = HashMap::new();
        let mut found: BTreeMap<String, Vulnerability> = BTreeMap::new();
        for (i, f) in image.packages.iter().enumerate() {
            let Some(eco) = berth_scan::osv::ecosystem_of(&f.package, distro) else {
                continue;
            };
            let names = std::iter::once(&f.package.name).chain(f.package.source_name.as_ref());
            for name in names {
                let key = (eco, berth_scan::osv::lookup_name(eco, name));
                let advisories = match cache.get(&key) {
                    Some(a) => a.clone(),
                    None => {
                        let bodies = store::advisories_for(&mut conn, key.0, &key.1).await?;
                        let parsed: Vec<Advisory> = bodies
                            .into_iter()
                            .filter_map(|b| serde_json::from_value(b).ok())
                            .collect();
                        let parsed = Arc::new(parsed);
                        cache.insert(key, parsed.clone());
                        parsed
                    }
                };
                for a in advisories.iter() {
                    let Some(m) = a.affects(&f.package, distro) else {
                        continue;
                    };
                    let v = found.entry(a.id.clone()).or_insert_with(|| Vulnerability {
                        severity: a.severity(),
                        advisory: a.clone(),
                        packages: Vec::new(),
                    });
                    if !v.packages.iter().any(|(p, _)| *p == i) {
                        v.packages.push((i, m.fixed_by));
                    }
                }
            }
        }
        let mut list: Vec<Vulnerability> = found.into_values().collect();
        list.sort_by(|a, b| (a.severity, &a.advisory.id).cmp(&(b.severity, &b.advisory.id)));
        Ok(list)
    }

    /// Records the manifest's new vulnerabilities and raises `vulnerability_found` for them in
    /// every repository where it is tagged. An untagged manifest records nothing, so its
    /// vulnerabilities are announced when a tag arrives (a push by tag scans again). Returns how
    /// many vulnerabilities were new.
    pub async fn announce(&self, digest: &str) -> Result<usize> {
        let (scan, tags) = {
            let mut conn = self.store.conn().await?;
            (
                store::manifest(&mut conn, digest).await?,
                store::tags_of(&mut conn, digest).await?,
            )
        };
        let Some(image) = scan
            .filter(|s| s.status == status::SCANNED)
            .and_then(|s| s.image)
            .and_then(|j| serde_json::from_value::<ImageIndex>(j.0).ok())
        else {
            return Ok(0);
        };
        if tags.is_empty() {
            return Ok(0);
        }
        let vulnerabilities = self.vulnerabilities(&image).await?;
        if vulnerabilities.is_empty() {
            return Ok(0);
        }
        let mut tagged: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (repo, tag) in tags {
            tagged.entry(repo).or_default().push(tag);
        }
        let now = Utc::now();
        let mut tx = self.store.begin().await?;
        let mut new = Vec::new();
        for v in &vulnerabilities {
            if store::add_finding(&mut tx, digest, &v.advisory.id, now).await? {
                new.push(v.payload());
            }
        }
        let mut queued = 0;
        for (repo_id, tags) in &tagged {
            let Some(repo) = repos::by_id(&mut tx, RepoId(*repo_id)).await? else {
                continue;
            };
            let ctx = crate::events::repo_context(&self.settings, &repo);
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            for data in event_payloads(&ctx, &tags, &new, self.settings.secscan.max_events_per_scan) {
                queued += self.raise(&mut tx, &repo, "vulnerability_found", &data, None).await?;
            }
        }
        tx.commit().await?;
        metrics::counter!("berth_secscan_findings_total").increment(new.len() as u64);
        if !new.is_empty() {
            tracing::info!(
                digest,
                new = new.len(),
                deliveries = queued,
                "vulnerabilities announced"
            );
        }
        Ok(new.len())
    }

    /// Re-matches the stored indexes (only those with a package in `packages`, when given)
    /// after new advisories; returns how many vulnerabilities were new.
    pub async fn rematch(&self, packages: Option<&HashSet<(String, String)>>) -> Result<usize> {
        let mut after = String::new();
        let mut new = 0;
        loop {
            let page = store::scanned_after(&mut self.store.conn().await?, &after, 200).await?;
            let Some(last) = page.last() else { break };
            after = last.digest.clone();
            for scan in page {
                let relevant = match (packages, &scan.image) {
                    (None, _) => true,
                    (Some(wanted), Some(image)) => serde_json::from_value::<ImageIndex>(image.0.clone())
                        .map(|image| touches(&image, wanted))
                        .unwrap_or(false),
                    (Some(_), None) => false,
                };
                if relevant {
                    new += self.announce(&scan.digest).await?;
                }
            }
        }
        Ok(new)
    }

    /// Stores a batch of advisories; when any is new or changed, enqueues a re-match of the
    /// stored indexes limited to the packages they name.
    pub async fn import_advisories(&self, batch: &[Advisory]) -> Result<ImportSummary> {
        let now = Utc::now();
        let mut summary = ImportSummary::default();
        let mut touched: Vec<(String, String)> = Vec::new();
        let mut tx = self.store.begin().await?;
        for a in batch {
            let keys = a.package_keys();
            let body = serde_json::to_value(a).map_err(|e| AppError::Internal(e.to_string()))?;
            if store::put_advisory(&mut tx, &a.id, &a.modified, &body, &keys, now).await? {
                summary.stored += 1;
                touched.extend(keys);
            } else {
                summary.unchanged += 1;
            }
        }
        if !touched.is_empty() {
            touched.sort();
            touched.dedup();
            let body = json!({"kind": "rematch", "packages": touched});
            let name = format!("{}/rematch", JobQueue::Secscan);
            queue::enqueue(&mut tx, JobQueue::Secscan, &name, &body, crate::jobs::DEFAULT_RETRIES).await?;
        }
        tx.commit().await?;
        if !touched.is_empty() {
            self.scan_wake.notify_one();
        }
        Ok(summary)
    }

    /// How many advisories are stored.
    pub async fn advisory_count(&self) -> Result<i64> {
        Ok(store::advisory_count(&mut self.store.conn().await?).await?)
    }

    /// Fetches the configured OSV feed (a zip export or a JSON document or array) and imports it.
    pub async fn fetch_feed(&self) -> Result<ImportSummary> {
        let Some(url) = self.settings.secscan.feed_url.clone() else {
            return Err(AppError::NotConfigured("no secscan.feed_url is configured".into()));
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let response = client
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| AppError::Upstream(format!("fetching {url}: {e}")))?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| AppError::Upstream(format!("reading {url}: {e}")))?;
        let (advisories, invalid) = tokio::task::spawn_blocking(move || parse_feed(&bytes))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??;
        if invalid > 0 {
            tracing::warn!(url, invalid, "some advisories of the feed could not be read");
        }
        let mut summary = ImportSummary::default();
        for batch in advisories.chunks(500) {
            summary.add(self.import_advisories(batch).await?);
        }
        Ok(summary)
    }

    /// Fetches the feed every `feed_interval`, forever (aborted at shutdown); one process at a
    /// time among those sharing the database.
    pub async fn run_feed_fetcher(&self) {
        loop {
            match self.run_alone(crate::jobs::PeriodicJob::Feed, self.fetch_feed()).await {
                Ok(Some(s)) => tracing::info!(
                    stored = s.stored,
                    unchanged = s.unchanged,
                    "vulnerability feed imported"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "vulnerability feed not imported"),
            }
            tokio::time::sleep(self.settings.secscan.feed_interval).await;
        }
    }

    /// The security report of a manifest of `namespace/name` (repository `read` needed).
    pub async fn security_report(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        digest: &str,
    ) -> Result<SecurityReport> {
        let (repo, _) = self.repo_access(caller, namespace, name, RepoRole::Read).await?;
        let digest = Digest::parse(digest).map_err(|e| AppError::invalid(e.to_string()))?;
        let mut conn = self.store.conn().await?;
        if reg::manifest_by_digest(&mut conn, repo.id, digest.as_str())
            .await?
            .is_none()
        {
            return Err(AppError::NotFound(format!(
                "manifest {digest} not found in {namespace}/{name}"
            )));
        }
        let scan = store::manifest(&mut conn, digest.as_str()).await?;
        drop(conn);
        let mut report = SecurityReport {
            digest: digest.as_str().to_owned(),
            state: ScanState::Queued,
            image: None,
            vulnerabilities: Vec::new(),
        };
        let Some(scan) = scan else {
            if !self.settings.secscan.enabled {
                report.state = ScanState::Unsupported("vulnerability scanning is disabled".into());
            }
            return Ok(report);
        };
        let reason = scan.reason.clone().unwrap_or_default();
        report.state = match scan.status.as_str() {
            status::SCANNED => ScanState::Scanned,
            status::FAILED => ScanState::Failed(reason),
            _ => ScanState::Unsupported(reason),
        };
        if let Some(image) = scan.image.and_then(|j| serde_json::from_value::<ImageIndex>(j.0).ok()) {
            report.vulnerabilities = self.vulnerabilities(&image).await?;
            report.image = Some(image);
        }
        Ok(report)
    }
}

/// Whether the image has a package named in `wanted` (`(ecosystem, name)`).
fn touches(image: &ImageIndex, wanted: &HashSet<(String, String)>) -> bool {
    let distro = image.distro.as_ref();
    image.packages.iter().any(|f| {
        let Some(eco) = berth_scan::osv::ecosystem_of(&f.package, distro) else {
            return false;
        };
        std::iter::once(&f.package.name)
            .chain(f.package.source_name.as_ref())
            .any(|n| wanted.contains(&(eco.to_owned(), berth_scan::osv::lookup_name(eco, n))))
    })
}

/// The events for `new` vulnerabilities (most severe first) of one repository: one each up to
/// `cap`; past it, `cap - 1` single events and one summary of the rest.
fn event_payloads(ctx: &berth_notify::RepoContext<'_>, tags: &[&str], new: &[Value], cap: usize) -> Vec<Value> {
    let cap = cap.max(1);
    if new.len() <= cap {
        return new
            .iter()
            .map(|v| berth_notify::events::vulnerability_found(ctx, tags, v.clone()))
            .collect();
    }
    let (single, rest) = new.split_at(cap - 1);
    let mut out: Vec<Value> = single
        .iter()
        .map(|v| berth_notify::events::vulnerability_found(ctx, tags, v.clone()))
        .collect();
    out.push(berth_notify::events::vulnerabilities_found(ctx, tags, rest));
    out
}

/// The packages of an `rpmdb.sqlite`, or why it could not be read.
async fn read_rpm_database(bytes: &[u8]) -> Facts {
    let read = async {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("rpmdb.sqlite");
        tokio::fs::write(&path, bytes).await.map_err(|e| e.to_string())?;
        let blobs = berth_store::secscan::rpm_headers(&path)
            .await
            .map_err(|e| e.to_string())?;
        blobs
            .iter()
            .map(|b| berth_scan::parse::rpm_header(b).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, String>>()
    };
    match read.await {
        Ok(packages) => Facts::Packages { packages },
        Err(reason) => Facts::Skipped {
            reason: format!("unreadable RPM database: {reason}"),
        },
    }
}

/// Reads a fetched feed: a zip export, a JSON array of advisories, or one advisory. Returns the
/// advisories and how many documents could not be read.
fn parse_feed(bytes: &[u8]) -> Result<(Vec<Advisory>, usize)> {
    let mut out = Vec::new();
    let mut invalid = 0;
    if bytes.starts_with(b"PK") {
        berth_scan::feed::read_zip(std::io::Cursor::new(bytes), &mut |(_, r)| match r {
            Ok(a) => out.push(a),
            Err(_) => invalid += 1,
        })
        .map_err(|e| AppError::Upstream(e.to_string()))?;
        return Ok((out, invalid));
    }
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| AppError::Upstream(format!("the feed is neither a zip nor JSON: {e}")))?;
    let docs = match doc {
        Value::Array(list) => list,
        one => vec![one],
    };
    for d in docs {
        match serde_json::from_value::<Advisory>(d) {
            Ok(a) if !a.id.is_empty() => out.push(a),
            _ => invalid += 1,
        }
    }
    Ok((out, invalid))
}
