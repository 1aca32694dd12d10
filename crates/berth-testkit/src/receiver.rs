//! An HTTP receiver for delivery tests: a real server on 127.0.0.1 that records every request
//! (method, path, headers, body) and answers with scripted statuses (200 once the script runs out).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// The body as JSON.
    ///
    /// # Panics
    /// When the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Clone)]
struct Shared {
    tx: mpsc::UnboundedSender<Received>,
    script: Arc<Mutex<VecDeque<u16>>>,
    hang: Arc<std::sync::atomic::AtomicBool>,
    redirects: Arc<Mutex<VecDeque<String>>>,
}

/// A running receiver.
pub struct Receiver {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    hang: Arc<std::sync::atomic::AtomicBool>,
    redirects: Arc<Mutex<VecDeque<String>>>,
}

async fn record(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let _ = s.tx.send(Received {
        method: method.to_string(),
        path: uri.to_string(),
        headers,
        body: body.to_vec(),
    });
    if s.hang.load(std::sync::atomic::Ordering::SeqCst) {
        // A dead endpoint that accepts connections and never answers.
        std::future::pending::<()>().await;
    }
    if let Some(location) = s.redirects.lock().ok().and_then(|mut q| q.pop_front()) {
        return (StatusCode::TEMPORARY_REDIRECT, [("location", location)]).into_response();
    }
    let status = s.script.lock().ok().and_then(|mut q| q.pop_front()).unwrap_or(200);
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK).into_response()
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let redirects = Arc::new(Mutex::new(VecDeque::new()));
        let app = axum::Router::new().fallback(record).with_state(Shared {
            tx,
            script: script.clone(),
            hang: hang.clone(),
            redirects: redirects.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            rx: tokio::sync::Mutex::new(rx),
            script,
            hang,
            redirects,
        }
    }

    /// Answers the next request with `307 Temporary Redirect` to `location`.
    pub fn redirect_to(&self, location: &str) {
        if let Ok(mut q) = self.redirects.lock() {
            q.push_back(location.to_owned());
        }
    }

    /// From now on, records requests and never answers them (a hanging endpoint).
    pub fn hang(&self) {
        self.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Answers the next requests with these statuses, in order.
    pub fn respond_with(&self, statuses: &[u16]) {
        if let Ok(mut q) = self.script.lock() {
            q.extend(statuses.iter().copied());
        }
    }

    /// The next request, waiting at most `within`.
    pub async fn next(&self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.rx.lock().await.recv())
            .await
            .ok()
            .flatten()
    }
}
