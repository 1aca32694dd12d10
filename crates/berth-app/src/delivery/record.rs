//! The one recorder of every method's deliveries. A batch of finished work (attempts, deliveries
//! settled without one, jobs handed back, unreadable jobs) is written in one transaction of
//! multi-row statements, whatever its size:
//!
//! 1. the jobs move (complete, retry, bury, release), each checked against its claim token; the
//!    jobs whose claim was lost (their lease ran out and another worker took them) drop out here
//!    and record nothing: no attempt, no failure;
//! 2. the attempts go into the delivery log with their deliveries' new status, and the bell's rows
//!    are written for in-app deliveries;
//! 3. failures are counted per notification (consecutive, a success resets; notifications that
//!    had none are not written), and notifications are disabled when a rule says so, with the
//!    repository's admins told in the bell in the same transaction (and by mail after it).
//!
//! So the log never disagrees with the queue, and a crash loses at most what was sent and not yet
//! recorded, which is then sent again (at least once, same delivery id).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use berth_core::DeliveryStatus;
use berth_notify::send::Outcome;
use berth_store::Tx;
use berth_store::deliveries::{self, NewAttempt, StatusChange};
use berth_store::notifications::{self, NotificationRow};
use berth_store::queue::{self, Claimed, PutBack, PutBackKind};
use chrono::{DateTime, Utc};
use rand::Rng;

use super::chrono_of;
use super::perform::{Attempt, Ready};
use super::retry_delay;
use crate::{App, Result};

/// A claimed job, as the recorder moves it.
#[derive(Debug, Clone)]
pub(crate) struct JobRef {
    /// The queue item id.
    pub id: i64,
    /// The claim's token.
    pub state_id: String,
    /// Its queue name (a repository's event).
    pub name: Arc<str>,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// Attempts left after this one.
    pub retries_remaining: i32,
}

impl JobRef {
    pub(crate) fn of(c: &Claimed) -> JobRef {
        JobRef {
            id: c.id,
            state_id: c.state_id.clone(),
            name: Arc::from(c.name.as_str()),
            attempt: c.attempt,
            retries_remaining: c.retries_remaining,
        }
    }
}

/// Finished work to record.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A delivery was attempted.
    Attempt(Box<Ready>, Box<Attempt>),
    /// Nothing was sent (the notification is gone, disabled, or filters the event out): the job
    /// is done and its delivery gets `status`, with the note as its last error.
    Settle {
        /// The job.
        job: JobRef,
        /// Its delivery-log row.
        log_id: Option<i64>,
        /// The delivery's new status.
        status: DeliveryStatus,
        /// Why.
        note: Option<String>,
    },
    /// The job goes back unattempted (parked, deferred, or released at shutdown) until `at`.
    Release {
        /// The job.
        job: JobRef,
        /// When it may run again.
        at: DateTime<Utc>,
        /// Why.
        note: String,
    },
    /// The job cannot be performed at all: it is kept dead with the error.
    Bury {
        /// The job.
        job: JobRef,
        /// Why.
        error: String,
    },
}

impl Entry {
    /// The job this entry moves.
    pub(crate) fn job(&self) -> &JobRef {
        match self {
            Entry::Attempt(r, _) => &r.job,
            Entry::Settle { job, .. } | Entry::Release { job, .. } | Entry::Bury { job, .. } => job,
        }
    }

    /// Whether it is an attempt (which holds a slot of the global budget until recorded).
    pub(crate) fn is_attempt(&self) -> bool {
        matches!(self, Entry::Attempt(..))
    }
}

/// What an attempt's end means for its job and delivery.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum End {
    /// Done: the job is removed.
    Complete,
    /// Tried again at this time.
    Retry(DateTime<Utc>),
    /// No more tries: the job is kept dead.
    Bury,
}

/// The verdict on one attempt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// The log's label: `delivered`, `retry` or `failed`.
    pub label: &'static str,
    /// The delivery's new status.
    pub status: DeliveryStatus,
    /// What happens to the job.
    pub end: End,
    /// The failure to count, if it failed.
    pub failure: Option<Failure>,
}

/// A failed attempt's reason, and whether the receiver said it is gone (410).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    /// What went wrong.
    pub reason: String,
    /// 410 Gone.
    pub gone: bool,
}

impl App {
    /// The verdict on an attempt of `job` that ended with `outcome` at `now`.
    pub(crate) fn verdict(&self, job: &JobRef, outcome: &Outcome, now: DateTime<Utc>) -> Verdict {
        match outcome {
            Outcome::Delivered { .. } => Verdict {
                label: "delivered",
                status: DeliveryStatus::Delivered,
                end: End::Complete,
                failure: None,
            },
            Outcome::Retryable { reason, retry_after } if job.retries_remaining > 0 => {
                let jitter = rand::rng().random_range(-0.2..=0.2);
                let attempt = u32::try_from(job.attempt).unwrap_or(1);
                let delay = retry_delay(&self.settings.delivery.schedule, attempt, *retry_after, jitter);
                Verdict {
                    label: "retry",
                    status: DeliveryStatus::Pending,
                    end: End::Retry(now + chrono_of(delay)),
                    failure: Some(Failure {
                        reason: reason.clone(),
                        gone: false,
                    }),
                }
            }
            Outcome::Retryable { reason, .. } => Verdict {
                label: "failed",
                status: DeliveryStatus::Failed,
                end: End::Bury,
                failure: Some(Failure {
                    reason: format!("{reason} (retries exhausted)"),
                    gone: false,
                }),
            },
            Outcome::Permanent { reason, gone } => Verdict {
                label: "failed",
                status: DeliveryStatus::Failed,
                end: End::Bury,
                failure: Some(Failure {
                    reason: reason.clone(),
                    gone: *gone,
                }),
            },
        }
    }

    /// Records a batch in `tx` (see the module header). Returns the ids of the jobs whose claim
    /// held (the others recorded nothing), each attempt's verdict (aligned with `entries`), and
    /// the notifications it disabled, with why.
    pub(crate) async fn record_batch(&self, tx: &mut Tx, entries: &[Entry], now: DateTime<Utc>) -> Result<Recorded> {
        let verdicts: Vec<Option<Verdict>> = entries
            .iter()
            .map(|e| match e {
                Entry::Attempt(r, a) => Some(self.verdict(&r.job, &a.outcome, a.started)),
                _ => None,
            })
            .collect();
        let held = move_jobs(tx, entries, &verdicts).await?;
        let mut attempts = Vec::new();
        let mut changes = Vec::new();
        let mut tally: HashMap<i64, Tally> = HashMap::new();
        for (e, v) in entries.iter().zip(&verdicts) {
            if !held.contains(&e.job().id) {
                continue;
            }
            match (e, v) {
                (Entry::Attempt(r, a), Some(v)) => {
                    if let Some(bell) = &a.bell {
                        let data = r.payload.data()?;
                        crate::inapp::write_bell_rows(tx, bell, r.event.name(), &data).await?;
                    }
                    if let Some(delivery) = r.task.log_id {
                        attempts.push(log_row(delivery, r, a, v));
                    }
                    let t = tally
                        .entry(r.notification.id)
                        .or_insert_with(|| Tally::new(&r.notification));
                    t.add(v.failure.as_ref(), a.started);
                }
                (
                    Entry::Settle {
                        log_id: Some(delivery),
                        status,
                        note,
                        ..
                    },
                    _,
                ) => changes.push(StatusChange {
                    delivery: *delivery,
                    status: *status,
                    note: note.as_deref(),
                    attempts: 0,
                    next_attempt_at: None,
                }),
                _ => {}
            }
        }
        deliveries::record_attempts(tx, &attempts, now).await?;
        deliveries::set_statuses(tx, &changes, now).await?;
        let disabled = self.count_failures(tx, tally, now).await?;
        Ok(Recorded {
            held,
            verdicts,
            disabled,
        })
    }

    /// Applies the batch's failure tallies: one statement clears the notifications that
    /// succeeded last (and had failures), one per failing notification counts its failures, and
    /// the rules decide whether to disable it.
    async fn count_failures(
        &self,
        tx: &mut Tx,
        tally: HashMap<i64, Tally>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(Arc<NotificationRow>, String)>> {
        let mut cleared: Vec<i64> = tally
            .iter()
            .filter(|(_, t)| t.failures == 0 && t.succeeded)
            .map(|(id, _)| *id)
            .collect();
        cleared.sort_unstable();
        notifications::clear_failures(tx, &cleared).await?;
        let d = &self.settings.delivery;
        let threshold = i32::try_from(d.failure_threshold).unwrap_or(i32::MAX);
        let mut disabled = Vec::new();
        for t in tally.into_values() {
            let row = match t.first_failure {
                Some(first) => {
                    notifications::add_failures(tx, t.notification.id, t.failures, first, t.succeeded).await?
                }
                None => None,
            };
            let reason = t.last_reason.as_deref().unwrap_or_default();
            let why = if let Some(gone) = &t.gone {
                Some(format!("disabled: {gone}"))
            } else if let Some(row) = row {
                if threshold > 0 && row.number_of_failures >= threshold {
                    Some(format!(
                        "disabled after {} consecutive failed deliveries; last error: {reason}",
                        row.number_of_failures
                    ))
                } else if let Some(since) = row.failing_since
                    && now - since >= chrono_of(d.disable_after)
                {
                    Some(format!(
                        "disabled after failing continuously since {}; last error: {reason}",
                        since.format("%Y-%m-%d %H:%M UTC")
                    ))
                } else {
                    None
                }
            } else {
                None
            };
            if let Some(why) = why
                && notifications::disable(tx, t.notification.id, &why, now).await?
            {
                self.announce_disabled(tx, &t.notification, &why).await?;
                tracing::warn!(notification = %t.notification.uuid, reason = %why, "notification disabled");
                disabled.push((t.notification, why));
            }
        }
        Ok(disabled)
    }

    /// After a batch committed: counters, one log line per attempt (failures at `info`, successes
    /// at `debug`), and the admins' mail for each notification it disabled (sent in the
    /// background).
    pub(crate) async fn after_record(&self, entries: &[Entry], rec: &Recorded) {
        for (e, v) in entries.iter().zip(&rec.verdicts) {
            let (Entry::Attempt(r, a), Some(v)) = (e, v) else {
                continue;
            };
            if !rec.held.contains(&r.job.id) {
                tracing::info!(job = r.job.id, delivery = %r.task.delivery_id,
                    "the job's claim was lost to another worker; this attempt is not recorded");
                continue;
            }
            metrics::counter!("berth_deliveries_total", "method" => r.method.name(), "outcome" => v.label).increment(1);
            let x = &a.exchange;
            if v.failure.is_some() {
                tracing::info!(notification = %r.notification.uuid, delivery = %r.task.delivery_id,
                    method = r.method.name(), attempt = r.job.attempt, outcome = v.label, status = ?x.status,
                    error = ?x.error, "delivery attempt");
            } else {
                tracing::debug!(notification = %r.notification.uuid, delivery = %r.task.delivery_id,
                    method = r.method.name(), attempt = r.job.attempt, outcome = v.label, status = ?x.status,
                    "delivery attempt");
            }
        }
        for (n, why) in &rec.disabled {
            // Off the recorder's path: an SMTP exchange may take seconds.
            let (app, n, why) = (self.clone(), n.clone(), why.clone());
            tokio::spawn(async move { app.tell_admins_by_mail(&n, &why).await });
        }
    }
}

/// What [`App::record_batch`] did.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// The jobs whose claim held.
    pub held: HashSet<i64>,
    /// Each entry's verdict (attempts only).
    pub verdicts: Vec<Option<Verdict>>,
    /// The notifications disabled, with why.
    pub disabled: Vec<(Arc<NotificationRow>, String)>,
}

/// Moves every entry's job with one statement per kind of move; returns the ids still held.
async fn move_jobs(tx: &mut Tx, entries: &[Entry], verdicts: &[Option<Verdict>]) -> Result<HashSet<i64>> {
    let mut complete = Vec::new();
    let mut retry = Vec::new();
    let mut release = Vec::new();
    let mut bury = Vec::new();
    for (e, v) in entries.iter().zip(verdicts) {
        let job = e.job();
        let key = (job.id, job.state_id.clone());
        match (e, v) {
            (Entry::Attempt(..), Some(v)) => {
                let error = v.failure.as_ref().map(|f| f.reason.clone()).unwrap_or_default();
                match v.end {
                    End::Complete => complete.push(key),
                    End::Retry(at) => retry.push(PutBack {
                        id: job.id,
                        state_id: job.state_id.clone(),
                        at,
                        note: error,
                    }),
                    End::Bury => bury.push((job.id, job.state_id.clone(), error)),
                }
            }
            (Entry::Settle { .. }, _) | (Entry::Attempt(..), None) => complete.push(key),
            (Entry::Release { at, note, .. }, _) => release.push(PutBack {
                id: job.id,
                state_id: job.state_id.clone(),
                at: *at,
                note: note.clone(),
            }),
            (Entry::Bury { error, .. }, _) => bury.push((job.id, job.state_id.clone(), error.clone())),
        }
    }
    let mut held: HashSet<i64> = queue::complete_many(tx, &complete).await?.into_iter().collect();
    held.extend(queue::put_back_many(tx, &retry, PutBackKind::Retry).await?);
    held.extend(queue::put_back_many(tx, &release, PutBackKind::Release).await?);
    held.extend(queue::bury_many(tx, &bury).await?);
    Ok(held)
}

fn log_row<'a>(delivery: i64, r: &'a Ready, a: &'a Attempt, v: &'a Verdict) -> NewAttempt<'a> {
    let x = &a.exchange;
    NewAttempt {
        delivery,
        attempt: r.job.attempt,
        started_at: a.started,
        duration_ms: i64::try_from(x.duration.as_millis()).unwrap_or(i64::MAX),
        request_url: &x.url,
        request_headers: &x.request_headers,
        request_body: &x.request_body,
        response_status: x.status.map(i32::from),
        response_headers: x.status.map(|_| x.response_headers.as_slice()),
        response_body: x.response_body.as_deref(),
        error: v.failure.as_ref().map(|f| f.reason.as_str()),
        outcome: v.label,
        status: v.status,
        next_attempt_at: match v.end {
            End::Retry(at) => Some(at),
            End::Complete | End::Bury => None,
        },
    }
}

/// One notification's attempts in a batch, in order: whether any succeeded, and the failures
/// since the last success.
struct Tally {
    notification: Arc<NotificationRow>,
    succeeded: bool,
    failures: i32,
    first_failure: Option<DateTime<Utc>>,
    last_reason: Option<String>,
    gone: Option<String>,
}

impl Tally {
    fn new(n: &Arc<NotificationRow>) -> Tally {
        Tally {
            notification: n.clone(),
            succeeded: false,
            failures: 0,
            first_failure: None,
            last_reason: None,
            gone: None,
        }
    }

    fn add(&mut self, failure: Option<&Failure>, at: DateTime<Utc>) {
        match failure {
            None => {
                self.succeeded = true;
                self.failures = 0;
                self.first_failure = None;
                self.last_reason = None;
            }
            Some(f) => {
                self.failures += 1;
                self.first_failure.get_or_insert(at);
                self.last_reason = Some(f.reason.clone());
                if f.gone {
                    self.gone = Some(f.reason.clone());
                }
            }
        }
    }
}
