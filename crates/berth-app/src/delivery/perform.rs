//! Performing deliveries: turning a claimed batch into work (one notification lookup for the
//! batch; deleted, disabled and filtered-out deliveries are settled without an attempt; one stamped
//! by an edit goes with the configuration it was made under), and performing one delivery for any
//! method: the request its typed configuration builds (`berth_notify::methods`), signed and sent
//! through the SSRF-guarded sender (notifications with their own CA or client certificate get
//! their own client, built once); a mail to a still-authorized address; or the bell's recipients,
//! whose rows the recorder writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::DeliveryStatus;
use berth_notify::events::Filter;
use berth_notify::methods::{MethodConfig, TlsOptions};
use berth_notify::outbound::{self, About, Destination, EventData, Target};
use berth_notify::send::{DeliveryMeta, Exchange, Outcome, Sender};
use berth_notify::{EventKind, MethodKind};
use berth_store::deliveries;
use berth_store::notifications::{self, NotificationRow};
use berth_store::queue::Claimed;
use chrono::{DateTime, Utc};

use super::record::{Entry, JobRef};
use super::scheduler::Signal;
use crate::events::{DeliveryPayload, DeliveryTask};
use crate::inapp::{BellRows, bell_rows};
use crate::{App, Result};

/// A claimed delivery, ready to perform.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    /// The job.
    pub job: JobRef,
    /// The job's body.
    pub task: DeliveryTask,
    /// What it sends (from its log row).
    pub payload: DeliveryPayload,
    /// To whom, as of the claim.
    pub notification: Arc<NotificationRow>,
    /// The event.
    pub event: EventKind,
    /// The method.
    pub method: MethodKind,
    /// The notification's configuration and what its deliveries do (shared by its deliveries in
    /// the batch), or why no request can be built from its configuration.
    pub plan: Arc<std::result::Result<Plan, String>>,
}

/// A notification's typed configuration and what its deliveries do, worked out once per batch.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The configuration, read.
    pub config: MethodConfig,
    /// What it delivers by.
    pub target: Target,
}

impl Plan {
    /// Reads a notification's configuration: where its deliveries count (`invalid` when it cannot
    /// be read) and its plan, or why no request can be built from it.
    fn of(
        method: MethodKind,
        config: &serde_json::Value,
        endpoints: &outbound::Endpoints,
    ) -> (Destination, Arc<std::result::Result<Plan, String>>) {
        let plan = MethodConfig::read(method, config)
            .map_err(|e| format!("invalid {} configuration: {e}", method.name()))
            .and_then(|config| {
                let target = config.delivers(endpoints)?;
                Ok(Plan { config, target })
            });
        let dest = match &plan {
            Ok(p) => p.config.destination(endpoints),
            Err(_) => Destination::invalid(),
        };
        (dest, Arc::new(plan))
    }
}

/// What a claimed job turned out to be.
#[derive(Debug)]
pub(crate) enum Work {
    /// A delivery to perform, and where it goes.
    Ready(Box<Ready>, Destination),
    /// Nothing to send: settle it at once.
    Settle(Entry),
}

/// Turns claimed jobs into work: the notifications of the batch are read with one query; a job
/// whose notification was deleted, is disabled or filters the event out is settled without an
/// attempt, and one that cannot be read is buried.
pub(crate) async fn prepare(app: &App, jobs: Vec<Claimed>) -> Result<Vec<Work>> {
    let mut tasks = Vec::with_capacity(jobs.len());
    let mut out = Vec::with_capacity(jobs.len());
    for c in jobs {
        let job = JobRef::of(&c);
        match c.decode::<DeliveryTask>() {
            Ok(task) => tasks.push((job, task)),
            Err(e) => out.push(Work::Settle(Entry::Bury {
                job,
                error: format!("unreadable delivery job: {e}"),
            })),
        }
    }
    let mut uuids: Vec<String> = tasks.iter().map(|(_, t)| t.notification_uuid.clone()).collect();
    uuids.sort();
    uuids.dedup();
    let logged: Vec<i64> = tasks
        .iter()
        .filter(|(_, t)| t.payload.is_none())
        .filter_map(|(_, t)| t.log_id)
        .collect();
    let (found, mut payloads, revisions) = {
        let mut conn = app.store.conn_relaxed().await?;
        let found: HashMap<String, Arc<NotificationRow>> = notifications::by_uuids(&mut conn, &uuids)
            .await?
            .into_iter()
            .map(|n| (n.uuid.clone(), Arc::new(n)))
            .collect();
        let payloads: HashMap<i64, (String, Option<i64>)> = deliveries::bodies(&mut conn, &logged)
            .await?
            .into_iter()
            .map(|(id, body, revision)| (id, (body, revision)))
            .collect();
        // Deliveries queued before an edit keep the configuration they were made under.
        let mut wanted: Vec<i64> = payloads.values().filter_map(|(_, r)| *r).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let revisions: HashMap<i64, notifications::RevisionRow> = notifications::revisions(&mut conn, &wanted)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect();
        (found, payloads, revisions)
    };
    let mut revised: HashMap<i64, Arc<NotificationRow>> = HashMap::new();
    let endpoints = &app.settings.delivery.endpoints;
    let mut targets = Targets::default();
    for (job, mut task) in tasks {
        let logged = task.log_id.and_then(|id| payloads.remove(&id));
        let revision = logged.as_ref().and_then(|(_, r)| *r);
        let payload = match task.payload.take() {
            Some(p) => Ok(p),
            None => logged
                .ok_or_else(|| "its delivery record is gone".to_owned())
                .and_then(|(text, _)| {
                    serde_json::from_str::<DeliveryPayload>(&text).map_err(|e| format!("unreadable payload: {e}"))
                }),
        };
        let settle = |status: DeliveryStatus, note: Option<&str>| {
            Work::Settle(Entry::Settle {
                job: job.clone(),
                log_id: task.log_id,
                status,
                note: note.map(str::to_owned),
            })
        };
        let Some(n) = found.get(&task.notification_uuid) else {
            // Deleted since: its log went with it.
            out.push(settle(DeliveryStatus::Skipped, None));
            continue;
        };
        if !n.enabled {
            out.push(settle(DeliveryStatus::Skipped, Some("the notification was disabled")));
            continue;
        }
        let n = match revision
            .and_then(|r| revisions.get(&r))
            .filter(|r| r.notification_id == n.id)
        {
            Some(r) => revised
                .entry(r.id)
                .or_insert_with(|| {
                    Arc::new(NotificationRow {
                        config: r.config.clone(),
                        event_config: r.event_config.clone(),
                        ..(**n).clone()
                    })
                })
                .clone(),
            None => n.clone(),
        };
        match payload {
            Ok(payload) => out.push(work(job, task, payload, (&n, revision), &mut targets, endpoints)),
            Err(error) => out.push(Work::Settle(Entry::Bury { job, error })),
        }
    }
    Ok(out)
}

/// Where each notification's deliveries go and how, and its compiled filter, worked out once per
/// batch and configuration (the current one, or a revision kept by an edit).
pub(crate) type Targets = HashMap<(i64, Option<i64>), Prepared>;

/// A notification's work for a batch: its destination, its plan, its filter.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    dest: Destination,
    plan: Arc<std::result::Result<Plan, String>>,
    filter: Arc<Filter>,
}

/// What a claimed job of an enabled notification is: a delivery to perform (with its
/// notification's target, from `targets` or added to it), or, when its event or method is unknown
/// or its filter drops the event, one to settle at once.
pub(crate) fn work(
    job: JobRef,
    task: DeliveryTask,
    payload: DeliveryPayload,
    (n, revision): (&Arc<NotificationRow>, Option<i64>),
    targets: &mut Targets,
    endpoints: &outbound::Endpoints,
) -> Work {
    let settle = |job: JobRef, status: DeliveryStatus, note: String| {
        Work::Settle(Entry::Settle {
            job,
            log_id: task.log_id,
            status,
            note: Some(note),
        })
    };
    let (Ok(event), Ok(method)) = (EventKind::parse(&n.event), MethodKind::parse(&n.method)) else {
        let note = format!("unknown event or method ({} by {})", n.event, n.method);
        return settle(job, DeliveryStatus::Failed, note);
    };
    let Prepared { dest, plan, filter } = targets
        .entry((n.id, revision))
        .or_insert_with(|| {
            let (dest, plan) = Plan::of(method, &n.config.0, endpoints);
            let filter = Arc::new(event.filter(&n.event_config.0));
            Prepared { dest, plan, filter }
        })
        .clone();
    if filter.needs_data() {
        let passes = EventData::new(&payload.event_data)
            .parse()
            .is_ok_and(|data| filter.passes(&data));
        if !passes {
            return settle(
                job,
                DeliveryStatus::Filtered,
                "filtered out by the event configuration".into(),
            );
        }
    }
    Work::Ready(
        Box::new(Ready {
            job,
            task,
            payload,
            notification: n.clone(),
            event,
            method,
            plan,
        }),
        dest,
    )
}

/// How one attempt went, for the log and the queue.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// When it started.
    pub started: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// What was sent and received.
    pub exchange: Exchange,
    /// For the bell: the rows to write with the job's completion.
    pub bell: Option<BellRows>,
}

impl Attempt {
    fn failed(started: DateTime<Utc>, reason: String) -> Attempt {
        Attempt {
            started,
            exchange: Exchange {
                error: Some(reason.clone()),
                ..Exchange::default()
            },
            outcome: Outcome::Permanent { reason, gone: false },
            bell: None,
        }
    }

    /// What the attempt says about its destination, for the adaptive limit.
    pub(crate) fn signal(&self) -> Signal {
        match (&self.outcome, self.exchange.status) {
            (Outcome::Delivered { .. }, _) | (Outcome::Permanent { .. }, Some(_)) => {
                Signal::Answer(self.exchange.duration)
            }
            (Outcome::Retryable { .. }, _) => Signal::Congestion,
            (Outcome::Permanent { .. }, None) => Signal::Neutral,
        }
    }

    /// The receiver's `Retry-After`, when it answered 429 or 503 with one.
    pub(crate) fn pause(&self) -> Option<Duration> {
        match (&self.outcome, self.exchange.status) {
            (Outcome::Retryable { retry_after, .. }, Some(429 | 503)) => *retry_after,
            _ => None,
        }
    }
}

/// What performing a delivery gave.
#[derive(Debug)]
pub(crate) enum Performed {
    /// An attempt, to record.
    Attempt(Box<Attempt>),
    /// Nothing could be tried (e-mail is not configured): the job waits until `at`.
    Defer {
        /// When to try again.
        at: DateTime<Utc>,
        /// Why.
        note: String,
    },
}

/// Performs deliveries: the application, its HTTP sender, and the clients of notifications with
/// their own TLS settings.
pub(crate) struct Performer {
    app: App,
    sender: Sender,
    tls: Mutex<HashMap<String, (TlsOptions, Sender)>>,
}

impl Performer {
    pub(crate) fn new(app: App) -> Result<Performer> {
        let sender = app.sender()?;
        Ok(Performer {
            app,
            sender,
            tls: Mutex::default(),
        })
    }

    /// The sender for a notification: the shared one, or (built once) one with its TLS settings.
    fn sender_for(&self, uuid: &str, tls: &Option<TlsOptions>) -> std::result::Result<Sender, String> {
        let Some(tls) = tls else {
            return Ok(self.sender.clone());
        };
        let mut cache = self.tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((options, sender)) = cache.get(uuid)
            && options == tls
        {
            return Ok(sender.clone());
        }
        let sender = self.sender.with_tls(tls)?;
        cache.insert(uuid.to_owned(), (tls.clone(), sender.clone()));
        Ok(sender)
    }

    /// Performs one delivery as of `now`.
    pub(crate) async fn perform(&self, r: &Ready, now: DateTime<Utc>) -> Result<Performed> {
        let (n, task) = (&r.notification, &r.task);
        let data = EventData::new(&r.payload.event_data);
        let performer = r.payload.performer();
        if r.job.attempt == 1 {
            let lag = (now - r.payload.occurred_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("berth_delivery_first_attempt_latency_seconds", "method" => r.method.name())
                .record(lag);
        }
        let plan = match r.plan.as_ref() {
            Ok(p) => p,
            Err(e) => return Ok(Performed::Attempt(Box::new(Attempt::failed(now, e.clone())))),
        };
        let secrets = match self.app.signing_secrets(n, now) {
            Ok(s) => s,
            Err(e) => return Ok(Performed::Attempt(Box::new(Attempt::failed(now, e.to_string())))),
        };
        let attempt = match &plan.target {
            Target::Http(route) => {
                let endpoints = &self.app.settings.delivery.endpoints;
                let occurred_at = r
                    .payload
                    .occurred_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let about = About {
                    performer,
                    delivery_id: &task.delivery_id,
                    occurred_at: &occurred_at,
                };
                let body = match plan.config.body(r.event, data, &about, endpoints) {
                    Ok(b) => b,
                    Err(e) => return Ok(Performed::Attempt(Box::new(Attempt::failed(now, e)))),
                };
                let meta = DeliveryMeta {
                    event: r.event.name(),
                    delivery_id: &task.delivery_id,
                    timestamp: now.timestamp(),
                    secrets: &secrets,
                    custom_headers: &route.headers,
                };
                let sender = match self.sender_for(&n.uuid, &route.tls) {
                    Ok(s) => s,
                    Err(e) => {
                        let reason = format!("webhook TLS settings: {e}");
                        return Ok(Performed::Attempt(Box::new(Attempt::failed(now, reason))));
                    }
                };
                let (outcome, exchange) = sender.post_json(route, body, &meta).await;
                Attempt {
                    started: now,
                    outcome,
                    exchange,
                    bell: None,
                }
            }
            Target::Mail { to } => {
                let Ok(mailer) = self.app.mailer() else {
                    // Configuration, not the receiver, is at fault: keep the job until mail is set up.
                    return Ok(Performed::Defer {
                        at: now + chrono::Duration::hours(1),
                        note: "e-mail is not configured on this server (mail.host); the job waits".into(),
                    });
                };
                let meta = DeliveryMeta {
                    event: r.event.name(),
                    delivery_id: &task.delivery_id,
                    timestamp: now.timestamp(),
                    secrets: &secrets,
                    custom_headers: &[],
                };
                let data = match data.parse() {
                    Ok(d) => d,
                    Err(e) => return Ok(Performed::Attempt(Box::new(Attempt::failed(now, e)))),
                };
                let (outcome, exchange) = self
                    .app
                    .send_email(mailer, n, to, r.event, &data, performer, &meta)
                    .await?;
                Attempt {
                    started: now,
                    outcome,
                    exchange,
                    bell: None,
                }
            }
            Target::InApp(target) => {
                let began = std::time::Instant::now();
                let rows = {
                    let mut conn = self.app.store.conn().await?;
                    bell_rows(&mut conn, n).await?
                };
                let exchange = Exchange {
                    url: format!("in-app:{}/{}", target.kind(), target.name()),
                    request_body: data.text().to_owned(),
                    response_body: Some(format!("{} recipient(s)", rows.recipients.len())),
                    duration: began.elapsed(),
                    ..Exchange::default()
                };
                Attempt {
                    started: now,
                    outcome: Outcome::Delivered { status: 200 },
                    exchange,
                    bell: Some(rows),
                }
            }
        };
        metrics::histogram!("berth_delivery_request_duration_seconds", "method" => r.method.name())
            .record(attempt.exchange.duration.as_secs_f64());
        Ok(Performed::Attempt(Box::new(attempt)))
    }
}

impl App {
    /// Mails one occurrence to the notification's address, which must still be allowed (see
    /// [`App::may_mail`]).
    #[allow(clippy::too_many_arguments)]
    async fn send_email(
        &self,
        mailer: &berth_notify::mail::Mailer,
        n: &NotificationRow,
        to: &str,
        event: EventKind,
        data: &serde_json::Value,
        performer: Option<&str>,
        meta: &DeliveryMeta<'_>,
    ) -> Result<(Outcome, Exchange)> {
        let mut exchange = Exchange {
            url: format!("mailto:{to}"),
            ..Exchange::default()
        };
        let owner = {
            let mut conn = self.store.conn().await?;
            match crate::notifications::Owner::of(&mut conn, n).await? {
                Some(owner) if self.may_mail(&mut conn, &owner, to).await? => Some(owner),
                _ => None,
            }
        };
        let Some(owner) = owner else {
            let reason = "the e-mail address is no longer authorized for this notification".to_owned();
            exchange.error = Some(reason.clone());
            return Ok((Outcome::Permanent { reason, gone: false }, exchange));
        };
        let repository = data["repository"].as_str().unwrap_or_default();
        let manage = owner.manage_url(&self.settings.base_url());
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
