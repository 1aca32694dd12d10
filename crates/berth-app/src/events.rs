//! Raising repository events: one delivery job per enabled notification, enqueued **inside the
//! caller's transaction**, so the change and its notifications commit together or not at all.
//! Payloads are built by `berth_notify::events`, the one place that knows their shapes.

use berth_store::Tx;
use berth_store::notifications;
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

/// Enqueues one delivery job per enabled notification of `repo` for `event`, in `tx`. Returns how
/// many were enqueued. Disabled notifications get nothing (Quay enqueued and dropped them).
pub(crate) async fn raise(
    tx: &mut Tx,
    repo: &RepoRow,
    event: &str,
    event_data: &Value,
    performer: Option<&Principal>,
) -> Result<usize> {
    let targets = notifications::enabled_for_event(tx, repo.id, event).await?;
    let event_id = uuid::Uuid::now_v7().to_string();
    let name = format!("{NOTIFICATION_QUEUE}/{}/{}/{event}/", repo.namespace, repo.name);
    for n in &targets {
        enqueue_delivery(tx, &name, &n.uuid, event, &event_id, event_data, performer, false).await?;
    }
    Ok(targets.len())
}

/// Enqueues one delivery job. `name` follows Quay's queue naming; `test` marks test sends.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn enqueue_delivery(
    tx: &mut Tx,
    name: &str,
    notification_uuid: &str,
    event: &str,
    event_id: &str,
    event_data: &Value,
    performer: Option<&Principal>,
    test: bool,
) -> Result<i64> {
    let body = json!({
        "notification_uuid": notification_uuid,
        "event": event,
        "event_id": event_id,
        "occurred_at": Utc::now().to_rfc3339(),
        "event_data": event_data,
        "performer_data": performer_data(performer),
        "test": test,
    });
    Ok(queue::enqueue(tx, NOTIFICATION_QUEUE, name, &body).await?)
}
