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

/// A fresh, empty database that disappears with this value.
pub struct TestDb {
    /// The URL to give Berth.
    pub url: String,
    /// Which backend it is.
    pub kind: DbKind,
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
        match kind {
            DbKind::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("berth.db").display());
                TestDb {
                    url,
                    kind,
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
