//! `repo_push` and the outbox rule, on both backends: a push by tag enqueues exactly one delivery
//! per enabled `repo_push` notification, in the same transaction as the tag; pushes by digest
//! raise nothing; a failure at the commit boundary leaves neither the tag nor any delivery.

use berth_app::failpoint::PUT_MANIFEST_BEFORE_COMMIT;
use berth_store::notifications::{self, NewNotification};
use berth_store::{queue, repos};
use berth_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, expect};
use berth_testkit::registry::{OCI_INDEX, OCI_MANIFEST, digest};

/// The queued notification jobs, each with the payload its delivery-log row holds.
async fn jobs(s: &TestServer) -> Vec<Value> {
    let mut c = s.app.store().conn().await.unwrap();
    let items = queue::list(&mut c, berth_core::JobQueue::Notification).await.unwrap();
    let mut out = Vec::new();
    for i in items {
        let log = i.body.0["log_id"].as_i64().expect("every job names its log row");
        let bodies = berth_store::deliveries::bodies(&mut c, &[log]).await.unwrap();
        let payload: Value = serde_json::from_str(&bodies[0].1).unwrap();
        out.push(json!({"name": i.name, "body": i.body.0, "payload": payload}));
    }
    out
}

async fn put(s: &TestServer, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::StatusCode {
    s.client
        .request(Method::PUT, format!("{}{path}", s.base))
        .basic_auth("root", Some("rootpassword"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[backend_test]
async fn tag_pushes_enqueue_one_delivery_per_notification_atomically(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "acme", "repository": "web", "visibility": "private"}),
        )
        .await,
        201,
    );

    // Two enabled repo_push notifications, one for another event, one disabled.
    let repo = {
        let mut c = s.app.store().conn().await.unwrap();
        repos::by_path(&mut c, "acme", "web").await.unwrap().unwrap()
    };
    let mut tx = s.app.store().begin().await.unwrap();
    let empty = json!({});
    // A plain secret, as rows from before sealing hold: it signs as it is.
    let secret = berth_store::secrets::Sealed::from_stored("whsec_AAAA".into());
    for (uuid, event, method) in [
        ("n-hook", "repo_push", "webhook"),
        ("n-bell", "repo_push", "quay_notification"),
        ("n-build", "build_success", "webhook"),
        ("n-off", "repo_push", "webhook"),
    ] {
        let row = notifications::insert(
            &mut tx,
            &NewNotification {
                uuid,
                scope: berth_store::notifications::NotificationScope::Repository(repo.id),
                event,
                method,
                title: None,
                config: &empty,
                event_config: &empty,
                secret: &secret,
            },
        )
        .await
        .unwrap();
        if uuid == "n-off" {
            notifications::set_enabled(&mut tx, row.id, false, Some("test"))
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();

    // A one-layer image, pushed by tag.
    let reg = s.reg("root", "rootpassword");
    let config = reg
        .push_blob("acme/web", br#"{"architecture":"amd64","os":"linux"}"#)
        .await;
    let layer = reg.push_blob("acme/web", b"layer").await;
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 32},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}]})
    .to_string();
    let md = digest(manifest.as_bytes());

    // A crash at the commit boundary: no tag, no delivery.
    s.app.failpoints().set(PUT_MANIFEST_BEFORE_COMMIT, true);
    assert_eq!(
        put(
            &s,
            "/v2/acme/web/manifests/v1",
            OCI_MANIFEST,
            manifest.clone().into_bytes()
        )
        .await,
        503
    );
    s.app.failpoints().set(PUT_MANIFEST_BEFORE_COMMIT, false);
    assert!(jobs(&s).await.is_empty());
    assert_eq!(s.reg("root", "rootpassword").tags("acme/web").await, [] as [&str; 0]);

    // The same push, committed: the tag and exactly two deliveries.
    assert_eq!(
        put(
            &s,
            "/v2/acme/web/manifests/v1",
            OCI_MANIFEST,
            manifest.clone().into_bytes()
        )
        .await,
        201
    );
    let queued = jobs(&s).await;
    assert_eq!(queued.len(), 2, "{queued:#?}");
    let uuids: Vec<&str> = queued
        .iter()
        .map(|j| j["body"]["notification_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids, ["n-hook", "n-bell"]);
    let host = &s.hostname;
    for j in &queued {
        assert_eq!(j["name"], "notification/acme/web/repo_push/");
        assert_eq!(j["body"]["event"], "repo_push");
        assert_eq!(j["payload"]["performer_data"]["entity_name"], "root");
        assert_eq!(
            j["payload"]["event_data"],
            json!({
                "repository": "acme/web", "namespace": "acme", "name": "web",
                "docker_url": format!("{host}/acme/web"),
                "homepage": format!("http://{host}/repository/acme/web"),
                "updated_tags": ["v1"], "manifest_digests": [md],
            })
        );
    }
    assert_eq!(
        queued[0]["payload"]["event_id"], queued[1]["payload"]["event_id"],
        "one event, one id"
    );

    // By digest: nothing. A multi-arch index under one tag: one event per notification.
    assert_eq!(
        put(
            &s,
            &format!("/v2/acme/web/manifests/{md}"),
            OCI_MANIFEST,
            manifest.clone().into_bytes()
        )
        .await,
        201
    );
    assert_eq!(jobs(&s).await.len(), 2);
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": manifest.len()}]}).to_string();
    assert_eq!(
        put(&s, "/v2/acme/web/manifests/multi", OCI_INDEX, index.into_bytes()).await,
        201
    );
    let queued = jobs(&s).await;
    assert_eq!(queued.len(), 4);
    assert_eq!(queued[3]["payload"]["event_data"]["updated_tags"], json!(["multi"]));

    // A rejected push raises nothing.
    let bad = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "x", "digest": digest(b"missing"), "size": 1}, "layers": []}).to_string();
    assert_eq!(
        put(&s, "/v2/acme/web/manifests/bad", OCI_MANIFEST, bad.into_bytes()).await,
        400
    );
    assert_eq!(jobs(&s).await.len(), 4);
    s.stop().await;
}
