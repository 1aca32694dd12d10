//! Test support: a real Berth server on 127.0.0.1 with a fresh database of either backend, and a
//! small HTTP client that speaks its auth schemes.

use base64::Engine;
use berth_server::config::Config;
use berth_server::startup::Application;
use berth_testkit::{DbKind, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials.
    None,
    /// HTTP Basic.
    Basic(String, String),
    /// An access token.
    Bearer(String),
}

/// A running server.
pub struct TestServer {
    pub base: String,
    pub hostname: String,
    pub app: berth_app::App,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: TestDb,
}

impl TestServer {
    /// A registry client of this server, authenticated as `user`.
    pub fn reg<'a>(&'a self, user: &'a str, pass: &'a str) -> berth_testkit::registry::Reg<'a> {
        berth_testkit::registry::Reg {
            base: &self.base,
            client: &self.client,
            user,
            pass,
        }
    }

    /// Starts a server on a fresh database of `kind`.
    pub async fn start(kind: DbKind) -> TestServer {
        Self::start_with(kind, |_| {}).await
    }

    /// Starts a server whose configuration `configure` may change first.
    pub async fn start_with(kind: DbKind, configure: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_on(TestDb::new(kind).await, configure).await
    }

    /// Starts a server on an existing database and data directory (a restart).
    pub async fn start_on(db: TestDb, configure: impl FnOnce(&mut Config)) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config {
            listen: addr,
            server_hostname: Some(addr.to_string()),
            data_dir: db.dir().to_path_buf(),
            database_url: Some(db.url.clone()),
            ..Config::default()
        };
        // No delivery unless a test asks for it (and points it at its own loopback receiver):
        // tests never send traffic anywhere else.
        config.notifications.deliver = false;
        // No scanning unless a test asks for it: other tests push layers that are not tars.
        config.secscan.enabled = false;
        // No expiry pass unless a test asks for it: tests run it with their own clock.
        config.expiry.interval_secs = 0;
        if let Some(place) = &db.s3 {
            config.storage = s3_storage(place);
        }
        configure(&mut config);
        let application = Application::build_on(&config, listener).await.unwrap();
        let app = application.app().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(application.run_until(async move {
            let _ = rx.await;
        }));
        TestServer {
            base: format!("http://{addr}"),
            hostname: addr.to_string(),
            app,
            client: reqwest::Client::new(),
            stop: Some(tx),
            task: Some(task),
            db,
        }
    }

    /// Sends a request and returns the status and the body (JSON, or a string for other bodies).
    pub async fn call(&self, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        req = match auth {
            Auth::None => req,
            Auth::Basic(u, p) => req.header(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                ),
            ),
            Auth::Bearer(t) => req.bearer_auth(t),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> (StatusCode, Value) {
        self.call(Method::GET, path, auth, None).await
    }

    pub async fn post(&self, path: &str, auth: &Auth, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, auth, Some(body)).await
    }

    pub async fn put(&self, path: &str, auth: &Auth, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, auth, Some(body)).await
    }

    pub async fn delete(&self, path: &str, auth: &Auth) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, auth, None).await
    }

    /// The value of the first `/metrics` line that starts with `prefix` (a metric name with its
    /// labels, e.g. `berth_x_total{result="ok"}`).
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        let url = format!("{}/metrics", self.base);
        let text = self.client.get(url).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Initializes the instance with a superuser `root` and returns its Basic auth.
    pub async fn init_root(&self) -> Auth {
        let (status, body) = self
            .post(
                "/api/v1/user/initialize",
                &Auth::None,
                serde_json::json!({"username": "root", "password": "rootpassword", "email": "root@example.com"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        Auth::Basic("root".into(), "rootpassword".into())
    }

    /// Creates a user through the superuser API and returns its Basic auth.
    pub async fn user(&self, root: &Auth, name: &str) -> Auth {
        let (status, body) = self
            .post(
                "/api/v1/superuser/users/",
                root,
                serde_json::json!({"username": name, "email": format!("{name}@example.com")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        Auth::Basic(name.into(), body["password"].as_str().unwrap().into())
    }

    /// Stops the server and waits for it to finish.
    /// Creates organization `org` and its private repository `org/repo`, as `root`.
    pub async fn org_with_repo(&self, root: &Auth, org: &str, repo: &str) {
        expect(
            self.post("/api/v1/organization/", root, serde_json::json!({"name": org}))
                .await,
            201,
        );
        let body = serde_json::json!({"namespace": org, "repository": repo, "visibility": "private"});
        expect(self.post("/api/v1/repository", root, body).await, 201);
    }

    /// Creates the robot `<org>+<short>` of an organization.
    pub async fn robot(&self, root: &Auth, org: &str, short: &str) {
        let path = format!("/api/v1/organization/{org}/robots/{short}");
        expect(self.call(Method::PUT, &path, root, None).await, 201);
    }

    pub async fn stop(self) {
        drop(self.stop_keeping_db().await);
    }

    /// Stops the server and hands back its database, for a test that goes on with another process.
    pub async fn stop_keeping_db(mut self) -> TestDb {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.db
    }
}

/// Asserts a status, showing the body on failure.
#[track_caller]
pub fn expect(got: (StatusCode, Value), want: u16) -> Value {
    assert_eq!(got.0.as_u16(), want, "body: {}", got.1);
    got.1
}

/// Serves `body` to every request on a loopback port (a feed, an archive); returns the URL with
/// `path`.
pub async fn serve_bytes(body: Vec<u8>, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(&body).await;
        }
    });
    format!("http://{addr}{path}")
}

/// The logged deliveries of a notification once none is pending: `(delivery row id, status, event data)`.
pub async fn settled_deliveries(s: &TestServer, uuid: &str) -> Vec<(i64, String, serde_json::Value)> {
    let rows = berth_testkit::eventually(std::time::Duration::from_secs(240), || async {
        let mut c = s.app.store().conn().await.unwrap();
        let n = berth_store::notifications::by_uuid_any(&mut c, uuid)
            .await
            .unwrap()
            .unwrap();
        let rows = berth_store::deliveries::list(&mut c, n.id, None, 100, 0).await.unwrap();
        let pending = rows
            .iter()
            .filter(|d| d.status == berth_core::DeliveryStatus::Pending)
            .count();
        if pending == 0 {
            Ok(rows)
        } else {
            Err(format!("{pending} deliveries of {uuid} still pending"))
        }
    })
    .await;
    let mut out: Vec<(i64, String, serde_json::Value)> = rows
        .into_iter()
        .map(|d| {
            let body: serde_json::Value = serde_json::from_str(&d.body).expect("a JSON payload");
            (d.id, d.status.to_string(), body["event_data"].clone())
        })
        .collect();
    out.sort_by_key(|d| d.0);
    out
}

/// The `[storage]` section for blobs in `place`.
pub fn s3_storage(place: &berth_testkit::S3Place) -> berth_server::config::StorageConfig {
    berth_server::config::StorageConfig {
        kind: berth_server::config::StorageKind::S3,
        bucket: place.bucket.clone(),
        endpoint: place.endpoint.clone(),
        prefix: place.prefix.clone(),
        access_key_id: place.access_key.clone(),
        secret_access_key: place.secret_key.clone(),
        allow_http: true,
        ..Default::default()
    }
}

impl TestServer {
    /// Whether blob storage (a directory or the bucket) holds `digest`, asked of the store itself.
    pub async fn stored(&self, digest: &str) -> bool {
        let digest = berth_core::Digest::parse(digest).unwrap();
        let store = match &self.db.s3 {
            Some(place) => s3_storage(place).blob_store(self.db.dir()),
            None => berth_server::config::StorageConfig::default().blob_store(self.db.dir()),
        };
        store.unwrap().stat(&digest).await.unwrap().is_some()
    }

    /// How many objects or files uploads in progress have left in blob storage.
    pub async fn upload_leftovers(&self) -> usize {
        use futures_util::TryStreamExt as _;
        use object_store::ObjectStore as _;
        match &self.db.s3 {
            None => match std::fs::read_dir(self.db.dir().join("uploads")) {
                Ok(entries) => entries.count(),
                Err(_) => 0,
            },
            Some(place) => {
                let s3 = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&place.bucket)
                    .with_endpoint(&place.endpoint)
                    .with_allow_http(true)
                    .with_region("us-east-1")
                    .with_access_key_id(&place.access_key)
                    .with_secret_access_key(&place.secret_key)
                    .build()
                    .unwrap();
                let prefix = object_store::path::Path::from(format!("{}/uploads", place.prefix));
                let all: Vec<_> = s3.list(Some(&prefix)).try_collect().await.unwrap();
                all.len()
            }
        }
    }
}
