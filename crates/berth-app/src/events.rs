//! Raising repository events: one delivery job per enabled notification, enqueued **inside the
//! caller's transaction**, so the change and its notifications commit together or not at all.
//! An event's deliveries go in as two multi-row statements: their delivery-log rows (`pending`,
//! or `skipped` for a disabled notification, which recovery can send after a reset), then their
//! jobs. A job's body is a small [`DeliveryTask`]; the log row keeps its [`DeliveryPayload`].
//! Sources call `App::raise` in the transaction of their change (pushes, builds, the scanner);
//! `App::raise_event` raises one in a transaction of its own (the benchmark drives the engine
//! through it). Payloads are built by `berth_notify::events`, the one place that knows their shapes.

use std::collections::HashMap;
use std::sync::Arc;

use berth_store::Tx;
use berth_store::deliveries::{self, DeliveryRow, NewDelivery, status};
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

/// The queue that carries notification deliveries.
pub const NOTIFICATION_QUEUE: &str = "notification";

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
    format!("{NOTIFICATION_QUEUE}/{}/{}/{event}/", repo.namespace, repo.name)
}

impl crate::App {
    /// Enqueues one delivery job per enabled notification of `repo` for `event`, in `tx`, and
    /// logs a delivery for each; disabled notifications get a `skipped` delivery instead of a job
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
        let targets = notifications::for_event(tx, repo.id, event).await?;
        if targets.is_empty() {
            return Ok(0);
        }
        let payload = DeliveryPayload::new(event_data, performer, false)?;
        let targets: Vec<Arc<NotificationRow>> = targets.into_iter().map(Arc::new).collect();
        self.enqueue_deliveries(tx, &queue_name(repo, event), &targets, event, &payload)
            .await
    }

    /// Logs and enqueues one occurrence's deliveries to `notifications` (skipped, without a job,
    /// for the disabled ones) with two multi-row statements. When this process runs a delivery
    /// worker with room, the jobs are enqueued already claimed for it and handed to it as `tx`
    /// commits (no claim, no read: they start at once); otherwise any worker claims them. Returns
    /// how many jobs were enqueued.
    pub(crate) async fn enqueue_deliveries(
        &self,
        tx: &mut Tx,
        name: &str,
        notifications: &[Arc<NotificationRow>],
        event: &str,
        payload: &DeliveryPayload,
    ) -> Result<usize> {
        let body = serde_json::to_string(payload).map_err(|e| AppError::Internal(e.to_string()))?;
        let public_ids: Vec<String> = notifications
            .iter()
            .map(|n| format!("{}.{}", payload.event_id, n.uuid))
            .collect();
        let rows: Vec<NewDelivery<'_>> = notifications
            .iter()
            .zip(&public_ids)
            .map(|(n, public_id)| NewDelivery {
                public_id,
                notification_id: n.id,
                event,
                status: if n.enabled { status::PENDING } else { status::SKIPPED },
                body: &body,
            })
            .collect();
        let logged: HashMap<String, i64> = deliveries::insert_many(tx, &rows, Utc::now())
            .await?
            .into_iter()
            .map(|(id, public_id)| (public_id, id))
            .collect();
        let mut tasks = Vec::with_capacity(notifications.len());
        let mut jobs = Vec::with_capacity(notifications.len());
        for (n, public_id) in notifications.iter().zip(public_ids) {
            if !n.enabled {
                continue;
            }
            let log_id = logged.get(&public_id).copied();
            let task = DeliveryTask {
                log_id,
                delivery_id: public_id,
                notification_uuid: n.uuid.clone(),
                event: event.to_owned(),
                payload: log_id.is_none().then(|| payload.clone()),
            };
            jobs.push(NewJob {
                name: name.to_owned(),
                body: serde_json::to_string(&task).map_err(|e| AppError::Internal(e.to_string()))?,
            });
            tasks.push((n.clone(), task));
        }
        let offer = self.handoff().and_then(|h| h.offer(jobs.len()).map(|o| (h, o)));
        let Some((handoff, (token, until))) = offer else {
            queue::enqueue_many(tx, NOTIFICATION_QUEUE, &jobs).await?;
            return Ok(jobs.len());
        };
        let claimed = queue::enqueue_claimed(tx, NOTIFICATION_QUEUE, &jobs, &token, until).await?;
        let endpoints = &self.settings.delivery.endpoints;
        let mut targets = Targets::default();
        let work: Vec<Work> = claimed
            .iter()
            .zip(tasks)
            .map(|(c, (n, task))| work(JobRef::of(c), task, payload.clone(), &n, &mut targets, endpoints))
            .collect();
        tx.after_commit(move || handoff.hand_over(work));
        Ok(claimed.len())
    }
}

/// Puts a logged delivery back in the queue, with its original payload and id (redelivery,
/// recovery).
pub(crate) async fn requeue_delivery(tx: &mut Tx, name: &str, n: &NotificationRow, d: &DeliveryRow) -> Result<()> {
    let task = DeliveryTask {
        log_id: Some(d.id),
        delivery_id: d.public_id.clone(),
        notification_uuid: n.uuid.clone(),
        event: d.event.clone(),
        payload: None,
    };
    let change = deliveries::StatusChange {
        delivery: d.id,
        status: status::PENDING,
        note: None,
        attempts: 0,
    };
    deliveries::set_statuses(tx, &[change], Utc::now()).await?;
    let job = NewJob {
        name: name.to_owned(),
        body: serde_json::to_string(&task).map_err(|e| AppError::Internal(e.to_string()))?,
    };
    Ok(queue::enqueue_many(tx, NOTIFICATION_QUEUE, &[job]).await?)
}

impl crate::App {
    /// Raises `event` on the repository `namespace/name` in a transaction of its own (not that of
    /// a change: the benchmark drives the engine with it): one delivery per notification,
    /// committed together, and the worker woken. Returns how many deliveries were queued. The
    /// payload must come from `berth_notify`'s builders.
    pub async fn raise_event(
        &self,
        namespace: &str,
        name: &str,
        event: berth_notify::EventKind,
        event_data: &Value,
    ) -> Result<usize> {
        let mut tx = self.store.begin().await?;
        let repo = berth_store::repos::by_path(&mut tx, namespace, name)
            .await?
            .ok_or_else(crate::AppError::not_found)?;
        let n = self.raise(&mut tx, &repo, event.name(), event_data, None).await?;
        tx.commit().await?;
        if n > 0 {
            self.wake.notify_one();
        }
        Ok(n)
    }
}
