//! Scenario 4: the delivery engine alone, at its default settings, on SQLite and PostgreSQL.
//!
//! - **Drain.** A backlog is raised at the application layer with delivery off, then the release
//!   `berth serve` binary (defaults, plus `allowed_networks` for the loopback receivers) drains
//!   it; the rate is arrivals ÷ (last arrival − first arrival), from the receivers' clocks. Shapes:
//!   one host; ten hosts (127.0.0.2–11); one repository with ten webhooks on ten hosts; 100
//!   repositories × 10 webhooks on 50 hosts. Each repetition drains a copy of the same backlog.
//! - **Isolation.** The ten-host shape plus an eleventh repository whose webhook never answers (or
//!   answers 503 to everything): the ten healthy hosts' rate beside it, as a share of their rate
//!   without it in the same run.
//! - **Paced.** Events raised at 100 and 1,000 per second (each to 10 webhooks on 10 hosts) in the
//!   process that delivers; event → arrival latency per delivery, and how far the last arrival
//!   trails the last event.
//! - **Crash.** `kill -9` of `berth serve` during the drain of a large backlog, then a restart:
//!   every delivery id arrives; the duplicates are counted.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use crate::peers::{Berth, Client, Running};
use crate::progress;
use crate::receiver::{EventReceiver, Fleet};
use crate::scenarios::{Ctx, add_webhook, berth_repo_with_hook, create_repo, figure};
use crate::stats::{Figure, quantile};

/// A database for a run: a SQLite file, or a fresh PostgreSQL database (dropped with the guard).
pub(crate) struct Database {
    pub url: String,
    drop_pg: Option<(String, String)>,
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

fn psql(server: &str, sql: &str) -> anyhow::Result<()> {
    let ok = Command::new("psql")
        .args(["-q", "-d", server, "-c", sql])
        .status()?
        .success();
    anyhow::ensure!(ok, "psql {sql} on {server} failed");
    Ok(())
}

impl Database {
    pub(crate) fn sqlite(dir: &Path) -> Database {
        Database {
            url: format!("sqlite://{}", dir.join("berth.db").display()),
            drop_pg: None,
        }
    }

    fn pg_name() -> String {
        format!(
            "berth_bench_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub(crate) fn postgres(server: &str) -> anyhow::Result<Database> {
        let name = Self::pg_name();
        psql(server, &format!("DROP DATABASE IF EXISTS {name}"))?;
        psql(server, &format!("CREATE DATABASE {name}"))?;
        Ok(Self::pg(server, name))
    }

    fn pg(server: &str, name: String) -> Database {
        let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
        Database {
            url: format!("{base}/{name}"),
            drop_pg: Some((server.to_owned(), name)),
        }
    }

    /// A copy of this database (no process may be connected to it), in `dir` for SQLite.
    fn copy(&self, dir: &Path) -> anyhow::Result<Database> {
        match &self.drop_pg {
            None => {
                let from = self.url.trim_start_matches("sqlite://");
                let to = dir.join("berth.db");
                std::fs::copy(from, &to).with_context(|| format!("copying {from}"))?;
                // A write-ahead log left beside it belongs to the copy too.
                let wal = format!("{from}-wal");
                if Path::new(&wal).exists() {
                    std::fs::copy(&wal, dir.join("berth.db-wal"))?;
                }
                Ok(Database::sqlite(dir))
            }
            Some((server, source)) => {
                let name = Self::pg_name();
                psql(server, &format!("CREATE DATABASE {name} TEMPLATE {source}"))?;
                Ok(Self::pg(server, name))
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.drop_pg {
            let _ = psql(server, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// An in-process Berth (the application layer, as builds and scanners raise events) on `db`.
pub(crate) struct InProcess {
    pub app: berth_app::App,
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Starts one at the default settings (plus the loopback receivers' network), delivering or not.
    pub(crate) async fn start(dir: &Path, db: &Database, deliver: bool) -> anyhow::Result<InProcess> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut config = berth_server::config::Config {
            listen: addr,
            server_hostname: Some(addr.to_string()),
            data_dir: dir.to_path_buf(),
            database_url: Some(db.url.clone()),
            gc_interval_secs: 0,
            log_level: "error".into(),
            ..Default::default()
        };
        config.notifications.deliver = deliver;
        config.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
        let application = berth_server::startup::Application::build_on(&config, listener).await?;
        let app = application.app().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(application.run_until(async move {
            let _ = rx.await;
        }));
        Ok(InProcess {
            app,
            base: addr.to_string(),
            stop: Some(tx),
            task,
        })
    }

    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await??;
        Ok(())
    }

    /// Creates user `bench` and returns its token.
    pub(crate) async fn init(&self) -> anyhow::Result<String> {
        let c = Client::new(&self.base, None);
        let init = json!({"username": "bench", "password": "bench-password", "email": "bench@example.com", "access_token": true});
        Ok(
            c.api(Method::POST, "/api/v1/user/initialize", "", init).await?["access_token"]
                .as_str()
                .context("token")?
                .to_owned(),
        )
    }

    /// Raises a push of `tag` on `bench/<repo>`.
    pub(crate) async fn raise(&self, repo: &str, tag: &str) -> anyhow::Result<()> {
        let ctx = berth_notify::RepoContext {
            hostname: &self.base,
            scheme: "http",
            namespace: "bench",
            name: repo,
        };
        let event = berth_notify::events::repo_push(&ctx, &[tag], &[]);
        self.app
            .raise_event("bench", repo, berth_notify::EventKind::RepoPush, &event)
            .await?;
        Ok(())
    }

    /// Raises `events` pushes spread over `repos` repositories (`r0`, `r1`, …), tags
    /// `<prefix><i>`, from 16 tasks at once (so that PostgreSQL commits them in groups).
    pub(crate) async fn raise_backlog(&self, repos: usize, events: usize, prefix: &str) -> anyhow::Result<()> {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (app, base, next, prefix) = (self.app.clone(), self.base.clone(), next.clone(), prefix.to_owned());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= events {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let repo = format!("r{}", i % repos);
                    let ctx = berth_notify::RepoContext {
                        hostname: &base,
                        scheme: "http",
                        namespace: "bench",
                        name: &repo,
                    };
                    let tag = format!("{prefix}{i}");
                    let event = berth_notify::events::repo_push(&ctx, &[&tag], &[]);
                    app.raise_event("bench", &repo, berth_notify::EventKind::RepoPush, &event)
                        .await?;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(())
    }
}

/// Creates `repos` repositories `bench/r<i>` with `hooks` webhooks each; webhook `k` (counting
/// across repositories) goes to receiver `k % receivers.len()`.
pub(crate) async fn hooks_setup(
    p: &InProcess,
    token: &str,
    repos: usize,
    hooks: usize,
    receivers: &[&EventReceiver],
) -> anyhow::Result<()> {
    let c = Client::new(&p.base, None);
    let mut k = 0;
    for r in 0..repos {
        let repo = format!("r{r}");
        create_repo(&c, token, &repo).await?;
        for _ in 0..hooks {
            let rx = receivers[k % receivers.len()];
            add_webhook(&c, token, &repo, &format!("{}/n{k}", rx.url)).await?;
            k += 1;
        }
    }
    Ok(())
}

/// A drain shape.
struct Shape {
    name: &'static str,
    repos: usize,
    hooks: usize,
    hosts: usize,
}

const SHAPES: [Shape; 4] = [
    Shape {
        name: "1 host (10 repositories × 1 webhook)",
        repos: 10,
        hooks: 1,
        hosts: 1,
    },
    Shape {
        name: "10 hosts (10 repositories × 1 webhook)",
        repos: 10,
        hooks: 1,
        hosts: 10,
    },
    Shape {
        name: "10 hosts (1 repository × 10 webhooks)",
        repos: 1,
        hooks: 10,
        hosts: 10,
    },
    Shape {
        name: "50 hosts (100 repositories × 10 webhooks)",
        repos: 100,
        hooks: 10,
        hosts: 50,
    },
];

/// An extra endpoint beside the healthy ones.
#[derive(Clone, Copy, PartialEq)]
enum Extra {
    None,
    Hanging,
    Failing,
}

/// A backlog raised once: its database, the healthy receivers, the extra one, and how many
/// deliveries go to the healthy ones.
struct Backlog {
    dir: tempfile::TempDir,
    db: Database,
    healthy: Fleet,
    _bad: Option<EventReceiver>,
    deliveries: usize,
}

async fn backlog(ctx: &Ctx, postgres: bool, shape: &Shape, extra: Extra) -> anyhow::Result<Backlog> {
    let dir = tempfile::tempdir()?;
    let db = if postgres {
        Database::postgres(&ctx.postgres)?
    } else {
        Database::sqlite(dir.path())
    };
    let healthy = Fleet::start(shape.hosts).await?;
    let p = InProcess::start(dir.path(), &db, false).await?;
    let token = p.init().await?;
    let receivers: Vec<&EventReceiver> = healthy.receivers.iter().collect();
    hooks_setup(&p, &token, shape.repos, shape.hooks, &receivers).await?;
    let bad = match extra {
        Extra::None => None,
        Extra::Hanging | Extra::Failing => {
            // One more repository, whose one webhook goes to the bad endpoint.
            let bad = EventReceiver::start_on("127.0.0.200").await?;
            if extra == Extra::Hanging {
                bad.hang();
            } else {
                bad.set_status(503);
            }
            let c = Client::new(&p.base, None);
            berth_repo_with_hook(&c, &token, &format!("r{}", shape.repos), &format!("{}/bad", bad.url)).await?;
            Some(bad)
        }
    };
    let repos = shape.repos + usize::from(bad.is_some());
    // Events go round the repositories: enough for the healthy ones to get their deliveries.
    let events = ctx.plan.drain_deliveries.div_ceil(shape.hooks).div_ceil(shape.repos) * repos;
    p.raise_backlog(repos, events, "q").await?;
    p.stop().await?;
    let healthy_events = (0..events).filter(|i| i % repos < shape.repos).count();
    Ok(Backlog {
        dir,
        db,
        healthy,
        _bad: bad,
        deliveries: healthy_events * shape.hooks,
    })
}

/// CPU time a process has used, in seconds, from `/proc/<pid>/stat` (user + system).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces): utime is the 14th, stime the
    // 15th of the line, 12th and 13th after the name; clock ticks are 100 per second.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// One drain's figures: the healthy hosts' rate (arrivals ÷ (last − first), deliveries per
/// second) and the server's CPU per delivery (µs).
struct Drained {
    rate: f64,
    cpu_us: f64,
}

/// Drains a copy of `b` with `berth serve` at its default settings.
async fn drain(ctx: &Ctx, b: &Backlog) -> anyhow::Result<Drained> {
    let dir = tempfile::tempdir()?;
    let db = b.db.copy(dir.path())?;
    // The key that sealed the backlog's signing secrets opens them in the copy.
    std::fs::copy(b.dir.path().join("secret.key"), dir.path().join("secret.key"))?;
    b.healthy.reset();
    let mut server = Berth {
        bin: ctx.berth_bin.clone(),
        dir: dir.path().to_path_buf(),
        database_url: db.url.clone(),
        token: String::new(),
    }
    .serve(&[])?;
    let cpu_before = cpu_seconds(server.child.id());
    let deadline = Instant::now() + Duration::from_secs(600);
    while b.healthy.count() < b.deliveries && Instant::now() < deadline {
        if let Some(status) = server.child.try_wait()? {
            anyhow::bail!("berth serve exited during the drain ({status})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = cpu_seconds(server.child.id()) - cpu_before;
    if ctx.engine_metrics {
        // What the drain cost the engine: claims, commits, parked jobs and attempts by outcome.
        let m = reqwest::get(format!("http://{}/metrics", server.host()))
            .await?
            .text()
            .await?;
        let wanted = [
            "berth_delivery_claim_batch_size_",
            "berth_delivery_commit_batch_size_",
            "berth_delivery_commit_seconds_",
            "berth_delivery_parked_total",
            "berth_deliveries_total",
        ];
        for l in m.lines().filter(|l| wanted.iter().any(|w| l.starts_with(w))) {
            eprintln!("drain: {l}");
        }
    }
    drop(server);
    let got = b.healthy.count();
    anyhow::ensure!(got >= b.deliveries, "only {got} of {} deliveries arrived", b.deliveries);
    let (first, last) = b.healthy.span().context("no arrival")?;
    Ok(Drained {
        rate: got as f64 / last.duration_since(first).as_secs_f64().max(1e-6),
        cpu_us: cpu * 1e6 / got as f64,
    })
}

/// Scenario 4 (see the module header).
pub async fn dispatch(ctx: &Ctx) -> anyhow::Result<(Vec<Figure>, Vec<String>)> {
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let repeats = ctx.plan.repeats.min(3);
    for (backend, postgres) in [("SQLite", false), ("PostgreSQL", true)] {
        if !ctx.backend(if postgres { "postgres" } else { "sqlite" }) {
            continue;
        }
        for shape in SHAPES.iter().filter(|_| ctx.part("drain")) {
            let b = backlog(ctx, postgres, shape, Extra::None).await?;
            let mut runs = Vec::with_capacity(repeats);
            for _ in 0..repeats {
                runs.push(drain(ctx, &b).await?);
            }
            let rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
            progress(&format!(
                "4. dispatch {backend}, {}: {rates:.0?} deliveries/s",
                shape.name
            ));
            let target = if shape.hosts == 1 {
                "≥ 5,000"
            } else {
                "≥ 10,000 (≥ 3× Svix's 3,650 fan-out)"
            };
            let mut f = figure(
                "4. dispatch",
                &format!("drain, {}, {backend}", shape.name),
                "deliveries/s",
                true,
                target,
            );
            f.berth = rates;
            figures.push(f);
            let mut c = figure(
                "4. dispatch",
                &format!("server CPU per delivery, drain, {}, {backend}", shape.name),
                "µs",
                false,
                "—",
            );
            c.berth = runs.iter().map(|r| r.cpu_us).collect();
            figures.push(c);
        }
        if ctx.part("isolation") {
            // A share of two short drains is noisy: it takes every repetition the plan allows.
            figures.extend(isolation(ctx, postgres, backend, ctx.plan.repeats).await?);
        }
        if ctx.part("paced") {
            let (f, n) = paced(ctx, postgres, backend).await?;
            figures.extend(f);
            notes.extend(n);
        }
    }
    if ctx.part("crash") {
        let (f, n) = crash(ctx).await?;
        figures.extend(f);
        notes.extend(n);
    }
    notes.push(format!(
        "Dispatch: every figure at the default settings (the receivers' network allowed); drains of {} deliveries per repetition, by the release `berth serve`; receivers are the harness's own (axum, keep-alive), on the same two cores. Isolation: the ten-host shape alone, beside a hanging endpoint and beside a 503 endpoint, drained in turn in each repetition; each share compares drains of one repetition.",
        ctx.plan.drain_deliveries
    ));
    Ok((figures, notes))
}

/// The ten healthy hosts' rate beside a bad endpoint, as a share of their rate alone; the three
/// drains of each repetition run back to back, so that they see the same machine.
async fn isolation(ctx: &Ctx, postgres: bool, backend: &str, repeats: usize) -> anyhow::Result<Vec<Figure>> {
    let alone = backlog(ctx, postgres, &SHAPES[1], Extra::None).await?;
    let hanging = backlog(ctx, postgres, &SHAPES[1], Extra::Hanging).await?;
    let failing = backlog(ctx, postgres, &SHAPES[1], Extra::Failing).await?;
    let mut hang_share = figure(
        "4. dispatch",
        &format!("10 healthy hosts beside one that never answers, share of their rate alone, {backend}"),
        "%",
        true,
        "≥ 90 %",
    );
    let mut fail_share = figure(
        "4. dispatch",
        &format!("10 healthy hosts beside one that answers 503, share of their rate alone, {backend}"),
        "%",
        true,
        "≥ 90 %",
    );
    for _ in 0..repeats {
        let base = drain(ctx, &alone).await?.rate;
        let h = drain(ctx, &hanging).await?.rate;
        let f = drain(ctx, &failing).await?.rate;
        progress(&format!(
            "4. dispatch {backend} isolation: alone {base:.0}, beside a hanging endpoint {h:.0}, beside a 503 endpoint {f:.0} deliveries/s"
        ));
        hang_share.berth.push(100.0 * h / base.max(1.0));
        fail_share.berth.push(100.0 * f / base.max(1.0));
    }
    Ok(vec![hang_share, fail_share])
}

/// Events raised at fixed rates in the delivering process: event → arrival latency.
async fn paced(ctx: &Ctx, postgres: bool, backend: &str) -> anyhow::Result<(Vec<Figure>, Vec<String>)> {
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let dir = tempfile::tempdir()?;
    let db = if postgres {
        Database::postgres(&ctx.postgres)?
    } else {
        Database::sqlite(dir.path())
    };
    let fleet = Fleet::start(10).await?;
    let p = Arc::new(InProcess::start(dir.path(), &db, true).await?);
    let token = p.init().await?;
    let receivers: Vec<&EventReceiver> = fleet.receivers.iter().collect();
    hooks_setup(&p, &token, 1, 10, &receivers).await?;
    for rate in [100u64, 1000] {
        let total = usize::try_from(rate * ctx.plan.paced_secs).unwrap_or(usize::MAX);
        let prefix = format!("r{rate}-");
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut raised = tokio::task::JoinSet::new();
        let cpu_before = cpu_seconds(std::process::id());
        let t = Instant::now();
        for i in 0..total {
            tick.tick().await;
            let (p, tag) = (p.clone(), format!("{prefix}{i}"));
            // Each event is raised by its own task at its tick, as requests would.
            raised.spawn(async move {
                let at = Instant::now();
                p.raise("r0", &tag).await.map(|()| (tag, at, Instant::now()))
            });
        }
        let mut stamps = Vec::with_capacity(total);
        while let Some(r) = raised.join_next().await {
            stamps.push(r??);
        }
        let asked_for = t.elapsed();
        let cores = (cpu_seconds(std::process::id()) - cpu_before) / asked_for.as_secs_f64();
        let last_raise = stamps.iter().map(|(_, at, _)| *at).max().unwrap_or(t);
        let deadline = Instant::now() + Duration::from_secs(120);
        while fleet.total(&prefix) < total * 10 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if ctx.engine_metrics {
            // Event → arrival by when the event was raised, per 50 ms, for the spells where some
            // event took over 10 ms: shows when a queue formed, how long it lasted, and how it
            // drained (a stall hits every event of its spell; slow requests hit a few), and which
            // part of it passed before the raise had committed.
            let mut per: std::collections::BTreeMap<u128, (Vec<f64>, Vec<f64>)> = std::collections::BTreeMap::new();
            let (mut to_commit, mut from_commit) = (Vec::new(), Vec::new());
            for (tag, at, committed) in &stamps {
                let bin = per.entry(at.duration_since(t).as_millis() / 50).or_default();
                let commit_ms = committed.duration_since(*at).as_secs_f64() * 1000.0;
                to_commit.push(commit_ms);
                bin.1.push(commit_ms);
                for a in fleet.arrivals(tag) {
                    from_commit.push(a.saturating_duration_since(*committed).as_secs_f64() * 1000.0);
                    bin.0.push(a.saturating_duration_since(*at).as_secs_f64() * 1000.0);
                }
            }
            for (part, v) in [("event → committed", &to_commit), ("committed → arrival", &from_commit)] {
                let q = |x| quantile(v, x).unwrap_or(0.0);
                eprintln!(
                    "{backend} {rate}/s: {part}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
                    q(0.5),
                    q(0.9),
                    q(0.99)
                );
            }
            for (bin, (v, commits)) in per {
                let (p50, max) = (quantile(&v, 0.5).unwrap_or(0.0), quantile(&v, 1.0).unwrap_or(0.0));
                if max > 10.0 {
                    eprintln!(
                        "{backend} {rate}/s: raised at {:.2} s: event → arrival p50 {p50:.1} ms, max {max:.1} ms (committed: p50 {:.1} ms)",
                        bin as f64 / 20.0,
                        quantile(&commits, 0.5).unwrap_or(0.0)
                    );
                }
            }
        }
        let mut lat = Vec::new();
        let mut last_arrival = last_raise;
        for (tag, at, _) in &stamps {
            for a in fleet.arrivals(tag) {
                lat.push(a.saturating_duration_since(*at).as_secs_f64() * 1000.0);
                last_arrival = last_arrival.max(a);
            }
        }
        let target = if rate == 100 {
            "p50 ≤ 2, p99 ≤ 5 (Svix 2.2 / 7.3)"
        } else {
            "p99 ≤ 25"
        };
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            let mut f = figure(
                "4. dispatch",
                &format!("event → arrival {name}, {rate} events/s × 10 webhooks, {backend}"),
                "ms",
                false,
                target,
            );
            f.berth.extend(quantile(&lat, q));
            figures.push(f);
        }
        let mut behind = figure(
            "4. dispatch",
            &format!("last arrival after the last event, {rate} events/s × 10 webhooks, {backend}"),
            "ms",
            false,
            "nothing falls behind",
        );
        behind
            .berth
            .push(last_arrival.duration_since(last_raise).as_secs_f64() * 1000.0);
        figures.push(behind);
        notes.push(format!(
            "Dispatch {backend} at {rate} events/s: raised at {:.0} events/s; {} of {} deliveries arrived; the harness process (Berth, its raisers and the receivers) used {cores:.2} cores while raising.",
            total as f64 / asked_for.as_secs_f64(),
            lat.len(),
            total * 10
        ));
        if ctx.engine_metrics {
            let m = reqwest::get(format!("http://{}/metrics", p.base)).await?.text().await?;
            let engine = m.lines().filter(|l| {
                (l.starts_with("berth_delivery") || l.starts_with("berth_events"))
                    && !l.contains("destination")
                    && !l.contains("_bucket")
            });
            for l in engine {
                eprintln!("{backend} {rate}/s: {l}");
            }
        }
        progress(&format!(
            "4. dispatch {backend} at {rate} events/s: {} deliveries measured",
            lat.len()
        ));
    }
    match Arc::try_unwrap(p) {
        Ok(p) => p.stop().await?,
        Err(_) => anyhow::bail!("the in-process server is still shared"),
    }
    Ok((figures, notes))
}

/// `kill -9` during a drain, then a restart: every delivery id arrives; duplicates counted.
async fn crash(ctx: &Ctx) -> anyhow::Result<(Vec<Figure>, Vec<String>)> {
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    for (backend, postgres) in [("SQLite", false), ("PostgreSQL", true)] {
        if !ctx.backend(if postgres { "postgres" } else { "sqlite" }) {
            continue;
        }
        let dir = tempfile::tempdir()?;
        let db = if postgres {
            Database::postgres(&ctx.postgres)?
        } else {
            Database::sqlite(dir.path())
        };
        let fleet = Fleet::start(10).await?;
        let total = ctx.plan.crash_deliveries;
        {
            let p = InProcess::start(dir.path(), &db, false).await?;
            let token = p.init().await?;
            let receivers: Vec<&EventReceiver> = fleet.receivers.iter().collect();
            hooks_setup(&p, &token, 1, 10, &receivers).await?;
            p.raise_backlog(1, total / 10, "c").await?;
            p.stop().await?;
        }
        let b = Berth {
            bin: ctx.berth_bin.clone(),
            dir: dir.path().to_path_buf(),
            database_url: db.url.clone(),
            token: String::new(),
        };
        let mut first: Running = b.serve(&[])?;
        let deadline = Instant::now() + Duration::from_secs(300);
        while fleet.count() < total * 3 / 10 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        first.kill9();
        let at_kill = fleet.count();
        // Jobs held by the killed process come back when their lease (60 s by default) ends.
        let second = b.serve(&[])?;
        let deadline = Instant::now() + Duration::from_secs(600);
        while fleet.ids().0 < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(second);
        let (distinct, duplicates) = fleet.ids();
        progress(&format!(
            "4. crash {backend}: killed at {at_kill}; {distinct} of {total} ids, {duplicates} duplicates"
        ));
        let mut f = figure(
            "4. dispatch",
            &format!("delivery ids arrived of {total} after kill -9 mid-drain, {backend}"),
            "deliveries",
            true,
            &format!("{total}"),
        );
        f.berth.push(distinct as f64);
        figures.push(f);
        let mut d = figure(
            "4. dispatch",
            &format!("duplicates after kill -9 mid-drain, {backend}"),
            "deliveries",
            false,
            "≤ max_in_flight (512)",
        );
        d.berth.push(duplicates as f64);
        figures.push(d);
        notes.push(format!(
            "Crash {backend}: `berth serve` killed with SIGKILL after {at_kill} of {total} arrivals, restarted at once; the killed process's jobs came back when their lease ended."
        ));
    }
    Ok((figures, notes))
}
