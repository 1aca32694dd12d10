//! Raising repository events: one delivery job per enabled notification (the repository's own and
//! its namespace's namespace-wide ones), enqueued **inside the caller's transaction**, so the change and its notifications commit together or not at all.
//! An event's deliveries go in as two multi-row statements: their delivery-log rows (`pending`,
//! or `skipped` for a disabled notification, which recovery can send after a reset), then their
//! jobs. A job's body is a small [`DeliveryTask`]; the log row keeps its [`DeliveryPayload`].
//! Sources call `App::raise` in the transaction of their change (pushes, builds, the scanner);
//! `App::raise_event` raises one in a transaction of its own (the benchmark drives the engine
//! through it). Payloads are built by `berth_notify::events`, the one place that knows their shapes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use berth_core::{DeliveryStatus, JobQueue};
use berth_store::Tx;
use berth_store::deliveries::{self, DeliveryRow, NewDelivery};
use berth_store::notifications::{self, NotificationRow};
use berth_store::queue::{self, NewJob};
use berth_store::repos::RepoRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::delivery::perform::{Targets, Work, work};
use crate::delivery::record::JobRef;
use crate::{AppError, Principal, Result, Settings};

/// The payload context of a repository: its URLs as configured.
pub fn repo_context<'a>(settings: &'a Settings, repo: &'a RepoRow) -> berth_notify::RepoContext<'a> {
    berth_notify::RepoContext {
        hostname: &settings.server_hostname,
        scheme: &settings.preferred_url_scheme,
        namespace: &repo.namespace,
        name: &repo.name,
    }
}

/// Who caused an event, as Quay's `performer_data`.
pub fn performer_data(performer: Option<&Principal>) -> Value {
    match performer {
        Some(p) => json!({"entity_id": p.id.0, "entity_name": p.name}),
        None => json!({}),
    }
}

/// What one occurrence of an event sends: kept in the delivery log (for redelivery and to show
/// what was sent) and carried by every job of the occurrence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryPayload {
    /// The occurrence's id (a UUIDv7), shared by its deliveries.
    pub event_id: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The event data, as `berth_notify::events` built it, kept as JSON text: a plain webhook
    /// sends it as is, and only the methods that render it parse it.
    pub event_data: Box<RawValue>,
    /// Who caused it (Quay's `performer_data`; `{}` for background sources).
    #[serde(default)]
    pub performer_data: Value,
    /// A test send (`POST …/notification/{uuid}/test`).
    #[serde(default)]
    pub test: bool,
}

impl DeliveryPayload {
    /// A payload of `event_data`, now.
    pub fn new(event_data: &Value, performer: Option<&Principal>, test: bool) -> Result<DeliveryPayload> {
        Ok(DeliveryPayload {
            event_id: uuid::Uuid::now_v7().to_string(),
            occurred_at: Utc::now(),
            event_data: serde_json::value::to_raw_value(event_data).map_err(|e| AppError::Internal(e.to_string()))?,
            performer_data: performer_data(performer),
            test,
        })
    }

    /// The event data, parsed.
    pub fn data(&self) -> Result<Value> {
        serde_json::from_str(self.event_data.get())
            .map_err(|e| AppError::Internal(format!("unreadable event data: {e}")))
    }

    /// The payload of a logged delivery.
    pub fn of(row: &DeliveryRow) -> Result<DeliveryPayload> {
        serde_json::from_str(&row.body)
            .map_err(|e| AppError::Internal(format!("delivery {} has an unreadable body: {e}", row.public_id)))
    }

    /// The name of whoever caused the event, when known.
    pub fn performer(&self) -> Option<&str> {
        self.performer_data["entity_name"].as_str()
    }
}

/// A notification delivery job: the body of a `notification` queue item, written by `App::raise`
/// (and the test send, redelivery and recovery) and read by the delivery worker. It is small: what
/// the delivery sends is its log row's [`DeliveryPayload`], read when the job is claimed, so a
/// claim rewrites a few bytes per job and the payload is stored once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryTask {
    /// The delivery-log row its attempts are recorded in, which holds its payload (`None` only
    /// for jobs queued before the log existed).
    pub log_id: Option<i64>,
    /// The public delivery id, `<event id>.<notification uuid>`: `webhook-id` on every attempt.
    pub delivery_id: String,
    /// The notification.
    pub notification_uuid: String,
    /// The event name.
    pub event: String,
    /// The payload, in the job itself only when it has no log row to read it from (jobs queued
    /// before version 0011 carry theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<DeliveryPayload>,
}

/// Quay's queue name of a repository's event, e.g. `notification/acme/web/repo_push/`: the unit of
/// fairness between repositories.
pub(crate) fn queue_name(repo: &RepoRow, event: &str) -> String {
    queue_name_at(&repo.namespace, &repo.name, event)
}

/// [`queue_name`] by the repository's path.
fn queue_name_at(namespace: &str, name: &str, event: &str) -> String {
    format!("{}/{namespace}/{name}/{event}/", JobQueue::Notification)
}

impl crate::App {
    /// Enqueues one delivery job per enabled notification of `repo` (and of its namespace) for
    /// `event`, in `tx`, and logs a delivery for each; disabled notifications get a `skipped` delivery instead of a job
    /// (Quay enqueued and dropped them), which recovery can send after a reset. Returns how many
    /// were enqueued.
    pub(crate) async fn raise(
        &self,
        tx: &mut Tx,
        repo: &RepoRow,
        event: &str,
        event_data: &Value,
        performer: Option<&Principal>,
    ) -> Result<usize> {
        let targets = notifications::for_event(tx, repo.id, repo.namespace_id, event).await?;
        self.raise_to(tx, queue_name(repo, event), targets, event, event_data, performer)
            .await
    }

    /// Raises an event about a namespace itself (not one of its repositories) to its
    /// namespace-wide notifications, as [`App::raise`] does; Quay's queue name of namespace events.
    pub(crate) async fn raise_in_namespace(
        &self,
        tx: &mut Tx,
        namespace: &berth_store::accounts::AccountRow,
        event: &str,
        event_data: &Value,
        performer: Option<&Principal>,
    ) -> Result<usize> {
        let targets = notifications::for_namespace_event(tx, namespace.id, event).await?;
        let name = format!("{}/{}/{event}/", JobQueue::Notification, namespace.name);
        self.raise_to(tx, name, targets, event, event_data, performer).await
    }

    async fn raise_to(
        &self,
        tx: &mut Tx,
        name: String,
        targets: Vec<NotificationRow>,
        event: &str,
        event_data: &Value,
        performer: Option<&Principal>,
    ) -> Result<usize> {
        if targets.is_empty() {
            return Ok(0);
        }
        let payload = DeliveryPayload::new(event_data, performer, false)?;
        let occurrence = Occurrence {
            name,
            notifications: targets.into_iter().map(Arc::new).collect(),
            event: event.to_owned(),
            payload,
        };
        Ok(self.enqueue_deliveries(tx, std::slice::from_ref(&occurrence)).await?[0])
    }

    /// Logs and enqueues occurrences' deliveries (skipped, without a job, for disabled
    /// notifications) with two multi-row statements for all of them. When this process runs a
    /// delivery worker with room, the jobs (as many as it has room for) are enqueued already
    /// claimed for it and handed to it as `tx` commits (no claim, no read: they start at once);
    /// any worker claims the others, and this process's worker is woken to look when `tx`
    /// commits.
    /// Returns how many jobs each occurrence enqueued.
    pub(crate) async fn enqueue_deliveries(&self, tx: &mut Tx, occurrences: &[Occurrence]) -> Result<Vec<usize>> {
        let mut bodies = Vec::with_capacity(occurrences.len());
        let mut public_ids = Vec::new();
        for o in occurrences {
            bodies.push(serde_json::to_string(&o.payload).map_err(|e| AppError::Internal(e.to_string()))?);
            public_ids.extend(
                o.notifications
                    .iter()
                    .map(|n| format!("{}.{}", o.payload.event_id, n.uuid)),
            );
        }
        let each = || {
            occurrences
                .iter()
                .enumerate()
                .flat_map(|(i, o)| o.notifications.iter().map(move |n| (i, o, n)))
        };
        let rows: Vec<NewDelivery<'_>> = each()
            .zip(&public_ids)
            .map(|((i, o, n), public_id)| NewDelivery {
                public_id,
                notification_id: n.id,
                event: &o.event,
                status: if n.enabled {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Skipped
                },
                body: &bodies[i],
            })
            .collect();
        let logged: HashMap<String, i64> = deliveries::insert_many(tx, &rows, Utc::now())
            .await?
            .into_iter()
            .map(|(id, public_id)| (public_id, id))
            .collect();
        let mut counts = vec![0; occurrences.len()];
        let mut tasks = Vec::with_capacity(rows.len());
        let mut jobs = Vec::with_capacity(rows.len());
        for ((i, o, n), public_id) in each().zip(public_ids) {
            if !n.enabled {
                continue;
            }
            let log_id = logged.get(&public_id).copied();
            let task = DeliveryTask {
                log_id,
                delivery_id: public_id,
                notification_uuid: n.uuid.clone(),
                event: o.event.clone(),
                payload: log_id.is_none().then(|| o.payload.clone()),
            };
            jobs.push(NewJob {
                name: o.name.clone(),
                body: serde_json::to_string(&task).map_err(|e| AppError::Internal(e.to_string()))?,
            });
            tasks.push((i, n.clone(), task));
            counts[i] += 1;
        }
        let offer = self.handoff().and_then(|h| h.offer(jobs.len()).map(|o| (h, o)));
        let take = offer.as_ref().map_or(0, |(_, o)| o.take);
        let queued = &jobs[take..];
        // Handed-over jobs need no claim: only these wake the worker to look.
        self.queue_unclaimed(tx, queued).await?;
        let Some((handoff, offer)) = offer else {
            return Ok(counts);
        };
        let claimed = queue::enqueue_claimed(
            tx,
            JobQueue::Notification,
            &jobs[..take],
            &offer.token,
            offer.until,
            crate::jobs::DEFAULT_RETRIES,
        )
        .await?;
        // The work is made after the commit, off the transaction (on SQLite, the one writer).
        let payloads: Vec<DeliveryPayload> = occurrences.iter().map(|o| o.payload.clone()).collect();
        let app = self.clone();
        tx.after_commit(move || {
            let endpoints = &app.settings.delivery.endpoints;
            let mut targets = Targets::default();
            let work: Vec<Work> = claimed
                .iter()
                .zip(tasks)
                .map(|(c, (i, n, task))| {
                    work(
                        JobRef::of(c),
                        task,
                        payloads[i].clone(),
                        (&n, None),
                        &mut targets,
                        endpoints,
                    )
                })
                .collect();
            handoff.hand_over(work);
        });
        Ok(counts)
    }
}

/// One occurrence of an event, to enqueue to its notifications.
#[derive(Debug)]
pub(crate) struct Occurrence {
    /// Quay's queue name (see [`queue_name`]).
    pub name: String,
    /// The notifications of the repository for the event, enabled or not.
    pub notifications: Vec<Arc<NotificationRow>>,
    /// The event name.
    pub event: String,
    /// What it sends.
    pub payload: DeliveryPayload,
}

impl crate::App {
    /// Enqueues notification jobs for any worker to claim, and wakes this process's worker to
    /// look once `tx` commits (other processes hear of them by `NOTIFY` on PostgreSQL).
    async fn queue_unclaimed(&self, tx: &mut Tx, jobs: &[NewJob]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        queue::enqueue_many(tx, JobQueue::Notification, jobs, crate::jobs::DEFAULT_RETRIES).await?;
        let wake = self.wake.clone();
        tx.after_commit(move || wake.notify_one());
        Ok(())
    }

    /// Puts a logged delivery back in the queue, with its original payload and id (redelivery,
    /// recovery); the worker is woken when `tx` commits.
    pub(crate) async fn requeue_delivery(
        &self,
        tx: &mut Tx,
        name: &str,
        n: &NotificationRow,
        d: &DeliveryRow,
    ) -> Result<()> {
        let task = DeliveryTask {
            log_id: Some(d.id),
            delivery_id: d.public_id.clone(),
            notification_uuid: n.uuid.clone(),
            event: d.event.clone(),
            payload: None,
        };
        let change = deliveries::StatusChange {
            delivery: d.id,
            status: DeliveryStatus::Pending,
            note: None,
            attempts: 0,
            next_attempt_at: None,
        };
        deliveries::set_statuses(tx, &[change], Utc::now()).await?;
        let job = NewJob {
            name: name.to_owned(),
            body: serde_json::to_string(&task).map_err(|e| AppError::Internal(e.to_string()))?,
        };
        self.queue_unclaimed(tx, &[job]).await
    }
}

/// A request to `App::raise_event`'s group committer.
pub(crate) struct RaiseRequest {
    namespace: String,
    name: String,
    event: berth_notify::EventKind,
    data: Value,
    reply: tokio::sync::oneshot::Sender<Result<usize>>,
}

/// Most events one group commit of `App::raise_event` writes.
const RAISE_BATCH: usize = 256;
/// Most group commits of `App::raise_event` under way at once on PostgreSQL.
const RAISE_COMMITS_IN_FLIGHT: usize = 4;

impl crate::App {
    /// Raises `event` on the repository `namespace/name` outside of any change of its own (the
    /// benchmark and the engine tests drive the engine with it): one delivery per notification,
    /// committed together, handed to this process's worker as they commit (or queued for any
    /// worker when it has no room). Events raised at the same moment share one transaction (group
    /// commit), each still all-or-nothing, and each call returns once its event is committed.
    /// Returns how many deliveries were queued. The payload must come from `berth_notify`'s
    /// builders.
    pub async fn raise_event(
        &self,
        namespace: &str,
        name: &str,
        event: berth_notify::EventKind,
        event_data: &Value,
    ) -> Result<usize> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = RaiseRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            event,
            data: event_data.clone(),
            reply,
        };
        let raiser = self.raiser.get_or_init(|| {
            let (to, from) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(self.clone().raise_loop(from));
            to
        });
        raiser
            .send(request)
            .map_err(|_| AppError::Internal("the event committer stopped".into()))?;
        answer
            .await
            .map_err(|_| AppError::Internal("the event committer stopped".into()))?
    }

    /// The group committer of `raise_event`: every request that arrived while the earlier batches
    /// were written goes into the next transaction. On PostgreSQL up to
    /// [`RAISE_COMMITS_IN_FLIGHT`] transactions run at once (each waits mostly on round trips
    /// and the log's flush; one at a time, at 1,000 events/s the queue before the committer grew
    /// to tens of milliseconds whenever the machine was busy); SQLite has one writer, so one.
    async fn raise_loop(self, mut from: tokio::sync::mpsc::UnboundedReceiver<RaiseRequest>) {
        let at_once = if self.store.is_postgres() {
            RAISE_COMMITS_IN_FLIGHT
        } else {
            1
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(at_once));
        while let Some(first) = from.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < RAISE_BATCH
                && let Ok(more) = from.try_recv()
            {
                batch.push(more);
            }
            let app = self.clone();
            tokio::spawn(async move {
                app.commit_raised(batch).await;
                drop(slot);
            });
        }
    }

    /// Commits one batch of `raise_event` and answers each request. If the batch fails, its
    /// events are tried one by one, so one bad event cannot fail the others.
    async fn commit_raised(&self, mut batch: Vec<RaiseRequest>) {
        let began = std::time::Instant::now();
        match self.raise_batch(&batch).await {
            Ok(results) => {
                metrics::histogram!("berth_events_raise_commit_seconds").record(began.elapsed().as_secs_f64());
                metrics::histogram!("berth_events_raise_batch_size").record(batch.len() as f64);
                for (r, result) in batch.into_iter().zip(results) {
                    let _ = r.reply.send(result);
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(r) = batch.pop() {
                    let _ = r.reply.send(Err(e));
                }
            }
            Err(_) => {
                for r in batch {
                    let result = match self.raise_batch(std::slice::from_ref(&r)).await {
                        Ok(mut results) => results.pop().unwrap_or(Ok(0)),
                        Err(e) => Err(e),
                    };
                    let _ = r.reply.send(result);
                }
            }
        }
    }

    /// Raises a batch of events in one transaction; per event, how many deliveries it queued or
    /// why it could not be raised. The notifications are read by the repository's path (one round
    /// trip per repository and event); only an event without any looks the repository up, to
    /// tell a repository without notifications from a missing one.
    async fn raise_batch(&self, batch: &[RaiseRequest]) -> Result<Vec<Result<usize>>> {
        let mut tx = self.store.begin().await?;
        let mut targets: HashMap<(&str, &str, &str), Listeners> = HashMap::new();
        let mut occurrences = Vec::with_capacity(batch.len());
        let mut slots = Vec::with_capacity(batch.len());
        for r in batch {
            let event = r.event.name();
            let key = (r.namespace.as_str(), r.name.as_str(), event);
            if let Entry::Vacant(v) = targets.entry(key) {
                let rows = notifications::for_event_at(&mut tx, &r.namespace, &r.name, event).await?;
                let found = !rows.is_empty()
                    || berth_store::repos::by_path(&mut tx, &r.namespace, &r.name)
                        .await?
                        .is_some();
                v.insert(found.then(|| rows.into_iter().map(Arc::new).collect()));
            }
            let Some(notifications) = targets.get(&key).cloned().flatten() else {
                slots.push(None);
                continue;
            };
            slots.push(Some(occurrences.len()));
            occurrences.push(Occurrence {
                name: queue_name_at(&r.namespace, &r.name, event),
                notifications,
                event: event.to_owned(),
                payload: DeliveryPayload::new(&r.data, None, false)?,
            });
        }
        let counts = self.enqueue_deliveries(&mut tx, &occurrences).await?;
        tx.commit().await?;
        Ok(slots
            .into_iter()
            .map(|slot| slot.map(|i| counts[i]).ok_or_else(AppError::not_found))
            .collect())
    }
}

/// A repository's notifications for one event; `None` when the repository does not exist.
type Listeners = Option<Vec<Arc<NotificationRow>>>;
