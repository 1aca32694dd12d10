//! The in-app bell on both backends: `quay_notification` to a user, an organization's admins and a
//! team's members; per-user dismissal; paging; every event kind, `repo_image_expiry` included.

use std::time::Duration;

use berth_notify::EventKind;
use berth_testkit::{backend_test, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

/// Waits until `who` has `n` undismissed notifications, and returns them.
async fn wait_for(s: &TestServer, who: &Auth, n: usize) -> Vec<Value> {
    let items = eventually(Duration::from_secs(20), || async {
        let list = expect(s.get("/api/v1/user/notifications?limit=100", who).await, 200);
        let items = list["notifications"].as_array().unwrap().clone();
        if items.len() >= n {
            Ok(items)
        } else {
            Err(format!("expected {n} notifications, have {}", items.len()))
        }
    })
    .await;
    assert_eq!(items.len(), n, "no more than {n}: {items:?}");
    items
}

#[backend_test]
async fn bell_targets_dismissal_and_every_event(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| {
        c.notifications.deliver = true;
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await;
    let root = s.init_root().await;
    let alice = s.user(&root, "alice").await;
    let bob = s.user(&root, "bob").await;
    let carol = s.user(&root, "carol").await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/acme/team/owners/members/alice",
            &root,
            None,
        )
        .await,
        200,
    );
    expect(
        s.put("/api/v1/organization/acme/team/devs", &root, json!({"role": "member"}))
            .await,
        200,
    );
    expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/acme/team/devs/members/bob",
            &root,
            None,
        )
        .await,
        200,
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
    let base = "/api/v1/repository/acme/web/notification/";
    let mut uuids = Vec::new();
    for (kind, name) in [("user", "carol"), ("org", "acme"), ("team", "devs")] {
        let body = json!({"event": "repo_push", "method": "quay_notification", "config": {"target": {"kind": kind, "name": name}}, "eventConfig": {}});
        uuids.push(
            expect(s.post(base, &root, body).await, 201)["uuid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for u in &uuids {
        let one = format!("{}/{u}", base.trim_end_matches('/'));
        expect(s.post(&format!("{one}/test"), &root, json!(null)).await, 200);
    }
    let carols = wait_for(&s, &carol, 1).await;
    assert_eq!(carols[0]["kind"], "repo_push");
    assert_eq!(carols[0]["organization"], Value::Null);
    assert_eq!(carols[0]["metadata"]["repository"], "acme/web");
    assert_eq!(carols[0]["metadata"]["updated_tags"], json!(["latest", "foo"]));
    assert_eq!(carols[0]["dismissed"], false);
    let alices = wait_for(&s, &alice, 1).await;
    assert_eq!(
        alices[0]["organization"], "acme",
        "org admins receive the organization's notification"
    );
    let roots = wait_for(&s, &root, 1).await;
    assert_eq!(roots[0]["organization"], "acme");
    wait_for(&s, &bob, 1).await;

    // Dismissal is per user: alice's dismissal leaves root's copy alone.
    let id = alices[0]["id"].as_str().unwrap();
    let put = expect(
        s.put(
            &format!("/api/v1/user/notifications/{id}"),
            &alice,
            json!({"dismissed": true}),
        )
        .await,
        200,
    );
    assert_eq!(put["dismissed"], true);
    wait_for(&s, &alice, 0).await;
    wait_for(&s, &root, 1).await;
    assert_eq!(
        expect(s.get(&format!("/api/v1/user/notifications/{id}"), &alice).await, 200)["dismissed"],
        true
    );
    // Someone else's notification is not found; a PUT without `dismissed` is refused.
    expect(s.get(&format!("/api/v1/user/notifications/{id}"), &root).await, 404);
    let e = expect(
        s.put(
            &format!("/api/v1/user/notifications/{}", roots[0]["id"].as_str().unwrap()),
            &root,
            json!({}),
        )
        .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("dismissed"), "{e}");
    expect(s.get("/api/v1/user/notifications", &Auth::None).await, 401);
    expect(s.get("/api/v1/user/notifications?limit=0", &carol).await, 400);

    // Every event kind reaches the bell, repo_image_expiry included; paging is exact.
    let mut sent = 1;
    for event in EventKind::all().iter().filter(|e| **e != EventKind::RepoPush) {
        let ev_cfg = if *event == EventKind::ImageExpiry {
            json!({"days": 2})
        } else {
            json!({})
        };
        let body = json!({"event": event.name(), "method": "quay_notification", "config": {"target": {"kind": "user", "name": "carol"}}, "eventConfig": ev_cfg});
        // The events only namespace-wide notifications take, through the organization's.
        let base = if event.namespace_only() {
            "/api/v1/organization/acme/notifications"
        } else {
            base
        };
        let u = expect(s.post(base, &root, body).await, 201)["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let one = format!("{}/{u}", base.trim_end_matches('/'));
        expect(s.post(&format!("{one}/test"), &root, json!(null)).await, 200);
        sent += 1;
        let items = wait_for(&s, &carol, sent).await;
        assert_eq!(items[0]["kind"], event.name(), "newest first");
    }
    let first = expect(s.get("/api/v1/user/notifications?limit=4&page=0", &carol).await, 200);
    // One push and every other event: the last page holds the rest, with nothing after it.
    let total = EventKind::all().len();
    let last_page = (total - 1) / 4;
    let last = expect(
        s.get(&format!("/api/v1/user/notifications?limit=4&page={last_page}"), &carol)
            .await,
        200,
    );
    assert_eq!(
        (
            first["notifications"].as_array().unwrap().len(),
            first["additional"].as_bool()
        ),
        (4, Some(true))
    );
    assert_eq!(
        (
            last["notifications"].as_array().unwrap().len(),
            last["additional"].as_bool()
        ),
        (total - 4 * last_page, Some(false)),
        "{total} in pages of 4, none skipped"
    );
    // Quay's default page is 5, and `created` is written as Python's formatdate writes it.
    let page = expect(s.get("/api/v1/user/notifications", &carol).await, 200);
    assert_eq!(
        (
            page["notifications"].as_array().unwrap().len(),
            page["additional"].as_bool()
        ),
        (5, Some(true))
    );
    let created = page["notifications"][0]["created"].as_str().unwrap().to_owned();
    let two_digit_day = created.as_bytes()[5..7].iter().all(u8::is_ascii_digit);
    assert!(
        chrono::DateTime::parse_from_rfc2822(&created).is_ok() && two_digit_day && created.ends_with(" -0000"),
        "{created}"
    );
    s.stop().await;
}
