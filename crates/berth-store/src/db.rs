//! Connections to SQLite or PostgreSQL behind one type, and the [`run!`] macro that expands the same
//! query once per backend.
//!
//! SQLite runs in WAL mode with one writer connection (all transactions) and a separate read pool,
//! which removes `SQLITE_BUSY` storms; one SQLite file serves one process. A connection of its own
//! copies the write-ahead log into the database shortly after each write (checkpoints, at most
//! every 50 ms, none while nothing is written), so that commits never wait for the disk and the
//! log stays small. PostgreSQL uses one pool
//! and may be shared by several processes, plus a small pool for the delivery worker whose commits
//! do not wait for the disk (`synchronous_commit = off`, see [`Store::begin_relaxed`]).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::{Result, StoreError};

/// Runs `$body` with `$c` bound to the backend's connection; the body is the same text for both.
macro_rules! run {
    ($ex:expr, $c:ident => $body:expr) => {
        match $crate::db::Exec::handle($ex) {
            $crate::db::Handle::Sqlite($c) => $body,
            $crate::db::Handle::Postgres($c) => $body,
        }
    };
}
pub(crate) use run;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Tells the backend from a database URL (`sqlite:` or `postgres:`/`postgresql:`).
    pub fn of_url(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::InvalidUrl(format!(
                "'{}' must start with sqlite: or postgres://",
                redact_url(url)
            )))
        }
    }
}

/// The file a SQLite URL names, as [`Store::connect`] reads it (`None` for PostgreSQL, an
/// in-memory database, or a URL it cannot read).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if Backend::of_url(url).ok()? != Backend::Sqlite || in_memory {
        return None;
    }
    let path = SqliteConnectOptions::from_str(url).ok()?.get_filename().to_path_buf();
    (!path.as_os_str().is_empty()).then_some(path)
}

/// Hides the password of a URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A PostgreSQL connection that sat in the pool longer than this is pinged before it is handed
/// out (a server restart or an idle-session timeout may have closed it). One in steady use is not:
/// sqlx's default pings on every acquire, a round trip that cost a quarter of a millisecond before
/// every transaction and read (a tenth of a raised event's time), and sqlx already pings each
/// connection as it goes back to the pool, off the caller's path.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Pool options for PostgreSQL: connections idle for [`PING_AFTER_IDLE`] are pinged on acquire.
fn pg_pool(max: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Pool options for SQLite: an embedded database's connection cannot be closed under us, so it
/// is never pinged on acquire (each ping is a hop to the connection's thread).
fn sqlite_pool(max: u32, acquire_timeout: Duration) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
}

/// How long after a write SQLite's write-ahead log is checkpointed in the background (what is
/// written meanwhile goes into the same checkpoint). Small, because a checkpoint's cost grows
/// with the log: at thousands of commits a second, checkpoints twice a second copied and synced
/// tens of megabytes each and stalled deliveries for up to 60 ms; every 50 ms they stay small.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);
/// Past this many pages in the write-ahead log (64 MiB), the writer checkpoints by itself: the
/// backstop for a background checkpointer that falls behind.
const WAL_BACKSTOP_PAGES: &str = "16384";

#[derive(Clone)]
enum Pools {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
        checkpointer: SqlitePool,
        /// Signalled by every commit of the writer: the checkpointer has something to copy.
        wrote: Arc<tokio::sync::Notify>,
    },
    Postgres {
        main: PgPool,
        /// The worker's connections, with `synchronous_commit = off`.
        relaxed: PgPool,
    },
}

/// The metadata store: a handle to the database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    pools: Pools,
    /// The periodic jobs this process runs now (see [`Store::try_exclusive`]).
    running: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    /// This process's side of the blob locks (see [`Store::lock_blob`]), striped by digest.
    blob_stripes: Arc<[Arc<tokio::sync::Mutex<()>>]>,
}

/// How many in-process mutexes the blob locks are spread over.
const BLOB_STRIPES: usize = 64;
/// The class of blob locks in PostgreSQL's two-key advisory lock space (periodic jobs use the
/// one-key space, which is separate): "Blob".
const BLOB_LOCK_CLASS: i32 = 0x426c_6f62;

/// A digest's key among the blob locks (FNV-1a: stable across processes and versions).
fn blob_lock_key(digest: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in digest.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// Options for [`Store::connect`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Most connections in the (read) pool.
    pub max_connections: u32,
    /// How long to wait for a lock or a connection.
    pub busy_timeout: Duration,
    /// Connections of the delivery worker's own pool on PostgreSQL (claims, lease renewal, and the
    /// group commit of attempts run side by side without waiting for request handlers).
    pub worker_connections: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            busy_timeout: Duration::from_secs(5),
            worker_connections: 4,
        }
    }
}

impl Store {
    /// Connects to `url`, creating a SQLite file if it does not exist. Does not migrate.
    pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<Store> {
        let pools = match Backend::of_url(url)? {
            Backend::Sqlite => {
                let base = SqliteConnectOptions::from_str(url)
                    .map_err(|e| StoreError::InvalidUrl(format!("{}: {e}", redact_url(url))))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(opts.busy_timeout);
                let writer = sqlite_pool(1, opts.busy_timeout * 2)
                    .connect_with(base.clone().pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES))
                    .await?;
                let checkpointer = sqlite_pool(1, opts.busy_timeout * 2).connect_with(base.clone()).await?;
                let wrote = Arc::new(tokio::sync::Notify::new());
                spawn_checkpointer(checkpointer.clone(), wrote.clone());
                let reader = sqlite_pool(opts.max_connections, opts.busy_timeout * 2)
                    .connect_with(base.read_only(true))
                    .await?;
                Pools::Sqlite {
                    writer,
                    reader,
                    checkpointer,
                    wrote,
                }
            }
            Backend::Postgres => {
                let o = PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::InvalidUrl(format!("{}: {e}", redact_url(url))))?;
                let main = pg_pool(opts.max_connections, opts.busy_timeout * 2)
                    .connect_with(o.clone())
                    .await?;
                // Connected lazily: API-only instances never open these. The worker's batch
                // statements join arrays against tables that grow from nothing (the queue, the
                // delivery log); a generic plan cached while they were small (a sequential scan
                // and a hash join) would be kept as they grow, turning each batch into a scan of
                // the whole table. On these connections the planner takes index paths and nested
                // loops whenever there are any, so the cached plan is right at every size, and
                // the statements are not planned again on each run (planning for each batch was
                // a sixth of PostgreSQL's time at 10,000 deliveries/s).
                let relaxed =
                    pg_pool(opts.worker_connections.max(1), opts.busy_timeout * 2).connect_lazy_with(o.options([
                        ("synchronous_commit", "off"),
                        ("enable_seqscan", "off"),
                        ("enable_hashjoin", "off"),
                        ("enable_mergejoin", "off"),
                    ]));
                Pools::Postgres { main, relaxed }
            }
        };
        Ok(Store {
            pools,
            running: Arc::default(),
            blob_stripes: (0..BLOB_STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        })
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Whether this store runs on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.backend() == Backend::Postgres
    }

    /// On PostgreSQL, listens on the queue channel and signals `wake` on every notification (a job
    /// committed by any process). Returns when the connection is lost; on SQLite, at once.
    pub async fn listen_queue(&self, wake: &tokio::sync::Notify) -> Result<()> {
        let Pools::Postgres { main: pool, .. } = &self.pools else {
            return Ok(());
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(crate::queue::CHANNEL).await?;
        loop {
            listener.recv().await?;
            wake.notify_one();
        }
    }

    /// Applies the pending migrations of this backend's directory.
    pub async fn migrate(&self) -> Result<()> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => sqlx::migrate!("./migrations/sqlite").run(writer).await?,
            Pools::Postgres { main, .. } => sqlx::migrate!("./migrations/postgres").run(main).await?,
        }
        Ok(())
    }

    /// Whether every migration known to this binary has been applied.
    pub async fn is_migrated(&self) -> Result<bool> {
        let known = match self.backend() {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").iter().count(),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").iter().count(),
        };
        let mut c = self.conn().await?;
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let applied = run!(&mut c, c => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await);
        match applied {
            Ok(n) => Ok(usize::try_from(n).is_ok_and(|n| n >= known)),
            // No migration table yet: nothing applied.
            Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// A connection for reads.
    pub async fn conn(&self) -> Result<Conn> {
        Ok(match &self.pools {
            Pools::Sqlite { reader, .. } => Conn::Sqlite(reader.acquire().await?),
            Pools::Postgres { main, .. } => Conn::Postgres(main.acquire().await?),
        })
    }

    /// A connection for the delivery worker's reads: on PostgreSQL from its own pool, whose
    /// statements are planned afresh each time (see [`Store::begin_relaxed`]); on SQLite a reader.
    pub async fn conn_relaxed(&self) -> Result<Conn> {
        Ok(match &self.pools {
            Pools::Sqlite { reader, .. } => Conn::Sqlite(reader.acquire().await?),
            Pools::Postgres { relaxed, .. } => Conn::Postgres(relaxed.acquire().await?),
        })
    }

    /// Starts a transaction; every write goes through one.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match &self.pools {
            Pools::Sqlite { writer, wrote, .. } => Tx::new(TxInner::Sqlite(writer.begin().await?, wrote.clone())),
            Pools::Postgres { main, .. } => Tx::new(TxInner::Postgres(main.begin().await?)),
        })
    }

    /// Starts a transaction whose commit need not survive a crash of the database server: on
    /// PostgreSQL it runs on the worker's pool with `synchronous_commit = off`, so it does not wait
    /// for the disk, and plans each statement for the tables as they are (no cached generic
    /// plans); on SQLite it is [`Store::begin`]. Only for work that is safe to do again: a
    /// lost claim or lease renewal makes a job claimable again, and a lost attempt record (with its
    /// job's move, in the same transaction) makes the delivery go out again — at least once, never
    /// lost. What an event enqueues always commits with [`Store::begin`].
    pub async fn begin_relaxed(&self) -> Result<Tx> {
        Ok(match &self.pools {
            Pools::Sqlite { writer, wrote, .. } => Tx::new(TxInner::Sqlite(writer.begin().await?, wrote.clone())),
            Pools::Postgres { relaxed, .. } => Tx::new(TxInner::Postgres(relaxed.begin().await?)),
        })
    }

    /// The right to run periodic job `key` alone among the processes sharing the database, or
    /// `None` while another holds it: on PostgreSQL a transaction-scoped advisory lock, held by an
    /// open transaction until the [`Exclusive`] is dropped (so a crash or an error releases it);
    /// on SQLite, which one process serves, always granted.
    pub async fn try_exclusive(&self, key: i64) -> Result<Option<Exclusive>> {
        let mut mine = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if !running.insert(key) {
                return Ok(None);
            }
            Exclusive {
                key,
                running: self.running.clone(),
                held: None,
            }
        };
        if let Pools::Postgres { main, .. } = &self.pools {
            // Dropping `mine` on any way out gives the key back.
            let mut tx = main.begin().await?;
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            if !got {
                tx.rollback().await?;
                return Ok(None);
            }
            mine.held = Some(tx);
        }
        Ok(Some(mine))
    }

    /// Holds the lock of blob `digest` until the [`BlobLock`] is committed, released or dropped.
    /// Storing a blob (its bytes, then its record) and collecting it (its record, then its bytes)
    /// each run under it, so that neither sees the other half done: within this process through a
    /// striped mutex, and on PostgreSQL across processes through a transaction-scoped advisory
    /// lock, whose transaction is the one that records the blob ([`BlobLock::tx`]).
    pub async fn lock_blob(&self, digest: &str) -> Result<BlobLock> {
        let key = blob_lock_key(digest);
        let stripe = self.blob_stripes[key.unsigned_abs() as usize % BLOB_STRIPES]
            .clone()
            .lock_owned()
            .await;
        let tx = match &self.pools {
            Pools::Postgres { main, .. } => {
                let mut t = main.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                    .bind(BLOB_LOCK_CLASS)
                    .bind(key)
                    .execute(&mut *t)
                    .await?;
                Some(Tx::new(TxInner::Postgres(t)))
            }
            Pools::Sqlite { .. } => None,
        };
        Ok(BlobLock { tx, _stripe: stripe })
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.conn().await?;
        run!(&mut c, c => sqlx::query("SELECT 1").execute(c).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every pool. Waits until every borrowed [`Conn`] and [`Tx`] is dropped, so drop yours
    /// first.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite {
                writer,
                reader,
                checkpointer,
                ..
            } => {
                checkpointer.close().await;
                writer.close().await;
                reader.close().await;
            }
            Pools::Postgres { main, relaxed } => {
                relaxed.close().await;
                main.close().await;
            }
        }
    }
}

/// Checkpoints SQLite's write-ahead log on its own connection [`CHECKPOINT_EVERY`] after a commit
/// signals `wrote` (`PASSIVE`: it copies what it can without waiting for the writer or readers),
/// until the pool is closed. Idle, it sleeps.
fn spawn_checkpointer(pool: SqlitePool, wrote: Arc<tokio::sync::Notify>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = wrote.notified() => {}
                () = pool.close_event() => return,
            }
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            if pool.is_closed() {
                return;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                if pool.is_closed() {
                    return;
                }
                tracing::debug!(error = %e, "background checkpoint failed; the writer checkpoints past the backstop");
            }
        }
    });
}

/// A pooled connection, for reads.
pub enum Conn {
    /// On SQLite.
    Sqlite(PoolConnection<Sqlite>),
    /// On PostgreSQL.
    Postgres(PoolConnection<Postgres>),
}

/// The lock of one blob (see [`Store::lock_blob`]).
pub struct BlobLock {
    /// On PostgreSQL the transaction holding the advisory lock; on SQLite the transaction begun
    /// by [`BlobLock::tx`], if any.
    tx: Option<Tx>,
    _stripe: tokio::sync::OwnedMutexGuard<()>,
}

impl BlobLock {
    /// The transaction that records the blob while the lock is held: on PostgreSQL the lock's
    /// own; on SQLite one begun now (so that its one writer was not held while storage worked).
    pub async fn tx(&mut self, store: &Store) -> Result<&mut Tx> {
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => store.begin().await?,
        };
        Ok(self.tx.insert(tx))
    }

    /// Commits what [`BlobLock::tx`] recorded, then gives the lock up.
    pub async fn commit(mut self) -> Result<()> {
        match self.tx.take() {
            Some(tx) => tx.commit().await,
            None => Ok(()),
        }
    }

    /// Gives the lock up, keeping nothing recorded in [`BlobLock::tx`].
    pub async fn release(mut self) {
        if let Some(tx) = self.tx.take()
            && let Err(e) = tx.rollback().await
        {
            tracing::warn!(error = %e, "giving back a blob lock failed; its connection ends it");
        }
    }
}

impl std::fmt::Debug for BlobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobLock")
    }
}

/// The right to run a periodic job alone (see [`Store::try_exclusive`]); [`Exclusive::release`]
/// gives it up.
pub struct Exclusive {
    key: i64,
    running: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    /// On PostgreSQL, the transaction holding the advisory lock (rolled back when dropped).
    held: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

impl Exclusive {
    /// Gives the job up now (on PostgreSQL, the lock's transaction ends before this returns;
    /// dropping it instead ends it whenever its connection is next used).
    pub async fn release(mut self) {
        if let Some(tx) = self.held.take()
            && let Err(e) = tx.rollback().await
        {
            tracing::warn!(error = %e, "giving back a periodic job's lock failed; its connection ends it");
        }
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        self.held.take();
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.key);
    }
}

impl std::fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exclusive")
    }
}

/// An open transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    inner: TxInner,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

enum TxInner {
    /// With the checkpointer's signal.
    Sqlite(Transaction<'static, Sqlite>, Arc<tokio::sync::Notify>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    fn new(inner: TxInner) -> Tx {
        Tx {
            inner,
            after_commit: Vec::new(),
        }
    }

    /// Ends the transaction keeping nothing of it, now (dropping it instead rolls back when its
    /// connection is next used).
    pub async fn rollback(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(t, _) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// Commits the transaction, then runs what [`Tx::after_commit`] registered.
    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(t, wrote) => {
                t.commit().await?;
                wrote.notify_one();
            }
            TxInner::Postgres(t) => t.commit().await?,
        }
        for f in self.after_commit {
            f();
        }
        Ok(())
    }

    /// Runs `f` right after the transaction commits, and never if it does not (e.g. to hand what
    /// it wrote to a worker of this process).
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }
}

/// A borrowed connection of either backend: what [`run!`] matches on.
pub enum Handle<'a> {
    /// On SQLite.
    Sqlite(&'a mut SqliteConnection),
    /// On PostgreSQL.
    Postgres(&'a mut PgConnection),
}

/// Anything queries can run on: a [`Conn`] or a [`Tx`].
pub trait Exec: Send {
    /// Borrows the underlying connection.
    fn handle(&mut self) -> Handle<'_>;
}

impl Exec for Conn {
    fn handle(&mut self) -> Handle<'_> {
        match self {
            Conn::Sqlite(c) => Handle::Sqlite(c),
            Conn::Postgres(c) => Handle::Postgres(c),
        }
    }
}

impl Exec for Tx {
    fn handle(&mut self) -> Handle<'_> {
        match &mut self.inner {
            TxInner::Sqlite(t, _) => Handle::Sqlite(t),
            TxInner::Postgres(t) => Handle::Postgres(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_classified_and_redacted() {
        assert_eq!(Backend::of_url("sqlite:///tmp/x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("postgres://u@h/db").ok(), Some(Backend::Postgres));
        let err = Backend::of_url("mysql://root:hunter2@h/db").unwrap_err().to_string();
        assert!(
            err.contains("mysql://root:***@h/db") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn both_migration_directories_list_the_same_migrations() {
        let names = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let root = env!("CARGO_MANIFEST_DIR");
        let sqlite = names(&format!("{root}/migrations/sqlite"));
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, names(&format!("{root}/migrations/postgres")));
    }
}
