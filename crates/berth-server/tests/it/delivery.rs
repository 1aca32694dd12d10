//! Delivery end to end, on both backends, to a real HTTP receiver on loopback: a skopeo push
//! reaches a webhook; test sends of every event reach webhook and Slack receivers with exact
//! bodies and headers; retries keep the delivery id; failures disable a notification and say why.

use std::time::Duration;

use berth_notify::EventKind;
use berth_notify::methods::chat::ChatFormat;
use berth_testkit::receiver::Receiver;
use berth_testkit::{backend_test, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

const WAIT: Duration = Duration::from_secs(20);

/// Polls the notification at `path` until `done` holds, and returns it.
async fn until(s: &TestServer, root: &Auth, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, || async {
        let n = expect(s.get(path, root).await, 200);
        if done(&n) { Ok(n) } else { Err(format!("{what}: {n}")) }
    })
    .await
}

async fn server(kind: berth_testkit::DbKind, rx: &Receiver) -> (TestServer, Auth) {
    let base = rx.url.clone();
    let s = TestServer::start_with(kind, |c| {
        c.notifications.flowdock_api_base = format!("{base}/flowdock");
        c.notifications.hipchat_api_base = format!("{base}/hipchat");
        c.notifications.blocked_hosts = Vec::new();
        c.notifications.retry_schedule_secs = vec![0];
        c.notifications.failure_threshold = 3;
        c.notifications.deliver = true;
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    (s, root)
}

/// Where notifications of `event` are made: acme/web's, or, for the events only namespace-wide
/// notifications take, the organization's (whose test sends are about `acme/sample`).
fn base(event: &str) -> &'static str {
    if EventKind::parse(event).is_ok_and(EventKind::namespace_only) {
        "/api/v1/organization/acme/notifications"
    } else {
        "/api/v1/repository/acme/web/notification/"
    }
}

async fn create(s: &TestServer, root: &Auth, event: &str, method: &str, config: Value, event_config: Value) -> String {
    let body = json!({"event": event, "method": method, "config": config, "eventConfig": event_config});
    let n = expect(s.post(base(event), root, body).await, 201);
    n["uuid"].as_str().unwrap().to_owned()
}

async fn test_send(s: &TestServer, root: &Auth, uuid: &str) {
    test_send_at(s, root, base("repo_push"), uuid).await;
}

async fn test_send_at(s: &TestServer, root: &Auth, base: &str, uuid: &str) {
    let one = format!("{}/{uuid}", base.trim_end_matches('/'));
    expect(s.post(&format!("{one}/test"), root, json!(null)).await, 200);
}

#[backend_test]
async fn skopeo_push_reaches_the_webhook(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, &rx).await;
    create(
        &s,
        &root,
        "repo_push",
        "webhook",
        json!({"url": format!("{}/hook", rx.url)}),
        json!({}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(args[0])
            .args(&args[1..])
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["umoci", "init", "--layout", "L"]);
    run(&["umoci", "new", "--image", "L:v1"]);
    let dest = format!("docker://{}/acme/web:v1", s.hostname);
    let push = tokio::process::Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "root:rootpassword",
            "oci:L:v1",
            &dest,
        ])
        .current_dir(d)
        .output()
        .await
        .unwrap();
    assert!(push.status.success(), "{}", String::from_utf8_lossy(&push.stderr));
    let got = rx.next(WAIT).await.expect("the push is delivered");
    assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", "/hook"));
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.headers["x-berth-event"], "repo_push");
    let body = got.json();
    let host = &s.hostname;
    assert_eq!(body["repository"], "acme/web");
    assert_eq!(body["docker_url"], format!("{host}/acme/web"));
    assert_eq!(body["homepage"], format!("http://{host}/repository/acme/web"));
    assert_eq!(body["updated_tags"], json!(["v1"]));
    assert!(body["manifest_digests"][0].as_str().unwrap().starts_with("sha256:"));
    assert!(
        rx.next(Duration::from_millis(500)).await.is_none(),
        "exactly one delivery"
    );
    s.stop().await;
}

#[backend_test]
async fn every_event_to_webhook_and_each_chat_method(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, &rx).await;
    for event in EventKind::all() {
        let at = base(event.name());
        let ctx = berth_notify::RepoContext {
            hostname: &s.hostname,
            scheme: "http",
            namespace: "acme",
            name: if event.namespace_only() { "sample" } else { "web" },
        };
        let ev_cfg = if *event == EventKind::ImageExpiry {
            json!({"days": 3})
        } else {
            json!({})
        };
        let hook = create(
            &s,
            &root,
            event.name(),
            "webhook",
            json!({"url": format!("{}/w", rx.url)}),
            ev_cfg.clone(),
        )
        .await;
        let slack = create(
            &s,
            &root,
            event.name(),
            "slack",
            json!({"url": format!("{}/s", rx.url)}),
            ev_cfg.clone(),
        )
        .await;
        test_send_at(&s, &root, at, &hook).await;
        let got = rx.next(WAIT).await.expect("webhook delivery");
        assert_eq!(got.path, "/w");
        assert_eq!(got.headers["x-berth-event"], event.name());
        assert!(got.headers["x-berth-delivery"].ends_with(&format!(".{hook}")));
        let expected = event.sample(&ctx, &ev_cfg, 0.0);
        let mut body = got.json();
        // The build samples carry the send time; everything else is exact.
        if let Some(d) = body.pointer_mut("/trigger_metadata/commit_info/date") {
            *d = json!(0.0);
        }
        assert_eq!(body, expected, "{}", event.name());
        test_send_at(&s, &root, at, &slack).await;
        let got = rx.next(WAIT).await.expect("slack delivery");
        assert_eq!(got.path, "/s");
        let body = got.json();
        assert_eq!(body["text"], event.summary(&expected), "{}", event.name());
        assert_eq!(body["username"], "Berth");
        assert_eq!(body["attachments"][0]["mrkdwn_in"], json!(["text"]));
        assert_eq!(
            body["attachments"][0]["color"],
            berth_notify::methods::slack::color(event.level(&expected))
        );
        assert_eq!(
            body["attachments"][0]["text"],
            berth_notify::methods::slack::text(*event, &expected, Some("root")),
            "{}",
            event.name()
        );

        // Berth's chat methods: each posts its service's documented shape to the URL given.
        let mut made = vec![hook, slack];
        for (method, path) in [
            ("msteams", "/teams"),
            ("discord", "/discord"),
            ("googlechat", "/gchat"),
            ("mattermost", "/mm"),
        ] {
            let uuid = create(
                &s,
                &root,
                event.name(),
                method,
                json!({"url": format!("{}{path}", rx.url)}),
                ev_cfg.clone(),
            )
            .await;
            test_send_at(&s, &root, at, &uuid).await;
            made.push(uuid);
            let got = rx.next(WAIT).await.expect("chat delivery");
            assert_eq!(got.path, path);
            assert_eq!(got.headers["content-type"], "application/json");
            let body = got.json();
            let summary = event.summary(&expected);
            let want = match method {
                "msteams" => {
                    let card = &body["attachments"][0];
                    assert_eq!(card["contentType"], "application/vnd.microsoft.card.adaptive");
                    assert_eq!(card["content"]["type"], "AdaptiveCard");
                    assert_eq!(
                        card["content"]["body"][0]["color"],
                        berth_notify::methods::teams::color(event.level(&expected))
                    );
                    berth_notify::methods::teams::Teams::body(*event, &expected, Some("root"))
                }
                "discord" => {
                    let embed = &body["embeds"][0];
                    assert_eq!(
                        embed["color"],
                        berth_notify::methods::discord::color(event.level(&expected))
                    );
                    assert_eq!(embed["fields"][0]["value"], format!("acme/{}", ctx.name));
                    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
                    berth_notify::methods::discord::Discord::body(*event, &expected, Some("root"))
                }
                "googlechat" => {
                    assert_eq!(body["cardsV2"][0]["card"]["header"]["title"], summary.as_str());
                    assert_eq!(body["fallbackText"], summary.as_str());
                    berth_notify::methods::googlechat::GoogleChat::body(*event, &expected, Some("root"))
                }
                _ => {
                    assert_eq!(body["username"], "Berth");
                    berth_notify::methods::slack::body(*event, &expected, Some("root"))
                }
            };
            assert_eq!(body, want, "{method} {}", event.name());
        }

        // The discontinued chat services, at their configured bases; the token stays in the URL.
        let flowdock = create(
            &s,
            &root,
            event.name(),
            "flowdock",
            json!({"flow_api_token": "tok"}),
            ev_cfg.clone(),
        )
        .await;
        test_send_at(&s, &root, at, &flowdock).await;
        let got = rx.next(WAIT).await.expect("flowdock delivery");
        assert_eq!(got.path, "/flowdock/v1/messages/team_inbox/tok");
        assert_eq!(
            got.json(),
            berth_notify::methods::flowdock::body(*event, &expected, Some("root"), "berth@localhost"),
            "{}",
            event.name()
        );
        let hipchat = create(
            &s,
            &root,
            event.name(),
            "hipchat",
            json!({"notification_token": "tok", "room_id": 42}),
            ev_cfg.clone(),
        )
        .await;
        test_send_at(&s, &root, at, &hipchat).await;
        let got = rx.next(WAIT).await.expect("hipchat delivery");
        assert_eq!(got.path, "/hipchat/v2/room/42/notification?auth_token=tok");
        let body = got.json();
        assert_eq!(
            body,
            berth_notify::methods::hipchat::body(*event, &expected, Some("root")),
            "{}",
            event.name()
        );
        assert_eq!(body["message_format"], "html");
        // Each event's notifications go, so the repository stays below its limit of notifications.
        made.extend([flowdock, hipchat]);
        for uuid in made {
            let path = format!("{}/{uuid}", at.trim_end_matches('/'));
            expect(s.call(Method::DELETE, &path, &root, None).await, 204);
        }
    }
    s.stop().await;
}

#[backend_test]
async fn retries_keep_the_id_and_failures_disable(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, &rx).await;
    let uuid = create(
        &s,
        &root,
        "repo_push",
        "webhook",
        json!({"url": format!("{}/h", rx.url)}),
        json!({}),
    )
    .await;
    let path = format!("/api/v1/repository/acme/web/notification/{uuid}");

    // 503 then 200: retried, with the same delivery id.
    rx.respond_with(&[503]);
    test_send(&s, &root, &uuid).await;
    let first = rx.next(WAIT).await.unwrap();
    let second = rx.next(WAIT).await.unwrap();
    assert_eq!(first.headers["x-berth-delivery"], second.headers["x-berth-delivery"]);
    assert_eq!(first.body, second.body);
    // The success resets the count once it is recorded (just after the answer arrives).
    let n = until(&s, &root, &path, "the success reset the count", |n| {
        n["number_of_failures"] == 0
    })
    .await;
    assert_eq!(n["enabled"], true);

    // Three permanent failures in a row disable it, and it says why.
    for i in 1..=3 {
        rx.respond_with(&[400]);
        test_send(&s, &root, &uuid).await;
        rx.next(WAIT).await.unwrap();
        until(&s, &root, &path, &format!("failure {i} recorded"), |n| {
            n["number_of_failures"].as_i64() == Some(i)
        })
        .await;
    }
    let n = expect(s.get(&path, &root).await, 200);
    assert_eq!(n["enabled"], false);
    assert_eq!(
        n["disabled_reason"],
        "disabled after 3 consecutive failed deliveries; last error: 400 response for webhook"
    );
    // Disabled: a test send is dropped, nothing arrives.
    test_send(&s, &root, &uuid).await;
    assert!(rx.next(Duration::from_millis(1500)).await.is_none());

    // Re-enabled: deliveries flow again. 410 Gone disables at once.
    expect(s.call(Method::POST, &path, &root, None).await, 204);
    let n = expect(s.get(&path, &root).await, 200);
    assert_eq!(
        (
            n["number_of_failures"].as_i64(),
            n["enabled"].as_bool(),
            n["disabled_reason"].is_null()
        ),
        (Some(0), Some(true), true)
    );
    rx.respond_with(&[410]);
    test_send(&s, &root, &uuid).await;
    rx.next(WAIT).await.unwrap();
    let n = until(&s, &root, &path, "410 disabled it", |n| n["enabled"] == false).await;
    assert_eq!(
        n["disabled_reason"],
        "disabled: 410 response for webhook: the endpoint is gone"
    );
    s.stop().await;
}

#[backend_test]
async fn the_ssrf_guard_refuses_internal_destinations(kind: berth_testkit::DbKind) {
    // Quay's literal host list is off here, so only the guard stands in the way.
    let s = TestServer::start_with(kind, |c| {
        c.notifications.blocked_hosts = Vec::new();
        c.notifications.deliver = true;
        c.notifications.retry_schedule_secs = vec![0];
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let rx = Receiver::start().await;
    let port = rx.url.rsplit(':').next().unwrap().to_owned();

    // Internal IP literals are refused at creation, with a message saying why.
    for (url, ip) in [
        (format!("http://127.0.0.1:{port}/x"), "127.0.0.1"),
        ("http://[::1]/x".to_owned(), "::1"),
        ("http://169.254.169.254/latest/meta-data".to_owned(), "169.254.169.254"),
        ("http://10.0.0.1/x".to_owned(), "10.0.0.1"),
    ] {
        let body = json!({"event": "repo_push", "method": "webhook", "config": {"url": url}, "eventConfig": {}});
        let e = expect(
            s.post("/api/v1/repository/acme/web/notification/", &root, body).await,
            400,
        );
        assert_eq!(
            e["detail"],
            format!("Invalid webhook URL: {ip} is not a public address (see notifications.allowed_networks)")
        );
    }

    // A name resolving to loopback passes creation, and is refused at connect time.
    let uuid = create(
        &s,
        &root,
        "repo_push",
        "webhook",
        json!({"url": format!("http://localhost:{port}/by-name")}),
        json!({}),
    )
    .await;
    test_send(&s, &root, &uuid).await;
    let path = format!("/api/v1/repository/acme/web/notification/{uuid}");
    until(&s, &root, &path, "the refusal recorded", |n| {
        n["number_of_failures"].as_i64() == Some(1)
    })
    .await;
    assert!(
        rx.next(Duration::from_millis(500)).await.is_none(),
        "nothing reached the internal receiver"
    );
    let mut c = s.app.store().conn().await.unwrap();
    let dead = berth_store::queue::list(&mut c, berth_core::JobQueue::Notification)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead.iter().all(|j| j.retries_remaining == 0 && j.attempt == 1),
        "refused at once, never retried: {dead:?}"
    );
    drop(c); // stop() closes the pool, which waits for every connection
    s.stop().await;

    // Allow-listed, the same destinations work, Quay's literal refusal of localhost included.
    let s = TestServer::start_with(kind, |c| {
        c.notifications.deliver = true;
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    for url in [
        format!("http://127.0.0.1:{port}/literal"),
        format!("http://localhost:{port}/by-name"),
    ] {
        let uuid = create(&s, &root, "repo_push", "webhook", json!({"url": url}), json!({})).await;
        test_send(&s, &root, &uuid).await;
        assert!(rx.next(WAIT).await.is_some(), "{url} is allowed");
    }
    let e = expect(s.post("/api/v1/repository/acme/web/notification/", &root, json!({"event": "repo_push", "method": "webhook", "config": {"url": "http://10.0.0.1/x"}, "eventConfig": {}})).await, 400);
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("10.0.0.1 is not a public address")
    );
    s.stop().await;
}
