//! Raising repository events: one delivery job per enabled notification, enqueued **inside the
//! caller's transaction**, so the change and its notifications commit together or not at all;
//! each is logged as a pending delivery, and a disabled notification gets a skipped one instead.
//! `App::raise_event` is the entry point for background sources (builds, scanner, expiry).
//! Payloads are built by `berth_notify::events`, the one place that knows their shapes.

use berth_store::Tx;
use berth_store::deliveries::{self, status};
use berth_store::notifications::{self, NotificationRow};
use berth_store::queue;
use berth_store::repos::RepoRow;
use chrono::Utc;
use serde_json::{Value, json};

use crate::{Principal, Result, Settings};

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

/// Enqueues one delivery job per enabled notification of `repo` for `event`, in `tx`, and logs a
/// delivery for each; disabled notifications get a `skipped` delivery instead of a job (Quay
/// enqueued and dropped them), which recovery can send after a reset. Returns how many were
/// enqueued.
pub(crate) async fn raise(
    tx: &mut Tx,
    repo: &RepoRow,
    event: &str,
    event_data: &Value,
    performer: Option<&Principal>,
) -> Result<usize> {
    let targets = notifications::for_event(tx, repo.id, event).await?;
    let event_id = uuid::Uuid::now_v7().to_string();
    let name = format!("{NOTIFICATION_QUEUE}/{}/{}/{event}/", repo.namespace, repo.name);
    let mut queued = 0;
    for n in &targets {
        let job = Job {
            name: &name,
            notification: n,
            event,
            event_id: &event_id,
            event_data,
            performer,
            test: false,
        };
        if n.enabled {
            enqueue_delivery(tx, &job).await?;
            queued += 1;
        } else {
            let body = job.body();
            deliveries::upsert(tx, &job.delivery_id(), n.id, event, status::SKIPPED, &body, Utc::now()).await?;
        }
    }
    Ok(queued)
}

/// One delivery of an event occurrence to one notification.
pub(crate) struct Job<'a> {
    /// Quay's queue name, e.g. `notification/acme/web/repo_push/`.
    pub name: &'a str,
    /// The notification.
    pub notification: &'a NotificationRow,
    /// The event name.
    pub event: &'a str,
    /// The occurrence's id.
    pub event_id: &'a str,
    /// The event data.
    pub event_data: &'a Value,
    /// Who caused it.
    pub performer: Option<&'a Principal>,
    /// A test send.
    pub test: bool,
}

impl Job<'_> {
    /// The delivery id: stable across retries, redeliveries and recoveries.
    fn delivery_id(&self) -> String {
        format!("{}.{}", self.event_id, self.notification.uuid)
    }

    fn body(&self) -> Value {
        json!({
            "notification_uuid": self.notification.uuid,
            "delivery_id": self.delivery_id(),
            "event": self.event,
            "event_id": self.event_id,
            "occurred_at": Utc::now().to_rfc3339(),
            "event_data": self.event_data,
            "performer_data": performer_data(self.performer),
            "test": self.test,
        })
    }
}

/// Enqueues one delivery job and logs it as pending.
pub(crate) async fn enqueue_delivery(tx: &mut Tx, job: &Job<'_>) -> Result<i64> {
    let body = job.body();
    let delivery_id = job.delivery_id();
    deliveries::upsert(
        tx,
        &delivery_id,
        job.notification.id,
        job.event,
        status::PENDING,
        &body,
        Utc::now(),
    )
    .await?;
    Ok(queue::enqueue(tx, NOTIFICATION_QUEUE, job.name, &body).await?)
}

/// Puts a logged delivery back in the queue, with its original body and id (redelivery, recovery).
pub(crate) async fn requeue_delivery(tx: &mut Tx, name: &str, d: &deliveries::DeliveryRow) -> Result<i64> {
    deliveries::set_status(tx, &d.public_id, status::PENDING, None, Utc::now()).await?;
    Ok(queue::enqueue(tx, NOTIFICATION_QUEUE, name, &d.body.0).await?)
}

impl crate::App {
    /// Raises `event` on the repository `namespace/name` from a background source (build
    /// executor, scanner, mirror, expiry scanner, benchmark) rather than a request: one delivery
    /// per notification, committed together, and the worker woken. Returns how many deliveries
    /// were queued. The payload must come from `berth_notify`'s builders.
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
        let n = raise(&mut tx, &repo, event.name(), event_data, None).await?;
        tx.commit().await?;
        if n > 0 {
            self.wake.notify_one();
        }
        Ok(n)
    }
}
