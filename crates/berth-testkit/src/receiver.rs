//! An HTTP receiver for delivery tests: a real server on 127.0.0.1 that records every request
//! (method, path, headers, body, arrival time) and answers as scripted: statuses with optional
//! headers (200 once the script runs out), redirects, a delay before answering, a gate that holds
//! answers until released, or never answering at all.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::sync::{mpsc, watch};

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
    /// When it arrived.
    pub at: Instant,
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

/// A scripted answer.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
}

#[derive(Default)]
struct Behaviour {
    script: VecDeque<Reply>,
    redirects: VecDeque<(u16, String)>,
    hang: bool,
    delay: Duration,
}

#[derive(Clone)]
struct Shared {
    tx: mpsc::UnboundedSender<Received>,
    behaviour: Arc<Mutex<Behaviour>>,
    gate: watch::Receiver<bool>,
}

/// A running receiver.
pub struct Receiver {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    behaviour: Arc<Mutex<Behaviour>>,
    gate: watch::Sender<bool>,
}

async fn record(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let at = Instant::now();
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    // The answer is chosen as the request is recorded, in one step: a test that has read the
    // request and set up the next answer cannot have that answer taken by this request.
    let (hang, delay, redirect, reply) = {
        let mut b = s.behaviour.lock().unwrap_or_else(|e| e.into_inner());
        let (redirect, reply) = match b.redirects.pop_front() {
            Some(location) => (Some(location), None),
            None => (None, b.script.pop_front()),
        };
        let _ = s.tx.send(Received {
            method: method.to_string(),
            path: uri.to_string(),
            headers,
            body: body.to_vec(),
            at,
        });
        (b.hang, b.delay, redirect, reply)
    };
    if hang {
        // A dead endpoint that accepts connections and never answers.
        std::future::pending::<()>().await;
    }
    let mut gate = s.gate.clone();
    let _ = gate.wait_for(|open| *open).await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, location)) = redirect {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
        return (status, [("location", location)]).into_response();
    }
    let Reply { status, headers } = reply.unwrap_or(Reply {
        status: 200,
        headers: Vec::new(),
    });
    let mut resp = StatusCode::from_u16(status).unwrap_or(StatusCode::OK).into_response();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            axum::http::HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let (gate, gate_rx) = watch::channel(true);
        let app = axum::Router::new().fallback(record).with_state(Shared {
            tx,
            behaviour: behaviour.clone(),
            gate: gate_rx,
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
            behaviour,
            gate,
        }
    }

    fn change(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Answers the next request with `307 Temporary Redirect` to `location`.
    pub fn redirect_to(&self, location: &str) {
        self.redirect_with(307, location);
    }

    /// Answers the next request with redirect `status` (301, 302, 303, 307, 308) to `location`.
    pub fn redirect_with(&self, status: u16, location: &str) {
        self.change(|b| b.redirects.push_back((status, location.to_owned())));
    }

    /// From now on, records requests and never answers them (a hanging endpoint).
    pub fn hang(&self) {
        self.change(|b| b.hang = true);
    }

    /// From now on, answers each request after `delay` (zero: at once).
    pub fn delay(&self, delay: Duration) {
        self.change(|b| b.delay = delay);
    }

    /// Holds every answer (requests are still recorded as they arrive) until [`Receiver::release`].
    pub fn hold(&self) {
        self.gate.send_replace(false);
    }

    /// Lets held and later requests be answered.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }

    /// Answers the next requests with these statuses, in order.
    pub fn respond_with(&self, statuses: &[u16]) {
        self.change(|b| {
            b.script.extend(statuses.iter().map(|s| Reply {
                status: *s,
                headers: Vec::new(),
            }));
        });
    }

    /// Answers the next request with this status and these headers (e.g. `Retry-After`).
    pub fn respond_with_headers(&self, status: u16, headers: &[(&str, &str)]) {
        self.change(|b| {
            b.script.push_back(Reply {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            });
        });
    }

    /// The next request, waiting at most `within`.
    pub async fn next(&self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.rx.lock().await.recv())
            .await
            .ok()
            .flatten()
    }
}
