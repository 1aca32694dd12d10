//! The delivery engine: performs the notification jobs that [`crate::events`] enqueues, and
//! records every attempt.
//!
//! - [`dispatch`]: the worker. It claims due jobs in batches with a lease, holds them in memory
//!   ([`scheduler`]: one queue per destination, an adaptive [`limiter`] per destination, fairness
//!   between repositories, pauses), starts each as soon as its destination has a slot, renews the
//!   leases of everything it holds with one statement, and on shutdown lets what is in flight
//!   finish before releasing the rest.
//! - [`perform`]: one delivery, for every method: the request `berth_notify::outbound` builds,
//!   signed, through the SSRF-guarded sender; a mail; or the bell's recipients.
//! - [`record`]: the one recorder of every method. Finished attempts are group-committed: each
//!   batch is one transaction of multi-row statements that moves the jobs (complete, retry,
//!   bury, release), logs the attempts, counts failures, and disables notifications that must be,
//!   telling the admins. A job whose claim was lost records nothing.
//!
//! Classification: delivered (2xx); retryable (5xx, 408, 429, timeouts, connection and TLS
//! errors) on the schedule (default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each ±20 %),
//! honouring `Retry-After` clamped to [scheduled, 2 × scheduled]; permanent (other statuses; 410
//! Gone also disables the notification). `number_of_failures` counts consecutive failed attempts
//! (a success resets it); a notification is disabled after failing continuously for
//! `disable_after` (5 days), at once on 410, or at the optional `failure_threshold`.

pub(crate) mod dispatch;
mod limiter;
pub(crate) mod perform;
pub(crate) mod record;
mod scheduler;

use std::time::Duration;

use berth_notify::guard::Guard;
use berth_notify::outbound::Endpoints;
use berth_notify::send::Sender;

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
    /// How long a claimed job is leased (the worker renews the leases of what it holds).
    pub lease: Duration,
    /// The Flowdock and HipChat APIs, and the sender address.
    pub endpoints: Endpoints,
    /// Where deliveries may connect: public addresses plus the allowed networks.
    pub guard: Guard,
    /// Most deliveries in flight (sent and not yet recorded) in this process.
    pub max_in_flight: usize,
    /// Hard cap of in-flight deliveries to one destination; 0 leaves it to the adaptive limit.
    pub per_host: usize,
    /// Jobs one repository's event may hold in this process before claims look past it, so that
    /// a flood for one repository leaves room for the others.
    pub per_repository: usize,
    /// A destination's concurrency limit when it is first seen (it then adapts).
    pub initial_limit: usize,
    /// Held jobs that cannot start within this long go back to the database.
    pub horizon: Duration,
    /// Longest pause of a destination (`Retry-After`, the circuit breaker).
    pub max_pause: Duration,
    /// How long a rotated-out signing secret keeps signing.
    pub secret_grace: Duration,
    /// How long the delivery log keeps finished deliveries.
    pub log_retention: Duration,
    /// How often the worker looks for due jobs when nothing woke it.
    pub poll_interval: Duration,
    /// Redirect hops a delivery follows (0: none), each checked by the guard.
    pub max_redirects: usize,
    /// At shutdown, how long deliveries in flight may take to finish and be recorded.
    pub shutdown_grace: Duration,
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
            endpoints: Endpoints::default(),
            guard: Guard::default(),
            max_in_flight: 512,
            per_host: 0,
            per_repository: 64,
            initial_limit: 8,
            horizon: Duration::from_secs(1),
            max_pause: m(60),
            secret_grace: Duration::from_secs(24 * 3600),
            log_retention: Duration::from_secs(30 * 24 * 3600),
            poll_interval: Duration::from_secs(1),
            max_redirects: 0,
            shutdown_grace: Duration::from_secs(30),
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

impl App {
    /// The HTTP sender the settings describe (timeouts, guard, redirects).
    pub(crate) fn sender(&self) -> Result<Sender> {
        let d = &self.settings.delivery;
        Sender::new(d.send_timeout, d.connect_timeout, d.guard.clone(), d.max_redirects)
            .map_err(crate::AppError::Internal)
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
}
