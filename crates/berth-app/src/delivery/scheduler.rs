//! The dispatcher's memory: claimed deliveries waiting for a slot, one queue per destination, and
//! the decisions about them. Pure (no I/O, time passed in), so every rule is unit-tested.
//!
//! - **Slots.** A job starts when the global budget (`max_in_flight`, counting jobs sent but not
//!   yet recorded) and its destination's adaptive limit ([`Limiter`], optionally capped by
//!   `per_host`) both have room. Waiting for a slot costs nothing: no transaction, no deferral.
//! - **Fairness.** Destinations with startable work take turns (round robin), and inside a
//!   destination the queue names (a repository's event) take turns, so a flood for one
//!   repository cannot starve another sharing its destination. Names holding `per_name` jobs are
//!   reported, so that claims look past them.
//! - **Pauses.** A `Retry-After` on a 429 or 503 pauses the destination; so does a run of
//!   consecutive failures (a circuit breaker: one second, doubling per trip, up to the cap). A
//!   paused destination starts nothing.
//! - **Parking.** Jobs that cannot start within the horizon (a paused destination, or a slow or
//!   hanging one whose queue would take longer than the horizon to drain) are handed back to the
//!   database, to be claimed again when they can run; so a dead destination strands little in
//!   memory, and a crash strands little in flight. A paused destination's oldest few come back
//!   when the pause ends, to probe it; the rest a pause later.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_notify::outbound::Destination;

use super::limiter::Limiter;

/// Consecutive congestion failures that open a destination's circuit breaker.
const BREAKER_FAILURES: u32 = 5;
/// Jobs of a paused destination parked to come back when the pause ends (the others wait longer).
const PROBES: usize = BREAKER_FAILURES as usize;
/// An idle destination is forgotten after this long (its limit starts afresh next time).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub(crate) struct SchedulerSettings {
    /// Jobs started and not yet recorded, across destinations.
    pub max_in_flight: usize,
    /// Hard cap of any destination's limit (0: none).
    pub per_host: usize,
    /// Jobs one queue name may hold before claims look past it.
    pub per_name: usize,
    /// A new destination's limit.
    pub initial_limit: usize,
    /// Jobs that cannot start within this long are parked.
    pub horizon: Duration,
    /// Longest pause (from `Retry-After` or the breaker) and longest parking.
    pub max_pause: Duration,
}

/// A claimed job as the scheduler sees it.
#[derive(Debug)]
pub(crate) struct Job<T> {
    /// The queue item id.
    pub id: i64,
    /// Its queue name (a repository's event).
    pub name: Arc<str>,
    /// Where it goes.
    pub dest: Destination,
    /// What the caller keeps with it.
    pub item: T,
}

/// How an attempt ended, for its destination's limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Signal {
    /// The receiver answered (2xx, or a 4xx it chose), after this long.
    Answer(Duration),
    /// A timeout, a connection error, a 5xx or a 429.
    Congestion,
    /// Nothing about the destination (e.g. a request that could not be built).
    Neutral,
}

#[derive(Debug)]
struct Dest<T> {
    limiter: Limiter,
    /// Requests out (started, not answered), with when each started.
    started: HashMap<i64, Instant>,
    /// Waiting jobs per queue name, and the names' turn order.
    queues: HashMap<Arc<str>, VecDeque<Job<T>>>,
    order: VecDeque<Arc<str>>,
    waiting: usize,
    paused_until: Option<Instant>,
    failures_in_a_row: u32,
    trips: u32,
    in_ready: bool,
    last_active: Instant,
}

impl<T> Dest<T> {
    fn new(limiter: Limiter, now: Instant) -> Self {
        Dest {
            limiter,
            started: HashMap::new(),
            queues: HashMap::new(),
            order: VecDeque::new(),
            waiting: 0,
            paused_until: None,
            failures_in_a_row: 0,
            trips: 0,
            in_ready: false,
            last_active: now,
        }
    }

    fn paused(&self, now: Instant) -> bool {
        self.paused_until.is_some_and(|t| t > now)
    }

    fn can_start(&self, now: Instant) -> bool {
        self.waiting > 0 && !self.paused(now) && self.started.len() < self.limiter.limit()
    }

    fn push(&mut self, job: Job<T>) {
        let q = self.queues.entry(job.name.clone()).or_default();
        if q.is_empty() {
            self.order.push_back(job.name.clone());
        }
        q.push_back(job);
        self.waiting += 1;
    }

    /// The next job, the queue names taking turns.
    fn pop(&mut self) -> Option<Job<T>> {
        let name = self.order.pop_front()?;
        let q = self.queues.get_mut(&name)?;
        let job = q.pop_front();
        if q.is_empty() {
            self.queues.remove(&name);
        } else {
            self.order.push_back(name);
        }
        if job.is_some() {
            self.waiting -= 1;
        }
        job
    }

    /// Takes up to `n` waiting jobs, newest first, from the names with the most waiting.
    fn take_newest(&mut self, mut n: usize) -> Vec<Job<T>> {
        let mut out = Vec::with_capacity(n.min(self.waiting));
        while n > 0 {
            let Some(name) = self
                .queues
                .iter()
                .max_by_key(|(_, q)| q.len())
                .map(|(name, _)| name.clone())
            else {
                break;
            };
            let Some(q) = self.queues.get_mut(&name) else { break };
            if let Some(job) = q.pop_back() {
                out.push(job);
                self.waiting -= 1;
                n -= 1;
            }
            if q.is_empty() {
                self.queues.remove(&name);
                self.order.retain(|x| *x != name);
            }
        }
        out
    }

    /// How long a request to this destination takes, as far as can be told now: its no-load
    /// round trip, or longer when a request has been out longer than that.
    fn round_trip(&self, now: Instant) -> Option<Duration> {
        let oldest = self.started.values().map(|s| now.duration_since(*s)).max();
        match (self.limiter.baseline(), oldest) {
            (Some(b), Some(o)) => Some(b.max(o)),
            (b, o) => b.or(o),
        }
    }
}

/// A destination's state, for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DestState {
    /// The destination.
    pub dest: Destination,
    /// Its current limit.
    pub limit: usize,
    /// Requests out.
    pub in_flight: usize,
    /// Jobs waiting for a slot.
    pub waiting: usize,
    /// Whether it is paused.
    pub paused: bool,
}

/// The in-memory scheduler.
#[derive(Debug)]
pub(crate) struct Scheduler<T> {
    settings: SchedulerSettings,
    dests: HashMap<Destination, Dest<T>>,
    /// Destinations that have waiting jobs and may start one, in turn order.
    ready: VecDeque<Destination>,
    /// Jobs held per queue name (waiting or not yet recorded).
    names: HashMap<Arc<str>, usize>,
    /// Queue names whose jobs were parked for a paused destination, until the pause ends:
    /// claiming more of them meanwhile would only park them again.
    held_back: HashMap<Arc<str>, Instant>,
    /// Jobs started and not yet recorded.
    in_flight: usize,
    waiting: usize,
}

impl<T> Scheduler<T> {
    /// An empty scheduler.
    pub(crate) fn new(settings: SchedulerSettings) -> Self {
        Scheduler {
            settings,
            dests: HashMap::new(),
            ready: VecDeque::new(),
            names: HashMap::new(),
            held_back: HashMap::new(),
            in_flight: 0,
            waiting: 0,
        }
    }

    /// Jobs started and not yet recorded.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Jobs waiting for a slot.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    fn mark_ready(&mut self, dest: &Destination, now: Instant) {
        if let Some(d) = self.dests.get_mut(dest)
            && !d.in_ready
            && d.can_start(now)
        {
            d.in_ready = true;
            self.ready.push_back(dest.clone());
        }
    }

    /// Adds a claimed job.
    pub(crate) fn push(&mut self, job: Job<T>, now: Instant) {
        *self.names.entry(job.name.clone()).or_default() += 1;
        self.waiting += 1;
        let dest = job.dest.clone();
        let cap = match self.settings.per_host {
            0 => self.settings.max_in_flight,
            n => n.min(self.settings.max_in_flight),
        };
        let initial = self.settings.initial_limit;
        let d = self
            .dests
            .entry(dest.clone())
            .or_insert_with(|| Dest::new(Limiter::new(initial, cap), now));
        d.last_active = now;
        d.push(job);
        self.mark_ready(&dest, now);
    }

    /// The next job to start now, if the global budget and some destination have room; it counts
    /// as in flight until [`Scheduler::on_recorded`].
    pub(crate) fn next(&mut self, now: Instant) -> Option<Job<T>> {
        if self.in_flight >= self.settings.max_in_flight {
            return None;
        }
        while let Some(key) = self.ready.pop_front() {
            let Some(d) = self.dests.get_mut(&key) else { continue };
            d.in_ready = false;
            if !d.can_start(now) {
                continue;
            }
            let Some(job) = d.pop() else { continue };
            d.started.insert(job.id, now);
            d.last_active = now;
            self.in_flight += 1;
            self.waiting -= 1;
            self.mark_ready(&key, now);
            return Some(job);
        }
        None
    }

    /// An attempt to `dest` that started at `started` has ended (answered, failed or not sent);
    /// its destination slot is free. `retry_after` (from a 429 or 503) pauses the destination.
    pub(crate) fn on_answer(
        &mut self,
        dest: &Destination,
        id: i64,
        signal: Signal,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        let max_pause = self.settings.max_pause;
        let Some(d) = self.dests.get_mut(dest) else { return };
        let Some(started) = d.started.remove(&id) else { return };
        d.last_active = now;
        match signal {
            Signal::Answer(rtt) => {
                let in_flight = d.started.len() + 1;
                d.limiter.on_answer(started, rtt, in_flight, now);
                d.failures_in_a_row = 0;
                d.trips = 0;
            }
            Signal::Congestion => {
                d.limiter.on_congestion(started, now);
                d.failures_in_a_row += 1;
                if d.failures_in_a_row >= BREAKER_FAILURES {
                    d.failures_in_a_row = 0;
                    d.trips = d.trips.saturating_add(1);
                    let backoff = Duration::from_secs(1) * 2u32.saturating_pow(d.trips.saturating_sub(1).min(16));
                    pause(d, now + backoff.min(max_pause));
                }
            }
            Signal::Neutral => {}
        }
        if let Some(wait) = retry_after.filter(|w| !w.is_zero()) {
            pause(d, now + wait.min(max_pause));
        }
        self.mark_ready(dest, now);
    }

    /// A started job was recorded (or abandoned): its global slot is free.
    pub(crate) fn on_recorded(&mut self, name: &Arc<str>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.release_name(name);
    }

    fn release_name(&mut self, name: &Arc<str>) {
        if let Some(n) = self.names.get_mut(name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.names.remove(name);
            }
        }
    }

    /// Queue names that claims should look past while others have work: those holding at least
    /// their share, and those whose jobs wait for a paused destination (until the pause ends).
    pub(crate) fn names_to_look_past(&mut self, now: Instant) -> Vec<String> {
        let share = self.settings.per_name.max(1);
        self.held_back.retain(|_, until| *until > now);
        let mut out: Vec<String> = self
            .names
            .iter()
            .filter(|(_, n)| **n >= share)
            .map(|(name, _)| name.to_string())
            .collect();
        for name in self.held_back.keys() {
            if !out.iter().any(|n| **n == **name) {
                out.push(name.to_string());
            }
        }
        out
    }

    /// Jobs that should go back to the database, with how long from now they should wait: every
    /// waiting job of a paused destination (until the pause ends), and the jobs of a slow or
    /// hanging destination that could not start within the horizon. Also re-admits destinations
    /// whose pause ended, and forgets long-idle ones.
    pub(crate) fn park(&mut self, now: Instant) -> Vec<(Job<T>, Duration)> {
        let SchedulerSettings { horizon, max_pause, .. } = self.settings;
        let mut out = Vec::new();
        let mut held_back: Vec<(Arc<str>, Instant)> = Vec::new();
        for d in self.dests.values_mut() {
            if d.waiting == 0 {
                continue;
            }
            if let Some(until) = d.paused_until.filter(|t| *t > now) {
                // The oldest few come back when the pause ends, enough to probe the destination
                // (and to trip the breaker again); the rest wait as long again, so that a
                // destination that keeps failing is not claimed and parked again in full at the
                // end of every pause. A destination that recovered gets them one pause later.
                let wait = until.duration_since(now);
                let rest = (wait * 2).min(max_pause.max(wait));
                let parked = d.take_newest(d.waiting);
                held_back.extend(parked.iter().map(|j| (j.name.clone(), until)));
                let probes = parked.len().saturating_sub(PROBES);
                out.extend(
                    parked
                        .into_iter()
                        .enumerate()
                        .map(|(i, j)| (j, if i < probes { rest } else { wait })),
                );
                continue;
            }
            let Some(rtt) = d.round_trip(now).filter(|r| !r.is_zero()) else {
                continue;
            };
            let limit = d.limiter.limit() as f64;
            let startable = (limit * horizon.as_secs_f64() / rtt.as_secs_f64()).floor();
            // `startable` is finite and at least 0; the cast saturates.
            let keep = (startable as usize).max(1);
            if d.waiting > keep {
                let wait = rtt
                    .mul_f64(d.waiting as f64 / limit)
                    .clamp(Duration::from_secs(1), max_pause);
                let n = d.waiting - keep;
                out.extend(d.take_newest(n).into_iter().map(|j| (j, wait)));
            }
        }
        for (name, until) in held_back {
            let t = self.held_back.entry(name).or_insert(until);
            *t = (*t).max(until);
        }
        for (job, _) in &out {
            self.waiting -= 1;
            let name = job.name.clone();
            self.release_name(&name);
        }
        let resumed: Vec<Destination> = self
            .dests
            .iter()
            .filter(|(_, d)| !d.in_ready && d.can_start(now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in resumed {
            self.mark_ready(&k, now);
        }
        self.dests.retain(|_, d| {
            d.waiting > 0 || !d.started.is_empty() || d.paused(now) || now.duration_since(d.last_active) < FORGET_AFTER
        });
        out
    }

    /// Drops waiting jobs whose lease was lost; returns how many.
    pub(crate) fn forget(&mut self, lost: &HashSet<i64>) -> usize {
        let mut dropped = Vec::new();
        for d in self.dests.values_mut() {
            if d.waiting == 0 {
                continue;
            }
            let all = d.take_newest(d.waiting);
            for job in all.into_iter().rev() {
                if lost.contains(&job.id) {
                    dropped.push(job.name.clone());
                } else {
                    d.push(job);
                }
            }
        }
        self.waiting -= dropped.len();
        for name in &dropped {
            self.release_name(name);
        }
        dropped.len()
    }

    /// Every waiting job (at shutdown).
    pub(crate) fn drain_waiting(&mut self) -> Vec<Job<T>> {
        let mut out = Vec::with_capacity(self.waiting);
        for d in self.dests.values_mut() {
            out.extend(d.take_newest(d.waiting));
        }
        self.waiting = 0;
        for job in &out {
            let name = job.name.clone();
            self.release_name(&name);
        }
        self.ready.clear();
        for d in self.dests.values_mut() {
            d.in_ready = false;
        }
        out
    }

    /// Every destination's state.
    pub(crate) fn destinations(&self, now: Instant) -> Vec<DestState> {
        let mut v: Vec<DestState> = self
            .dests
            .iter()
            .map(|(k, d)| DestState {
                dest: k.clone(),
                limit: d.limiter.limit(),
                in_flight: d.started.len(),
                waiting: d.waiting,
                paused: d.paused(now),
            })
            .collect();
        v.sort_by(|a, b| a.dest.cmp(&b.dest));
        v
    }
}

fn pause<T>(d: &mut Dest<T>, until: Instant) {
    d.paused_until = Some(d.paused_until.map_or(until, |t| t.max(until)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_notify::MethodKind;
    use berth_notify::methods::MethodConfig;
    use berth_notify::outbound::Endpoints;
    use serde_json::json;

    fn dest(host: &str) -> Destination {
        MethodConfig::read(MethodKind::Webhook, &json!({"url": format!("http://{host}/")}))
            .unwrap()
            .destination(&Endpoints::default())
    }

    fn settings() -> SchedulerSettings {
        SchedulerSettings {
            max_in_flight: 8,
            per_host: 0,
            per_name: 4,
            initial_limit: 2,
            horizon: Duration::from_secs(1),
            max_pause: Duration::from_secs(60),
        }
    }

    fn job(id: i64, name: &str, host: &str) -> Job<()> {
        Job {
            id,
            name: Arc::from(name),
            dest: dest(host),
            item: (),
        }
    }

    fn start_all(s: &mut Scheduler<()>, now: Instant) -> Vec<i64> {
        std::iter::from_fn(|| s.next(now)).map(|j| j.id).collect()
    }

    #[test]
    fn destinations_start_within_their_limit_and_take_turns() {
        let mut s = Scheduler::new(settings());
        let now = Instant::now();
        for id in 0..6 {
            s.push(job(id, "a", "one"), now);
        }
        s.push(job(10, "b", "two"), now);
        let started = start_all(&mut s, now);
        assert_eq!(
            started,
            [0, 10, 1],
            "two slots for the first destination, one job for the other"
        );
        assert_eq!((s.in_flight(), s.waiting()), (3, 4));
        s.on_answer(&dest("one"), 0, Signal::Answer(Duration::from_millis(1)), None, now);
        assert_eq!(
            start_all(&mut s, now),
            [2, 3],
            "an answer frees a slot, and a fast one at full use adds one (slow start)"
        );
    }

    #[test]
    fn the_global_budget_counts_until_recorded() {
        let mut s = Scheduler::new(SchedulerSettings {
            max_in_flight: 2,
            initial_limit: 8,
            ..settings()
        });
        let now = Instant::now();
        for id in 0..4 {
            s.push(job(id, "a", "one"), now);
        }
        assert_eq!(start_all(&mut s, now), [0, 1]);
        s.on_answer(&dest("one"), 0, Signal::Answer(Duration::from_millis(1)), None, now);
        assert!(s.next(now).is_none(), "answered but not recorded: still in flight");
        s.on_recorded(&Arc::from("a"));
        assert_eq!(start_all(&mut s, now), [2]);
    }

    #[test]
    fn names_take_turns_inside_a_destination() {
        let mut s = Scheduler::new(SchedulerSettings {
            initial_limit: 8,
            ..settings()
        });
        let now = Instant::now();
        for id in 0..30 {
            s.push(job(id, "flood", "one"), now);
        }
        s.push(job(100, "quiet", "one"), now);
        let started = start_all(&mut s, now);
        assert_eq!(&started[..3], [0, 100, 1], "{started:?}");
        assert_eq!(
            s.names_to_look_past(now),
            ["flood"],
            "the flood holds more than its share"
        );
    }

    #[test]
    fn retry_after_pauses_the_destination_and_parks_its_jobs() {
        let mut s = Scheduler::new(settings());
        let now = Instant::now();
        for id in 0..4 {
            s.push(job(id, "a", "one"), now);
        }
        s.push(job(9, "b", "two"), now);
        assert_eq!(start_all(&mut s, now), [0, 9, 1]);
        s.on_answer(&dest("one"), 0, Signal::Congestion, Some(Duration::from_secs(30)), now);
        assert!(s.next(now).is_none(), "paused: nothing starts");
        let parked = s.park(now);
        let ids: Vec<i64> = parked.iter().map(|(j, _)| j.id).collect();
        assert_eq!(ids, [3, 2]);
        assert!(parked.iter().all(|(_, wait)| *wait == Duration::from_secs(30)));
        assert_eq!(s.waiting(), 0);
        // Another destination is not affected.
        s.push(job(10, "b", "two"), now);
        s.on_answer(&dest("two"), 9, Signal::Answer(Duration::from_millis(1)), None, now);
        assert_eq!(start_all(&mut s, now), [10]);
        // After the pause, the destination starts again, within its reduced limit.
        let later = now + Duration::from_secs(31);
        s.on_answer(&dest("one"), 1, Signal::Answer(Duration::from_millis(1)), None, later);
        s.push(job(11, "a", "one"), later);
        assert_eq!(start_all(&mut s, later), [11]);
    }

    #[test]
    fn consecutive_failures_open_the_breaker() {
        let mut s = Scheduler::new(SchedulerSettings {
            initial_limit: 8,
            ..settings()
        });
        let now = Instant::now();
        for id in 0..20 {
            s.push(job(id, "a", "bad"), now);
        }
        for _ in 0..BREAKER_FAILURES {
            let j = s.next(now).expect("a slot");
            s.on_answer(&j.dest, j.id, Signal::Congestion, None, now);
            s.on_recorded(&j.name);
        }
        assert!(s.next(now).is_none(), "the breaker is open");
        let parked = s.park(now);
        let waits: Vec<u64> = parked.iter().map(|(_, w)| w.as_secs()).collect();
        assert_eq!(
            waits,
            [vec![2; 10], vec![1; PROBES]].concat(),
            "first trip: the oldest five probe after one second, the rest wait two"
        );
        assert_eq!(
            s.names_to_look_past(now),
            ["a"],
            "claims look past its jobs while it is paused"
        );
        assert!(
            s.names_to_look_past(now + Duration::from_secs(1)).is_empty(),
            "and no longer"
        );
        assert_eq!(s.destinations(now)[0].limit, 1, "and the limit is down to one");
    }

    #[test]
    fn a_hanging_destination_keeps_little_in_memory() {
        let mut s = Scheduler::new(SchedulerSettings {
            initial_limit: 2,
            max_in_flight: 100,
            ..settings()
        });
        let t0 = Instant::now();
        for id in 0..50 {
            s.push(job(id, "a", "dead"), t0);
        }
        assert_eq!(start_all(&mut s, t0).len(), 2);
        assert!(s.park(t0).is_empty(), "nothing is known about it yet");
        // Five seconds on, neither request has been answered: at two slots, a request every
        // five seconds, nothing more can start within the horizon.
        let later = t0 + Duration::from_secs(5);
        let parked = s.park(later);
        assert_eq!(parked.len(), 47, "all but one waiting job go back");
        assert!(
            parked.iter().all(|(_, w)| *w == Duration::from_secs(60)),
            "for as long as the cap"
        );
        assert_eq!(s.waiting(), 1);
        // A healthy destination next to it keeps everything it was given.
        for id in 100..150 {
            s.push(job(id, "b", "fast"), later);
        }
        let j = s.next(later).expect("a slot");
        s.on_answer(&j.dest, j.id, Signal::Answer(Duration::from_millis(2)), None, later);
        assert!(s.park(later).is_empty());
    }

    #[test]
    fn lost_and_shut_down_jobs_leave() {
        let mut s = Scheduler::new(settings());
        let now = Instant::now();
        for id in 0..6 {
            s.push(job(id, "a", "one"), now);
        }
        assert_eq!(s.forget(&HashSet::from([4, 5, 77])), 2);
        assert_eq!(s.waiting(), 4);
        assert_eq!(start_all(&mut s, now), [0, 1]);
        let rest: Vec<i64> = s.drain_waiting().into_iter().map(|j| j.id).collect();
        assert_eq!(rest.len(), 2);
        assert_eq!((s.waiting(), s.in_flight()), (0, 2));
    }
}
