//! The delivery engine's worker: claims jobs from the durable queue (leased, so a crashed worker's
//! jobs come back), runs them concurrently within limits, and records every attempt.
//!
//! - **Isolation.** At most `max_in_flight` deliveries run at once, at most `per_host` to one
//!   destination host. Claims are fair per repository's event: one holding `per_repository`
//!   leased jobs is skipped while others have due work, so a flood for one repository cannot
//!   starve the others; slots nobody else wants still go to it (work-conserving). A job whose host is saturated is put back for a moment without counting an
//!   attempt, so a slow or hanging endpoint holds at most `per_host` slots and never delays the
//!   deliveries to healthy endpoints. Claims are ordered by due time, so a flood for one repository
//!   queues behind nothing but itself.
//! - **Classification.** Delivered (2xx); retryable (5xx, 408, 429, timeouts, connection and TLS
//!   errors) on the schedule (default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each ±20 %),
//!   honouring `Retry-After` clamped to [scheduled, 2 × scheduled]; permanent (other statuses;
//!   410 Gone also disables the notification).
//! - **Failure counting.** `number_of_failures` counts consecutive failed attempts and a success
//!   resets it (Quay's meaning). A notification is disabled when it has failed continuously for
//!   `disable_after` (default 5 days), when a receiver answers 410, or when the optional
//!   `failure_threshold` is reached (3 gives Quay's behaviour). The reason and time are stored, and
//!   the repository's admins are told in the bell and by e-mail. Events that arrive while it is
//!   disabled are logged as skipped, and can be recovered after a reset.
//! - **The log.** Every attempt is stored with what was sent (URL masked) and received, in the
//!   transaction that moves the job, so the log and the queue never disagree. Attempts that finish
//!   together share one transaction (group commit); each keeps its worker slot until recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_notify::guard::Guard;
use berth_notify::send::{self, DeliveryMeta, Exchange, Outcome, Sender, mask_url, slack_body};
use berth_notify::{EventKind, JsonTemplate, MethodKind};
use berth_store::deliveries::{self, NewAttempt, status};
use berth_store::notifications::{self, NotificationRow};
use berth_store::queue::{self, Claimed};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::events::NOTIFICATION_QUEUE;
use crate::jobs::AbortOnDrop;
use crate::{App, Result};

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Request timeout.
    pub send_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Consecutive failed attempts that disable a notification; 0 turns the threshold off.
    pub failure_threshold: u32,
    /// How long a notification may fail continuously before it is disabled.
    pub disable_after: Duration,
    /// Delay before each retry.
    pub schedule: Vec<Duration>,
    /// How long a claimed job is leased (heartbeats extend it while a job runs).
    pub lease: Duration,
    /// Base URL of the Flowdock API.
    pub flowdock_api_base: String,
    /// Base URL of the HipChat API.
    pub hipchat_api_base: String,
    /// Sender address of outgoing messages (Flowdock's `from_address`).
    pub from_address: String,
    /// Where deliveries may connect: public addresses plus the allowed networks.
    pub guard: Guard,
    /// Most deliveries in flight in this process.
    pub max_in_flight: usize,
    /// Most deliveries in flight to one destination host.
    pub per_host: usize,
    /// Most deliveries in flight for one queue name (a repository's event), so that a flood for
    /// one repository leaves slots for the others.
    pub per_repository: usize,
    /// How long a rotated-out signing secret keeps signing.
    pub secret_grace: Duration,
    /// How long the delivery log keeps finished deliveries.
    pub log_retention: Duration,
    /// How often the worker looks for due jobs when nothing woke it.
    pub poll_interval: Duration,
    /// Redirect hops a delivery follows (0: none), each checked by the guard.
    pub max_redirects: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let m = |x: u64| Duration::from_secs(60 * x);
        DeliverySettings {
            send_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            failure_threshold: 0,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            schedule: vec![Duration::from_secs(5), m(5), m(30), m(120), m(300), m(600), m(600)],
            lease: Duration::from_secs(60),
            flowdock_api_base: "https://api.flowdock.com".into(),
            hipchat_api_base: "https://api.hipchat.com".into(),
            from_address: "berth@localhost".into(),
            guard: Guard::default(),
            max_in_flight: 32,
            per_host: 4,
            per_repository: 16,
            secret_grace: Duration::from_secs(24 * 3600),
            log_retention: Duration::from_secs(30 * 24 * 3600),
            poll_interval: Duration::from_secs(1),
            max_redirects: 0,
        }
    }
}

/// When to retry after attempt `attempt` (1-based): the schedule with ±20 % jitter, and a
/// receiver's `Retry-After` clamped between the scheduled delay and twice it.
pub fn retry_delay(schedule: &[Duration], attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let idx = usize::try_from(attempt.saturating_sub(1))
        .unwrap_or(usize::MAX)
        .min(schedule.len().saturating_sub(1));
    let base = schedule.get(idx).copied().unwrap_or(Duration::from_secs(600));
    match retry_after {
        Some(ra) => ra.clamp(base, base * 2),
        None => base.mul_f64(1.0 + jitter.clamp(-0.2, 0.2)),
    }
}

pub(crate) fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Per-destination concurrency limits, shared by the worker's tasks.
#[derive(Clone)]
struct HostLimits {
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl HostLimits {
    fn new(per_host: usize) -> Self {
        HostLimits {
            per_host: per_host.max(1),
            hosts: Arc::default(),
        }
    }

    /// A slot for `host`, or `None` when it has `per_host` deliveries in flight.
    fn try_acquire(&self, host: &str) -> Option<OwnedSemaphorePermit> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        // Forget idle hosts so the map stays as small as the set of busy destinations.
        hosts.retain(|_, s| s.available_permits() < self.per_host);
        let sem = hosts
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
            .clone();
        sem.try_acquire_owned().ok()
    }
}

/// Where finished attempts go: recorded at once, or handed to the worker's group committer.
enum Sink {
    Direct,
    Batched(tokio::sync::mpsc::Sender<Done>),
}

/// What an outcome means for the job: the log's label, the delivery's new status, when to retry,
/// and the failure (reason, gone) to count.
type Verdict = (
    &'static str,
    &'static str,
    Option<DateTime<Utc>>,
    Option<(String, bool)>,
);

/// A finished attempt waiting to be recorded. It keeps the worker's slot until it is recorded, so
/// that what a crash can leave sent-but-unrecorded stays within `max_in_flight`.
struct Done {
    job: Claimed,
    n: NotificationRow,
    method: &'static str,
    attempt: Attempt,
    _slot: Option<OwnedSemaphorePermit>,
}

/// How one job ended, for the log and the queue.
struct Attempt {
    started: DateTime<Utc>,
    outcome: Outcome,
    exchange: Exchange,
}

impl App {
    /// Runs the delivery worker until the task is aborted: wakes when this process enqueues (and,
    /// on PostgreSQL, when any process commits a job), and polls as a fallback for jobs due later.
    pub async fn run_delivery_worker(&self) {
        let d = &self.settings.delivery;
        let sender = match self.sender() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "notification delivery is unavailable");
                return;
            }
        };
        let worker = format!(
            "w{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let global = Arc::new(Semaphore::new(d.max_in_flight.max(1)));
        // Queue statistics scan the live jobs: at most every 10 s, not on every idle poll.
        let mut observed: Option<std::time::Instant> = None;
        let hosts = HostLimits::new(d.per_host);
        let _listener = self.spawn_queue_listener();
        let (to_committer, from_workers) = tokio::sync::mpsc::channel(1024);
        let _committer = {
            let app = self.clone();
            AbortOnDrop(tokio::spawn(async move { app.commit_loop(from_workers).await }))
        };
        let sink = Arc::new(Sink::Batched(to_committer));
        loop {
            if global.available_permits() == 0 {
                // Wait for a slot to free up before claiming more.
                if let Ok(p) = global.clone().acquire_owned().await {
                    drop(p);
                }
                continue;
            }
            let free = i64::try_from(global.available_permits()).unwrap_or(1);
            match self.claim_deliveries(&worker, free, Utc::now()).await {
                Ok(jobs) if jobs.is_empty() => {
                    if observed.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        self.observe_queue().await;
                        observed = Some(std::time::Instant::now());
                    }
                    let _ = tokio::time::timeout(d.poll_interval, self.wake.notified()).await;
                }
                Ok(jobs) => {
                    for job in jobs {
                        let Ok(permit) = global.clone().acquire_owned().await else {
                            return;
                        };
                        let (app, sender, hosts, sink) = (self.clone(), sender.clone(), hosts.clone(), sink.clone());
                        tokio::spawn(async move {
                            // The slot is released when the attempt is recorded, or on return.
                            let slot = Some(permit);
                            if let Err(e) = app.deliver_job(&sender, &hosts, &sink, slot, &job, Utc::now()).await {
                                // The lease expires and the job comes back; nothing is lost.
                                tracing::warn!(job = job.id, error = %e, "delivery bookkeeping failed; the job will be retried");
                            }
                            // A slot or a lease may have been freed: look for work again.
                            app.wake.notify_one();
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying shortly");
                    tokio::time::sleep(d.poll_interval).await;
                }
            }
        }
    }

    /// The HTTP sender the settings describe (timeouts, guard, redirects).
    fn sender(&self) -> Result<Sender> {
        let d = &self.settings.delivery;
        Sender::new(d.send_timeout, d.connect_timeout, d.guard.clone(), d.max_redirects)
            .map_err(crate::AppError::Internal)
    }

    /// Puts a claimed job back until `at` without counting the attempt, with a note saying why.
    async fn defer(&self, job: &Claimed, at: DateTime<Utc>, note: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        queue::defer(&mut tx, job.id, &job.state_id, at, note).await?;
        tx.commit().await?;
        Ok(())
    }

    /// On PostgreSQL, a task that wakes this worker whenever any process commits a job; it stops
    /// when the returned guard drops (with the worker), releasing its connection.
    fn spawn_queue_listener(&self) -> Option<AbortOnDrop> {
        let store = self.store.clone();
        let wake = self.wake.clone();
        store.is_postgres().then(|| {
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    match store.listen_queue(&wake).await {
                        Ok(()) => {}
                        Err(e) => tracing::warn!(error = %e, "queue notifications lost; polling until they resume"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }))
        })
    }

    async fn claim_deliveries(&self, worker: &str, limit: i64, now: DateTime<Utc>) -> Result<Vec<Claimed>> {
        let lease = chrono_of(self.settings.delivery.lease);
        let mut tx = self.store.begin().await?;
        let per_repository = i64::try_from(self.settings.delivery.per_repository).unwrap_or(i64::MAX);
        let mut c = queue::claim(&mut tx, NOTIFICATION_QUEUE, now, lease, limit, per_repository, worker).await?;
        // Work-conserving: the share binds only while others wait. When the fair claim leaves
        // slots free, no other repository had due work in its window, so fill them from the
        // repositories at their share (they yield again at the next claim).
        let got = i64::try_from(c.len()).unwrap_or(limit);
        if got < limit {
            c.extend(queue::claim(&mut tx, NOTIFICATION_QUEUE, now, lease, limit - got, i64::MAX, worker).await?);
        }
        tx.commit().await?;
        Ok(c)
    }

    /// Claims up to `limit` jobs due at `now` and performs them one after another, as of `now`:
    /// tests drive retries and disabling with an injected clock through this, instead of waiting.
    pub async fn deliver_due(&self, now: DateTime<Utc>, limit: i64) -> Result<usize> {
        let sender = self.sender()?;
        let hosts = HostLimits::new(self.settings.delivery.per_host);
        let jobs = self.claim_deliveries("manual", limit, now).await?;
        for job in &jobs {
            self.deliver_job(&sender, &hosts, &Sink::Direct, None, job, now).await?;
        }
        Ok(jobs.len())
    }

    /// Publishes queue depth, the age of the oldest due job and the disabled notifications.
    async fn observe_queue(&self) {
        let Ok(mut conn) = self.store.conn().await else {
            return;
        };
        let now = Utc::now();
        if let Ok(mut stats) = queue::stats(&mut conn, now).await {
            if !stats.iter().any(|s| s.queue == NOTIFICATION_QUEUE) {
                // An empty queue reports zero rather than no series at all.
                stats.push(queue::QueueStats {
                    queue: NOTIFICATION_QUEUE.into(),
                    depth: 0,
                    oldest_due: None,
                });
            }
            for s in stats {
                metrics::gauge!("berth_queue_depth", "queue" => s.queue.clone()).set(s.depth as f64);
                let age = s
                    .oldest_due
                    .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
                metrics::gauge!("berth_queue_oldest_due_age_seconds", "queue" => s.queue).set(age);
            }
        }
        if let Ok(n) = notifications::count_disabled(&mut conn).await {
            metrics::gauge!("berth_notifications_disabled").set(n as f64);
        }
    }

    /// Performs one claimed job as of `now` and records how it went.
    #[allow(clippy::too_many_arguments)]
    async fn deliver_job(
        &self,
        sender: &Sender,
        hosts: &HostLimits,
        sink: &Sink,
        slot: Option<OwnedSemaphorePermit>,
        job: &Claimed,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let body = &job.body.0;
        let uuid = body["notification_uuid"].as_str().unwrap_or_default();
        let delivery_id = body["delivery_id"].as_str().unwrap_or_default().to_owned();
        let notification = {
            let mut conn = self.store.conn().await?;
            notifications::by_uuid_any(&mut conn, uuid).await?
        };
        let Some(n) = notification else {
            // Deleted since: its log went with it.
            return self.settle(job, &delivery_id, None, status::SKIPPED).await;
        };
        if !n.enabled {
            return self
                .settle(
                    job,
                    &delivery_id,
                    Some("the notification was disabled"),
                    status::SKIPPED,
                )
                .await;
        }
        let (Ok(event), Ok(method)) = (EventKind::parse(&n.event), MethodKind::parse(&n.method)) else {
            let outcome = Outcome::Permanent {
                reason: "unknown event or method".into(),
                gone: false,
            };
            let attempt = Attempt {
                started: now,
                outcome,
                exchange: Exchange::default(),
            };
            return self.record(sink, slot, job, &n, method_label(&n.method), attempt).await;
        };
        let data = &body["event_data"];
        if !event.should_perform(data, &n.event_config.0) {
            return self
                .settle(
                    job,
                    &delivery_id,
                    Some("filtered out by the event configuration"),
                    status::FILTERED,
                )
                .await;
        }
        if job.attempt == 1
            && let Some(at) = body["occurred_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            let lag = (now - at.with_timezone(&Utc)).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("berth_delivery_first_attempt_latency_seconds", "method" => method.name()).record(lag);
        }
        let started = now;
        let secrets = n.signing_secrets(started);
        let custom_headers = if method == MethodKind::Webhook {
            berth_notify::methods::custom_headers(&n.config.0).unwrap_or_default()
        } else {
            Vec::new()
        };
        let meta = DeliveryMeta {
            event: event.name(),
            delivery_id: &delivery_id,
            timestamp: started.timestamp(),
            secrets: &secrets,
            custom_headers: &custom_headers,
        };
        let performer = body["performer_data"]["entity_name"].as_str();
        let attempt = match method {
            MethodKind::QuayNotification => {
                return self.deliver_in_app(job, &n, event.name(), data, &delivery_id).await;
            }
            MethodKind::Email => {
                let Ok(mailer) = self.mailer() else {
                    // Configuration, not the receiver, is at fault: keep the job until mail is set up.
                    let at = now + chrono::Duration::hours(1);
                    let note = "e-mail is not configured on this server (mail.host); the job waits";
                    return self.defer(job, at, note).await;
                };
                let (outcome, exchange) = self.send_email(mailer, &n, event, data, performer, &meta).await?;
                Attempt {
                    started,
                    outcome,
                    exchange,
                }
            }
            _ => match self.http_request(method, &n.config.0, event, data, performer) {
                Ok((url, body, what)) => {
                    // One destination = host and port (two receivers on one machine are two).
                    let host = url::Url::parse(&url)
                        .ok()
                        .map(|u| {
                            format!(
                                "{}:{}",
                                u.host_str().unwrap_or_default(),
                                u.port_or_known_default().unwrap_or(0)
                            )
                        })
                        .unwrap_or_default();
                    let Some(_slot) = hosts.try_acquire(&host) else {
                        // The destination is busy: come back shortly, without counting an attempt.
                        let jitter = rand::rng().random_range(200..800);
                        let at = now + chrono::Duration::milliseconds(jitter);
                        self.defer(job, at, "waiting for a free slot to the host").await?;
                        self.wake.notify_one();
                        return Ok(());
                    };
                    let log_url = mask_url(&url, matches!(method, MethodKind::Slack | MethodKind::Flowdock));
                    // A notification with its own CA or client certificate gets its own client.
                    let own = match berth_notify::methods::tls_options(&n.config.0) {
                        Ok(Some(tls)) if method == MethodKind::Webhook => Some(sender.with_tls(&tls)),
                        _ => None,
                    };
                    let (outcome, exchange) = match &own {
                        Some(Err(e)) => (
                            Outcome::Permanent {
                                reason: format!("webhook TLS settings: {e}"),
                                gone: false,
                            },
                            Exchange {
                                url: log_url.clone(),
                                error: Some(e.clone()),
                                ..Exchange::default()
                            },
                        ),
                        Some(Ok(own)) => {
                            self.with_heartbeat(job, own.post_json(&url, &log_url, &body, &meta, what))
                                .await
                        }
                        None => {
                            self.with_heartbeat(job, sender.post_json(&url, &log_url, &body, &meta, what))
                                .await
                        }
                    };
                    Attempt {
                        started,
                        outcome,
                        exchange,
                    }
                }
                Err(e) => Attempt {
                    started,
                    exchange: Exchange {
                        error: Some(e.clone()),
                        ..Exchange::default()
                    },
                    outcome: Outcome::Permanent { reason: e, gone: false },
                },
            },
        };
        metrics::histogram!("berth_delivery_request_duration_seconds", "method" => method.name())
            .record(attempt.exchange.duration.as_secs_f64());
        self.record(sink, slot, job, &n, method.name(), attempt).await
    }

    /// Runs `work`, extending the job's lease every third of it while it runs.
    async fn with_heartbeat<T>(&self, job: &Claimed, work: impl std::future::Future<Output = T>) -> T {
        let lease = self.settings.delivery.lease;
        let mut beat = tokio::time::interval(lease / 3);
        beat.tick().await;
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = beat.tick() => {
                    let until = Utc::now() + chrono_of(lease);
                    if let Ok(mut tx) = self.store.begin().await
                        && queue::heartbeat(&mut tx, job.id, &job.state_id, until).await.unwrap_or(false)
                    {
                        let _ = tx.commit().await;
                    }
                }
            }
        }
    }

    /// Completes a job without an attempt, setting its delivery's status.
    async fn settle(&self, job: &Claimed, delivery_id: &str, note: Option<&str>, status: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        queue::complete(&mut tx, job.id, &job.state_id).await?;
        deliveries::set_status(&mut tx, delivery_id, status, note, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an attempt (see [`Self::apply`]): at once, or through the worker's group committer.
    async fn record(
        &self,
        sink: &Sink,
        slot: Option<OwnedSemaphorePermit>,
        job: &Claimed,
        n: &NotificationRow,
        method: &'static str,
        a: Attempt,
    ) -> Result<()> {
        let done = Done {
            job: job.clone(),
            n: n.clone(),
            method,
            attempt: a,
            _slot: slot,
        };
        match sink {
            Sink::Direct => {
                let mut tx = self.store.begin().await?;
                let disabled = self.apply(&mut tx, &done).await?;
                tx.commit().await?;
                self.after(&done, disabled).await;
                Ok(())
            }
            Sink::Batched(to) => to
                .send(done)
                .await
                .map_err(|_| crate::AppError::Internal("the delivery committer stopped".into())),
        }
    }

    /// Records finished attempts in batches: one transaction for every attempt that finished
    /// while the previous batch was being written (group commit), so the single writer is taken
    /// once per batch instead of once per delivery. A failed batch is not retried here: its jobs'
    /// leases run out and they are attempted again (at least once).
    async fn commit_loop(&self, mut from: tokio::sync::mpsc::Receiver<Done>) {
        const MAX_BATCH: usize = 256;
        while let Some(first) = from.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH
                && let Ok(more) = from.try_recv()
            {
                batch.push(more);
            }
            let written = async {
                let mut tx = self.store.begin().await?;
                let mut disabled = Vec::with_capacity(batch.len());
                for done in &batch {
                    disabled.push(self.apply(&mut tx, done).await?);
                }
                tx.commit().await?;
                Ok::<_, crate::AppError>(disabled)
            }
            .await;
            match written {
                Ok(disabled) => {
                    // Leases were released: jobs held back by a repository's share are claimable.
                    self.wake.notify_one();
                    metrics::histogram!("berth_delivery_commit_batch_size").record(batch.len() as f64);
                    for (done, why) in batch.iter().zip(disabled) {
                        self.after(done, why).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, jobs = batch.len(), "recording deliveries failed; their jobs will be retried");
                }
            }
        }
    }

    /// Moves the job, logs the attempt and counts the outcome, inside `tx`. Returns the reason when
    /// the notification was disabled by it.
    async fn apply(&self, tx: &mut berth_store::Tx, done: &Done) -> Result<Option<String>> {
        let (job, n, a) = (&done.job, &done.n, &done.attempt);
        let now = a.started;
        let delivery_id = job.body.0["delivery_id"].as_str().unwrap_or_default();
        let (label, new_status, retry_at, failure) = self.classify(job, &a.outcome, now);
        metrics::counter!("berth_deliveries_total", "method" => done.method, "outcome" => label).increment(1);
        match (&failure, retry_at) {
            (None, _) => {
                queue::complete(tx, job.id, &job.state_id).await?;
                notifications::record_outcome(tx, n.id, true, now).await?;
            }
            (Some((reason, _)), Some(at)) => {
                queue::retry_at(tx, job.id, &job.state_id, at, reason).await?;
            }
            (Some((reason, _)), None) => {
                queue::bury(tx, job.id, &job.state_id, reason).await?;
            }
        }
        let x = &a.exchange;
        let error = failure.as_ref().map(|(r, _)| r.as_str());
        deliveries::add_attempt(
            tx,
            delivery_id,
            &NewAttempt {
                attempt: job.attempt,
                started_at: a.started,
                duration_ms: i64::try_from(x.duration.as_millis()).unwrap_or(i64::MAX),
                request_url: &x.url,
                request_headers: &x.request_headers,
                request_body: &x.request_body,
                response_status: x.status.map(i32::from),
                response_headers: x.status.map(|_| x.response_headers.as_slice()),
                response_body: x.response_body.as_deref(),
                error,
                outcome: label,
            },
            new_status,
            now,
        )
        .await?;
        match &failure {
            Some((reason, gone)) => self.count_failure(tx, n, reason, *gone, now).await,
            None => Ok(None),
        }
    }

    /// The label, new delivery status, retry time and failure (reason, gone) of an outcome.
    fn classify(&self, job: &Claimed, outcome: &Outcome, now: DateTime<Utc>) -> Verdict {
        match outcome {
            Outcome::Delivered { .. } => ("delivered", status::DELIVERED, None, None),
            Outcome::Retryable { reason, retry_after } if job.retries_remaining > 0 => {
                let jitter = rand::rng().random_range(-0.2..=0.2);
                let attempt = u32::try_from(job.attempt).unwrap_or(1);
                let delay = retry_delay(&self.settings.delivery.schedule, attempt, *retry_after, jitter);
                (
                    "retry",
                    status::PENDING,
                    Some(now + chrono_of(delay)),
                    Some((reason.clone(), false)),
                )
            }
            Outcome::Retryable { reason, .. } => (
                "failed",
                status::FAILED,
                None,
                Some((format!("{reason} (retries exhausted)"), false)),
            ),
            Outcome::Permanent { reason, gone } => ("failed", status::FAILED, None, Some((reason.clone(), *gone))),
        }
    }

    /// After the commit: the attempt's log line, and the admins' mail when it disabled the notification.
    async fn after(&self, done: &Done, disabled: Option<String>) {
        let (job, n, x) = (&done.job, &done.n, &done.attempt.exchange);
        let outcome = match done.attempt.outcome {
            Outcome::Delivered { .. } => "delivered",
            Outcome::Retryable { .. } => "retryable",
            Outcome::Permanent { .. } => "failed",
        };
        tracing::info!(
            notification = %n.uuid, delivery = %job.body.0["delivery_id"].as_str().unwrap_or_default(),
            method = done.method, attempt = job.attempt, outcome, status = ?x.status, error = ?x.error,
            "delivery attempt"
        );
        if let Some(why) = disabled {
            self.tell_admins_by_mail(n, &why).await;
        }
    }

    /// Counts a failed attempt and disables the notification when a rule says so, telling the
    /// repository's admins in the bell in the same transaction. Returns the reason if it disabled.
    async fn count_failure(
        &self,
        tx: &mut berth_store::Tx,
        n: &NotificationRow,
        reason: &str,
        gone: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let Some(row) = notifications::record_outcome(tx, n.id, false, now).await? else {
            return Ok(None);
        };
        if !row.enabled {
            return Ok(None);
        }
        let d = &self.settings.delivery;
        let count = row.number_of_failures;
        let threshold = i32::try_from(d.failure_threshold).unwrap_or(i32::MAX);
        let why = if gone {
            format!("disabled: {reason}")
        } else if threshold > 0 && count >= threshold {
            format!("disabled after {count} consecutive failed deliveries; last error: {reason}")
        } else if let Some(since) = row.failing_since
            && now - since >= chrono_of(d.disable_after)
        {
            format!(
                "disabled after failing continuously since {}; last error: {reason}",
                since.format("%Y-%m-%d %H:%M UTC")
            )
        } else {
            return Ok(None);
        };
        notifications::set_enabled(tx, n.id, false, Some(&why)).await?;
        self.tell_admins_in_app(tx, &row, &why).await?;
        tracing::warn!(notification = %n.uuid, reason = %why, "notification disabled");
        Ok(Some(why))
    }

    /// Where an HTTP-based method POSTs, what, and the method's label for messages (never the URL,
    /// which may carry a token).
    fn http_request(
        &self,
        method: MethodKind,
        config: &Value,
        event: EventKind,
        data: &Value,
        performer: Option<&str>,
    ) -> std::result::Result<(String, Value, &'static str), String> {
        let d = &self.settings.delivery;
        let url = || config["url"].as_str().unwrap_or_default().to_owned();
        Ok(match method {
            MethodKind::Webhook => (url(), webhook_body(config, data)?, "webhook"),
            MethodKind::Slack => (url(), slack_body(event, data, performer), "Slack"),
            MethodKind::Hipchat => {
                let room = match &config["room_id"] {
                    Value::String(r) => r.clone(),
                    other => other.to_string(),
                };
                let token = config["notification_token"].as_str().unwrap_or_default();
                (
                    send::hipchat_url(&d.hipchat_api_base, &room, token)?,
                    send::hipchat_body(event, data, performer),
                    "hipchat",
                )
            }
            MethodKind::Flowdock => {
                let token = config["flow_api_token"].as_str().unwrap_or_default();
                let body = send::flowdock_body(event, data, performer, &d.from_address);
                (send::flowdock_url(&d.flowdock_api_base, token)?, body, "flowdock")
            }
            MethodKind::QuayNotification | MethodKind::Email => {
                return Err(format!("{} is not sent over HTTP", method.name()));
            }
        })
    }

    /// Mails one occurrence to the notification's address, which must still be authorized.
    async fn send_email(
        &self,
        mailer: &berth_notify::mail::Mailer,
        n: &NotificationRow,
        event: EventKind,
        data: &Value,
        performer: Option<&str>,
        meta: &DeliveryMeta<'_>,
    ) -> Result<(Outcome, Exchange)> {
        let to = n.config.0["email"].as_str().unwrap_or_default();
        let mut exchange = Exchange {
            url: format!("mailto:{to}"),
            ..Exchange::default()
        };
        let authorized = {
            let mut conn = self.store.conn().await?;
            self.email_is_authorized(&mut conn, n.repository_id, to).await?
        };
        if !authorized {
            let reason = "the e-mail address is no longer authorized for this repository".to_owned();
            exchange.error = Some(reason.clone());
            return Ok((Outcome::Permanent { reason, gone: false }, exchange));
        }
        let repository = data["repository"].as_str().unwrap_or_default();
        let manage = format!("{}/repository/{repository}?tab=settings", self.settings.base_url());
        let mail = berth_notify::mail::notification_mail(event, data, performer, repository, &manage);
        exchange.request_headers = vec![
            ("subject".into(), mail.subject.clone()),
            ("x-berth-event".into(), meta.event.to_owned()),
            ("x-berth-delivery".into(), meta.delivery_id.to_owned()),
        ];
        exchange.request_body = mail.text.clone();
        let began = std::time::Instant::now();
        let outcome = mailer.send(to, &mail, Some(meta)).await;
        exchange.duration = began.elapsed();
        match &outcome {
            Outcome::Delivered { status } => exchange.status = Some(*status),
            Outcome::Retryable { reason, .. } | Outcome::Permanent { reason, .. } => {
                exchange.error = Some(reason.clone());
            }
        }
        Ok((outcome, exchange))
    }
}

fn method_label(name: &str) -> &'static str {
    MethodKind::parse(name).map_or("unknown", MethodKind::name)
}

/// The webhook body: the event data, or the notification's template rendered against it.
fn webhook_body(config: &Value, data: &Value) -> std::result::Result<Value, String> {
    match config["template"].as_str().filter(|t| !t.trim().is_empty()) {
        None => Ok(data.clone()),
        Some(t) => JsonTemplate::parse(t)
            .and_then(|tpl| tpl.render(data))
            .map_err(|e| format!("webhook template: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_jitter_and_retry_after() {
        let s = DeliverySettings::default().schedule;
        assert_eq!(retry_delay(&s, 1, None, 0.0), Duration::from_secs(5));
        assert_eq!(retry_delay(&s, 2, None, 0.2), Duration::from_secs(360));
        assert_eq!(retry_delay(&s, 7, None, -0.2), Duration::from_secs(480 * 60));
        assert_eq!(
            retry_delay(&s, 99, None, 0.0),
            Duration::from_secs(600 * 60),
            "the last step repeats"
        );
        assert_eq!(
            retry_delay(&s, 1, None, 5.0),
            Duration::from_secs(6),
            "jitter is clamped to ±20 %"
        );
        assert_eq!(
            retry_delay(&s, 1, Some(Duration::from_secs(1)), 0.0),
            Duration::from_secs(5)
        );
        assert_eq!(
            retry_delay(&s, 1, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_delay(&s, 1, Some(Duration::from_secs(3600)), 0.0),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn host_slots_are_bounded_and_released() {
        let limits = HostLimits::new(2);
        let a = limits.try_acquire("slow.example").unwrap();
        let _b = limits.try_acquire("slow.example").unwrap();
        assert!(limits.try_acquire("slow.example").is_none(), "a third is refused");
        assert!(
            limits.try_acquire("fast.example").is_some(),
            "other hosts are not affected"
        );
        drop(a);
        assert!(limits.try_acquire("slow.example").is_some(), "a freed slot is reused");
    }

    #[test]
    fn webhook_bodies() {
        let data = serde_json::json!({"repository": "acme/web", "updated_tags": ["v1"]});
        assert_eq!(webhook_body(&serde_json::json!({"url": "x"}), &data).unwrap(), data);
        let t = serde_json::json!({"template": "{\"text\": \"pushed ${updated_tags[*]} to ${repository}\"}"});
        assert_eq!(
            webhook_body(&t, &data).unwrap(),
            serde_json::json!({"text": "pushed v1 to acme/web"})
        );
    }
}
