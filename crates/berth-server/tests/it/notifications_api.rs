//! The repository notification API on both backends: Quay's request and response shapes, every
//! validation message of the spec (with Quay's 500s as 400s), uuids scoped to their repository,
//! admin-only access, audit entries, and test sends queued with the event's sample data.

use berth_store::queue;
use berth_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

const BASE: &str = "/api/v1/repository/acme/web/notification/";

fn hook(event: &str) -> Value {
    json!({"event": event, "method": "webhook", "config": {"url": "https://hooks.example.com/x?token=s3cret"}, "eventConfig": {}})
}

#[backend_test]
async fn create_list_get_delete_reset_and_test(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    for r in ["web", "other"] {
        expect(
            s.post(
                "/api/v1/repository",
                &root,
                json!({"namespace": "acme", "repository": r, "visibility": "private"}),
            )
            .await,
            201,
        );
    }
    let mut body = hook("repo_push");
    body["title"] = json!("CI hook");
    let created = expect(s.post(BASE, &root, body).await, 201);
    let uuid = created["uuid"].as_str().unwrap().to_owned();
    assert_eq!(created["event"], "repo_push");
    assert_eq!(created["method"], "webhook");
    assert_eq!(created["title"], "CI hook");
    assert_eq!(created["config"]["url"], "https://hooks.example.com/x?token=s3cret");
    assert_eq!(created["event_config"], json!({}));
    assert_eq!(
        (created["number_of_failures"].as_i64(), created["enabled"].as_bool()),
        (Some(0), Some(true))
    );

    let list = expect(s.get(BASE, &root).await, 200);
    assert_eq!(list["notifications"].as_array().unwrap().len(), 1);
    let one = expect(s.get(&format!("{BASE}{uuid}"), &root).await, 200);
    assert_eq!(one, created);

    // Scoped to the repository in the path: another repository's uuid is not found, on every route.
    let other = "/api/v1/repository/acme/other/notification/";
    for (m, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::POST, ""),
        (Method::POST, "/test"),
    ] {
        let e = expect(
            s.call(m.clone(), &format!("{other}{uuid}{suffix}"), &root, None).await,
            404,
        );
        assert_eq!(
            e["detail"],
            format!("No repository notification found for: acme, other, {uuid}"),
            "{m} {suffix}"
        );
    }

    // Test send: one job with the sample data, for this notification only.
    let filter = expect(s.post(BASE, &root, json!({"event": "build_success", "method": "webhook", "config": {"url": "https://h.example.com"}, "eventConfig": {"ref-regex": "refs/heads/.+"}})).await, 201);
    expect(s.post(&format!("{BASE}{uuid}/test"), &root, json!(null)).await, 200);
    expect(
        s.post(
            &format!("{BASE}{}/test", filter["uuid"].as_str().unwrap()),
            &root,
            json!(null),
        )
        .await,
        200,
    );
    let (jobs, payloads) = {
        let mut c = s.app.store().conn().await.unwrap();
        let jobs = queue::list(&mut c, berth_core::JobQueue::Notification).await.unwrap();
        let mut payloads = Vec::new();
        for j in &jobs {
            let log = j.body.0["log_id"].as_i64().expect("the job names its delivery-log row");
            let body = berth_store::deliveries::bodies(&mut c, &[log])
                .await
                .unwrap()
                .remove(0)
                .1;
            payloads.push(serde_json::from_str::<Value>(&body).unwrap());
        }
        (jobs, payloads)
    };
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].name, format!("notification/acme/{uuid}/repo_push/"));
    let (b, p) = (&jobs[0].body.0, &payloads[0]);
    assert_eq!(
        (b["notification_uuid"].as_str(), p["test"].as_bool()),
        (Some(uuid.as_str()), Some(true))
    );
    assert!(
        b.get("payload").is_none(),
        "the payload is stored once, in the log: {b}"
    );
    assert_eq!(p["event_data"]["updated_tags"], json!(["latest", "foo"]));
    assert_eq!(p["event_data"]["repository"], "acme/web");
    assert_eq!(p["performer_data"]["entity_name"], "root");
    assert_eq!(
        payloads[1]["event_data"]["homepage"],
        format!("http://{}/repository/acme/web/build/fake-build-id", s.hostname)
    );

    // Reset, delete, and the audit trail.
    expect(s.post(&format!("{BASE}{uuid}"), &root, json!(null)).await, 204);
    expect(s.delete(&format!("{BASE}{uuid}"), &root).await, 204);
    expect(s.get(&format!("{BASE}{uuid}"), &root).await, 404);
    let logs = expect(s.get("/api/v1/repository/acme/web/logs", &root).await, 200);
    let kinds: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        &kinds[..4],
        [
            "delete_repo_notification",
            "reset_repo_notification",
            "add_repo_notification",
            "add_repo_notification"
        ]
    );
    assert_eq!(
        logs["logs"][0]["metadata"],
        json!({"repo": "web", "namespace": "acme", "notification_id": uuid, "event": "repo_push", "method": "webhook"})
    );
    s.stop().await;
}

#[backend_test]
async fn every_validation_message(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    s.user(&root, "alice").await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "other"})).await,
        201,
    );
    expect(
        s.put("/api/v1/organization/acme/team/devs", &root, json!({"role": "member"}))
            .await,
        200,
    );
    expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/ci", &root, None)
            .await,
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
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "root", "repository": "own", "visibility": "private"}),
        )
        .await,
        201,
    );

    let with = |event: &str, method: &str, config: Value, event_config: Value| json!({"event": event, "method": method, "config": config, "eventConfig": event_config});
    let target = |kind: &str, name: &str| json!({"target": {"kind": kind, "name": name}});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"event": "repo_push", "method": "webhook", "config": {}}),
            "missing field `eventConfig`",
        ),
        (
            json!({"method": "webhook", "config": {}, "eventConfig": {}}),
            "missing field `event`",
        ),
        (
            json!({"event": "repo_push", "method": "webhook", "config": {"url": "https://x.example"}, "eventConfig": {}, "title": null}),
            "invalid title: null is not a string",
        ),
        (
            with("bogus", "webhook", json!({}), json!({})),
            "Invalid event 'bogus'. Must be one of: repo_push, build_queued",
        ),
        (
            with("quota_warning", "webhook", json!({}), json!({})),
            "Invalid event 'quota_warning'",
        ),
        (
            with("repo_push", "pager", json!({}), json!({})),
            "Unknown notification method 'pager'",
        ),
        (
            with("repo_push", "webhook", json!({}), json!({})),
            "Missing webhook URL",
        ),
        (
            with("repo_push", "webhook", json!({"url": "gopher://x.example"}), json!({})),
            "Invalid webhook URL",
        ),
        (
            with("repo_push", "webhook", json!({"url": "http://localhost/x"}), json!({})),
            "Invalid webhook URL: localhost is not a public address (see notifications.allowed_networks)",
        ),
        (
            with("repo_push", "webhook", json!({"url": "http://"}), json!({})),
            "Invalid webhook URL",
        ),
        (
            with(
                "repo_push",
                "webhook",
                json!({"url": "https://x.example", "template": "{\"a\": \"}"}),
                json!({}),
            ),
            "Could not parse template: ",
        ),
        (
            with(
                "repo_push",
                "webhook",
                json!({"url": "https://x.example", "template": "{\"a\": \"${}\"}"}),
                json!({}),
            ),
            "Empty expression found",
        ),
        (
            with(
                "repo_push",
                "webhook",
                json!({"url": "https://x.example", "template": "{\"a\": \"${first[}\"}"}),
                json!({}),
            ),
            "For expression `first[`",
        ),
        (
            with(
                "repo_push",
                "webhook",
                json!({"url": "https://x.example", "template": 7}),
                json!({}),
            ),
            "Invalid webhook template",
        ),
        (
            with("repo_push", "slack", json!({}), json!({})),
            "Missing Slack Callback URL",
        ),
        (
            with(
                "repo_push",
                "slack",
                json!({"url": "mailto:ops@example.com"}),
                json!({}),
            ),
            "Invalid Slack Callback URL",
        ),
        (
            with(
                "repo_push",
                "slack",
                json!({"url": "http://10.0.0.1/hooks/x"}),
                json!({}),
            ),
            "Invalid Slack Callback URL: 10.0.0.1 is not a public address",
        ),
        (
            with("repo_push", "email", json!({}), json!({})),
            "Missing e-mail address",
        ),
        (
            with("repo_push", "email", json!({"email": "a@example.com"}), json!({})),
            "The specified e-mail address is not authorized to receive notifications for this repository",
        ),
        (
            with("repo_push", "flowdock", json!({}), json!({})),
            "Missing Flowdock API Token",
        ),
        (
            with("repo_push", "hipchat", json!({"room_id": "1"}), json!({})),
            "Missing Hipchat Room Notification Token",
        ),
        (
            with("repo_push", "hipchat", json!({"notification_token": "t"}), json!({})),
            "Missing Hipchat Room ID",
        ),
        (
            with("repo_push", "quay_notification", json!({}), json!({})),
            "Missing target",
        ),
        (
            with("repo_push", "quay_notification", json!({"target": "alice"}), json!({})),
            "Missing target",
        ),
        (
            with("repo_push", "quay_notification", target("user", "nobody"), json!({})),
            "Unknown user nobody",
        ),
        (
            with("repo_push", "quay_notification", target("user", "acme+ci"), json!({})),
            "Unknown user acme+ci",
        ),
        (
            with("repo_push", "quay_notification", target("user", "acme"), json!({})),
            "Unknown user acme",
        ),
        (
            with("repo_push", "quay_notification", target("org", "nope"), json!({})),
            "Unknown organization nope",
        ),
        (
            with("repo_push", "quay_notification", target("org", "other"), json!({})),
            "Organization name must match repository namespace",
        ),
        (
            with("repo_push", "quay_notification", target("team", "ghosts"), json!({})),
            "Unknown team ghosts",
        ),
        (
            with("repo_push", "quay_notification", target("robot", "x"), json!({})),
            "Unknown target kind 'robot'",
        ),
        (
            with(
                "build_success",
                "webhook",
                json!({"url": "https://x.example"}),
                json!({"ref-regex": "]["}),
            ),
            "invalid ref-regex: does not compile",
        ),
        (
            with(
                "vulnerability_found",
                "webhook",
                json!({"url": "https://x.example"}),
                json!({"level": 9}),
            ),
            "invalid level: 9 is not a severity level",
        ),
        (
            with(
                "vulnerability_found",
                "webhook",
                json!({"url": "https://x.example"}),
                json!({"level": "high"}),
            ),
            "invalid level",
        ),
        (
            with(
                "repo_image_expiry",
                "webhook",
                json!({"url": "https://x.example"}),
                json!({}),
            ),
            "invalid days: is required",
        ),
        (
            with(
                "repo_image_expiry",
                "webhook",
                json!({"url": "https://x.example"}),
                json!({"days": 0}),
            ),
            "invalid days: 0 is not a positive integer",
        ),
    ];
    for (body, want) in &cases {
        let e = expect(s.post(BASE, &root, body.clone()).await, 400);
        let detail = e["detail"].as_str().unwrap();
        assert!(detail.contains(want), "{body}\n  got:  {detail}\n  want: {want}");
    }
    let e = expect(
        s.post(
            "/api/v1/repository/root/own/notification/",
            &root,
            with("repo_push", "quay_notification", target("team", "devs"), json!({})),
        )
        .await,
        400,
    );
    assert_eq!(e["detail"], "Unknown team devs", "a user namespace has no teams");
    let long = json!({"event": "repo_push", "method": "webhook", "config": {"url": "https://x.example"}, "eventConfig": {}, "title": "t".repeat(256)});
    assert!(
        expect(s.post(BASE, &root, long).await, 400)["detail"]
            .as_str()
            .unwrap()
            .contains("title")
    );
    // Nothing was stored by any of them.
    assert_eq!(expect(s.get(BASE, &root).await, 200)["notifications"], json!([]));

    // The valid forms of each method are accepted.
    for body in [
        with("repo_push", "quay_notification", target("user", "alice"), json!({})),
        with("repo_push", "quay_notification", target("org", "acme"), json!({})),
        with("repo_push", "quay_notification", target("team", "devs"), json!({})),
        with(
            "repo_push",
            "slack",
            json!({"url": "https://hooks.slack.com/services/T0/B0/abc"}),
            json!({}),
        ),
        // Quay's own tests create Slack notifications on any URL (Mattermost, Rocket.Chat).
        with("repo_push", "slack", json!({"url": "http://example.com"}), json!({})),
        with("repo_push", "flowdock", json!({"flow_api_token": "tok"}), json!({})),
        with(
            "repo_push",
            "hipchat",
            json!({"notification_token": "tok", "room_id": 42}),
            json!({}),
        ),
        with(
            "build_failure",
            "webhook",
            json!({"url": "https://x.example", "template": "{\"build\": \"${build_id}\"}"}),
            json!({"ref-regex": "refs/heads/main"}),
        ),
        with(
            "vulnerability_found",
            "webhook",
            json!({"url": "https://x.example"}),
            json!({"level": "2"}),
        ),
        with(
            "repo_image_expiry",
            "webhook",
            json!({"url": "https://x.example"}),
            json!({"days": 7}),
        ),
    ] {
        expect(s.post(BASE, &root, body).await, 201);
    }
    assert_eq!(
        expect(s.get(BASE, &root).await, 200)["notifications"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    s.stop().await;
}

#[backend_test]
async fn admin_only(kind: berth_testkit::DbKind) {
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
            json!({"namespace": "acme", "repository": "web", "visibility": "public"}),
        )
        .await,
        201,
    );
    let created = expect(s.post(BASE, &root, hook("repo_push")).await, 201);
    let uuid = created["uuid"].as_str().unwrap();
    let reader = s.user(&root, "reader").await;
    let writer = s.user(&root, "writer").await;
    let robot = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/ci", &root, None)
            .await,
        201,
    );
    let robot = Auth::Basic("acme+ci".into(), robot["token"].as_str().unwrap().into());
    for (user, role) in [("reader", "read"), ("writer", "write"), ("acme+ci", "write")] {
        expect(
            s.put(
                &format!("/api/v1/repository/acme/web/permissions/user/{user}"),
                &root,
                json!({"role": role}),
            )
            .await,
            200,
        );
    }
    let routes = [
        (Method::GET, BASE.to_owned(), None),
        (Method::POST, BASE.to_owned(), Some(hook("repo_push"))),
        (Method::GET, format!("{BASE}{uuid}"), None),
        (Method::DELETE, format!("{BASE}{uuid}"), None),
        (Method::POST, format!("{BASE}{uuid}"), None),
        (Method::POST, format!("{BASE}{uuid}/test"), None),
    ];
    for (m, path, body) in &routes {
        expect(s.call(m.clone(), path, &Auth::None, body.clone()).await, 401);
        for who in [&reader, &writer, &robot] {
            let e = expect(s.call(m.clone(), path, who, body.clone()).await, 403);
            assert_eq!(e["error_type"], "insufficient_scope");
        }
    }
    // The secret-bearing URL never reached the logs of any of those requests (nothing logs configs).
    assert_eq!(expect(s.get(&format!("{BASE}{uuid}"), &root).await, 200)["uuid"], uuid);
    s.stop().await;
}

#[backend_test]
async fn notifications_are_limited_per_repository_and_in_size(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| c.notifications.max_per_repository = 3).await;
    let root = s.init_root().await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    for r in ["web", "other"] {
        expect(
            s.post(
                "/api/v1/repository",
                &root,
                json!({"namespace": "acme", "repository": r, "visibility": "private"}),
            )
            .await,
            201,
        );
    }
    // A config over 64 KiB is refused with the limit named, and nothing is stored.
    let mut big = hook("repo_push");
    big["config"]["headers"] = json!({"X-Padding": "x".repeat(70 << 10)});
    let e = expect(s.post(BASE, &root, big).await, 400);
    assert!(e["detail"].as_str().unwrap().contains("over the limit of 65536"), "{e}");
    // Three fit; the fourth names the setting; another repository has its own allowance.
    for _ in 0..3 {
        expect(s.post(BASE, &root, hook("repo_push")).await, 201);
    }
    let e = expect(s.post(BASE, &root, hook("repo_push")).await, 400);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("notifications.max_per_repository"),
        "{e}"
    );
    expect(
        s.post("/api/v1/repository/acme/other/notification/", &root, hook("repo_push"))
            .await,
        201,
    );
    let listed = expect(s.get(BASE, &root).await, 200);
    assert_eq!(listed["notifications"].as_array().unwrap().len(), 3);
    s.stop().await;
}
