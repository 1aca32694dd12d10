//! Repository mirroring on both backends, against a real upstream: another Berth instance, whose
//! `/v2` takes the Bearer token flow. Quay's configuration API and its refusals, the `MIRROR` and
//! `READ_ONLY` states refusing pushes, a sync that copies the tags matching the globs (an index
//! narrowed to one architecture) with its events, `repo_push` under the robot's name, a tag
//! removed upstream removed here, and syncs that fail (wrong password, unreachable host).

use std::time::Duration;

use berth_testkit::backend_test;
use berth_testkit::receiver::{Received, Receiver};
use berth_testkit::registry::{OCI_INDEX, OCI_MANIFEST};
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

const WAIT: Duration = Duration::from_secs(30);
const MIRROR: &str = "/api/v1/repository/acme/mirror/mirror";

/// An upstream Berth with `up/app` (private): `v1.0`, `v1.1`, `latest`, `other`, and `multi`, an
/// index of an amd64 and an arm64 image.
async fn upstream(kind: berth_testkit::DbKind) -> (TestServer, Auth) {
    let u = TestServer::start(kind).await;
    let root = u.init_root().await;
    u.org_with_repo(&root, "up", "app").await;
    let reg = u.reg("root", "rootpassword");
    for tag in ["v1.0", "v1.1", "latest", "other"] {
        reg.push_image("up/app", tag, tag.as_bytes()).await;
    }
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (bytes, digest, _) = reg.push_image("up/app", &format!("only-{arch}"), arch.as_bytes()).await;
        children.push(json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": bytes.len(),
                             "platform": {"architecture": arch, "os": "linux"}}));
    }
    let index =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})).unwrap();
    assert_eq!(
        reg.push_manifest("up/app", "multi", OCI_INDEX, &index).await.status(),
        201
    );
    (u, root)
}

async fn hook(s: &TestServer, root: &Auth, event: &str, url: &str) {
    let body = json!({"event": event, "method": "webhook", "config": {"url": url}, "eventConfig": {}});
    expect(
        s.post("/api/v1/repository/acme/mirror/notification/", root, body).await,
        201,
    );
}

fn config(upstream: &TestServer, password: &str) -> Value {
    json!({
        "is_enabled": true,
        "external_reference": format!("{}/up/app", upstream.hostname),
        "external_registry_username": "root",
        "external_registry_password": password,
        "sync_interval": 86400,
        "sync_start_date": (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "robot_username": "acme+sync",
        "skopeo_timeout_interval": 300,
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["v1.*", "multi"]},
        "external_registry_config": {"verify_tls": false, "unsigned_images": false, "proxy": {}},
        "architecture_filter": ["amd64"],
    })
}

/// The digest `v1.0` of `repo` points at.
async fn head_digest(s: &TestServer, repo: &str) -> String {
    let reg = s.reg("root", "rootpassword");
    let r = reg
        .send(reqwest::Method::HEAD, &format!("/v2/{repo}/manifests/v1.0"))
        .await;
    r.headers()["docker-content-digest"].to_str().unwrap().to_owned()
}

/// Asks for a sync and waits for its `repo_mirror_sync_started`.
async fn sync_now_started(s: &TestServer, root: &Auth, events: &Receiver) {
    expect(s.post(&format!("{MIRROR}/sync-now"), root, json!(null)).await, 204);
    let started = events.next(WAIT).await.expect("repo_mirror_sync_started");
    assert_eq!(started.headers["x-berth-event"], "repo_mirror_sync_started");
}

/// Asks for a sync and waits for its two events, `repo_mirror_sync_started` and the end, which
/// are separate deliveries and may arrive in either order; returns (started, end).
async fn sync_now_ended(s: &TestServer, root: &Auth, events: &Receiver) -> (Value, Received) {
    expect(s.post(&format!("{MIRROR}/sync-now"), root, json!(null)).await, 204);
    let first = events.next(WAIT).await.expect("an event of the sync");
    let second = events.next(WAIT).await.expect("the other event of the sync");
    let (started, end) = if first.headers["x-berth-event"] == "repo_mirror_sync_started" {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(started.headers["x-berth-event"], "repo_mirror_sync_started");
    (started.json(), end)
}

async fn local_tags(s: &TestServer) -> Vec<String> {
    s.reg("root", "rootpassword").tags("acme/mirror").await
}

#[backend_test]
async fn a_mirror_copies_matching_tags_from_another_registry(kind: berth_testkit::DbKind) {
    let (up, up_root) = upstream(kind).await;
    let s = TestServer::start_with(kind, |c| {
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
        c.notifications.deliver = true;
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "mirror").await;
    s.robot(&root, "acme", "sync").await;
    let (events, pushes, deleted) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    for event in [
        "repo_mirror_sync_started",
        "repo_mirror_sync_success",
        "repo_mirror_sync_failed",
    ] {
        hook(&s, &root, event, &events.url).await;
    }
    hook(&s, &root, "repo_push", &pushes.url).await;
    hook(&s, &root, "tag_deleted", &deleted.url).await;

    // The states: a mirror and a read-only repository refuse users' pushes.
    let state = |st: &'static str| json!({ "state": st });
    let reg = s.reg("root", "rootpassword");
    for st in ["MIRROR", "READ_ONLY"] {
        let changed = expect(
            s.put("/api/v1/repository/acme/mirror/changestate", &root, state(st))
                .await,
            200,
        );
        assert_eq!(changed["state"], st);
        let r = reg.push_manifest("acme/mirror", "mine", OCI_MANIFEST, b"{}").await;
        assert_eq!(r.status(), 403, "{st}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("DENIED") && body.contains(if st == "MIRROR" { "mirror" } else { "read-only" }),
            "{body}"
        );
    }
    let e = expect(
        s.put("/api/v1/repository/acme/mirror/changestate", &root, state("SOMETIMES"))
            .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("state"), "{e}");
    expect(
        s.put("/api/v1/repository/acme/mirror/changestate", &root, state("MIRROR"))
            .await,
        200,
    );
    let repo = expect(s.get("/api/v1/repository/acme/mirror", &root).await, 200);
    assert_eq!(repo["state"], "MIRROR");

    // The configuration: checked field by field; the password is never shown.
    expect(s.get(MIRROR, &root).await, 404);
    for (field, bad) in [
        ("external_reference", json!("not a reference")),
        ("external_reference", json!("10.0.0.1/x/y")),
        ("sync_interval", json!(-5)),
        ("sync_start_date", json!("tomorrow")),
        ("robot_username", json!("acme+nobody")),
        ("skopeo_timeout_interval", json!(100)),
        ("root_rule", json!({"rule_kind": "tag_glob_csv", "rule_value": []})),
        ("architecture_filter", json!(["sparc"])),
        ("external_registry_config", json!({"verify_tls": "no"})),
    ] {
        let mut body = config(&up, "rootpassword");
        body[field] = bad.clone();
        let e = expect(s.post(MIRROR, &root, body).await, 400);
        assert!(e["detail"].as_str().unwrap().contains(field), "{field} {bad}: {e}");
    }
    let made = expect(s.post(MIRROR, &root, config(&up, "rootpassword")).await, 201);
    assert_eq!(
        (made["sync_status"].as_str(), made["robot_username"].as_str()),
        (Some("NEVER_RUN"), Some("acme+sync"))
    );
    assert!(made.get("external_registry_password").is_none(), "{made}");
    assert!(!made.to_string().contains("rootpassword"), "{made}");
    expect(s.post(MIRROR, &root, config(&up, "rootpassword")).await, 409);

    // Sync now: the matching tags arrive (not `latest` or `other`), the index narrowed to amd64.
    let (started, done) = sync_now_ended(&s, &root, &events).await;
    let message = format!("'{}/up/app' with tag pattern 'v1.*,multi'", up.hostname);
    assert_eq!(started["message"], message.as_str());
    assert_eq!(
        done.headers["x-berth-event"],
        "repo_mirror_sync_success",
        "{}",
        String::from_utf8_lossy(&done.body)
    );
    assert_eq!(local_tags(&s).await, ["multi", "v1.0", "v1.1"]);
    let index: Value = reg
        .req(reqwest::Method::GET, "/v2/acme/mirror/manifests/multi")
        .header("accept", OCI_INDEX)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64"]);
    // The same bytes as upstream for a plain image.
    assert_eq!(head_digest(&s, "acme/mirror").await, head_digest(&up, "up/app").await);
    let mut pushed = Vec::new();
    for _ in 0..3 {
        let p = pushes.next(WAIT).await.expect("repo_push for each synced tag").json();
        pushed.push(p["updated_tags"][0].as_str().unwrap().to_owned());
    }
    pushed.sort();
    assert_eq!(pushed, ["multi", "v1.0", "v1.1"]);
    let status = expect(s.get(MIRROR, &root).await, 200);
    assert_eq!(
        (
            status["sync_status"].as_str(),
            status["sync_retries_remaining"].as_i64()
        ),
        (Some("SUCCESS"), Some(3))
    );
    assert!(
        status["last_log"].as_str().unwrap().contains("v1.1: sha256:"),
        "{status}"
    );

    // A tag removed upstream is removed here.
    expect(up.delete("/api/v1/repository/up/app/tag/v1.0", &up_root).await, 204);
    let (_, done) = sync_now_ended(&s, &root, &events).await;
    assert_eq!(done.headers["x-berth-event"], "repo_mirror_sync_success");
    assert_eq!(local_tags(&s).await, ["multi", "v1.1"]);
    let gone = deleted.next(WAIT).await.expect("tag_deleted").json();
    assert_eq!(
        (&gone["tag"], &gone["performer"]),
        (&json!("v1.0"), &json!("acme+sync"))
    );

    // A sync cancelled while it runs stops before its next tag, and says so.
    let held = berth_app::failpoint::MIRROR_HOLD_BEFORE_TAG;
    s.app.failpoints().set(held, true);
    expect(up.delete("/api/v1/repository/up/app/tag/v1.1", &up_root).await, 204);
    sync_now_started(&s, &root, &events).await;
    assert_eq!(expect(s.get(MIRROR, &root).await, 200)["sync_status"], "SYNCING");
    let busy = expect(s.post(&format!("{MIRROR}/sync-now"), &root, json!(null)).await, 409);
    assert!(busy["detail"].as_str().unwrap().contains("running"), "{busy}");
    expect(s.post(&format!("{MIRROR}/sync-cancel"), &root, json!(null)).await, 204);
    s.app.failpoints().set(held, false);
    let cancelled = events.next(WAIT).await.unwrap();
    assert_eq!(cancelled.headers["x-berth-event"], "repo_mirror_sync_failed");
    assert_eq!(cancelled.json()["message"], format!("{message}: cancelled"));
    assert_eq!(expect(s.get(MIRROR, &root).await, 200)["sync_status"], "CANCEL");
    assert_eq!(
        local_tags(&s).await,
        ["multi", "v1.1"],
        "the cancelled sync removed nothing"
    );

    // A wrong password: the sync fails, says why, and counts down its retries.
    expect(
        s.put(MIRROR, &root, json!({"external_registry_password": "wrong"}))
            .await,
        201,
    );
    let (_, failed) = sync_now_ended(&s, &root, &events).await;
    assert_eq!(failed.headers["x-berth-event"], "repo_mirror_sync_failed");
    let why = failed.json()["message"].as_str().unwrap().to_owned();
    assert!(why.starts_with(&message) && why.contains("password"), "{why}");
    let status = expect(s.get(MIRROR, &root).await, 200);
    assert_eq!(
        (
            status["sync_status"].as_str(),
            status["sync_retries_remaining"].as_i64()
        ),
        (Some("FAIL"), Some(2))
    );
    assert_eq!(local_tags(&s).await, ["multi", "v1.1"], "a failed sync changes nothing");

    // An upstream that does not answer.
    let nowhere = json!({"external_reference": "127.0.0.1:1/up/app", "external_registry_password": "rootpassword"});
    expect(s.put(MIRROR, &root, nowhere).await, 201);
    let (_, failed) = sync_now_ended(&s, &root, &events).await;
    assert_eq!(failed.headers["x-berth-event"], "repo_mirror_sync_failed");
    assert!(
        failed.json()["message"].as_str().unwrap().contains("does not answer"),
        "{}",
        failed.json()
    );

    // Cancel: the status says so, and nobody but an admin may touch the mirror.
    expect(s.post(&format!("{MIRROR}/sync-cancel"), &root, json!(null)).await, 204);
    assert_eq!(expect(s.get(MIRROR, &root).await, 200)["sync_status"], "CANCEL");
    let eve = s.user(&root, "eve").await;
    expect(s.get(MIRROR, &eve).await, 404);
    expect(
        s.post(&format!("{MIRROR}/sync-now"), &Auth::None, json!(null)).await,
        401,
    );
    s.stop().await;
    up.stop().await;
}

/// A Distribution registry (Debian's `docker-registry`) on loopback, with htpasswd Basic auth for
/// `puller` when `basic` is set; killed when dropped.
struct Distribution {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Distribution {
    fn start(basic: bool) -> Distribution {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::binary::free_port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.path().join("data").display()
        );
        if basic {
            let file = dir.path().join("htpasswd");
            let made = std::process::Command::new("htpasswd")
                .args(["-Bbc", file.to_str().unwrap(), "puller", "pullerpassword"])
                .output()
                .expect("htpasswd (apache2-utils) is installed by scripts/test");
            assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
            config.push_str(&format!(
                "auth: {{htpasswd: {{realm: mirror-test, path: {}}}}}\n",
                file.display()
            ));
        }
        let path = dir.path().join("config.yml");
        std::fs::write(&path, config).unwrap();
        let child = std::process::Command::new("docker-registry")
            .args(["serve", path.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry is installed by scripts/test");
        let d = Distribution {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        berth_testkit::eventually_blocking(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("docker-registry did not start: {e}"))
        });
        d
    }
}

#[backend_test]
async fn a_mirror_syncs_from_distribution_anonymous_and_with_basic_auth(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| {
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
        c.notifications.deliver = true;
    })
    .await;
    let root = s.init_root().await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    s.robot(&root, "acme", "sync").await;
    for basic in [false, true] {
        let upstream = Distribution::start(basic);
        let client = reqwest::Client::new();
        let reg = berth_testkit::registry::Reg {
            base: &upstream.base,
            client: &client,
            user: "puller",
            pass: "pullerpassword",
        };
        let probe = client
            .get(format!("{}/v2/", upstream.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            probe,
            if basic { 401 } else { 200 },
            "the upstream asks for Basic auth or nothing"
        );
        for tag in ["3.20", "3.21", "edge"] {
            reg.push_image("library/alpine", tag, format!("{tag}-{basic}").as_bytes())
                .await;
        }
        let name = if basic { "basic" } else { "anonymous" };
        let body = json!({"namespace": "acme", "repository": name, "visibility": "private"});
        expect(s.post("/api/v1/repository", &root, body).await, 201);
        let base = format!("/api/v1/repository/acme/{name}");
        expect(
            s.put(&format!("{base}/changestate"), &root, json!({"state": "MIRROR"}))
                .await,
            200,
        );
        let events = Receiver::start().await;
        let hook = json!({"event": "repo_mirror_sync_success", "method": "webhook", "config": {"url": events.url}, "eventConfig": {}});
        expect(s.post(&format!("{base}/notification/"), &root, hook).await, 201);
        let mut config = json!({
            "is_enabled": true,
            "external_reference": format!("{}/library/alpine", upstream.base.trim_start_matches("http://")),
            "sync_interval": 3600,
            "sync_start_date": "2026-01-01T00:00:00Z",
            "robot_username": "acme+sync",
            "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["3.*"]},
            "external_registry_config": {"verify_tls": false},
        });
        if basic {
            config["external_registry_username"] = json!("puller");
            config["external_registry_password"] = json!("pullerpassword");
        }
        // A start date in the past: the first sync is due at once.
        expect(s.post(&format!("{base}/mirror"), &root, config).await, 201);
        let done = events.next(WAIT).await.expect("repo_mirror_sync_success");
        assert_eq!(done.json()["repository"], format!("acme/{name}"));
        let tags = s.reg("root", "rootpassword").tags(&format!("acme/{name}")).await;
        assert_eq!(tags, ["3.20", "3.21"], "{name}");
        let status = expect(s.get(&format!("{base}/mirror"), &root).await, 200);
        assert_eq!(status["sync_status"], "SUCCESS", "{status}");
    }
    s.stop().await;
}

/// A proxy to a registry that holds every blob download while its gate is shut, and says when one
/// arrives: a sync can be caught in the middle.
struct GatedProxy {
    addr: std::net::SocketAddr,
    gate: tokio::sync::watch::Sender<bool>,
    blob_seen: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<()>>,
}

impl GatedProxy {
    async fn start(upstream: String) -> GatedProxy {
        let (gate, open) = tokio::sync::watch::channel(false);
        let (seen, blob_seen) = tokio::sync::mpsc::unbounded_channel();
        let client = reqwest::Client::new();
        let forward = move |req: axum::extract::Request| {
            let (client, upstream, mut open, seen) = (client.clone(), upstream.clone(), open.clone(), seen.clone());
            async move {
                let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                if path.contains("/blobs/sha256:") {
                    let _ = seen.send(());
                    let _ = open.wait_for(|o| *o).await;
                }
                let mut out = client.request(req.method().clone(), format!("{upstream}{path}"));
                for (k, v) in req.headers() {
                    if k != "host" {
                        out = out.header(k, v);
                    }
                }
                let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
                let answer = out.body(body).send().await.expect("the upstream answers");
                let mut response = axum::http::Response::builder().status(answer.status().as_u16());
                for (k, v) in answer.headers() {
                    if k != "transfer-encoding" && k != "connection" && k != "content-length" {
                        response = response.header(k.as_str(), v.as_bytes());
                    }
                }
                let bytes = answer.bytes().await.unwrap_or_default();
                response.body(axum::body::Body::from(bytes)).unwrap()
            }
        };
        let app = axum::Router::new().fallback(forward);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        GatedProxy {
            addr,
            gate,
            blob_seen: tokio::sync::Mutex::new(blob_seen),
        }
    }
}

#[backend_test]
async fn a_sync_killed_mid_copy_shows_nothing_half_copied_and_is_taken_over(kind: berth_testkit::DbKind) {
    let (up, _) = upstream(kind).await;
    let proxy = GatedProxy::start(up.base.clone()).await;
    // The mirror's database, set up by a server that then stops.
    let db = {
        let s = TestServer::start_with(kind, |c| c.notifications.allowed_networks = vec!["127.0.0.0/8".into()]).await;
        let root = s.init_root().await;
        s.org_with_repo(&root, "acme", "mirror").await;
        s.robot(&root, "acme", "sync").await;
        expect(
            s.put(
                "/api/v1/repository/acme/mirror/changestate",
                &root,
                json!({"state": "MIRROR"}),
            )
            .await,
            200,
        );
        let mut body = config(&up, "rootpassword");
        body["external_reference"] = json!(format!("{}/up/app", proxy.addr));
        body["root_rule"]["rule_value"] = json!(["v1.*"]);
        expect(s.post(MIRROR, &root, body).await, 201);
        s.stop_keeping_db().await
    };
    let lease = [("BERTH_MIRROR__LEASE_SECS", "2")];
    let client = reqwest::Client::new();
    let api = |port: u16, method: reqwest::Method, path: &str| {
        client
            .request(method, format!("http://127.0.0.1:{port}{path}"))
            .basic_auth("root", Some("rootpassword"))
    };
    let (first, port) = crate::crash::serve_with(&db, &lease);
    let r = api(port, reqwest::Method::POST, &format!("{MIRROR}/sync-now"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Caught downloading its first blob, the process is killed.
    tokio::time::timeout(WAIT, proxy.blob_seen.lock().await.recv())
        .await
        .expect("the sync reaches a blob");
    drop(first);
    {
        let store = berth_store::Store::connect(&db.url, &Default::default()).await.unwrap();
        let mut c = store.conn().await.unwrap();
        let repo = berth_store::repos::by_path(&mut c, "acme", "mirror")
            .await
            .unwrap()
            .unwrap();
        assert!(
            berth_store::registry::tags(&mut c, repo.id, None, 10)
                .await
                .unwrap()
                .is_empty(),
            "nothing half-copied is visible"
        );
        let m = berth_store::mirrors::get(&mut c, repo.id).await.unwrap().unwrap();
        assert_eq!(m.sync_status, "SYNCING");
        drop(c);
        store.close().await;
    }
    // Another process takes the sync over once the dead one's lease ends, and completes it.
    let _ = proxy.gate.send(true);
    let (_second, port) = crate::crash::serve_with(&db, &lease);
    let status = berth_testkit::eventually(Duration::from_secs(90), || async {
        let m: Value = api(port, reqwest::Method::GET, MIRROR)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if m["sync_status"] == "SUCCESS" {
            Ok(m)
        } else {
            Err(format!("still {}", m["sync_status"]))
        }
    })
    .await;
    assert!(
        status["last_log"].as_str().unwrap().contains("v1.1: sha256:"),
        "{status}"
    );
    let base = format!("http://127.0.0.1:{port}");
    let on_second = berth_testkit::registry::Reg {
        base: &base,
        client: &client,
        user: "root",
        pass: "rootpassword",
    };
    assert_eq!(on_second.tags("acme/mirror").await, ["v1.0", "v1.1"]);
    up.stop().await;
}
