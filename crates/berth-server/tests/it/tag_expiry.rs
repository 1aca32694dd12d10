//! Tag expiration on both backends: Quay's `PUT …/tag/{tag}` with `expiration`, the
//! `quay.expires-after` label of a pushed image, `GET …/tag/` showing `expiration` and `end_ts`,
//! and the expiry pass under an injected clock (expired tags removed with `tag_deleted`,
//! `repo_image_expiry` once per tag and expiry time, again when the expiry moves); and with the
//! real binary, the pass at start-up announcing a tag after a restart.

use std::time::Duration;

use berth_testkit::receiver::Receiver;
use berth_testkit::registry::{OCI_MANIFEST, digest};
use berth_testkit::{TestDb, backend_test};
use chrono::Utc;
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

const WAIT: Duration = Duration::from_secs(20);
const TAGS: &str = "/api/v1/repository/acme/web/tag/";

async fn server(kind: berth_testkit::DbKind) -> (TestServer, Auth) {
    let s = TestServer::start_with(kind, |c| {
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
        c.notifications.deliver = true;
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    (s, root)
}

/// The repository's tags by name: `(end_ts, expiration)` of each.
async fn expiries(s: &TestServer, root: &Auth) -> Vec<(String, Option<i64>, Option<String>)> {
    let page = expect(s.get(TAGS, root).await, 200);
    let mut out: Vec<_> = page["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["end_ts"].as_i64(),
                t["expiration"].as_str().map(str::to_owned),
            )
        })
        .collect();
    out.sort();
    out
}

async fn expire_in(s: &TestServer, root: &Auth, tag: &str, expiration: Value) -> (reqwest::StatusCode, Value) {
    s.put(&format!("{TAGS}{tag}"), root, json!({ "expiration": expiration }))
        .await
}

#[backend_test]
async fn expiry_is_set_shown_and_cleared_through_quays_api(kind: berth_testkit::DbKind) {
    let (s, root) = server(kind).await;
    let reg = s.reg("root", "rootpassword");
    reg.push_image("acme/web", "v1", b"one").await;
    reg.push_image("acme/web", "v2", b"two").await;
    let at = Utc::now().timestamp() + 3600;
    assert_eq!(expect(expire_in(&s, &root, "v1", json!(at)).await, 201), "Updated");
    let tags = expiries(&s, &root).await;
    assert_eq!((tags[0].1, tags[1].1), (Some(at), None), "{tags:?}");
    let shown = tags[0].2.clone().unwrap();
    assert_eq!(chrono::DateTime::parse_from_rfc2822(&shown).unwrap().timestamp(), at);

    // Refused, each with its reason, changing nothing.
    let past = expect(
        expire_in(&s, &root, "v1", json!(Utc::now().timestamp() - 10)).await,
        400,
    );
    assert!(past["detail"].as_str().unwrap().contains("in the future"), "{past}");
    let word = expect(expire_in(&s, &root, "v1", json!("tomorrow")).await, 400);
    assert!(word["detail"].as_str().unwrap().contains("expiration"), "{word}");
    expect(s.put(&format!("{TAGS}v1"), &root, json!({})).await, 400);
    let missing = expect(expire_in(&s, &root, "nope", json!(at)).await, 404);
    assert!(missing["detail"].as_str().unwrap().contains("nope"), "{missing}");
    assert_eq!(expiries(&s, &root).await[0].1, Some(at));
    let reader = s.user(&root, "reader").await;
    expect(
        s.put(
            "/api/v1/repository/acme/web/permissions/user/reader",
            &root,
            json!({"role": "read"}),
        )
        .await,
        200,
    );
    expect(expire_in(&s, &reader, "v1", json!(at)).await, 403);
    expect(expire_in(&s, &Auth::None, "v1", json!(at)).await, 401);

    // Cleared with null; audited.
    expect(expire_in(&s, &root, "v1", Value::Null).await, 201);
    assert_eq!(expiries(&s, &root).await[0].1, None);
    let logs = expect(s.get("/api/v1/repository/acme/web/logs", &root).await, 200);
    let changes = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "change_tag_expiration")
        .count();
    assert_eq!(changes, 2);

    // Moving a tag by digest is a push (repo_push) without an expiry; deleting one is tag_deleted.
    let (_, v2_digest, _) = reg.push_image("acme/web", "v3", b"three").await;
    expect(expire_in(&s, &root, "v1", json!(at)).await, 201);
    expect(
        s.put(&format!("{TAGS}v1"), &root, json!({"manifest_digest": v2_digest}))
            .await,
        201,
    );
    assert_eq!(
        expiries(&s, &root).await[0].1,
        None,
        "a moved tag does not keep its expiry"
    );
    let e = expect(
        s.put(&format!("{TAGS}v1"), &root, json!({"manifest_digest": "sha256:00"}))
            .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("sha256:00"), "{e}");
    expect(s.delete(&format!("{TAGS}v3"), &root).await, 204);
    expect(s.delete(&format!("{TAGS}v3"), &root).await, 404);
    s.stop().await;
}

#[backend_test]
async fn an_image_label_sets_the_expiry_at_push(kind: berth_testkit::DbKind) {
    let (s, root) = server(kind).await;
    let reg = s.reg("root", "rootpassword");
    let push = |tag: &'static str, label: &'static str| {
        let reg = &reg;
        async move {
            let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                                "config": {"Labels": {"quay.expires-after": label}}});
            let config = serde_json::to_vec(&config).unwrap();
            let cd = reg.push_blob("acme/web", &config).await;
            let ld = reg.push_blob("acme/web", tag.as_bytes()).await;
            let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": tag.len()}]});
            let bytes = serde_json::to_vec(&manifest).unwrap();
            let r = reg.push_manifest("acme/web", tag, OCI_MANIFEST, &bytes).await;
            assert_eq!(r.status(), 201);
            digest(&bytes)
        }
    };
    let before = Utc::now().timestamp();
    push("labelled", "2d").await;
    push("nonsense", "soon").await;
    let after = Utc::now().timestamp();
    let tags = expiries(&s, &root).await;
    let labelled = tags[0].1.expect("the label set an expiry");
    assert!(
        (before + 2 * 86_400..=after + 2 * 86_400).contains(&labelled),
        "{tags:?}"
    );
    assert_eq!(
        tags[1],
        ("nonsense".to_owned(), None, None),
        "a label that is no duration is ignored"
    );
    // A push of an unlabelled image to the tag clears its expiry, as Quay's new tag has none.
    reg.push_image("acme/web", "labelled", b"plain").await;
    assert_eq!(expiries(&s, &root).await[0].1, None);
    s.stop().await;
}

#[backend_test]
async fn the_expiry_pass_removes_and_announces_once_per_expiry_time(kind: berth_testkit::DbKind) {
    let (s, root) = server(kind).await;
    let (soon, deleted) = (Receiver::start().await, Receiver::start().await);
    let reg = s.reg("root", "rootpassword");
    for tag in ["v1", "v2", "v3"] {
        reg.push_image("acme/web", tag, tag.as_bytes()).await;
    }
    let hook = |event: &str, url: &str, event_config: Value| json!({"event": event, "method": "webhook", "config": {"url": url}, "eventConfig": event_config});
    let n = "/api/v1/repository/acme/web/notification/";
    expect(
        s.post(n, &root, hook("repo_image_expiry", &soon.url, json!({"days": 2})))
            .await,
        201,
    );
    // Namespace-wide, so the tag_deleted of an expiry reaches the organization's tooling.
    let org = "/api/v1/organization/acme/notifications";
    expect(
        s.post(org, &root, hook("tag_deleted", &deleted.url, json!({}))).await,
        201,
    );
    let now = Utc::now();
    let day = 86_400;
    expect(expire_in(&s, &root, "v1", json!(now.timestamp() + day)).await, 201);
    expect(expire_in(&s, &root, "v2", json!(now.timestamp() + 5 * day)).await, 201);

    // Now: v1 expires within the 2 days, v2 does not, v3 never.
    let r = s.app.expire_tags(now).await.unwrap();
    assert_eq!((r.ran, r.removed, r.announced), (true, 0, 1));
    let got = soon.next(WAIT).await.expect("repo_image_expiry").json();
    assert_eq!(
        (&got["tags"], &got["expiring_in"], &got["repository"]),
        (&json!(["v1"]), &json!("2 days"), &json!("acme/web"))
    );
    // Once per tag and expiry time: the same pass again announces nothing.
    assert_eq!(s.app.expire_tags(now).await.unwrap().announced, 0);
    // v1's expiry moves later, still within the window: announced again.
    expect(
        expire_in(&s, &root, "v1", json!(now.timestamp() + day + 3600)).await,
        201,
    );
    assert_eq!(s.app.expire_tags(now).await.unwrap().announced, 1);
    assert_eq!(soon.next(WAIT).await.unwrap().json()["tags"], json!(["v1"]));

    // Three days on: v1 is gone (tag_deleted, reason expired), v2 now expires within 2 days.
    let later = now + chrono::Duration::days(3);
    let r = s.app.expire_tags(later).await.unwrap();
    assert_eq!((r.removed, r.announced), (1, 1));
    let gone = deleted.next(WAIT).await.expect("tag_deleted").json();
    assert_eq!(
        (&gone["tag"], &gone["reason"], &gone["performer"]),
        (&json!("v1"), &json!("expired"), &Value::Null)
    );
    assert_eq!(soon.next(WAIT).await.unwrap().json()["tags"], json!(["v2"]));
    let names: Vec<String> = expiries(&s, &root).await.into_iter().map(|t| t.0).collect();
    assert_eq!(names, ["v2", "v3"]);
    let pulled = reg
        .send(reqwest::Method::GET, "/v2/acme/web/manifests/v1")
        .await
        .status();
    assert_eq!(pulled, 404, "the expired tag is gone from /v2 too");
    let logs = expect(s.get("/api/v1/repository/acme/web/logs", &root).await, 200);
    let removal = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "delete_tag" && l["metadata"]["reason"] == "expired")
        .cloned();
    assert_eq!(removal.unwrap()["metadata"]["tag"], "v1");
    s.stop().await;
}

#[backend_test]
async fn the_binary_announces_an_expiring_tag_after_a_restart(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let db: TestDb = {
        let (s, root) = server(kind).await;
        s.reg("root", "rootpassword")
            .push_image("acme/web", "nightly", b"layer")
            .await;
        let within_a_day = Utc::now().timestamp() + 20 * 3600;
        expect(expire_in(&s, &root, "nightly", json!(within_a_day)).await, 201);
        let body = json!({"event": "repo_image_expiry", "method": "webhook", "config": {"url": rx.url}, "eventConfig": {"days": 2}});
        expect(
            s.post("/api/v1/repository/acme/web/notification/", &root, body).await,
            201,
        );
        s.stop_keeping_db().await
    };
    // The server that made them has stopped; a `berth serve` on the same database runs the pass
    // at start-up.
    let (_served, _port) = crate::crash::serve(&db);
    let got = rx.next(WAIT).await.expect("repo_image_expiry after the restart");
    assert_eq!(got.headers["x-berth-event"], "repo_image_expiry");
    assert_eq!(got.json()["tags"], json!(["nightly"]));
}
