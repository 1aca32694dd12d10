//! Password checks that an anonymous caller cannot turn into a weapon. One argon2 check costs
//! about 19 MiB and tens of milliseconds, so:
//!
//! - **Bounded.** At most one hash per core runs at once; a short queue waits behind them, and
//!   callers past it are shed at once with 429 and `Retry-After`.
//! - **Rate-limited.** Failed checks are counted per user name and per client address (IPv6 by
//!   its /64) in fixed windows; past the allowance the check is refused before any hashing.
//! - **Cached.** A verified credential is remembered for a few minutes, keyed by the SHA-256 of
//!   the user name and password (the password itself is never kept), together with the stored
//!   hash it matched: a changed password no longer matches, and a cached credential skips both
//!   the hash and the failure limits, so a flood against a name does not lock out its clients.
//! - **Uniform.** An unknown user, or one without a password, is checked against a dummy hash of
//!   the same cost, so timing does not tell which names exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use crate::secret::{hash_password, random_token, verify_password};
use crate::{AppError, Result};

/// How long a verified credential is remembered.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Most credentials remembered at once.
const CACHE_MAX: usize = 10_000;
/// The window failures are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Failed checks allowed per user name per window.
const FAILURES_PER_NAME: u32 = 10;
/// Failed checks allowed per client address per window.
const FAILURES_PER_ADDRESS: u32 = 30;
/// Most names and addresses tracked at once (expired windows are dropped first).
const TRACKED_MAX: usize = 100_000;
/// Callers that may wait for a hashing slot, per slot.
const QUEUE_PER_SLOT: usize = 4;

/// The outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The password matches.
    Match,
    /// It does not (or the account has no password).
    Mismatch,
}

/// What a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Name(String),
    Address(IpAddr),
}

/// A fixed window of failures.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// Bounded, rate-limited and cached password checks (see the module header).
pub(crate) struct PasswordGate {
    slots: Semaphore,
    queue_max: usize,
    queued: AtomicUsize,
    cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    failures: Mutex<HashMap<Key, Window>>,
    dummy: OnceCell<String>,
}

impl Default for PasswordGate {
    fn default() -> Self {
        let slots = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        PasswordGate::new(slots)
    }
}

/// The key failures of a client address are counted under: the address, or an IPv6 address's /64
/// (one host usually holds a whole /64).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

fn too_many(retry_after: Duration, what: &str) -> AppError {
    AppError::TooManyRequests {
        message: format!("Too many {what}; retry later"),
        retry_after_secs: retry_after.as_secs().max(1),
    }
}

impl PasswordGate {
    /// A gate running at most `slots` hashes at once.
    pub(crate) fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        PasswordGate {
            slots: Semaphore::new(slots),
            queue_max: slots * QUEUE_PER_SLOT,
            queued: AtomicUsize::new(0),
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            dummy: OnceCell::new(),
        }
    }

    /// Checks `password` for user `name`, whose stored PHC string is `stored` (`None`: an unknown
    /// user, or one without a password), asked from `client`. A 429 when the name or the address
    /// has failed too often, or when too many checks are already waiting.
    pub(crate) async fn check(
        &self,
        name: &str,
        password: &str,
        stored: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Checked> {
        let key = cache_key(name, password);
        if let Some(phc) = stored
            && self.cached(&key, phc)
        {
            metrics::counter!("berth_password_checks_total", "result" => "cached").increment(1);
            return Ok(Checked::Match);
        }
        let now = Instant::now();
        let keys = failure_keys(name, client);
        self.refuse_if_limited(&keys, now)?;
        let phc = match stored {
            Some(phc) => phc.to_owned(),
            None => self.dummy().await?.to_owned(),
        };
        let ok = self.hash(password, phc.clone()).await? && stored.is_some();
        if ok {
            self.remember(key, phc);
            metrics::counter!("berth_password_checks_total", "result" => "match").increment(1);
            Ok(Checked::Match)
        } else {
            self.count_failure(keys, Instant::now());
            metrics::counter!("berth_password_checks_total", "result" => "mismatch").increment(1);
            Ok(Checked::Mismatch)
        }
    }

    /// Counts a failed credential that needed no hash (a wrong robot token), so that guessing
    /// tokens is limited like guessing passwords.
    pub(crate) fn count_cheap_failure(&self, name: &str, client: Option<IpAddr>) -> Result<()> {
        let keys = failure_keys(name, client);
        let now = Instant::now();
        self.refuse_if_limited(&keys, now)?;
        self.count_failure(keys, now);
        Ok(())
    }

    fn refuse_if_limited(&self, keys: &[Key], now: Instant) -> Result<()> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for k in keys {
            let Some(w) = failures.get(k) else { continue };
            let elapsed = now.saturating_duration_since(w.start);
            let allowed = match k {
                Key::Name(_) => FAILURES_PER_NAME,
                Key::Address(_) => FAILURES_PER_ADDRESS,
            };
            if elapsed < FAILURE_WINDOW && w.failures >= allowed {
                metrics::counter!("berth_password_checks_total", "result" => "limited").increment(1);
                let what = match k {
                    Key::Name(_) => "failed sign-ins for this user",
                    Key::Address(_) => "failed sign-ins from this address",
                };
                return Err(too_many(FAILURE_WINDOW - elapsed, what));
            }
        }
        Ok(())
    }

    fn count_failure(&self, keys: Vec<Key>, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= TRACKED_MAX {
            failures.retain(|_, w| now.saturating_duration_since(w.start) < FAILURE_WINDOW);
        }
        for k in keys {
            if failures.len() >= TRACKED_MAX && !failures.contains_key(&k) {
                // Full of live windows: the hashing bound still holds without this count.
                continue;
            }
            let w = failures.entry(k).or_insert(Window {
                start: now,
                failures: 0,
            });
            if now.saturating_duration_since(w.start) >= FAILURE_WINDOW {
                *w = Window {
                    start: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    fn cached(&self, key: &[u8; 32], phc: &str) -> bool {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match cache.get(key) {
            Some((known, at)) if known == phc && at.elapsed() < CACHE_TTL => true,
            Some(_) => {
                cache.remove(key);
                false
            }
            None => false,
        }
    }

    fn remember(&self, key: [u8; 32], phc: String) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (phc, Instant::now()));
    }

    /// Runs one argon2 verification within the bound, or sheds the caller.
    async fn hash(&self, password: &str, phc: String) -> Result<bool> {
        let _permit = match self.slots.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if self.queued.fetch_add(1, Ordering::AcqRel) >= self.queue_max {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    metrics::counter!("berth_password_checks_total", "result" => "shed").increment(1);
                    return Err(too_many(Duration::from_secs(1), "sign-ins at once"));
                }
                let acquired = self.slots.acquire().await;
                self.queued.fetch_sub(1, Ordering::AcqRel);
                acquired.map_err(|e| AppError::Internal(format!("password gate: {e}")))?
            }
        };
        metrics::gauge!("berth_password_hashes_running").increment(1.0);
        let result = verify_password(password.to_owned(), phc).await;
        metrics::gauge!("berth_password_hashes_running").decrement(1.0);
        result
    }

    /// A hash of a random password, made once, with the same cost as real ones.
    async fn dummy(&self) -> Result<&str> {
        self.dummy
            .get_or_try_init(|| hash_password(random_token(32)))
            .await
            .map(String::as_str)
    }
}

fn cache_key(name: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.finalize().into()
}

fn failure_keys(name: &str, client: Option<IpAddr>) -> Vec<Key> {
    let mut keys = vec![Key::Name(name.to_lowercase())];
    keys.extend(client.map(|ip| Key::Address(address_key(ip))));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[tokio::test]
    async fn failures_per_name_are_limited_and_a_cached_credential_still_passes() {
        let gate = PasswordGate::new(2);
        let phc = hash_password("right-password".into()).await.unwrap();
        assert_eq!(
            gate.check("ann", "right-password", Some(&phc), ip("10.0.0.1"))
                .await
                .unwrap(),
            Checked::Match
        );
        for i in 0..FAILURES_PER_NAME {
            let from = ip(&format!("10.1.0.{i}"));
            assert_eq!(
                gate.check("ann", "wrong", Some(&phc), from).await.unwrap(),
                Checked::Mismatch
            );
        }
        let err = gate
            .check("ann", "wrong", Some(&phc), ip("10.2.0.1"))
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::TooManyRequests { retry_after_secs, .. } if retry_after_secs >= 1));
        // Not cached: refused like the wrong one. Cached: passes without hashing.
        assert!(gate.check("ANN", "other-right", Some(&phc), None).await.is_err());
        assert_eq!(
            gate.check("ann", "right-password", Some(&phc), ip("10.2.0.1"))
                .await
                .unwrap(),
            Checked::Match
        );
        // Another user is unaffected.
        assert_eq!(
            gate.check("bob", "x", None, ip("10.3.0.1")).await.unwrap(),
            Checked::Mismatch
        );
    }

    #[tokio::test]
    async fn failures_per_address_are_limited_across_names_and_ipv6_counts_by_64() {
        let gate = PasswordGate::new(2);
        for i in 0..FAILURES_PER_ADDRESS {
            let from = ip(&format!("2001:db8::{:x}", i + 1));
            assert_eq!(
                gate.check(&format!("u{i}"), "x", None, from).await.unwrap(),
                Checked::Mismatch
            );
        }
        let err = gate
            .check("fresh", "x", None, ip("2001:db8::ffff:1"))
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::TooManyRequests { .. }));
        assert_eq!(
            gate.check("fresh", "x", None, ip("2001:db8:0:1::1")).await.unwrap(),
            Checked::Mismatch
        );
    }

    #[tokio::test]
    async fn a_changed_password_is_not_served_from_the_cache() {
        let gate = PasswordGate::new(1);
        let old = hash_password("old-password".into()).await.unwrap();
        assert_eq!(
            gate.check("ann", "old-password", Some(&old), None).await.unwrap(),
            Checked::Match
        );
        let new = hash_password("new-password".into()).await.unwrap();
        assert_eq!(
            gate.check("ann", "old-password", Some(&new), None).await.unwrap(),
            Checked::Mismatch
        );
        assert_eq!(
            gate.check("ann", "new-password", Some(&new), None).await.unwrap(),
            Checked::Match
        );
    }

    #[tokio::test]
    async fn checks_past_the_queue_are_shed_with_retry_after() {
        let gate = std::sync::Arc::new(PasswordGate::new(1));
        let phc = hash_password("right-password".into()).await.unwrap();
        let mut many = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (gate, phc) = (gate.clone(), phc.clone());
            many.spawn(async move { gate.check(&format!("u{i}"), "wrong", Some(&phc), None).await });
        }
        let results = many.join_all().await;
        let shed = results
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Err(AppError::TooManyRequests {
                        retry_after_secs: 1,
                        ..
                    })
                )
            })
            .count();
        let checked = results.iter().filter(|r| matches!(r, Ok(Checked::Mismatch))).count();
        assert_eq!(shed + checked, 40);
        assert!(
            shed > 0,
            "40 checks at once on one slot with a queue of 4 must shed some"
        );
        assert!(checked > QUEUE_PER_SLOT, "the slot and its queue are served");
    }
}
