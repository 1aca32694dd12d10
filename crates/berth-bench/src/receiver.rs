//! The bench's event receivers on loopback addresses: each records when push events arrive, keyed
//! by the pushed tag, for Berth's webhook body (`updated_tags`) and Distribution's envelope
//! (`events[].target.tag`), and counts each Berth delivery id (`webhook-id`). A receiver answers
//! a settable status, or never answers (a hanging endpoint). A [`Fleet`] is several receivers on
//! several loopback hosts, read as one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

#[derive(Default)]
struct Inner {
    /// Every accepted arrival per tag, in order.
    arrivals: HashMap<String, Vec<Instant>>,
    /// Accepted arrivals per delivery id.
    ids: HashMap<String, u32>,
    /// The first and last accepted arrival.
    first: Option<Instant>,
    last: Option<Instant>,
    count: usize,
}

/// A running receiver.
#[derive(Clone)]
pub struct EventReceiver {
    /// Its base URL.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    status: Arc<AtomicU16>,
    hang: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    status: Arc<AtomicU16>,
    hang: Arc<AtomicBool>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    updated_tags: Vec<String>,
    #[serde(default)]
    events: Vec<Envelope>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: Target,
}

#[derive(Deserialize, Default)]
struct Target {
    tag: Option<String>,
}

/// The tags a push event body names (Berth webhook or Distribution envelope).
fn tags_of(body: Body) -> Vec<String> {
    let mut out = body.updated_tags;
    out.extend(
        body.events
            .into_iter()
            .filter(|e| e.action == "push")
            .filter_map(|e| e.target.tag),
    );
    out
}

async fn record(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    if s.hang.load(Ordering::Relaxed) {
        std::future::pending::<()>().await;
    }
    let status = s.status.load(Ordering::Relaxed);
    if status == 200
        && let Ok(b) = serde_json::from_slice::<Body>(&body)
    {
        let mut inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
        for tag in tags_of(b) {
            inner.arrivals.entry(tag).or_default().push(now);
        }
        if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
            *inner.ids.entry(id.to_owned()).or_default() += 1;
        }
        inner.first.get_or_insert(now);
        inner.last = Some(now);
        inner.count += 1;
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl EventReceiver {
    /// Starts a receiver on a free port of 127.0.0.1.
    pub async fn start() -> anyhow::Result<EventReceiver> {
        Self::start_on("127.0.0.1").await
    }

    /// Starts a receiver on a free port of the loopback address `ip` (e.g. `127.0.0.7`).
    pub async fn start_on(ip: &str) -> anyhow::Result<EventReceiver> {
        let shared = Shared {
            inner: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            hang: Arc::default(),
        };
        let app = axum::Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(EventReceiver {
            url,
            inner: shared.inner,
            status: shared.status,
            hang: shared.hang,
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Inner) -> T) -> T {
        f(&self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Answers every request with `status` from now on (events are counted only under 200).
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }

    /// Never answers from now on (a hanging endpoint).
    pub fn hang(&self) {
        self.hang.store(true, Ordering::Relaxed);
    }

    /// Every arrival of `tag`.
    pub fn arrivals(&self, tag: &str) -> Vec<Instant> {
        self.read(|i| i.arrivals.get(tag).cloned().unwrap_or_default())
    }

    /// How many distinct tags arrived whose name starts with `prefix`.
    pub fn distinct(&self, prefix: &str) -> usize {
        self.read(|i| i.arrivals.keys().filter(|t| t.starts_with(prefix)).count())
    }

    /// How many arrivals, in all, of tags starting with `prefix`.
    pub fn total(&self, prefix: &str) -> usize {
        self.read(|i| {
            i.arrivals
                .iter()
                .filter(|(t, _)| t.starts_with(prefix))
                .map(|(_, v)| v.len())
                .sum()
        })
    }
}

/// Several receivers, one per loopback host, read as one.
pub struct Fleet {
    /// The receivers.
    pub receivers: Vec<EventReceiver>,
}

impl Fleet {
    /// One receiver on each of `hosts` loopback addresses, from 127.0.0.2 up (127.0.0.1 for one).
    pub async fn start(hosts: usize) -> anyhow::Result<Fleet> {
        let mut receivers = Vec::with_capacity(hosts);
        for h in 0..hosts {
            let ip = if hosts == 1 {
                "127.0.0.1".to_owned()
            } else {
                format!("127.0.0.{}", h + 2)
            };
            receivers.push(EventReceiver::start_on(&ip).await?);
        }
        Ok(Fleet { receivers })
    }

    /// Forgets every arrival (for the next run on the same receivers).
    pub fn reset(&self) {
        for r in &self.receivers {
            *r.inner.lock().unwrap_or_else(|e| e.into_inner()) = Inner::default();
        }
    }

    /// Accepted arrivals, in all.
    pub fn count(&self) -> usize {
        self.receivers.iter().map(|r| r.read(|i| i.count)).sum()
    }

    /// The first and last accepted arrival.
    pub fn span(&self) -> Option<(Instant, Instant)> {
        let first = self.receivers.iter().filter_map(|r| r.read(|i| i.first)).min()?;
        let last = self.receivers.iter().filter_map(|r| r.read(|i| i.last)).max()?;
        Some((first, last))
    }

    /// Distinct delivery ids that arrived, and how many arrived more than once.
    pub fn ids(&self) -> (usize, usize) {
        let mut all: HashMap<String, u32> = HashMap::new();
        for r in &self.receivers {
            r.read(|i| {
                for (id, n) in &i.ids {
                    *all.entry(id.clone()).or_default() += n;
                }
            });
        }
        let duplicates = all.values().map(|n| (*n as usize).saturating_sub(1)).sum();
        (all.len(), duplicates)
    }

    /// Every arrival of `tag`, on any receiver.
    pub fn arrivals(&self, tag: &str) -> Vec<Instant> {
        self.receivers.iter().flat_map(|r| r.arrivals(tag)).collect()
    }

    /// Arrivals of tags starting with `prefix`, on any receiver.
    pub fn total(&self, prefix: &str) -> usize {
        self.receivers.iter().map(|r| r.total(prefix)).sum()
    }
}
