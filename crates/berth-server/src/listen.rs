//! The HTTP listener: accepts connections and serves the router on each (HTTP/1.1 and h2c), with
//! the limits that keep slow or idle clients from exhausting the server (axum's own `serve` has
//! none):
//!
//! - **Header read timeout.** A request's headers must arrive within `header_read_timeout_secs`,
//!   or the connection is closed; a keep-alive connection idle that long between requests is
//!   closed too.
//! - **Connection limit.** At most `max_connections` are open at once (by default the open-file
//!   limit less a reserve for the database, blobs and logs). At the limit, the oldest connection
//!   with no request in progress (a half-sent request, or an idle keep-alive) is closed to make
//!   room; so a flood of half-sent requests (slowloris) cannot keep new clients out, and a health
//!   check, which sends its request at once, gets through. When every connection is busy with a
//!   request, a new one is refused.
//! - **Graceful shutdown.** On the signal, accepting stops and open connections finish the request
//!   in progress (the caller bounds how long).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// File descriptors kept out of the automatic connection limit (database pool, blob files,
/// logs, outgoing deliveries).
const FD_RESERVE: usize = 128;

/// The listener's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a request's headers may take to arrive (and a keep-alive connection may idle).
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Limits {
    /// The automatic connection limit: the soft open-file limit less [`FD_RESERVE`] (at least 16).
    pub fn automatic_max_connections() -> usize {
        open_file_limit().map_or(1024, |n| n.saturating_sub(FD_RESERVE).max(16))
    }
}

/// The soft limit of open files of this process, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
    match soft {
        "unlimited" => Some(1 << 20),
        n => n.parse().ok(),
    }
}

/// One open connection: requests in progress on it, and how to close it.
struct Open {
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes; then stops
/// accepting and returns once every connection has finished its request in progress.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let open: Arc<Mutex<BTreeMap<u64, Open>>> = Arc::default();
    let mut next_id = 0u64;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // pause briefly rather than spin, then go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if !make_room(&open, limits.max_connections) {
            metrics::counter!("berth_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        let busy = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        lock(&open).insert(
            id,
            Open {
                busy: busy.clone(),
                close: close.clone(),
            },
        );
        metrics::gauge!("berth_http_connections_open").set(lock(&open).len() as f64);
        let service = {
            let router = router.clone();
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let router = router.clone();
                let busy = busy.clone();
                req.extensions_mut().insert(ConnectInfo(peer));
                async move {
                    // Busy until the answer's body has been sent (a blob download streams long
                    // after the handler returned).
                    let guard = Busy::enter(busy);
                    let resp = router.oneshot(req.map(axum::body::Body::new)).await?;
                    Ok::<_, std::convert::Infallible>(resp.map(|body| Guarded { body, _guard: guard }))
                }
            })
        };
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        let open = open.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                }
                () = close.notified() => {
                    metrics::counter!("berth_http_connections_evicted_total").increment(1);
                }
            }
            let mut open = lock(&open);
            open.remove(&id);
            metrics::gauge!("berth_http_connections_open").set(open.len() as f64);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Makes room for one more connection: below the limit there is room; at it, the oldest
/// connection with no request in progress is closed. Returns whether there is room.
fn make_room(open: &Mutex<BTreeMap<u64, Open>>, max: usize) -> bool {
    let mut open = lock(open);
    if open.len() < max.max(1) {
        return true;
    }
    let idle = open
        .iter()
        .find(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
        .map(|(id, _)| *id);
    match idle.and_then(|id| open.remove(&id)) {
        Some(evicted) => {
            evicted.close.notify_one();
            true
        }
        None => false,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A response body that keeps its connection counted busy until it is sent or dropped.
struct Guarded {
    body: axum::body::Body,
    _guard: Busy,
}

impl http_body::Body for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Counts a request in progress on its connection while it lives.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(busy: Arc<AtomicUsize>) -> Busy {
        busy.fetch_add(1, Ordering::AcqRel);
        Busy(busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_limit_leaves_a_reserve() {
        let n = Limits::automatic_max_connections();
        assert!(n >= 16);
        if let Some(files) = open_file_limit() {
            assert!(n <= files.saturating_sub(FD_RESERVE).max(16));
        }
    }

    #[test]
    fn at_the_limit_the_oldest_idle_connection_makes_room() {
        let open = Mutex::new(BTreeMap::new());
        let conns: Vec<(Arc<AtomicUsize>, Arc<Notify>)> = (0..3)
            .map(|_| (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new())))
            .collect();
        for (i, (busy, close)) in conns.iter().enumerate() {
            lock(&open).insert(
                i as u64,
                Open {
                    busy: busy.clone(),
                    close: close.clone(),
                },
            );
        }
        conns[0].0.store(1, Ordering::Release);
        assert!(make_room(&open, 4), "below the limit");
        assert!(make_room(&open, 3), "the second connection is idle");
        // The idle one was told to close (a stored permit) and left the table; the busy one was not.
        let told = |i: usize| {
            let close = conns[i].1.clone();
            ready_now(async move { close.notified().await })
        };
        assert!(told(1) && !told(0));
        assert_eq!(lock(&open).len(), 2);
        lock(&open).insert(
            9,
            Open {
                busy: Arc::new(AtomicUsize::new(1)),
                close: Arc::new(Notify::new()),
            },
        );
        conns[2].0.store(1, Ordering::Release);
        assert!(!make_room(&open, 3), "every connection is busy");
    }

    /// Whether `fut` completes without waiting.
    fn ready_now(fut: impl Future<Output = ()>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        fut.as_mut().poll(&mut cx).is_ready()
    }
}
