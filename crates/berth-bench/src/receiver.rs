//! The bench's event receiver on 127.0.0.1: records when each push event arrives, keyed by the
//! pushed tag, for Berth's webhook body (`updated_tags`) and Distribution's envelope
//! (`events[].target.tag`). It answers a settable status, so durability runs can make it fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

#[derive(Default)]
struct Inner {
    /// Every accepted arrival per tag, in order.
    arrivals: HashMap<String, Vec<Instant>>,
}

/// A running receiver.
#[derive(Clone)]
pub struct EventReceiver {
    /// Its base URL.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    status: Arc<AtomicU16>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    status: Arc<AtomicU16>,
}

/// The tags a push event body names (Berth webhook or Distribution envelope).
fn tags_of(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(tags) = body["updated_tags"].as_array() {
        out.extend(tags.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if let Some(events) = body["events"].as_array() {
        for e in events {
            if e["action"] == "push"
                && let Some(tag) = e["target"]["tag"].as_str()
            {
                out.push(tag.to_owned());
            }
        }
    }
    out
}

async fn record(State(s): State<Shared>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let status = s.status.load(Ordering::Relaxed);
    if status == 200
        && let Ok(v) = serde_json::from_slice::<Value>(&body)
    {
        let mut inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
        for tag in tags_of(&v) {
            inner.arrivals.entry(tag).or_default().push(now);
        }
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl EventReceiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> anyhow::Result<EventReceiver> {
        let shared = Shared {
            inner: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let app = axum::Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EventReceiver {
            url,
            inner: shared.inner,
            status: shared.status,
        })
    }

    /// Answers every request with `status` from now on (events are counted only under 200).
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// Every arrival of `tag`.
    pub fn arrivals(&self, tag: &str) -> Vec<Instant> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.arrivals.get(tag).cloned().unwrap_or_default()
    }

    /// How many distinct tags arrived whose name starts with `prefix`.
    pub fn distinct(&self, prefix: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.arrivals.keys().filter(|t| t.starts_with(prefix)).count()
    }

    /// How many arrivals, in all, of tags starting with `prefix`.
    pub fn total(&self, prefix: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .arrivals
            .iter()
            .filter(|(t, _)| t.starts_with(prefix))
            .map(|(_, v)| v.len())
            .sum()
    }
}
