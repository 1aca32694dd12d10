//! The delivery worker: one dispatcher task that owns the [`Scheduler`], with helpers it spawns.
//!
//! - **Claims** run one at a time, in batches of up to `max_in_flight`, whenever something may be
//!   due (an in-process or `NOTIFY` wake-up, a full previous batch, the poll) and the process
//!   holds fewer than twice `max_in_flight` jobs: so it only claims what it can start soon, and a
//!   crash strands little. While a repository's event holds its share (`per_repository`), or its
//!   jobs wait for a paused destination, a claim first looks past it (when that keeps finding
//!   nothing, at most every 100 ms, backing off to 1.6 s), then fills what is left in due order
//!   (work-conserving).
//! - **Sends** start as soon as the global budget and the job's destination have a slot. Each
//!   tells the dispatcher how its destination answered (the adaptive limit, pauses) and hands its
//!   attempt to the recorder.
//! - **The recorder** group-commits whatever finished while it wrote the previous batch (at most
//!   one commit per 10 ms begins, so under load the batches grow and each writes less per
//!   attempt), and tells the dispatcher which jobs left; an attempt keeps its global slot until
//!   then.
//! - **Leases** of every held job are renewed with one statement every third of the lease; a job
//!   missing from the renewal was taken over, and is dropped if it has not started.
//! - **Parking** hands back jobs that cannot start soon (see the scheduler); every 250 ms, with
//!   the per-destination metrics.
//! - **Shutdown**: claiming stops and waiting jobs are released at once; requests in flight get
//!   `shutdown_grace` to finish and be recorded; what is still running then is aborted and
//!   released, so it is sent again after the restart.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_core::JobQueue;
use berth_notify::outbound::Destination;
use berth_store::notifications;
use berth_store::queue::{self, Claimed};
use chrono::Utc;
use rand::Rng;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinSet;

use super::chrono_of;
use super::perform::{Performed, Performer, Ready, Work, prepare};
use super::record::{Entry, JobRef};
use super::scheduler::{Job, Scheduler, SchedulerSettings, Signal};
use crate::jobs::AbortOnDrop;
use crate::{App, Result};

/// Most entries one group commit writes.
const MAX_BATCH: usize = 512;
/// Least time between the starts of two group commits: under load, what finished meanwhile is
/// written together, so each commit writes fewer pages per attempt (SQLite's write-ahead log
/// holds whole pages) and PostgreSQL runs fewer transactions; an attempt that finishes after a
/// quiet spell is written at once.
const RECORD_GAP: Duration = Duration::from_millis(10);
/// After a claim that looked past busy repositories found nothing, how long until the next one
/// looks again: it doubles while they keep finding nothing (each look scans the due jobs of the
/// busy ones), up to the maximum, and starts over when one finds something.
const FAIR_PROBE_PAUSE: Duration = Duration::from_millis(100);
const FAIR_PROBE_PAUSE_MAX: Duration = Duration::from_millis(1600);
/// Events raised in this process may be handed to its worker until it holds this many times
/// `max_in_flight` jobs (claims stop at twice). Waiting in memory costs nothing, where going
/// through the queue costs a claim; a crash strands them only until their lease ends; and the
/// ones that cannot start within the horizon are parked back in the queue anyway.
const HANDOFF_FACTOR: usize = 8;
/// How often parking is considered and the per-destination metrics are published.
const TICK: Duration = Duration::from_millis(250);
/// How often queue statistics are read (they scan the queue).
const STATS_EVERY: Duration = Duration::from_secs(10);
/// After the grace period, how long aborted jobs' releases may take to be written.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// What the dispatcher's helpers tell it.
enum Event {
    /// A claim finished: what it found, how many were asked for, and (when it looked past busy
    /// repositories first) how many that found.
    Claimed {
        asked: usize,
        fair_found: Option<usize>,
        result: Result<Vec<Work>>,
    },
    /// An attempt ended; its destination slot is free.
    Answered {
        dest: Destination,
        id: i64,
        signal: Signal,
        pause: Option<Duration>,
    },
    /// A batch was written (or failed, and its jobs' leases will run out): these jobs left.
    Recorded {
        attempts: Vec<(i64, Arc<str>)>,
        others: Vec<i64>,
    },
    /// A lease renewal: the jobs asked about, and those still held (`Err`: unknown).
    Renewed { asked: Vec<i64>, kept: Result<Vec<i64>> },
    /// Deliveries raised in this process, claimed for this worker as they were enqueued, whose
    /// transaction has committed.
    Local(Vec<Work>),
}

/// What [`Handoff::offer`] grants: the worker takes the first `take` jobs, enqueued claimed with
/// `token` and leased until `until`.
pub(crate) struct Offer {
    pub take: usize,
    pub token: String,
    pub until: chrono::DateTime<Utc>,
}

/// The fast path from events raised in this process to its delivery worker: while the worker
/// has room, `events::raise` enqueues its jobs already claimed for it, and hands them over when
/// the transaction commits; so they start without a claim or a read.
pub(crate) struct Handoff {
    worker: String,
    lease: Duration,
    events: UnboundedSender<Event>,
    /// What the worker holds (it stores the count on every turn; offers add to it meanwhile).
    held: Arc<AtomicUsize>,
    /// Most it takes this way: [`HANDOFF_FACTOR`] × `max_in_flight`.
    target: usize,
    tokens: AtomicUsize,
}

impl Handoff {
    /// Room for up to `n` jobs: how many the worker takes (the first ones; the rest go to the
    /// queue for any worker to claim), with a claim token and the lease's end; `None` when it has
    /// no room.
    pub(crate) fn offer(&self, n: usize) -> Option<Offer> {
        let mut held = self.held.load(Ordering::Relaxed);
        let take = loop {
            let take = n.min(self.target.saturating_sub(held));
            if take == 0 {
                return None;
            }
            match self
                .held
                .compare_exchange_weak(held, held + take, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break take,
                Err(now) => held = now,
            }
        };
        Some(Offer {
            take,
            token: format!("{}-L{}", self.worker, self.tokens.fetch_add(1, Ordering::Relaxed)),
            until: Utc::now() + chrono_of(self.lease),
        })
    }

    /// Hands over committed work (claimed with a token from [`Handoff::offer`]). If the worker
    /// has stopped meanwhile, the jobs wait for their lease to end and are claimed again.
    pub(crate) fn hand_over(&self, work: Vec<Work>) {
        let _ = self.events.send(Event::Local(work));
    }
}

struct Dispatcher {
    app: App,
    worker: String,
    performer: Arc<Performer>,
    sched: Scheduler<Box<Ready>>,
    /// Every job this worker holds a lease on, with its claim token.
    held: HashMap<i64, String>,
    /// Started jobs not yet recorded (to release them if they must be aborted).
    started: HashMap<i64, JobRef>,
    events: UnboundedSender<Event>,
    recorder: UnboundedSender<Entry>,
    sends: JoinSet<()>,
    /// What it holds, for the handoff's offers.
    held_count: Arc<AtomicUsize>,
    claiming: bool,
    renewing: bool,
    want_claim: bool,
    claim_not_before: Instant,
    fair_probe_at: Instant,
    fair_pause: Duration,
}

impl App {
    /// Runs the delivery worker until `shutdown` completes, then drains it (see the module
    /// header): it wakes when this process enqueues (and, on PostgreSQL, when any process commits
    /// a job), and polls as a fallback for jobs due later.
    pub async fn run_delivery_worker(&self, shutdown: impl Future<Output = ()> + Send) {
        let performer = match Performer::new(self.clone()) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::error!(error = %e, "notification delivery is unavailable");
                return;
            }
        };
        let d = &self.settings.delivery;
        let (events, from_helpers) = unbounded_channel();
        let (recorder, to_record) = unbounded_channel();
        let recorder_task = tokio::spawn(record_loop(self.clone(), to_record, events.clone()));
        let now = Instant::now();
        let worker = format!(
            "w{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let held_count = Arc::new(AtomicUsize::new(0));
        self.set_handoff(Some(Arc::new(Handoff {
            worker: worker.clone(),
            lease: d.lease,
            events: events.clone(),
            held: held_count.clone(),
            target: HANDOFF_FACTOR * d.max_in_flight.max(1),
            tokens: AtomicUsize::new(0),
        })));
        let dispatcher = Dispatcher {
            app: self.clone(),
            worker,
            performer,
            sched: Scheduler::new(SchedulerSettings {
                max_in_flight: d.max_in_flight.max(1),
                per_host: d.per_host,
                per_name: d.per_repository.max(1),
                initial_limit: d.initial_limit.max(1),
                horizon: d.horizon,
                max_pause: d.max_pause,
            }),
            held: HashMap::new(),
            started: HashMap::new(),
            events,
            recorder,
            sends: JoinSet::new(),
            held_count,
            claiming: false,
            renewing: false,
            want_claim: true,
            claim_not_before: now,
            fair_probe_at: now,
            fair_pause: FAIR_PROBE_PAUSE,
        };
        let _listener = self.spawn_queue_listener();
        dispatcher.run(from_helpers, shutdown).await;
        self.set_handoff(None);
        // The dispatcher dropped its sender: the recorder writes what is left and stops.
        let _ = recorder_task.await;
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

    /// Claims up to `limit` jobs due at `now` and performs them one after another, as of `now`,
    /// recording each: tests drive retries and disabling with an injected clock through this,
    /// instead of waiting.
    pub async fn deliver_due(&self, now: chrono::DateTime<Utc>, limit: i64) -> Result<usize> {
        let performer = Performer::new(self.clone())?;
        let lease_until = now + chrono_of(self.settings.delivery.lease);
        let jobs = {
            let mut tx = self.store.begin_relaxed().await?;
            let jobs = queue::claim(&mut tx, JobQueue::Notification, now, lease_until, limit, "manual", &[]).await?;
            tx.commit().await?;
            jobs
        };
        let count = jobs.len();
        for work in prepare(self, jobs).await? {
            let entry = match work {
                Work::Settle(e) => e,
                Work::Ready(r, _) => match performer.perform(&r, now).await? {
                    Performed::Attempt(a) => Entry::Attempt(r, a),
                    Performed::Defer { at, note } => Entry::Release { job: r.job, at, note },
                },
            };
            let entries = [entry];
            let mut tx = self.store.begin_relaxed().await?;
            let recorded = self.record_batch(&mut tx, &entries, now).await?;
            tx.commit().await?;
            self.after_record(&entries, &recorded).await;
        }
        Ok(count)
    }

    /// Publishes queue depth, the age of the oldest due job and the disabled notifications.
    async fn observe_queue(&self) {
        let Ok(mut conn) = self.store.conn().await else {
            return;
        };
        let now = Utc::now();
        if let Ok(mut stats) = queue::stats(&mut conn, now).await {
            if !stats.iter().any(|s| s.queue == JobQueue::Notification.as_str()) {
                // An empty queue reports zero rather than no series at all.
                stats.push(queue::QueueStats {
                    queue: JobQueue::Notification.to_string(),
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
}

impl Dispatcher {
    async fn run(mut self, mut events: UnboundedReceiver<Event>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let settings = self.app.settings.delivery.clone();
        let wake = self.app.wake.clone();
        let mut poll = tokio::time::interval(settings.poll_interval);
        let mut tick = tokio::time::interval(TICK);
        let mut renew = tokio::time::interval(settings.lease / 3);
        for t in [&mut poll, &mut tick, &mut renew] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut last_stats: Option<Instant> = None;
        // Set at shutdown: until when requests in flight may finish, then until when the releases
        // of aborted ones may be written.
        let mut grace: Option<tokio::time::Instant> = None;
        let mut give_up: Option<tokio::time::Instant> = None;
        loop {
            let now = Instant::now();
            self.start_ready(now);
            self.held_count.store(self.held.len(), Ordering::Relaxed);
            if grace.is_none() {
                self.maybe_claim(now);
            } else if self.held.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some(ev) = events.recv() => self.on_event(ev, grace),
                () = &mut shutdown, if grace.is_none() => {
                    tracing::info!(in_flight = self.sched.in_flight(), waiting = self.sched.waiting(),
                        grace_secs = settings.shutdown_grace.as_secs(), "delivery worker draining");
                    grace = Some(tokio::time::Instant::now() + settings.shutdown_grace);
                    // Events raised from now on are claimed by whichever worker comes next.
                    self.app.set_handoff(None);
                    self.release_waiting("released at shutdown");
                }
                () = wake.notified(), if grace.is_none() => self.want_claim = true,
                _ = poll.tick(), if grace.is_none() => self.want_claim = true,
                _ = tick.tick() => {
                    self.park(Instant::now());
                    self.publish();
                    if grace.is_none() && last_stats.is_none_or(|t| t.elapsed() >= STATS_EVERY) {
                        last_stats = Some(Instant::now());
                        let app = self.app.clone();
                        tokio::spawn(async move { app.observe_queue().await });
                    }
                }
                _ = renew.tick() => self.renew(),
                () = sleep_until(grace), if grace.is_some() && give_up.is_none() => {
                    tracing::warn!(in_flight = self.started.len(), "shutdown grace over: aborting deliveries in flight; they will be sent again");
                    self.abort_in_flight();
                    give_up = Some(tokio::time::Instant::now() + RELEASE_WAIT);
                }
                () = sleep_until(give_up), if give_up.is_some() => break,
            }
        }
        self.sends.abort_all();
        tracing::info!(left = self.held.len(), "delivery worker stopped");
    }

    /// Starts every job that has a slot now.
    fn start_ready(&mut self, now: Instant) {
        while let Some(job) = self.sched.next(now) {
            let Job { id, dest, item, .. } = job;
            self.started.insert(id, item.job.clone());
            let (performer, events, recorder) = (self.performer.clone(), self.events.clone(), self.recorder.clone());
            self.sends.spawn(async move {
                let entry = match performer.perform(&item, Utc::now()).await {
                    Ok(Performed::Attempt(a)) => {
                        let _ = events.send(Event::Answered {
                            dest,
                            id,
                            signal: a.signal(),
                            pause: a.pause(),
                        });
                        Entry::Attempt(item, a)
                    }
                    Ok(Performed::Defer { at, note }) => {
                        let _ = events.send(Event::Answered {
                            dest,
                            id,
                            signal: Signal::Neutral,
                            pause: None,
                        });
                        Entry::Release { job: item.job, at, note }
                    }
                    Err(e) => {
                        tracing::warn!(job = id, error = %e, "delivery bookkeeping failed; the job is released to run again");
                        let _ = events.send(Event::Answered {
                            dest,
                            id,
                            signal: Signal::Neutral,
                            pause: None,
                        });
                        Entry::Release {
                            job: item.job,
                            at: Utc::now() + chrono::Duration::seconds(5),
                            note: format!("delivery bookkeeping failed: {e}"),
                        }
                    }
                };
                let _ = recorder.send(entry);
            });
            // Reap finished send tasks so the set stays as small as what is in flight.
            while self.sends.try_join_next().is_some() {}
        }
    }

    /// Starts a claim when something may be due and there is room for a worthwhile batch.
    fn maybe_claim(&mut self, now: Instant) {
        if self.claiming || !self.want_claim || now < self.claim_not_before {
            return;
        }
        let max = self.sched_max();
        let target = 2 * max;
        let room = target.saturating_sub(self.held.len());
        if room == 0 || (self.held.len() >= max && room < target / 4) {
            return;
        }
        let skip = if now >= self.fair_probe_at {
            self.sched.names_to_look_past(now)
        } else {
            Vec::new()
        };
        let limit = room.min(max);
        self.claiming = true;
        self.want_claim = false;
        let (app, worker, events) = (self.app.clone(), self.worker.clone(), self.events.clone());
        tokio::spawn(async move {
            let (fair_found, result) = claim(&app, &worker, limit, &skip).await;
            let _ = events.send(Event::Claimed {
                asked: limit,
                fair_found,
                result,
            });
        });
    }

    fn sched_max(&self) -> usize {
        self.app.settings.delivery.max_in_flight.max(1)
    }

    /// Takes claimed work: deliveries wait for a slot, the rest is recorded at once.
    fn take(&mut self, work: Vec<Work>, now: Instant) {
        for w in work {
            match w {
                Work::Ready(ready, dest) => {
                    self.held.insert(ready.job.id, ready.job.state_id.clone());
                    let job = Job {
                        id: ready.job.id,
                        name: ready.job.name.clone(),
                        dest,
                        item: ready,
                    };
                    self.sched.push(job, now);
                }
                Work::Settle(entry) => {
                    let job = entry.job();
                    self.held.insert(job.id, job.state_id.clone());
                    let _ = self.recorder.send(entry);
                }
            }
        }
        self.park(now);
    }

    fn on_event(&mut self, ev: Event, grace: Option<tokio::time::Instant>) {
        let now = Instant::now();
        match ev {
            Event::Claimed {
                asked,
                fair_found,
                result,
            } => {
                self.claiming = false;
                match result {
                    Ok(work) => {
                        match fair_found {
                            Some(0) => {
                                self.fair_probe_at = now + self.fair_pause;
                                self.fair_pause = (self.fair_pause * 2).min(FAIR_PROBE_PAUSE_MAX);
                            }
                            Some(_) => self.fair_pause = FAIR_PROBE_PAUSE,
                            None => {}
                        }
                        self.want_claim |= work.len() >= asked;
                        metrics::histogram!("berth_delivery_claim_batch_size").record(work.len() as f64);
                        self.take(work, now);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming deliveries failed; retrying shortly");
                        self.want_claim = true;
                        self.claim_not_before = now + self.app.settings.delivery.poll_interval;
                    }
                }
            }
            Event::Local(work) => {
                self.take(work, now);
                if grace.is_some() {
                    self.release_waiting("released at shutdown");
                }
            }
            Event::Answered {
                dest,
                id,
                signal,
                pause,
            } => self.sched.on_answer(&dest, id, signal, pause, now),
            Event::Recorded { attempts, others } => {
                for (id, name) in attempts {
                    self.sched.on_recorded(&name);
                    self.started.remove(&id);
                    self.held.remove(&id);
                }
                for id in others {
                    self.held.remove(&id);
                }
            }
            Event::Renewed { asked, kept } => {
                self.renewing = false;
                match kept {
                    Ok(kept) => {
                        let kept: HashSet<i64> = kept.into_iter().collect();
                        let lost: HashSet<i64> = asked
                            .into_iter()
                            .filter(|id| {
                                !kept.contains(id) && self.held.contains_key(id) && !self.started.contains_key(id)
                            })
                            .collect();
                        if !lost.is_empty() {
                            let dropped = self.sched.forget(&lost);
                            tracing::warn!(
                                lost = lost.len(),
                                dropped,
                                "leases were lost; those jobs are left to their new owner"
                            );
                            for id in &lost {
                                self.held.remove(id);
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "renewing leases failed; retrying at the next renewal"),
                }
            }
        }
    }

    /// Hands back what cannot start soon.
    fn park(&mut self, now: Instant) {
        let parked = self.sched.park(now);
        if parked.is_empty() {
            return;
        }
        metrics::counter!("berth_delivery_parked_total").increment(parked.len() as u64);
        let base = Utc::now();
        for (job, wait) in parked {
            // Spread the returns over a tenth of the wait so they do not come back all at once.
            let spread = rand::rng().random_range(0.0..=0.1);
            let at = base + chrono_of(wait + wait.mul_f64(spread));
            let note = format!("parked: {} cannot take it now", job.dest);
            let _ = self.recorder.send(Entry::Release {
                job: job.item.job,
                at,
                note,
            });
        }
    }

    /// Releases every waiting job (at shutdown).
    fn release_waiting(&mut self, note: &str) {
        let now = Utc::now();
        for job in self.sched.drain_waiting() {
            let _ = self.recorder.send(Entry::Release {
                job: job.item.job,
                at: now,
                note: note.to_owned(),
            });
        }
    }

    /// Aborts the sends still running and releases their jobs.
    fn abort_in_flight(&mut self) {
        self.sends.abort_all();
        let now = Utc::now();
        for (_, job) in self.started.drain() {
            // Its global slot is not needed any more; the job leaves with the release's record.
            self.sched.on_recorded(&job.name);
            let _ = self.recorder.send(Entry::Release {
                job,
                at: now,
                note: "aborted at shutdown".into(),
            });
        }
    }

    /// Renews the leases of everything held, with one statement.
    fn renew(&mut self) {
        if self.renewing || self.held.is_empty() {
            return;
        }
        self.renewing = true;
        let held: Vec<(i64, String)> = self.held.iter().map(|(id, s)| (*id, s.clone())).collect();
        let until = Utc::now() + chrono_of(self.app.settings.delivery.lease);
        let (app, events) = (self.app.clone(), self.events.clone());
        tokio::spawn(async move {
            let asked = held.iter().map(|(id, _)| *id).collect();
            let kept = async {
                let mut tx = app.store.begin_relaxed().await?;
                let kept = queue::renew(&mut tx, &held, until).await?;
                tx.commit().await?;
                Ok(kept)
            }
            .await;
            let _ = events.send(Event::Renewed { asked, kept });
        });
    }

    /// Publishes each destination's limit, requests in flight, waiting jobs and pause.
    fn publish(&self) {
        let now = Instant::now();
        for d in self.sched.destinations(now) {
            let dest = d.dest.as_str().to_owned();
            metrics::gauge!("berth_delivery_destination_limit", "destination" => dest.clone()).set(d.limit as f64);
            metrics::gauge!("berth_delivery_destination_in_flight", "destination" => dest.clone())
                .set(d.in_flight as f64);
            metrics::gauge!("berth_delivery_destination_waiting", "destination" => dest.clone()).set(d.waiting as f64);
            metrics::gauge!("berth_delivery_destination_paused", "destination" => dest)
                .set(f64::from(u8::from(d.paused)));
        }
        metrics::gauge!("berth_delivery_held").set(self.held.len() as f64);
    }
}

/// Sleeps until `at` (forever when `None`; the select's guard keeps that branch off then).
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One claim: past the repositories in `skip` first (when any), then in due order for the rest;
/// both in one transaction. Returns how many looking past them found (when it did), and the work
/// found.
async fn claim(app: &App, worker: &str, limit: usize, skip: &[String]) -> (Option<usize>, Result<Vec<Work>>) {
    let mut fair_found = None;
    let claimed = async {
        let now = Utc::now();
        let until = now + chrono_of(app.settings.delivery.lease);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut tx = app.store.begin_relaxed().await?;
        let mut jobs: Vec<Claimed> = Vec::new();
        if !skip.is_empty() {
            jobs = queue::claim(&mut tx, JobQueue::Notification, now, until, limit, worker, skip).await?;
            fair_found = Some(jobs.len());
        }
        let got = i64::try_from(jobs.len()).unwrap_or(limit);
        if got < limit {
            jobs.extend(queue::claim(&mut tx, JobQueue::Notification, now, until, limit - got, worker, &[]).await?);
        }
        tx.commit().await?;
        Ok::<_, crate::AppError>(jobs)
    }
    .await;
    let result = match claimed {
        Ok(jobs) if jobs.is_empty() => Ok(Vec::new()),
        Ok(jobs) => prepare(app, jobs).await,
        Err(e) => Err(e),
    };
    (fair_found, result)
}

/// The recorder: group-commits every entry that arrived while the previous batch was written (and
/// during the rest of [`RECORD_GAP`] after it began), and tells the dispatcher which jobs left. A
/// failed batch is not retried here: its jobs' leases run out and they are attempted again (at
/// least once).
async fn record_loop(app: App, mut from: UnboundedReceiver<Entry>, events: UnboundedSender<Event>) {
    let mut last: Option<Instant> = None;
    while let Some(first) = from.recv().await {
        if let Some(gap) = last.and_then(|t| RECORD_GAP.checked_sub(t.elapsed())) {
            tokio::time::sleep(gap).await;
        }
        last = Some(Instant::now());
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(more) = from.try_recv()
        {
            batch.push(more);
        }
        let now = Utc::now();
        let began = Instant::now();
        let written = async {
            let mut tx = app.store.begin_relaxed().await?;
            let recorded = app.record_batch(&mut tx, &batch, now).await?;
            tx.commit().await?;
            Ok::<_, crate::AppError>(recorded)
        }
        .await;
        let mut attempts = Vec::new();
        let mut others = Vec::new();
        for e in &batch {
            let job = e.job();
            if e.is_attempt() {
                attempts.push((job.id, job.name.clone()));
            } else {
                others.push(job.id);
            }
        }
        let _ = events.send(Event::Recorded { attempts, others });
        match written {
            Ok(recorded) => {
                metrics::histogram!("berth_delivery_commit_batch_size").record(batch.len() as f64);
                metrics::histogram!("berth_delivery_commit_seconds").record(began.elapsed().as_secs_f64());
                app.after_record(&batch, &recorded).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = batch.len(), "recording deliveries failed; their jobs will be retried");
            }
        }
    }
}
