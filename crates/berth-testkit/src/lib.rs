//! Test support only (a dev-dependency): fresh databases for the SQLite/PostgreSQL matrix.
//!
//! Architecture invariant: this crate depends on no Berth crate but its own macros, so any Berth
//! crate can use it in its tests without a dependency cycle.
//!
//! - [`TestDb::new`] makes an empty database: a SQLite file in a temporary directory, or a new
//!   PostgreSQL database on the server named by `TEST_DATABASE_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), dropped again when the value is dropped.
//! - [`backend_test`] (`#[backend_test] async fn name(kind: DbKind)`) turns one async test into
//!   two, `…::sqlite` and `…::postgres`.
//!   The PostgreSQL variant fails, never skips, when the server is unreachable.
//! - [`receiver::Receiver`] is a real HTTP server on loopback that records deliveries.
//! - [`registry::Reg`] pushes blobs, manifests and images to a registry, as clients do.
//! - [`eventually`] waits for something a server does in the background, within a bound.

pub mod faulty;
pub mod receiver;
pub mod registry;
pub mod smtp;

use std::time::Duration;

use sqlx::Connection;

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// Polls `probe` every 50 ms until it answers `Ok`, and returns that value. Past `timeout`, the
/// test fails with the last `Err`, which says what was expected and what was seen. Use it for every
/// wait on background work: it cannot loop forever, and its failure says what was awaited.
pub async fn eventually<T, F, Fut>(timeout: std::time::Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(why) if std::time::Instant::now() >= deadline => panic!("not within {timeout:?}: {why}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

/// [`eventually`] for a test without a runtime (a child process starting or stopping): polls
/// every 50 ms on this thread, and fails past `timeout` with the last `Err`.
pub fn eventually_blocking<T>(timeout: std::time::Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(why) if std::time::Instant::now() >= deadline => panic!("not within {timeout:?}: {why}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// The PostgreSQL server tests use.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

tokio::task_local! {
    /// Set by the `s3` variant of `#[backend_test(s3)]`: databases made in its scope keep their
    /// blobs in the test S3 service.
    pub static ON_S3: bool;
}

/// A place of its own in the S3 service tests use: a fresh key prefix in one bucket.
/// `TEST_S3_ENDPOINT` (default `http://127.0.0.1:9200`, where `scripts/test` starts SeaweedFS),
/// `TEST_S3_BUCKET` (`berth-test`), `TEST_S3_ACCESS_KEY` and `TEST_S3_SECRET_KEY`
/// (`testkey`/`testsecret`) name it.
#[derive(Debug, Clone)]
pub struct S3Place {
    /// The service's URL.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// This place's key prefix.
    pub prefix: String,
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
}

impl S3Place {
    /// A fresh prefix in the test bucket.
    ///
    /// # Panics
    /// When the S3 service is unreachable: an S3 test must not silently skip.
    pub fn new() -> S3Place {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        let place = S3Place {
            endpoint: var("TEST_S3_ENDPOINT", "http://127.0.0.1:9200"),
            bucket: var("TEST_S3_BUCKET", "berth-test"),
            prefix: format!("t-{}", uuid::Uuid::new_v4().simple()),
            access_key: var("TEST_S3_ACCESS_KEY", "testkey"),
            secret_key: var("TEST_S3_SECRET_KEY", "testsecret"),
        };
        let host = place
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        if let Err(e) = std::net::TcpStream::connect(&host) {
            panic!(
                "the S3 service at {} is required for the s3 variant of this test (scripts/test starts SeaweedFS): {e}",
                place.endpoint
            );
        }
        place
    }

    /// The `BERTH_STORAGE__*` variables that point Berth here.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("KIND", "s3"),
            ("BUCKET", self.bucket.as_str()),
            ("ENDPOINT", self.endpoint.as_str()),
            ("PREFIX", self.prefix.as_str()),
            ("ACCESS_KEY_ID", self.access_key.as_str()),
            ("SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (format!("BERTH_STORAGE__{k}"), v.to_owned()))
        .collect()
    }
}

impl Default for S3Place {
    fn default() -> Self {
        S3Place::new()
    }
}

/// A fresh, empty database that disappears with this value, and where its blobs go: a directory
/// that disappears with it, or (made in the scope of [`ON_S3`]) a fresh place in the test S3
/// service.
pub struct TestDb {
    /// The URL to give Berth.
    pub url: String,
    /// Which backend it is.
    pub kind: DbKind,
    /// Where blobs go when they go to S3.
    pub s3: Option<S3Place>,
    dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    /// Makes a fresh database of the given kind.
    ///
    /// # Panics
    /// When PostgreSQL is unreachable: a storage test must not silently skip a backend.
    pub async fn new(kind: DbKind) -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let s3 = ON_S3.try_with(|on| *on).unwrap_or(false).then(S3Place::new);
        match kind {
            DbKind::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("berth.db").display());
                TestDb {
                    url,
                    kind,
                    s3,
                    dir,
                    pg_name: None,
                }
            }
            DbKind::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("berth_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = connect_pg(&admin).await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("CREATE DATABASE");
                let _ = conn.close().await;
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                let url = format!("{base}/{name}");
                TestDb {
                    url,
                    kind,
                    s3,
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// A directory that lives as long as the database, for blobs and other files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

async fn connect_pg(url: &str) -> sqlx::PgConnection {
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            panic!("PostgreSQL at {url} is required for the postgres variant of this test: {e}")
        }
        Err(_) => panic!("PostgreSQL at {url} did not answer within 10 s"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside any async context we can await in; use a short-lived runtime on a thread.
        let admin = postgres_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                        let _ = c.close().await;
                    }
                });
            }
        })
        .join();
    }
}

/// `#[backend_test]`: one async test, run once per backend (see `berth-testkit-macros`).
pub use berth_testkit_macros::backend_test;
