//! Adaptive concurrency for one destination, in the manner of TCP's congestion window with a
//! latency signal (as Netflix's concurrency-limits and Envoy's adaptive concurrency do it):
//!
//! - **Start modestly** at `initial` slots, then **slow start**: every fast, successful answer
//!   adds a slot (the limit doubles per round trip) until the first sign of congestion; after
//!   it, growth is additive (one slot per round trip).
//! - **Congestion** (a timeout, a connection error, 5xx, 429) halves the limit, and growth after it
//!   is additive. A **slow** answer (longer than twice the destination's no-load round trip, plus
//!   20 ms) takes a tenth off but keeps slow start, so a destination that speeds up again gets its
//!   slots back within a few round trips. Either cuts at most once per round trip: an answer to a
//!   request that started before the last cut says nothing new.
//! - The no-load round trip is the smallest seen in the current 10 s window, or the previous
//!   window's when smaller; a destination that became slow for good is judged against its new
//!   speed from the next window on.
//! - The limit grows only while the destination uses at least half of it, and stays within
//!   `[1, max]`.
//!
//! So a healthy destination may grow to the whole global budget, and a hanging or failing one
//! settles at one or two slots.

use std::time::{Duration, Instant};

/// How much slower than the no-load round trip an answer may be before it counts as slow.
const TOLERANCE: f64 = 2.0;
/// Absolute slack added to that, so that scheduling noise on fast links (and this process's own
/// queueing when it is busy) is not taken for the destination slowing down.
const SLACK: Duration = Duration::from_millis(20);
/// How long a no-load round-trip window lasts.
const WINDOW: Duration = Duration::from_secs(10);

/// One destination's concurrency limit.
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    limit: f64,
    max: f64,
    /// Below this, growth is slow start (one slot per answer); above, additive.
    threshold: f64,
    /// When the limit was last cut.
    last_cut: Option<Instant>,
    /// Smallest round trip of the current window, and of the previous one.
    window_min: Option<Duration>,
    previous_min: Option<Duration>,
    window_start: Option<Instant>,
}

impl Limiter {
    /// A limiter starting at `initial` slots, never above `max`.
    pub(crate) fn new(initial: usize, max: usize) -> Limiter {
        let max = max.max(1) as f64;
        Limiter {
            limit: (initial.max(1) as f64).min(max),
            max,
            threshold: max,
            last_cut: None,
            window_min: None,
            previous_min: None,
            window_start: None,
        }
    }

    /// The number of requests that may be in flight now.
    pub(crate) fn limit(&self) -> usize {
        // A float in [1, max] with max a usize: the cast cannot overflow.
        self.limit.floor().max(1.0) as usize
    }

    /// The destination's no-load round trip, as far as it is known.
    pub(crate) fn baseline(&self) -> Option<Duration> {
        match (self.window_min, self.previous_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn observe(&mut self, rtt: Duration, now: Instant) {
        if self.window_start.is_none_or(|s| now.duration_since(s) >= WINDOW) {
            self.previous_min = self.window_min.or(self.previous_min);
            self.window_min = None;
            self.window_start = Some(now);
        }
        self.window_min = Some(self.window_min.map_or(rtt, |m| m.min(rtt)));
    }

    /// Whether a request that started at `started` may still cut the limit.
    fn may_cut(&self, started: Instant) -> bool {
        self.last_cut.is_none_or(|cut| started >= cut)
    }

    /// Cuts the limit by `factor`; after congestion (not mere slowness), growth turns additive.
    fn cut(&mut self, factor: f64, congestion: bool, now: Instant) {
        self.limit = (self.limit * factor).max(1.0);
        if congestion {
            self.threshold = self.limit;
        }
        self.last_cut = Some(now);
    }

    /// An answer that was not congestion (2xx, or a 4xx the receiver chose to give), which took
    /// `rtt`, to a request started at `started` while `in_flight` requests (itself included) were
    /// out.
    pub(crate) fn on_answer(&mut self, started: Instant, rtt: Duration, in_flight: usize, now: Instant) {
        let baseline = self.baseline();
        self.observe(rtt, now);
        let slow = baseline.is_some_and(|b| rtt > b.mul_f64(TOLERANCE) + SLACK);
        if slow {
            if self.may_cut(started) {
                self.cut(0.9, false, now);
            }
            return;
        }
        if (in_flight as f64) < self.limit / 2.0 {
            return;
        }
        let step = if self.limit < self.threshold {
            1.0
        } else {
            1.0 / self.limit
        };
        self.limit = (self.limit + step).min(self.max);
    }

    /// A timeout, a connection error, a 5xx or a 429 for a request started at `started`.
    pub(crate) fn on_congestion(&mut self, started: Instant, now: Instant) {
        if self.may_cut(started) {
            self.cut(0.5, true, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// `rounds` round trips of `rtt` with the destination using its whole limit: every request of
    /// a round starts together and is answered together; the clock moves by `rtt` per round.
    fn rounds(l: &mut Limiter, clock: &mut Instant, rounds: usize, rtt: Duration) {
        for _ in 0..rounds {
            let started = *clock;
            *clock += rtt;
            let n = l.limit();
            for _ in 0..n {
                l.on_answer(started, rtt, n, *clock);
            }
        }
    }

    #[test]
    fn starts_modestly_and_doubles_per_round_trip_to_the_budget_while_fast() {
        let mut l = Limiter::new(8, 256);
        assert_eq!(l.limit(), 8);
        let mut clock = Instant::now();
        rounds(&mut l, &mut clock, 1, MS);
        assert_eq!(l.limit(), 16, "slow start: one slot per fast answer");
        rounds(&mut l, &mut clock, 10, MS);
        assert_eq!(l.limit(), 256, "capped at the global budget");
    }

    #[test]
    fn does_not_grow_while_mostly_idle() {
        let mut l = Limiter::new(8, 256);
        let now = Instant::now();
        for i in 0..100 {
            l.on_answer(now, MS, 1, now + MS * i);
        }
        assert_eq!(l.limit(), 8);
    }

    #[test]
    fn a_destination_that_slows_down_loses_slots_and_gets_them_back() {
        let mut l = Limiter::new(8, 256);
        let mut clock = Instant::now();
        rounds(&mut l, &mut clock, 10, MS);
        let fast = l.limit();
        assert_eq!(fast, 256);
        // It slows to 300 ms a request: each round trip takes a tenth off.
        rounds(&mut l, &mut clock, 20, Duration::from_millis(300));
        let slow = l.limit();
        assert!(slow < fast / 4, "slowed: {fast} -> {slow}");
        // It recovers: fast answers double the limit per round trip again, back to the budget.
        rounds(&mut l, &mut clock, 5, MS);
        assert_eq!(l.limit(), 256, "recovered from {slow}");
    }

    #[test]
    fn congestion_halves_once_per_round_trip_and_settles_at_one() {
        let mut l = Limiter::new(16, 256);
        let t0 = Instant::now();
        // Sixteen requests that started together all time out: one cut.
        for _ in 0..16 {
            l.on_congestion(t0, t0 + Duration::from_secs(10));
        }
        assert_eq!(l.limit(), 8);
        // Each later round of timeouts halves it again, down to one slot.
        let mut t = t0 + Duration::from_secs(10);
        for _ in 0..5 {
            let started = t;
            t += Duration::from_secs(10);
            l.on_congestion(started, t);
        }
        assert_eq!(l.limit(), 1);
        // After congestion, growth is additive: about a slot per round trip.
        let mut clock = t;
        rounds(&mut l, &mut clock, 4, MS);
        assert_eq!(l.limit(), 4);
    }

    #[test]
    fn a_permanently_slower_destination_is_judged_by_its_new_speed_after_a_window() {
        let mut l = Limiter::new(8, 64);
        let mut clock = Instant::now();
        rounds(&mut l, &mut clock, 5, MS);
        assert_eq!(l.baseline(), Some(MS));
        // Twenty seconds of 50 ms answers: two windows, and the old speed is forgotten.
        rounds(&mut l, &mut clock, 400, Duration::from_millis(50));
        assert_eq!(l.baseline(), Some(Duration::from_millis(50)));
        let before = l.limit();
        rounds(&mut l, &mut clock, 20, Duration::from_millis(50));
        assert!(
            l.limit() > before,
            "grows again at its new speed: {before} -> {}",
            l.limit()
        );
    }
}
