//! The delivery engine on both backends: Standard Webhooks signatures checked by an independent
//! implementation (the `standardwebhooks` package from PyPI), secret rotation, the delivery log and
//! redelivery, retries and failure counting under an injected clock, disabling (window and 410)
//! with the admins told, recovery of skipped events, and isolation from a hanging endpoint.

use std::io::Write;
use std::time::Duration;

use berth_testkit::receiver::{Received, Receiver};
use berth_testkit::{backend_test, eventually};
use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

const WAIT: Duration = Duration::from_secs(20);
const N: &str = "/api/v1/repository/acme/web/notification/";

async fn server(
    kind: berth_testkit::DbKind,
    deliver: bool,
    configure: impl FnOnce(&mut berth_server::config::Config),
) -> (TestServer, Auth) {
    let s = TestServer::start_with(kind, |c| {
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
        c.notifications.deliver = deliver;
        configure(c);
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    (s, root)
}

async fn hook(s: &TestServer, root: &Auth, url: &str) -> String {
    let body = json!({"event": "repo_push", "method": "webhook", "config": {"url": url}, "eventConfig": {}});
    expect(s.post(N, root, body).await, 201)["uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A delivery worker run by the test (on a server started without one), stopped gracefully.
struct Worker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    fn start(s: &TestServer) -> Worker {
        let app = s.app.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_delivery_worker(async move {
                let _ = stopped.await;
            })
            .await;
        });
        Worker { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

async fn test_send(s: &TestServer, root: &Auth, uuid: &str) {
    expect(s.post(&format!("{N}{uuid}/test"), root, json!(null)).await, 200);
}

/// Runs `script` with the test Python (`scripts/test` installs its packages into `target/py`),
/// `input` on its standard input; its standard output, or its standard error when it fails.
fn python(script: &str, input: &Value) -> Result<String, String> {
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (set TEST_PYTHON; see scripts/test): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Verifies a received delivery with the Standard Webhooks reference library (Python).
fn verify_with_reference_library(secret: &str, got: &Received) -> Result<(), String> {
    let script = "import json, sys\nfrom standardwebhooks import Webhook\nd = json.load(sys.stdin)\n\
                  Webhook(d['secret']).verify(d['body'], d['headers'])\nprint('verified')\n";
    let input = json!({"secret": secret, "body": String::from_utf8_lossy(&got.body), "headers": got.headers});
    let out = python(script, &input)?;
    if out.contains("verified") { Ok(()) } else { Err(out) }
}

#[backend_test]
async fn cloudevents_bodies_are_valid_events(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, true, |_| {}).await;
    let body = json!({"event": "repo_push", "method": "webhook", "eventConfig": {},
                      "config": {"url": format!("{}/ce", rx.url), "format": "cloudevents"}});
    let uuid = expect(s.post(N, &root, body).await, 201)["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    // A real push, not a sample: the event's own data, time and tag.
    s.reg("root", "rootpassword")
        .push_image("acme/web", "v7", b"a layer")
        .await;
    let got = rx.next(WAIT).await.expect("the push is delivered");
    assert_eq!(got.headers["content-type"], "application/cloudevents+json");
    let event: Value = got.json();
    assert_eq!(event["id"], got.headers["webhook-id"].as_str());
    assert_eq!(event["type"], "dev.berth.repo_push");
    assert_eq!(event["subject"], "v7");
    assert_eq!(event["source"], format!("http://{}/repository/acme/web", s.hostname));
    assert_eq!(event["data"]["updated_tags"], json!(["v7"]));
    assert!(event["id"].as_str().unwrap().ends_with(&format!(".{uuid}")));
    // The CloudEvents SDK reads it as an event in structured mode, and it is valid against the
    // specification's constraints (a JSON Schema, formats checked); the signature still verifies.
    let script = "import json, sys\nimport jsonschema\nfrom cloudevents.http import from_http\n\
                  d = json.load(sys.stdin)\nevent = from_http(d['headers'], d['body'])\n\
                  jsonschema.validate(json.loads(d['body']), d['schema'], format_checker=jsonschema.FormatChecker())\n\
                  print(event['specversion'], event['type'], event['subject'])\n";
    let schema: Value = serde_json::from_str(include_str!("fixtures/cloudevents-1.0.schema.json")).unwrap();
    let input = json!({"headers": got.headers, "body": String::from_utf8_lossy(&got.body), "schema": schema});
    let out = python(script, &input).unwrap_or_else(|e| panic!("not a valid CloudEvent: {e}"));
    assert_eq!(out.trim(), "1.0 dev.berth.repo_push v7");
    let secret = expect(s.get(&format!("{N}{uuid}/secret"), &root).await, 200);
    verify_with_reference_library(secret["secret"].as_str().unwrap(), &got).unwrap();
    // And a body the schema refuses is refused (the check can fail).
    let bad = json!({"headers": {"content-type": "application/cloudevents+json"}, "schema": schema,
                     "body": json!({"specversion": "1.0", "id": "", "source": "x", "type": "t"}).to_string()});
    assert!(python(script, &bad).is_err(), "an empty id is not a CloudEvent");
    s.stop().await;
}

#[backend_test]
async fn a_tag_filter_lets_only_matching_pushes_through(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, true, |_| {}).await;
    let body = json!({"event": "repo_push", "method": "webhook", "eventConfig": {"tag-regex": "v[0-9]+"},
                      "config": {"url": format!("{}/releases", rx.url)}});
    let uuid = expect(s.post(N, &root, body).await, 201)["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let reg = s.reg("root", "rootpassword");
    reg.push_image("acme/web", "latest", b"one layer").await;
    reg.push_image("acme/web", "v2", b"another layer").await;
    let got = rx.next(WAIT).await.expect("the release push is delivered");
    assert_eq!(got.json()["updated_tags"], json!(["v2"]));
    assert!(
        rx.next(Duration::from_millis(500)).await.is_none(),
        "the push of latest is filtered out"
    );
    let log = expect(s.get(&format!("{N}{uuid}/deliveries"), &root).await, 200);
    let statuses: Vec<&str> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"filtered") && statuses.contains(&"delivered"),
        "{log}"
    );
    let bad = json!({"event": "repo_push", "method": "webhook", "eventConfig": {"tag-regex": "("},
                     "config": {"url": format!("{}/x", rx.url)}});
    let refused = expect(s.post(N, &root, bad).await, 400);
    assert!(
        refused["error_message"].as_str().unwrap().contains("tag-regex"),
        "{refused}"
    );
    s.stop().await;
}

#[backend_test]
async fn edits_keep_queued_deliveries_and_pauses_skip_until_resumed(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, false, |_| {}).await;
    let uuid = hook(&s, &root, &format!("{}/before", rx.url)).await;
    let reg = s.reg("root", "rootpassword");
    reg.push_image("acme/web", "v1", b"layer one").await;
    let edit = |body: Value| {
        let (s, root, path) = (&s, &root, format!("{N}{uuid}"));
        async move { s.call(Method::PUT, &path, root, Some(body)).await }
    };
    // An edit of the URL and the title; the event and method may be repeated, not changed.
    let edited = expect(
        edit(json!({"event": "repo_push", "method": "webhook", "title": "CI",
                    "config": {"url": format!("{}/after", rx.url)}}))
        .await,
        200,
    );
    assert_eq!(edited["title"], "CI");
    assert_eq!(edited["config"]["url"], format!("{}/after", rx.url));
    reg.push_image("acme/web", "v2", b"layer two").await;
    for (body, field) in [
        (json!({"event": "build_success"}), "event"),
        (json!({"method": "slack"}), "method"),
        (json!({"config": {"url": "ftp://x.example/"}}), "url"),
        (json!({"eventConfig": {"tag-regex": "("}}), "tag-regex"),
    ] {
        let e = expect(edit(body.clone()).await, 400);
        let message = e["error_message"].as_str().unwrap();
        assert!(message.contains(field) || field == "url", "{body}: {e}");
    }
    let unchanged = view(&s, &root, &uuid).await;
    assert_eq!(
        unchanged["config"]["url"],
        format!("{}/after", rx.url),
        "a refused edit changes nothing"
    );

    // The push queued before the edit goes where it was aimed then; the later one, to the new URL.
    let worker = Worker::start(&s);
    let mut arrived = [
        rx.next(WAIT).await.expect("a delivery"),
        rx.next(WAIT).await.expect("another delivery"),
    ];
    arrived.sort_by_key(|r| r.path.clone());
    assert_eq!(arrived[0].path, "/after");
    assert_eq!(arrived[0].json()["updated_tags"], json!(["v2"]));
    assert_eq!(arrived[1].path, "/before");
    assert_eq!(arrived[1].json()["updated_tags"], json!(["v1"]));

    // Paused: events are logged as skipped and nothing is sent; resumed, recovery sends them.
    let since = Utc::now() - chrono::Duration::seconds(1);
    let paused = expect(edit(json!({"enabled": false})).await, 200);
    assert_eq!(paused["enabled"], false);
    assert_eq!(paused["disabled_reason"], "Paused by root");
    reg.push_image("acme/web", "v3", b"layer three").await;
    assert!(
        rx.next(Duration::from_millis(500)).await.is_none(),
        "nothing while paused"
    );
    let skipped = expect(s.get(&format!("{N}{uuid}/deliveries?status=skipped"), &root).await, 200);
    assert_eq!(skipped["deliveries"].as_array().unwrap().len(), 1);
    let resumed = expect(edit(json!({"enabled": true})).await, 200);
    assert_eq!(
        (&resumed["enabled"], &resumed["disabled_reason"]),
        (&json!(true), &Value::Null)
    );
    let r = expect(
        s.post(
            &format!("{N}{uuid}/recover"),
            &root,
            json!({"since": since.to_rfc3339()}),
        )
        .await,
        202,
    );
    assert_eq!(r["queued"], 1);
    let got = rx.next(WAIT).await.expect("the skipped push, recovered");
    assert_eq!(got.json()["updated_tags"], json!(["v3"]));
    let logs = expect(s.get("/api/v1/repository/acme/web/logs", &root).await, 200);
    let kinds: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "change_repo_notification").count(),
        3,
        "{kinds:?}"
    );
    worker.stop().await;
    s.stop().await;
}

#[backend_test]
async fn deleted_tags_are_events_however_they_go(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, true, |_| {}).await;
    let body = json!({"event": "tag_deleted", "method": "webhook", "eventConfig": {},
                      "config": {"url": format!("{}/gone", rx.url)}});
    expect(s.post(N, &root, body).await, 201);
    let reg = s.reg("root", "rootpassword");
    let (_, shared, _) = reg.push_image("acme/web", "v1", b"one layer").await;
    reg.push_image("acme/web", "stable", b"one layer").await;
    let (_, other, _) = reg.push_image("acme/web", "old", b"another layer").await;

    // A tag deleted through /v2: only the tag goes.
    let r = reg.send(Method::DELETE, "/v2/acme/web/manifests/old").await;
    assert_eq!(r.status(), 202);
    let got = rx.next(WAIT).await.expect("the deleted tag is an event");
    assert_eq!(got.headers["x-berth-event"], "tag_deleted");
    let data = got.json();
    assert_eq!(
        (
            &data["tag"],
            &data["manifest_digest"],
            &data["reason"],
            &data["performer"]
        ),
        (&json!("old"), &json!(other), &json!("deleted"), &json!("root"))
    );
    assert_eq!(data["repository"], "acme/web");
    assert_eq!(data["docker_url"], format!("{}/acme/web", s.hostname));

    // skopeo deletes by digest: the manifest goes with both of its tags, one event each.
    let dir = tempfile::tempdir().unwrap();
    let image = format!("docker://{}/acme/web:v1", s.hostname);
    crate::real_clients::ok(
        "skopeo",
        &["delete", "--tls-verify=false", "--creds", "root:rootpassword", &image],
        dir.path(),
    )
    .await;
    let mut gone = Vec::new();
    for _ in 0..2 {
        let data = rx.next(WAIT).await.expect("a tag of the deleted manifest").json();
        assert_eq!(
            (&data["reason"], &data["manifest_digest"]),
            (&json!("manifest_deleted"), &json!(shared))
        );
        gone.push(data["tag"].as_str().unwrap().to_owned());
    }
    gone.sort();
    assert_eq!(gone, ["stable", "v1"]);
    assert!(rx.next(Duration::from_millis(500)).await.is_none(), "one event per tag");
    s.stop().await;
}

#[backend_test]
async fn signed_deliveries_rotation_and_the_log(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, true, |_| {}).await;
    let uuid = hook(&s, &root, &format!("{}/signed", rx.url)).await;
    let secret = expect(s.get(&format!("{N}{uuid}/secret"), &root).await, 200);
    let first = secret["secret"].as_str().unwrap().to_owned();
    assert!(first.starts_with("whsec_") && first.len() >= 6 + 32, "{first}");
    assert!(secret["previous_secret"].is_null());

    test_send(&s, &root, &uuid).await;
    let got = rx.next(WAIT).await.expect("a delivery");
    assert_eq!(got.headers["webhook-id"], got.headers["x-berth-delivery"]);
    assert!(got.headers["user-agent"].starts_with("Berth/"), "{:?}", got.headers);
    let ts: i64 = got.headers["webhook-timestamp"].parse().unwrap();
    assert!((Utc::now().timestamp() - ts).abs() < 300, "a current unix timestamp");
    verify_with_reference_library(&first, &got).expect("the reference library accepts the signature");
    assert!(
        verify_with_reference_library("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &got).is_err(),
        "a wrong secret is rejected"
    );

    // Rotation: both secrets sign during the grace period; the old one is reported with its end.
    let rotated = expect(
        s.post(&format!("{N}{uuid}/secret/rotate"), &root, json!(null)).await,
        200,
    );
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(rotated["previous_secret"], first.as_str());
    assert!(rotated["previous_secret_expires"].is_string());
    test_send(&s, &root, &uuid).await;
    let got = rx.next(WAIT).await.expect("a delivery");
    assert_eq!(got.headers["webhook-signature"].split(' ').count(), 2);
    verify_with_reference_library(&second, &got).expect("the new secret verifies");
    verify_with_reference_library(&first, &got).expect("the old secret still verifies");

    // The log: newest first, with what was sent and received.
    let log = expect(s.get(&format!("{N}{uuid}/deliveries"), &root).await, 200);
    let list = log["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], got.headers["webhook-id"].as_str());
    assert_eq!(
        (
            list[0]["status"].as_str(),
            list[0]["attempts"].as_i64(),
            list[0]["test"].as_bool()
        ),
        (Some("delivered"), Some(1), Some(true))
    );
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let one = expect(s.get(&format!("{N}{uuid}/deliveries/{id}"), &root).await, 200);
    let attempt = &one["attempts_log"][0];
    assert_eq!(attempt["response_status"], 200);
    assert_eq!(attempt["outcome"], "delivered");
    assert_eq!(attempt["request_url"], format!("{}/signed", rx.url));
    assert_eq!(attempt["request_body"], String::from_utf8_lossy(&got.body).as_ref());
    let sent: Vec<&str> = attempt["request_headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert!(
        sent.contains(&"webhook-signature") && sent.contains(&"webhook-timestamp"),
        "{sent:?}"
    );
    assert_eq!(one["event_data"]["repository"], "acme/web");

    // Redelivery: the same id again, one more attempt in the log.
    expect(
        s.call(
            Method::POST,
            &format!("{N}{uuid}/deliveries/{id}/redeliver"),
            &root,
            None,
        )
        .await,
        202,
    );
    let again = rx.next(WAIT).await.expect("the redelivery");
    assert_eq!(again.headers["webhook-id"], id);
    eventually(WAIT, || async {
        let one = expect(s.get(&format!("{N}{uuid}/deliveries/{id}"), &root).await, 200);
        if one["attempts"] == 2 {
            Ok(())
        } else {
            Err(format!("the redelivery is logged: {one}"))
        }
    })
    .await;
    // Attempts are numbered on across redeliveries (the redelivery's job starts again at 1).
    let one = expect(s.get(&format!("{N}{uuid}/deliveries/{id}"), &root).await, 200);
    let numbers: Vec<&Value> = one["attempts_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["attempt"])
        .collect();
    assert_eq!(numbers, [&json!(1), &json!(2)], "{one}");

    // Errors name the problem; other repositories' and non-admins' requests find nothing.
    let e = expect(s.get(&format!("{N}{uuid}/deliveries?status=lost"), &root).await, 400);
    assert_eq!(
        e["detail"],
        "invalid status: 'lost' is not one of: pending, delivered, failed, skipped, filtered"
    );
    expect(s.get(&format!("{N}{uuid}/deliveries/nope"), &root).await, 404);
    let e = expect(
        s.post(&format!("{N}{uuid}/recover"), &root, json!({"since": "yesterday"}))
            .await,
        400,
    );
    assert!(
        e["detail"].as_str().unwrap().starts_with("invalid since: 'yesterday'"),
        "{e}"
    );
    let alice = s.user(&root, "alice").await;
    expect(
        s.put(
            "/api/v1/repository/acme/web/permissions/user/alice",
            &root,
            json!({"role": "write"}),
        )
        .await,
        200,
    );
    expect(s.get(&format!("{N}{uuid}/secret"), &alice).await, 403);
    expect(s.get(&format!("{N}{uuid}/deliveries"), &Auth::None).await, 401);

    // Prometheus: attempts by method and outcome, latency histograms, and (once the worker is
    // idle) queue depth, age of the oldest due job and the disabled notifications.
    eventually(WAIT, || async {
        let text = s
            .client
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let has = |series: &str| text.lines().any(|l| l.starts_with(series));
        let all = has("berth_deliveries_total{method=\"webhook\",outcome=\"delivered\"}")
            && has("berth_delivery_request_duration_seconds")
            && has("berth_delivery_first_attempt_latency_seconds")
            && has("berth_queue_depth{queue=\"notification\"}")
            && has("berth_queue_oldest_due_age_seconds{queue=\"notification\"}")
            && has("berth_notifications_disabled");
        if all {
            Ok(())
        } else {
            Err(format!("the delivery metrics are all there:\n{text}"))
        }
    })
    .await;
    s.stop().await;
}

/// The notification as the API shows it.
async fn view(s: &TestServer, root: &Auth, uuid: &str) -> Value {
    expect(s.get(&format!("{N}{uuid}"), root).await, 200)
}

#[backend_test]
async fn retries_and_failure_counting_with_an_injected_clock(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, false, |_| {}).await;
    let uuid = hook(&s, &root, &format!("{}/flaky", rx.url)).await;
    rx.respond_with(&[503, 503]);
    test_send(&s, &root, &uuid).await;
    let t0 = Utc::now();
    let sec = chrono::Duration::seconds;

    assert_eq!(s.app.deliver_due(t0, 10).await.unwrap(), 1);
    assert_eq!(view(&s, &root, &uuid).await["number_of_failures"], 1);
    // The log says when the retry is due: 5 s ± 20 % after the attempt.
    let log = expect(s.get(&format!("{N}{uuid}/deliveries"), &root).await, 200);
    let due: chrono::DateTime<Utc> = log["deliveries"][0]["next_attempt"]
        .as_str()
        .unwrap_or_else(|| panic!("a retry is due: {log}"))
        .parse()
        .unwrap();
    assert!(due >= t0 + sec(4) && due <= t0 + sec(6), "{due} after {t0}");
    assert_eq!(
        s.app.deliver_due(t0 + sec(3), 10).await.unwrap(),
        0,
        "the first retry waits 5 s ± 20 %"
    );
    assert_eq!(s.app.deliver_due(t0 + sec(7), 10).await.unwrap(), 1);
    assert_eq!(view(&s, &root, &uuid).await["number_of_failures"], 2);
    assert_eq!(
        s.app.deliver_due(t0 + sec(200), 10).await.unwrap(),
        0,
        "the second waits 5 min ± 20 %"
    );
    assert_eq!(s.app.deliver_due(t0 + sec(7 + 361), 10).await.unwrap(), 1);
    let n = view(&s, &root, &uuid).await;
    assert_eq!(
        (n["number_of_failures"].as_i64(), n["enabled"].as_bool()),
        (Some(0), Some(true))
    );
    let ids: Vec<String> = [rx.next(WAIT).await, rx.next(WAIT).await, rx.next(WAIT).await]
        .into_iter()
        .map(|r| r.unwrap().headers["webhook-id"].clone())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one id across retries");
    let one = expect(s.get(&format!("{N}{uuid}/deliveries/{}", ids[0]), &root).await, 200);
    let log: Vec<(Value, Value)> = one["attempts_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["outcome"].clone(), a["response_status"].clone()))
        .collect();
    assert_eq!(
        log,
        vec![
            (json!("retry"), json!(503)),
            (json!("retry"), json!(503)),
            (json!("delivered"), json!(200))
        ]
    );
    assert!(one["next_attempt"].is_null(), "nothing is due once delivered: {one}");

    // Failing continuously for 5 days (an event a day, every attempt failing) disables it; the
    // admins find it in the bell.
    rx.respond_with(&[500; 100]);
    let t1 = t0 + sec(3600);
    for day in 0..=5 {
        test_send(&s, &root, &uuid).await;
        s.app.deliver_due(t1 + chrono::Duration::days(day), 20).await.unwrap();
        let n = view(&s, &root, &uuid).await;
        assert_eq!(n["enabled"], day < 5, "day {day}: {n}");
    }
    let n = view(&s, &root, &uuid).await;
    assert_eq!(n["enabled"], false, "{n}");
    assert!(
        n["disabled_reason"]
            .as_str()
            .unwrap()
            .starts_with("disabled after failing continuously since"),
        "{n}"
    );
    let bell = expect(s.get("/api/v1/user/notifications", &root).await, 200);
    let item = &bell["notifications"][0];
    assert_eq!(item["kind"], "repo_notification_disabled");
    assert_eq!(item["metadata"]["notification_uuid"], uuid.as_str());
    assert_eq!(item["metadata"]["repository"], "acme/web");
    s.stop().await;
}

#[backend_test]
async fn gone_disables_tells_admins_and_recover_sends_what_was_skipped(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let smtp = berth_testkit::smtp::SmtpReceiver::start();
    let port = smtp.port;
    let (s, root) = server(kind, true, |c| {
        c.mail.host = "127.0.0.1".into();
        c.mail.port = port;
        c.mail.tls = "none".into();
    })
    .await;
    let uuid = hook(&s, &root, &format!("{}/gone", rx.url)).await;
    let ops = json!({"event": "notification_disabled", "method": "webhook", "eventConfig": {},
                     "config": {"url": format!("{}/ops", rx.url)}});
    expect(s.post(N, &root, ops).await, 201);
    let before = Utc::now() - chrono::Duration::seconds(1);
    rx.respond_with(&[410]);
    let reg = s.reg("root", "rootpassword");
    reg.push_image("acme/web", "v1", b"layer one").await;
    rx.next(WAIT).await.expect("the first push is attempted");
    eventually(WAIT, || async {
        let n = view(&s, &root, &uuid).await;
        if n["enabled"] == false {
            Ok(())
        } else {
            Err(format!("410 disabled it: {n}"))
        }
    })
    .await;
    // Tooling subscribed to notification_disabled learns of it, target masked, without polling.
    let told = rx.next(WAIT).await.expect("notification_disabled is delivered");
    assert_eq!(
        (told.path.as_str(), told.headers["x-berth-event"].as_str()),
        ("/ops", "notification_disabled")
    );
    let told = told.json();
    assert_eq!(
        (&told["uuid"], &told["method"], &told["event"]),
        (&json!(uuid), &json!("webhook"), &json!("repo_push"))
    );
    assert_eq!(told["target"], format!("{}/gone", rx.url));
    assert!(told["reason"].as_str().unwrap().contains("410"), "{told}");
    let mail = smtp.next(WAIT).await.expect("the admin is mailed");
    assert_eq!(mail.header("to"), Some("root@example.com"));
    assert_eq!(
        mail.header("subject"),
        Some("[Berth] A notification of repository acme/web was disabled")
    );
    assert!(mail.text.unwrap().contains("410 response for webhook"));
    let bell = expect(s.get("/api/v1/user/notifications", &root).await, 200);
    assert_eq!(bell["notifications"][0]["kind"], "repo_notification_disabled");

    // While disabled, pushes are logged as skipped, not sent; recover needs it enabled first.
    reg.push_image("acme/web", "v2", b"layer two").await;
    reg.push_image("acme/web", "v3", b"layer three").await;
    assert!(rx.next(Duration::from_millis(500)).await.is_none());
    let skipped = expect(s.get(&format!("{N}{uuid}/deliveries?status=skipped"), &root).await, 200);
    assert_eq!(skipped["deliveries"].as_array().unwrap().len(), 2);
    let e = expect(
        s.post(
            &format!("{N}{uuid}/recover"),
            &root,
            json!({"since": before.to_rfc3339()}),
        )
        .await,
        400,
    );
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .starts_with("the notification is disabled"),
        "{e}"
    );

    // Reset, then recover: the failed push and both skipped ones arrive.
    expect(s.call(Method::POST, &format!("{N}{uuid}"), &root, None).await, 204);
    let r = expect(
        s.post(
            &format!("{N}{uuid}/recover"),
            &root,
            json!({"since": before.to_rfc3339()}),
        )
        .await,
        202,
    );
    assert_eq!(r["queued"], 3);
    let mut tags = Vec::new();
    for _ in 0..3 {
        tags.push(
            rx.next(WAIT).await.expect("a recovered delivery").json()["updated_tags"][0]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    tags.sort();
    assert_eq!(tags, ["v1", "v2", "v3"]);
    s.stop().await;
}

#[backend_test]
async fn a_hanging_endpoint_does_not_hold_up_healthy_ones(kind: berth_testkit::DbKind) {
    let dead = Receiver::start().await;
    let healthy = Receiver::start().await;
    dead.hang();
    let (s, root) = server(kind, true, |c| {
        c.notifications.per_host = 2;
        c.notifications.send_timeout_secs = 60;
        // The two requests to the dead endpoint never end: stopping waits this long for them.
        c.shutdown_grace_secs = 1;
    })
    .await;
    let to_dead = hook(&s, &root, &format!("{}/dead", dead.url)).await;
    let to_healthy = hook(&s, &root, &format!("{}/ok", healthy.url)).await;
    for _ in 0..6 {
        test_send(&s, &root, &to_dead).await;
    }
    for _ in 0..6 {
        test_send(&s, &root, &to_healthy).await;
    }
    for i in 0..6 {
        healthy
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("healthy delivery {i} is held up"));
    }
    let mut stuck = 0;
    while dead.next(Duration::from_millis(200)).await.is_some() {
        stuck += 1;
    }
    assert_eq!(stuck, 2, "at most per_host requests wait on the dead endpoint");
    s.stop().await;
}

#[backend_test]
async fn custom_headers_redirects_and_caps(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, true, |_| {}).await;
    let body = json!({"event": "repo_push", "method": "webhook", "eventConfig": {},
        "config": {"url": format!("{}/h", rx.url), "headers": {"Authorization": "Bearer s3cret"}}});
    let uuid = expect(s.post(N, &root, body).await, 201)["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    test_send(&s, &root, &uuid).await;
    let got = rx.next(WAIT).await.expect("a delivery");
    assert_eq!(got.headers["authorization"], "Bearer s3cret");
    let id = got.headers["webhook-id"].clone();
    let attempt = eventually(WAIT, || async {
        let one = expect(s.get(&format!("{N}{uuid}/deliveries/{id}"), &root).await, 200);
        if one["attempts"] == 1 {
            Ok(one["attempts_log"][0].clone())
        } else {
            Err(format!("the attempt is logged: {one}"))
        }
    })
    .await;
    assert!(
        attempt["request_headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["authorization", "***"])),
        "masked in the log: {attempt}"
    );
    assert!(!attempt.to_string().contains("s3cret"));

    // Redirects are not followed by default: a 307 is a failed delivery.
    rx.redirect_to(&format!("{}/moved", rx.url));
    test_send(&s, &root, &uuid).await;
    rx.next(WAIT).await.expect("the first request");
    assert!(rx.next(Duration::from_millis(500)).await.is_none(), "not followed");
    s.stop().await;

    // When allowed, each hop is followed only where the guard permits.
    let (s, root) = server(kind, true, |c| c.notifications.max_redirects = 2).await;
    let body = json!({"event": "repo_push", "method": "webhook", "eventConfig": {},
        "config": {"url": format!("{}/h", rx.url), "headers": {"Authorization": "Bearer s3cret"}}});
    let uuid = expect(s.post(N, &root, body).await, 201)["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    rx.redirect_to(&format!("{}/moved", rx.url));
    test_send(&s, &root, &uuid).await;
    assert_eq!(rx.next(WAIT).await.unwrap().path, "/h");
    let moved = rx.next(WAIT).await.unwrap();
    assert_eq!(moved.path, "/moved", "followed");
    // The same origin keeps the notification's headers and the signature.
    assert_eq!(moved.headers["authorization"], "Bearer s3cret");
    assert!(moved.headers.contains_key("webhook-signature"));
    // Another origin (another port) gets the delivery without them.
    let other = Receiver::start().await;
    rx.redirect_to(&format!("{}/elsewhere", other.url));
    test_send(&s, &root, &uuid).await;
    assert_eq!(rx.next(WAIT).await.unwrap().path, "/h");
    let hop = other.next(WAIT).await.expect("followed to the other origin");
    assert_eq!(hop.path, "/elsewhere");
    assert!(
        !hop.headers.contains_key("authorization") && !hop.headers.contains_key("webhook-signature"),
        "{:?}",
        hop.headers
    );
    assert!(hop.headers.contains_key("webhook-id"));
    // 301, 302 and 303 would turn the POST into a GET: not followed, and a failed attempt.
    for status in [301, 302, 303] {
        rx.redirect_with(status, &format!("{}/moved", rx.url));
        test_send(&s, &root, &uuid).await;
        let first = rx.next(WAIT).await.unwrap();
        assert_eq!(first.path, "/h");
        let id = &first.headers["webhook-id"];
        let one = eventually(WAIT, || async {
            let one = expect(s.get(&format!("{N}{uuid}/deliveries/{id}"), &root).await, 200);
            if one["attempts"].as_i64().unwrap_or(0) >= 1 {
                Ok(one)
            } else {
                Err(format!("the attempt is logged: {one}"))
            }
        })
        .await;
        assert_ne!(one["status"], "delivered", "{status}: {one}");
        assert_eq!(one["attempts_log"][0]["response_status"], status, "{one}");
        assert!(
            rx.next(Duration::from_millis(300))
                .await
                .filter(|r| r.path == "/moved")
                .is_none(),
            "{status} not followed"
        );
    }
    // 0.0.0.0 is not public and not allowed: refused before connecting.
    let port = rx.url.rsplit(':').next().unwrap().to_owned();
    rx.redirect_to(&format!("http://0.0.0.0:{port}/internal"));
    test_send(&s, &root, &uuid).await;
    assert_eq!(rx.next(WAIT).await.unwrap().path, "/h");
    assert!(
        rx.next(Duration::from_millis(500)).await.is_none(),
        "the refused hop is never requested"
    );
    s.stop().await;
}

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate with `openssl`.
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "2",
            "-subj",
            "/CN=berth-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    ]
    .concat());
    for (name, cn, ext) in [
        (
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "berth-client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        run(&[
            &["req"][..],
            &ec,
            &[
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }
}

/// An HTTPS receiver (Python's standard library) that requires a client certificate signed by the
/// test CA and appends `<path> <client CN>` to `<dir>/got` for each request.
fn mtls_receiver(dir: &std::path::Path) -> (std::process::Child, u16) {
    let script = r#"
import http.server, ssl, sys
port, d = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('content-length', 0)))
        cn = dict(x[0] for x in self.connection.getpeercert()['subject'])['commonName']
        with open(d + '/got', 'a') as f:
            f.write(f"{self.path} {cn}\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + '/server.pem', d + '/server.key')
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(d + '/ca.pem')
srv = http.server.HTTPServer(('127.0.0.1', port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let port = crate::binary::free_port();
    let child = std::process::Command::new(python)
        .args(["-c", script, &port.to_string(), dir.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    berth_testkit::eventually_blocking(WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("the TLS receiver did not start: {e}"))
    });
    (child, port)
}

#[backend_test]
async fn per_notification_ca_and_client_certificate(kind: berth_testkit::DbKind) {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let (mut receiver, port) = mtls_receiver(dir.path());
    let pem = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let got = || std::fs::read_to_string(dir.path().join("got")).unwrap_or_default();
    let (s, root) = server(kind, false, |_| {}).await;
    let url = format!("https://127.0.0.1:{port}");
    let create = |path: &str, tls: Value| json!({"event": "repo_push", "method": "webhook", "eventConfig": {}, "config": {"url": format!("{url}{path}"), "tls": tls}});

    // Bad settings are refused at creation, naming the problem.
    let e = expect(
        s.post(N, &root, create("/x", json!({"ca_pem": "not a pem"}))).await,
        400,
    );
    assert_eq!(
        e["detail"],
        "Invalid webhook TLS settings: ca_pem is not a PEM certificate"
    );
    let e = expect(
        s.post(N, &root, create("/x", json!({"client_cert_pem": pem("client.pem")})))
            .await,
        400,
    );
    assert_eq!(
        e["detail"],
        "Invalid webhook TLS settings: client_cert_pem and client_key_pem go together"
    );
    let e = expect(
        s.post(
            N,
            &root,
            create(
                "/x",
                json!({"client_cert_pem": pem("client.pem"), "client_key_pem": "junk"}),
            ),
        )
        .await,
        400,
    );
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("are not a PEM certificate and its key"),
        "{e}"
    );

    // Without the CA the server is not trusted; with only the CA, the server refuses us; with
    // both, the delivery arrives and the server saw our client certificate.
    let untrusted = expect(s.post(N, &root, create("/no-ca", json!(null))).await, 201)["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let anonymous = expect(
        s.post(N, &root, create("/no-cert", json!({"ca_pem": pem("ca.pem")})))
            .await,
        201,
    )["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mutual = expect(
        s.post(N, &root, create("/mtls", json!({"ca_pem": pem("ca.pem"), "client_cert_pem": pem("client.pem"), "client_key_pem": pem("client.key")}))).await,
        201,
    )["uuid"].as_str().unwrap().to_owned();
    for uuid in [&untrusted, &anonymous, &mutual] {
        test_send(&s, &root, uuid).await;
    }
    assert_eq!(s.app.deliver_due(Utc::now(), 10).await.unwrap(), 3);
    assert_eq!(got(), "/mtls berth-client\n");
    for (uuid, failures) in [(&untrusted, 1), (&anonymous, 1), (&mutual, 0)] {
        assert_eq!(view(&s, &root, uuid).await["number_of_failures"], failures, "{uuid}");
    }
    receiver.kill().unwrap();
    receiver.wait().unwrap();
    s.stop().await;
}

#[backend_test]
async fn a_flood_for_one_repository_leaves_room_for_others(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, false, |c| {
        c.notifications.per_repository = 2;
        c.notifications.max_in_flight = 2;
    })
    .await;
    s.org_with_repo(&root, "other", "api").await;
    let flood = hook(&s, &root, &format!("{}/flood", rx.url)).await;
    let body = json!({"event": "repo_push", "method": "webhook", "config": {"url": format!("{}/quiet", rx.url)}, "eventConfig": {}});
    let quiet = expect(
        s.post("/api/v1/repository/other/api/notification/", &root, body).await,
        201,
    )["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..30 {
        test_send(&s, &root, &flood).await;
    }
    expect(
        s.post(
            &format!("/api/v1/repository/other/api/notification/{quiet}/test"),
            &root,
            json!(null),
        )
        .await,
        200,
    );
    // FIFO would deliver the quiet repository's event 31st. The worker holds at most twice
    // max_in_flight (4): once the flood holds its share (2), the next claim looks past it and
    // finds the quiet one; in memory, the two take turns at their shared destination.
    let worker = Worker::start(&s);
    let mut paths = Vec::new();
    while paths.len() < 31 {
        paths.push(rx.next(WAIT).await.expect("every delivery arrives").path);
    }
    worker.stop().await;
    let quiet_at = paths.iter().position(|p| p == "/quiet");
    assert!(
        quiet_at.is_some_and(|i| i < 8),
        "the other repository goes among the first: {paths:?}"
    );
    s.stop().await;
}

/// What /metrics says of destination `dest` (`host:port`) for `metric`.
async fn destination_metric(s: &TestServer, metric: &str, dest: &str) -> Option<f64> {
    s.metric(&format!("{metric}{{destination=\"{dest}\"}}")).await
}

/// What pushes on acme/web say of their repository.
fn web(s: &TestServer) -> berth_notify::RepoContext<'_> {
    berth_notify::RepoContext {
        hostname: &s.hostname,
        scheme: "http",
        namespace: "acme",
        name: "web",
    }
}

/// Raises `n` pushes on acme/web at the application layer.
async fn raise_pushes(s: &TestServer, n: usize) {
    let ctx = web(s);
    // All at once, as concurrent pushes would: they commit in a few group commits, so a running
    // worker finds a backlog rather than one event at a time.
    let mut raising = tokio::task::JoinSet::new();
    for i in 0..n {
        let data = berth_notify::events::repo_push(&ctx, &[&format!("t{i}")], &[]);
        let app = s.app.clone();
        raising.spawn(async move {
            app.raise_event("acme", "web", berth_notify::EventKind::RepoPush, &data)
                .await
                .unwrap();
        });
    }
    raising.join_all().await;
}

#[backend_test]
async fn raised_events_are_answered_each_alone(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = server(kind, false, |_| {}).await;
    hook(&s, &root, &format!("{}/raised", rx.url)).await;
    s.org_with_repo(&root, "other", "quiet").await;
    let ctx = web(&s);
    // Raised all at once, so that they share group commits (several at once on PostgreSQL): a
    // missing repository fails its own event only, and a repository without notifications
    // queues nothing.
    let mut raising = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (namespace, name) = match i % 3 {
            0 => ("acme", "web"),
            1 => ("other", "quiet"),
            _ => ("acme", "missing"),
        };
        let data = berth_notify::events::repo_push(&ctx, &[&format!("t{i}")], &[]);
        let app = s.app.clone();
        raising.spawn(async move {
            let got = app
                .raise_event(namespace, name, berth_notify::EventKind::RepoPush, &data)
                .await;
            (name, got)
        });
    }
    for (name, got) in raising.join_all().await {
        match name {
            "web" => assert_eq!(got.unwrap(), 1),
            "quiet" => assert_eq!(got.unwrap(), 0),
            _ => assert!(
                matches!(got, Err(berth_app::AppError::NotFound(_))),
                "a missing repository: {got:?}"
            ),
        }
    }
    let worker = Worker::start(&s);
    let got = arrivals(&rx, 20).await;
    worker.stop().await;
    let mut tags: Vec<String> = got
        .iter()
        .map(|r| r.json()["updated_tags"][0].as_str().unwrap_or_default().to_owned())
        .collect();
    tags.sort_by_key(|t| t[1..].parse::<u32>().unwrap_or(u32::MAX));
    let expected: Vec<String> = (0..60).step_by(3).map(|i| format!("t{i}")).collect();
    assert_eq!(tags, expected, "each raised push arrives once");
    s.stop().await;
}

/// Waits for `n` arrivals.
async fn arrivals(rx: &Receiver, n: usize) -> Vec<Received> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        got.push(
            rx.next(WAIT)
                .await
                .unwrap_or_else(|| panic!("only {} of {n} deliveries arrived", got.len())),
        );
    }
    got
}

/// The destination's limit once the worker has published it (every 250 ms).
async fn limit_of(s: &TestServer, dest: &str) -> f64 {
    tokio::time::sleep(Duration::from_millis(600)).await;
    destination_metric(s, "berth_delivery_destination_limit", dest)
        .await
        .expect("the destination's limit is published")
}

#[backend_test]
async fn a_destination_that_slows_down_gets_fewer_slots_and_then_gets_them_back(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    // A global budget of 24: the limit can reach it quickly, and this one test process (server,
    // receiver and raisers, unoptimized) never queues so much that fast answers look slow.
    let (s, root) = server(kind, false, |c| c.notifications.max_in_flight = 24).await;
    hook(&s, &root, &format!("{}/adaptive", rx.url)).await;
    let dest = rx.url.trim_start_matches("http://").to_owned();
    // A backlog to a fast destination: the limit grows from its modest start.
    raise_pushes(&s, 300).await;
    let worker = Worker::start(&s);
    arrivals(&rx, 300).await;
    let fast = limit_of(&s, &dest).await;
    assert!(fast > 8.0, "a fast destination grows past the initial 8 slots: {fast}");
    // It slows down: fewer slots.
    rx.delay(Duration::from_millis(300));
    raise_pushes(&s, 100).await;
    arrivals(&rx, 100).await;
    let slow = limit_of(&s, &dest).await;
    assert!(slow < fast, "slowed down: {fast} -> {slow}");
    // It recovers: a new backlog, answered fast again, gets the slots back. (Raised after the
    // recovery, so that no request still in flight at the old pace counts against it.)
    rx.delay(Duration::ZERO);
    raise_pushes(&s, 600).await;
    arrivals(&rx, 600).await;
    let recovered = limit_of(&s, &dest).await;
    assert!(recovered > slow, "recovered: {slow} -> {recovered}");
    worker.stop().await;
    s.stop().await;
}

#[backend_test]
async fn retry_after_pauses_the_destination_not_only_the_job(kind: berth_testkit::DbKind) {
    // One request at a time to the destination, so that the others wait behind the first.
    let configure = |c: &mut berth_server::config::Config| {
        c.notifications.per_host = 1;
        c.notifications.retry_schedule_secs = vec![1];
    };
    for form in ["seconds", "date"] {
        let rx = Receiver::start().await;
        let (s, root) = server(kind, false, configure).await;
        hook(&s, &root, &format!("{}/{form}", rx.url)).await;
        let (value, pause) = if form == "seconds" {
            ("2".to_owned(), Duration::from_millis(1900))
        } else {
            // An HTTP date has whole seconds: three seconds ahead pauses for more than two.
            let at = std::time::SystemTime::now() + Duration::from_secs(3);
            (httpdate::fmt_http_date(at), Duration::from_millis(1900))
        };
        rx.respond_with_headers(503, &[("retry-after", &value)]);
        raise_pushes(&s, 3).await;
        let worker = Worker::start(&s);
        let got = arrivals(&rx, 4).await;
        worker.stop().await;
        let first = got[0].at;
        for later in &got[1..] {
            assert!(
                later.at.duration_since(first) >= pause,
                "{form}: a request reached the paused destination {:?} after the 503",
                later.at.duration_since(first)
            );
        }
        let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.headers["webhook-id"].as_str()).collect();
        assert_eq!(ids.len(), 3, "{form}: the three deliveries, the first twice");
        s.stop().await;
    }
}

#[backend_test]
async fn a_lost_claim_records_nothing(kind: berth_testkit::DbKind) {
    use berth_store::queue;
    let rx = Receiver::start().await;
    let (s, root) = server(kind, false, |_| {}).await;
    let uuid = hook(&s, &root, &format!("{}/held", rx.url)).await;
    rx.hold();
    rx.respond_with(&[500]);
    test_send(&s, &root, &uuid).await;
    let worker = Worker::start(&s);
    rx.next(WAIT).await.expect("the attempt is in flight");
    // Seen from two minutes on, its lease has run out: another worker takes the job over.
    let stolen = {
        let later = Utc::now() + chrono::Duration::minutes(2);
        let mut tx = s.app.store().begin().await.unwrap();
        let c = queue::claim(
            &mut tx,
            berth_core::JobQueue::Notification,
            later,
            later + chrono::Duration::minutes(1),
            10,
            "thief",
            &[],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        c
    };
    assert_eq!(stolen.len(), 1);
    // The first worker's answer (a 500) comes now: it must neither log the attempt nor count the
    // failure, nor move the job.
    rx.release();
    tokio::time::sleep(Duration::from_secs(1)).await;
    worker.stop().await;
    let n = view(&s, &root, &uuid).await;
    assert_eq!(n["number_of_failures"], 0, "{n}");
    let log = expect(s.get(&format!("{N}{uuid}/deliveries"), &root).await, 200);
    assert_eq!(log["deliveries"][0]["attempts"], 0, "{log}");
    assert_eq!(log["deliveries"][0]["status"], "pending", "{log}");
    let mut c = s.app.store().conn().await.unwrap();
    let jobs = queue::list(&mut c, berth_core::JobQueue::Notification).await.unwrap();
    assert_eq!((jobs.len(), jobs[0].attempt), (1, 2), "the job is the other worker's");
    drop(c);
    s.stop().await;
}
