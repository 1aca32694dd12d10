//! Repository events: the one place their payloads (Quay's `event_data`) are built, and raising an
//! event, which enqueues one delivery job per enabled notification **inside the caller's
//! transaction** — so the change and its notifications commit together or not at all.

use berth_store::Tx;
use berth_store::notifications;
use berth_store::queue;
use berth_store::repos::RepoRow;
use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::{Principal, Result, Settings};

/// The queue that carries notification deliveries.
pub const NOTIFICATION_QUEUE: &str = "notification";

/// The base repository block every repository event starts with (spec §1.0).
pub fn repo_block(settings: &Settings, namespace: &str, name: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("repository".into(), json!(format!("{namespace}/{name}")));
    m.insert("namespace".into(), json!(namespace));
    m.insert("name".into(), json!(name));
    m.insert(
        "docker_url".into(),
        json!(format!("{}/{namespace}/{name}", settings.server_hostname)),
    );
    m.insert(
        "homepage".into(),
        json!(format!("{}/repository/{namespace}/{name}", settings.base_url())),
    );
    m
}

/// `repo_push` (spec §1.1): the base block and `updated_tags`, plus, as an additive field, the
/// manifest digest each updated tag now points at (`manifest_digests`, in the same order).
pub fn repo_push(settings: &Settings, namespace: &str, name: &str, tags: &[&str], digests: &[&str]) -> Value {
    let mut m = repo_block(settings, namespace, name);
    m.insert("updated_tags".into(), json!(tags));
    m.insert("manifest_digests".into(), json!(digests));
    Value::Object(m)
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
    if targets.is_empty() {
        return Ok(0);
    }
    let event_id = uuid::Uuid::now_v7().to_string();
    let occurred_at = Utc::now().to_rfc3339();
    let name = format!("{NOTIFICATION_QUEUE}/{}/{}/{event}/", repo.namespace, repo.name);
    for n in &targets {
        let body = json!({
            "notification_uuid": n.uuid,
            "event": event,
            "event_id": event_id,
            "occurred_at": occurred_at,
            "event_data": event_data,
            "performer_data": performer_data(performer),
        });
        queue::enqueue(tx, NOTIFICATION_QUEUE, &name, &body).await?;
    }
    Ok(targets.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_push_payload_has_quays_fields() {
        let settings = Settings {
            server_hostname: "quay.example.com".into(),
            preferred_url_scheme: "https".into(),
            registry_token_ttl: std::time::Duration::from_secs(1),
        };
        let v = repo_push(&settings, "acme", "web", &["v1"], &["sha256:abc"]);
        assert_eq!(
            v,
            json!({
                "repository": "acme/web", "namespace": "acme", "name": "web",
                "docker_url": "quay.example.com/acme/web",
                "homepage": "https://quay.example.com/repository/acme/web",
                "updated_tags": ["v1"], "manifest_digests": ["sha256:abc"],
            })
        );
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys[..5],
            ["repository", "namespace", "name", "docker_url", "homepage"],
            "Quay's key order"
        );
    }
}
