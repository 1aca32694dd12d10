//! Crash safety and sharing, with the real `berth` binary as child processes:
//! - 1,000 queued deliveries, `kill -9` mid-flight, restart: every delivery id arrives at least
//!   once, and duplicates stay within what can be in flight (`max_in_flight`);
//! - SIGTERM while deliveries are in flight: they finish and are recorded before the process
//!   exits, the rest are handed back, and after a restart every id arrives exactly once;
//! - two processes on one PostgreSQL database drain a shared queue: every id exactly once, and
//!   both processes deliver.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::receiver::Receiver;
use berth_testkit::{DbKind, TestDb, backend_test};
use serde_json::json;

use crate::binary::{berth, free_port};
use crate::support::{Auth, TestServer, expect};

const IN_FLIGHT: usize = 16;

/// Queues `count` test sends to a webhook at `rx` on a fresh database, with this process's own
/// server (which does not deliver), and hands the database back.
async fn queue_deliveries(kind: DbKind, rx: &Receiver, count: usize) -> TestDb {
    let s = TestServer::start_with(kind, |c| {
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await;
    let init =
        json!({"username": "root", "password": "rootpassword", "email": "root@example.com", "access_token": true});
    let token = expect(s.post("/api/v1/user/initialize", &Auth::None, init).await, 200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A token, not a password: 1,000 requests must not each pay for a password hash.
    let root = Auth::Bearer(token);
    s.org_with_repo(&root, "acme", "web").await;
    let body = json!({"event": "repo_push", "method": "webhook", "config": {"url": format!("{}/hook", rx.url)}, "eventConfig": {}});
    let uuid = expect(
        s.post("/api/v1/repository/acme/web/notification/", &root, body).await,
        201,
    )["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..count {
        expect(
            s.post(
                &format!("/api/v1/repository/acme/web/notification/{uuid}/test"),
                &root,
                json!(null),
            )
            .await,
            200,
        );
    }
    s.stop_keeping_db().await
}

/// A `berth serve` child, killed when dropped (also when an assertion fails first).
pub(crate) struct Served(pub(crate) Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `berth serve` on the database, delivering, and waits until it is healthy.
pub(crate) fn serve(db: &TestDb) -> (Served, u16) {
    serve_with(db, &[])
}

/// [`serve`] with more settings in the environment.
pub(crate) fn serve_with(db: &TestDb, env: &[(&str, &str)]) -> (Served, u16) {
    let port = free_port();
    let child = berth()
        .envs(db.s3.iter().flat_map(berth_testkit::S3Place::env))
        .arg("serve")
        .env("BERTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("BERTH_DATABASE_URL", &db.url)
        .env("BERTH_DATA_DIR", db.dir())
        .env("BERTH_NOTIFICATIONS__ALLOWED_NETWORKS", "[\"127.0.0.0/8\"]")
        .env("BERTH_NOTIFICATIONS__MAX_IN_FLIGHT", IN_FLIGHT.to_string())
        .env("BERTH_NOTIFICATIONS__PER_HOST", IN_FLIGHT.to_string())
        // One notification carries every delivery here; let it use every slot of both processes.
        .env("BERTH_NOTIFICATIONS__PER_REPOSITORY", (2 * IN_FLIGHT).to_string())
        // Jobs of a killed process come back when their lease ends; keep it short here.
        .env("BERTH_NOTIFICATIONS__LEASE_SECS", "2")
        .env("BERTH_LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Held before waiting, so that a server that never answers is killed with the failed test.
    let served = Served(child);
    berth_testkit::eventually_blocking(Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("berth serve did not start: {e}"))
    });
    (served, port)
}

/// Collects deliveries until every one of `count` ids has arrived (bounded in time).
async fn collect(rx: &Receiver, seen: &mut HashMap<String, usize>, count: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while seen.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} deliveries arrived",
            seen.len()
        );
        if let Some(got) = rx.next(Duration::from_millis(500)).await {
            *seen.entry(got.headers["webhook-id"].clone()).or_default() += 1;
        }
    }
}

#[backend_test(s3)]
async fn kill_nine_mid_flight_loses_nothing(kind: berth_testkit::DbKind) {
    const COUNT: usize = 1000;
    let rx = Receiver::start().await;
    let db = queue_deliveries(kind, &rx, COUNT).await;
    let (mut first, _) = serve(&db);
    let mut seen: HashMap<String, usize> = HashMap::new();
    collect(&rx, &mut seen, 150, Duration::from_secs(120)).await;
    first.0.kill().unwrap(); // SIGKILL: no shutdown, leases left behind
    first.0.wait().unwrap();
    let at_kill = seen.len();
    assert!(
        at_kill < COUNT,
        "the kill came after everything was delivered; nothing was tested"
    );

    let (second, _) = serve(&db);
    collect(&rx, &mut seen, COUNT, Duration::from_secs(300)).await;
    drop(second);
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert_eq!(seen.len(), COUNT, "every delivery id arrived");
    assert!(
        duplicates <= IN_FLIGHT,
        "{duplicates} duplicates; at most {IN_FLIGHT} can be in flight at a kill"
    );
}

#[backend_test]
async fn sigterm_lets_deliveries_in_flight_finish(kind: berth_testkit::DbKind) {
    const COUNT: usize = 40;
    let rx = Receiver::start().await;
    let db = queue_deliveries(kind, &rx, COUNT).await;
    // Every answer takes two seconds: requests are in flight when the signal comes.
    rx.delay(Duration::from_secs(2));
    let (mut first, _) = serve(&db);
    let mut seen: HashMap<String, usize> = HashMap::new();
    collect(&rx, &mut seen, 4, Duration::from_secs(60)).await;
    let pid = first.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = first.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "berth serve did not stop after SIGTERM");
        // Requests that had started by now still arrive (and are answered) while it drains.
        if let Some(got) = rx.next(Duration::from_millis(100)).await {
            *seen.entry(got.headers["webhook-id"].clone()).or_default() += 1;
        }
    };
    assert!(status.success(), "a clean exit: {status:?}");
    while let Some(got) = rx.next(Duration::from_millis(300)).await {
        *seen.entry(got.headers["webhook-id"].clone()).or_default() += 1;
    }
    let sent: Vec<String> = seen.keys().cloned().collect();
    assert!(
        sent.len() < COUNT,
        "everything was sent before the signal; nothing was tested"
    );
    // What was in flight was recorded as delivered; everything else went back untouched.
    {
        let store = berth_store::Store::connect(&db.url, &berth_store::db::ConnectOptions::default())
            .await
            .unwrap();
        let mut c = store.conn().await.unwrap();
        let jobs = berth_store::queue::list(&mut c, berth_core::JobQueue::Notification)
            .await
            .unwrap();
        assert_eq!(
            jobs.len(),
            COUNT - sent.len(),
            "delivered jobs are done, the others are queued"
        );
        assert!(
            jobs.iter().all(|j| j.attempt == 0),
            "released jobs keep their attempts: {jobs:?}"
        );
        drop(c);
        store.close().await;
    }
    // After a restart, the rest arrive; nothing arrives twice.
    rx.delay(Duration::ZERO);
    let (second, _) = serve(&db);
    collect(&rx, &mut seen, COUNT, Duration::from_secs(120)).await;
    while let Some(got) = rx.next(Duration::from_millis(500)).await {
        *seen.entry(got.headers["webhook-id"].clone()).or_default() += 1;
    }
    drop(second);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
}

/// Two processes on one PostgreSQL database and one bucket drain together; one is killed with
/// SIGKILL in the middle, and the other finishes its work: every delivery id arrives.
#[tokio::test]
async fn the_surviving_instance_finishes_a_killed_ones_drain() {
    const COUNT: usize = 1000;
    let rx = Receiver::start().await;
    let db = berth_testkit::ON_S3
        .scope(true, queue_deliveries(DbKind::Postgres, &rx, COUNT))
        .await;
    let (mut a, _) = serve(&db);
    let (b, _) = serve(&db);
    let mut seen: HashMap<String, usize> = HashMap::new();
    collect(&rx, &mut seen, 150, Duration::from_secs(120)).await;
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    assert!(
        seen.len() < COUNT,
        "the kill came after everything was delivered; nothing was tested"
    );
    collect(&rx, &mut seen, COUNT, Duration::from_secs(300)).await;
    drop(b);
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    assert_eq!(seen.len(), COUNT, "every delivery id arrived");
    assert!(
        duplicates <= IN_FLIGHT,
        "{duplicates} duplicates; at most {IN_FLIGHT} can be in flight in the killed process"
    );
}

/// Two processes on one PostgreSQL database and one bucket split a drain, and no delivery id
/// arrives twice.
#[tokio::test]
async fn two_processes_share_one_postgres_queue() {
    const COUNT: usize = 600;
    let rx = Receiver::start().await;
    let db = berth_testkit::ON_S3
        .scope(true, queue_deliveries(DbKind::Postgres, &rx, COUNT))
        .await;
    let (a, port_a) = serve(&db);
    let (b, port_b) = serve(&db);
    let mut seen: HashMap<String, usize> = HashMap::new();
    collect(&rx, &mut seen, COUNT, Duration::from_secs(300)).await;
    // Nothing more trickles in: no delivery was sent twice.
    while let Some(got) = rx.next(Duration::from_millis(1000)).await {
        *seen.entry(got.headers["webhook-id"].clone()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    // Both processes took part.
    let client = reqwest::Client::new();
    for port in [port_a, port_b] {
        let metrics = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let delivered: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("berth_deliveries_total") && l.contains("outcome=\"delivered\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(
            delivered > 0.0,
            "the process on port {port} delivered nothing:\n{metrics}"
        );
    }
    drop((a, b));
}

/// Roles on one PostgreSQL database and one data directory: an `api` instance takes a push and a
/// test send and only enqueues their deliveries; a `worker` instance, which serves nothing but
/// health and metrics, delivers them.
#[tokio::test]
async fn an_api_instance_enqueues_and_a_worker_instance_delivers() {
    let rx = Receiver::start().await;
    let db = {
        let s = TestServer::start_on(TestDb::new(DbKind::Postgres).await, |c| {
            c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
        })
        .await;
        let root = s.init_root().await;
        s.org_with_repo(&root, "acme", "web").await;
        let body = json!({"event": "repo_push", "method": "webhook", "config": {"url": format!("{}/hook", rx.url)}, "eventConfig": {}});
        expect(
            s.post("/api/v1/repository/acme/web/notification/", &root, body).await,
            201,
        );
        s.stop_keeping_db().await
    };
    let (_api, api_port) = serve_with(&db, &[("BERTH_ROLE", "api")]);
    let (_worker, worker_port) = serve_with(&db, &[("BERTH_ROLE", "worker")]);
    let client = reqwest::Client::new();
    let get = |port: u16, path: &str| client.get(format!("http://127.0.0.1:{port}{path}")).send();
    assert_eq!(get(worker_port, "/health/instance").await.unwrap().status(), 200);
    assert_eq!(
        get(worker_port, "/api/v1/discovery").await.unwrap().status(),
        404,
        "a worker serves no API"
    );
    assert_eq!(get(worker_port, "/v2/").await.unwrap().status(), 404, "nor a registry");
    assert_eq!(get(api_port, "/api/v1/discovery").await.unwrap().status(), 200);
    // A push to the api instance: its repo_push is delivered by the worker instance.
    let base = format!("http://127.0.0.1:{api_port}");
    let reg = berth_testkit::registry::Reg {
        base: &base,
        client: &client,
        user: "root",
        pass: "rootpassword",
    };
    reg.push_image("acme/web", "v1", b"a layer").await;
    let got = rx
        .next(Duration::from_secs(30))
        .await
        .expect("the worker delivers the push");
    assert_eq!(got.json()["updated_tags"], json!(["v1"]));
}
