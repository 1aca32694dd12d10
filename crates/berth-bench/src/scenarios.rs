//! The six scenarios. Each returns its figures (and notes); the registries alternate within every
//! repetition so that both see the same machine state.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::json;

use crate::dispatch::{Database, InProcess, cpu_seconds, hooks_setup};
use crate::image::Image;
use crate::peers::{self, Berth, Client, Running, memory_mib};
use crate::receiver::EventReceiver;
use crate::stats::{Figure, quantile};
use crate::{Plan, progress};

/// What every scenario needs.
pub struct Ctx {
    /// The `berth` binary.
    pub berth_bin: PathBuf,
    /// The PostgreSQL server URL.
    pub postgres: String,
    /// The run's size.
    pub plan: Plan,
    /// Scenario 4's parts to run (empty: all).
    pub parts: Vec<String>,
    /// Scenario 4's backends to run (empty: both).
    pub backends: Vec<String>,
    /// Print the engine's metrics after each paced run.
    pub engine_metrics: bool,
}

impl Ctx {
    /// Whether scenario 4's part `part` (drain, isolation, paced, crash) is wanted.
    pub(crate) fn part(&self, part: &str) -> bool {
        self.parts.is_empty() || self.parts.iter().any(|p| p == part)
    }

    /// Whether scenario 4 runs on `backend` (sqlite, postgres).
    pub(crate) fn backend(&self, backend: &str) -> bool {
        self.backends.is_empty() || self.backends.iter().any(|b| b == backend)
    }
}

pub(crate) fn figure(scenario: &str, name: &str, unit: &str, higher_is_better: bool, target: &str) -> Figure {
    Figure {
        scenario: scenario.into(),
        name: name.into(),
        unit: unit.into(),
        higher_is_better,
        berth: Vec::new(),
        peer: Vec::new(),
        target: target.into(),
    }
}

/// A fresh Berth on SQLite in `dir`.
pub(crate) fn berth_on_sqlite(ctx: &Ctx, dir: &Path) -> anyhow::Result<Berth> {
    Berth::setup(
        &ctx.berth_bin,
        dir,
        &format!("sqlite://{}", dir.join("berth.db").display()),
    )
}

/// Runs skopeo, keeping its temporary files in `tmp` (its blob-info cache, as root under
/// `/var/lib/containers/cache`, is the one thing it keeps elsewhere).
pub(crate) fn skopeo(tmp: &Path, args: &[&str]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = Command::new("skopeo").args(args).env("TMPDIR", tmp).output()?;
    if !out.status.success() {
        bail!("skopeo {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(t.elapsed())
}

/// Scenario 1 (and the memory figures of 6): skopeo push and pull of three images, to a fresh
/// repository each time.
pub async fn throughput(ctx: &Ctx) -> anyhow::Result<Vec<Figure>> {
    let work = tempfile::tempdir()?;
    let bdir = work.path().join("berth");
    let ddir = work.path().join("distribution");
    std::fs::create_dir_all(&bdir)?;
    std::fs::create_dir_all(&ddir)?;
    let b = berth_on_sqlite(ctx, &bdir)?;
    let berth = b.serve(&[])?;
    let dist = peers::distribution(&ddir, None)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut idle = figure("6. memory", "RSS idle", "MiB", false, "Berth ≤ 30 MiB");
    idle.berth.push(memory_mib(berth.child.id()).0);
    idle.peer.push(memory_mib(dist.child.id()).0);

    let images = [
        ("one 256 MiB layer", "big", vec![256usize << 20]),
        ("50 layers of 1 MiB", "many", vec![1 << 20; 50]),
        ("1 KiB image", "tiny", vec![1024]),
    ];
    let creds = format!("$oauthtoken:{}", b.token);
    let mut figures = Vec::new();
    for (label, key, sizes) in images {
        let tiny = key == "tiny";
        let (unit, target) = if tiny {
            ("images/s", "≥ 1× Distribution")
        } else {
            ("MB/s", "≥ 1× Distribution")
        };
        let mut push = figure("1. push", label, unit, true, target);
        let mut pull = figure("1. pull", label, unit, true, target);
        for i in 0..ctx.plan.repeats {
            // New random blobs every time: skopeo would otherwise mount the blobs it pushed
            // before from the earlier repository instead of uploading them.
            let img = Image::random(&sizes);
            let layout = work.path().join(format!("layout-{key}-{i}"));
            img.write_layout(&layout, "v1")?;
            let src = format!("oci:{}:v1", layout.display());
            let mb = img.bytes() as f64 / 1e6;
            // Alternate which registry goes first.
            let order: [(&Running, bool); 2] = if i % 2 == 0 {
                [(&berth, true), (&dist, false)]
            } else {
                [(&dist, false), (&berth, true)]
            };
            for (reg, is_berth) in order {
                let dest = format!("docker://{}/bench/{key}-{i}:v1", reg.host());
                let mut a = vec!["copy", "--quiet", "--dest-tls-verify=false"];
                if is_berth {
                    a.extend(["--dest-creds", &creds]);
                }
                a.extend([src.as_str(), dest.as_str()]);
                let t = skopeo(work.path(), &a)?.as_secs_f64();
                let out = work.path().join(format!("pulled-{key}-{i}-{is_berth}"));
                let dst = format!("oci:{}:v1", out.display());
                let mut a = vec!["copy", "--quiet", "--src-tls-verify=false"];
                if is_berth {
                    a.extend(["--src-creds", &creds]);
                }
                a.extend([dest.as_str(), dst.as_str()]);
                let t2 = skopeo(work.path(), &a)?.as_secs_f64();
                std::fs::remove_dir_all(&out).ok();
                let (pv, lv) = if tiny { (1.0 / t, 1.0 / t2) } else { (mb / t, mb / t2) };
                let (p, l) = if is_berth {
                    (&mut push.berth, &mut pull.berth)
                } else {
                    (&mut push.peer, &mut pull.peer)
                };
                p.push(pv);
                l.push(lv);
            }
            std::fs::remove_dir_all(&layout).ok();
            progress(&format!(
                "1. push/pull {label}: repetition {} of {}",
                i + 1,
                ctx.plan.repeats
            ));
        }
        figures.push(push);
        figures.push(pull);
    }
    let mut peak = figure("6. memory", "RSS peak during scenario 1", "MiB", false, "—");
    peak.berth.push(memory_mib(berth.child.id()).1);
    peak.peer.push(memory_mib(dist.child.id()).1);
    figures.push(idle);
    figures.push(peak);
    Ok(figures)
}

/// Runs wrk and returns (requests/s, p50 ms, p99 ms).
fn wrk(url: &str, secs: u32, headers: &[String], _dir: &Path) -> anyhow::Result<(f64, f64, f64)> {
    let mut c = Command::new("wrk");
    c.args(["-t2", "-c32", &format!("-d{secs}s"), "--latency"]);
    for h in headers {
        c.args(["-H", h]);
    }
    let out = c.arg(url).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
        bail!("wrk {url}: {line}\n{text}");
    }
    let ms = |v: &str| -> Option<f64> {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = num.parse().ok()?;
        Some(match unit {
            "us" => n / 1000.0,
            "ms" => n,
            "s" => n * 1000.0,
            "m" => n * 60_000.0,
            _ => return None,
        })
    };
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
    };
    let rps = find("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context(format!("wrk output: {text}"))?;
    let p50 = find("50%").and_then(|v| ms(&v)).context("wrk p50")?;
    let p99 = find("99%").and_then(|v| ms(&v)).context("wrk p99")?;
    Ok((rps, p50, p99))
}

/// A load generator for what wrk cannot do (its parser waits for a body after `HEAD`): 32
/// connections sending `method` to `url` for `secs`; returns (requests/s, p50 ms, p99 ms).
async fn rust_load(
    url: &str,
    secs: u32,
    headers: &[(String, String)],
    method: Method,
) -> anyhow::Result<(f64, f64, f64)> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(32).build()?;
    let end = Instant::now() + Duration::from_secs(u64::from(secs));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, url, headers, method) = (client.clone(), url.to_owned(), headers.to_vec(), method.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let mut r = client.request(method.clone(), &url);
                for (k, v) in &headers {
                    r = r.header(k, v);
                }
                let t = Instant::now();
                let resp = r.send().await?;
                anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let t = Instant::now();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let rps = all.len() as f64 / t.elapsed().as_secs_f64();
    Ok((
        rps,
        quantile(&all, 0.5).unwrap_or(0.0),
        quantile(&all, 0.99).unwrap_or(0.0),
    ))
}

/// Scenario 2: small requests with 32 connections.
pub async fn small_requests(ctx: &Ctx) -> anyhow::Result<Vec<Figure>> {
    let work = tempfile::tempdir()?;
    let (bdir, ddir) = (work.path().join("b"), work.path().join("d"));
    std::fs::create_dir_all(&bdir)?;
    std::fs::create_dir_all(&ddir)?;
    let b = berth_on_sqlite(ctx, &bdir)?;
    let berth = b.serve(&[])?;
    let dist = peers::distribution(&ddir, None)?;
    let img = Image::random(&[1024]);
    let bc = Client::new(&berth.host(), Some(b.registry_auth()));
    let dc = Client::new(&dist.host(), None);
    for c in [&bc, &dc] {
        c.push_blob("bench/small", &img.config).await?;
        c.push_blob("bench/small", &img.layers[0]).await?;
        c.put_manifest("bench/small", "latest", &img.manifest).await?;
    }
    let accept = format!("Accept: {}", crate::image::OCI_MANIFEST);
    let auth = format!("Authorization: {}", b.registry_auth());
    let routes = [
        ("/v2/", "GET /v2/", false),
        ("/v2/bench/small/manifests/latest", "GET manifest by tag", false),
        (
            "/v2/bench/small/manifests/latest",
            "HEAD manifest by tag (Rust client)",
            true,
        ),
        ("/v2/bench/small/tags/list", "GET tags/list", false),
    ];
    let mut figures = Vec::new();
    for (path, label, head) in routes {
        let mut rps = figure(
            "2. small requests",
            &format!("{label} throughput"),
            "req/s",
            true,
            "≥ 5× Distribution",
        );
        let mut p50 = figure("2. small requests", &format!("{label} p50"), "ms", false, "—");
        let mut p99 = figure("2. small requests", &format!("{label} p99"), "ms", false, "—");
        for i in 0..ctx.plan.repeats.min(3) {
            let order = if i % 2 == 0 { [true, false] } else { [false, true] };
            for is_berth in order {
                let (host, headers) = if is_berth {
                    (berth.host(), vec![accept.clone(), auth.clone()])
                } else {
                    (dist.host(), vec![accept.clone()])
                };
                let url = format!("http://{host}{path}");
                let (r, a, z) = if head {
                    let pairs: Vec<(String, String)> = headers
                        .iter()
                        .filter_map(|h| h.split_once(": ").map(|(k, v)| (k.to_owned(), v.to_owned())))
                        .collect();
                    rust_load(&url, ctx.plan.wrk_secs, &pairs, Method::HEAD).await?
                } else {
                    wrk(&url, ctx.plan.wrk_secs, &headers, work.path())?
                };
                let target = |f: &mut Figure, v: f64| if is_berth { f.berth.push(v) } else { f.peer.push(v) };
                target(&mut rps, r);
                target(&mut p50, a);
                target(&mut p99, z);
            }
        }
        progress(&format!("2. small requests: {label} done"));
        figures.extend([rps, p50, p99]);
    }
    figures.extend(catalog(ctx, &b, &berth, work.path()).await?);
    Ok(figures)
}

/// `GET /v2/_catalog?n=100` (Berth alone: Distribution lists what its storage holds, without
/// accounts) on a registry of `plan.catalog_repos` private repositories: as their owner (the first
/// page), and as a user who sees none of them (every repository is looked at, for nothing).
async fn catalog(ctx: &Ctx, b: &Berth, berth: &Running, dir: &Path) -> anyhow::Result<Vec<Figure>> {
    let count = ctx.plan.catalog_repos;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (c, token, next) = (Client::new(&berth.host(), None), b.token.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(());
                }
                create_repo(&c, &token, &format!("c{i:06}")).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    progress(&format!("2. small requests: {count} repositories created"));
    let reader = b.add_user("reader", false, "repo:read")?;
    let reader_auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("$oauthtoken:{reader}")
        )
    );
    let url = format!("http://{}/v2/_catalog?n=100", berth.host());
    let mut figures = Vec::new();
    for (who, auth) in [
        ("their owner", b.registry_auth()),
        ("a user who sees none", reader_auth),
    ] {
        let label = format!("GET /v2/_catalog?n=100 among {count} repositories, as {who}");
        let mut rps = figure("2. small requests", &format!("{label} throughput"), "req/s", true, "—");
        let mut p50 = figure("2. small requests", &format!("{label} p50"), "ms", false, "—");
        let mut p99 = figure("2. small requests", &format!("{label} p99"), "ms", false, "—");
        for _ in 0..ctx.plan.repeats.min(3) {
            let (r, a, z) = wrk(&url, ctx.plan.wrk_secs, &[format!("Authorization: {auth}")], dir)?;
            rps.berth.push(r);
            p50.berth.push(a);
            p99.berth.push(z);
        }
        progress(&format!("2. small requests: catalog as {who} done"));
        figures.extend([rps, p50, p99]);
    }
    Ok(figures)
}

/// Pushes the tiny image's blobs once; then each tag is one manifest PUT.
async fn prepare_tiny(c: &Client, repo: &str, img: &Image) -> anyhow::Result<()> {
    c.push_blob(repo, &img.config).await?;
    c.push_blob(repo, &img.layers[0]).await?;
    Ok(())
}

/// Creates `bench/<name>` on Berth with one webhook notification to `url`.
pub(crate) async fn berth_repo_with_hook(c: &Client, token: &str, name: &str, url: &str) -> anyhow::Result<()> {
    create_repo(c, token, name).await?;
    add_webhook(c, token, name, url).await
}

/// Creates the private repository `bench/<name>` on Berth.
pub(crate) async fn create_repo(c: &Client, token: &str, name: &str) -> anyhow::Result<()> {
    let body = json!({"namespace": "bench", "repository": name, "visibility": "private"});
    c.api(Method::POST, "/api/v1/repository", token, body).await?;
    Ok(())
}

/// Adds a `repo_push` webhook notification to `url` on `bench/<name>`.
pub(crate) async fn add_webhook(c: &Client, token: &str, name: &str, url: &str) -> anyhow::Result<()> {
    let hook = json!({"event": "repo_push", "method": "webhook", "config": {"url": url}, "eventConfig": {}});
    let path = format!("/api/v1/repository/bench/{name}/notification/");
    c.api(Method::POST, &path, token, hook).await?;
    Ok(())
}

async fn wait_arrival(rx: &EventReceiver, tag: &str, within: Duration) -> Option<Instant> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(t) = rx.arrivals(tag).first() {
            return Some(*t);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Scenario 3: from the end of a tagged push to the arrival of its event.
pub async fn push_to_webhook(ctx: &Ctx) -> anyhow::Result<Vec<Figure>> {
    let work = tempfile::tempdir()?;
    let (bdir, ddir) = (work.path().join("b"), work.path().join("d"));
    std::fs::create_dir_all(&bdir)?;
    std::fs::create_dir_all(&ddir)?;
    let rx = EventReceiver::start().await?;
    let b = berth_on_sqlite(ctx, &bdir)?;
    let berth = b.serve(&[])?;
    let dist = peers::distribution(&ddir, Some(&format!("{}/distribution", rx.url)))?;
    let bc = Client::new(&berth.host(), Some(b.registry_auth()));
    let dc = Client::new(&dist.host(), None);
    let img = Image::random(&[1024]);
    let mut lat = figure(
        "3. push → webhook",
        "from the PUT's response to arrival",
        "ms",
        false,
        "Berth p50 ≤ 5, p99 ≤ 25, durable",
    );
    let mut from_start = figure(
        "3. push → webhook",
        "from the manifest PUT's start to arrival",
        "ms",
        false,
        "—",
    );
    let mut lost = 0;
    for i in 0..ctx.plan.latency_pushes {
        for is_berth in if i % 2 == 0 { [true, false] } else { [false, true] } {
            let repo = format!("lat-{i}");
            let tag = format!("{}lat{i}", if is_berth { "b" } else { "d" });
            let c = if is_berth {
                berth_repo_with_hook(&bc, &b.token, &repo, &format!("{}/berth", rx.url)).await?;
                &bc
            } else {
                &dc
            };
            let full = format!("bench/{repo}");
            prepare_tiny(c, &full, &img).await?;
            let start = Instant::now();
            c.put_manifest(&full, &tag, &img.manifest).await?;
            let end = Instant::now();
            match wait_arrival(&rx, &tag, Duration::from_secs(5)).await {
                Some(at) => {
                    // Signed: Distribution often notifies before it answers the PUT.
                    let ms = if at >= end {
                        (at - end).as_secs_f64() * 1000.0
                    } else {
                        -((end - at).as_secs_f64() * 1000.0)
                    };
                    let whole = at.saturating_duration_since(start).as_secs_f64() * 1000.0;
                    if is_berth {
                        lat.berth.push(ms);
                        from_start.berth.push(whole);
                    } else {
                        lat.peer.push(ms);
                        from_start.peer.push(whole);
                    }
                }
                None => lost += 1,
            }
        }
    }
    progress(&format!(
        "3. push → webhook: {} pushes each ({lost} events missing after 5 s)",
        ctx.plan.latency_pushes
    ));
    let mut p99 = figure(
        "3. push → webhook",
        "from the PUT's response, p99",
        "ms",
        false,
        "Berth ≤ 25",
    );
    p99.berth.extend(quantile(&lat.berth, 0.99));
    p99.peer.extend(quantile(&lat.peer, 0.99));
    let mut max = figure("3. push → webhook", "from the PUT's response, max", "ms", false, "—");
    max.berth.extend(lat.berth.iter().copied().reduce(f64::max));
    max.peer.extend(lat.peer.iter().copied().reduce(f64::max));
    Ok(vec![lat, p99, max, from_start])
}

/// Scenario 5: the receiver fails, events queue up, each registry is killed with SIGKILL and
/// restarted, the receiver heals; how many events arrive?
pub async fn durability(ctx: &Ctx) -> anyhow::Result<(Vec<Figure>, Vec<String>)> {
    let n = ctx.plan.durable_events;
    let work = tempfile::tempdir()?;
    let (bdir, ddir) = (work.path().join("b"), work.path().join("d"));
    std::fs::create_dir_all(&bdir)?;
    std::fs::create_dir_all(&ddir)?;
    let rx = EventReceiver::start().await?;
    let img = Image::random(&[1024]);
    // Retries every 3 s and short leases, so that a healed receiver is reached within the run.
    let env = [
        ("BERTH_NOTIFICATIONS__RETRY_SCHEDULE_SECS", "[3]".to_owned()),
        ("BERTH_NOTIFICATIONS__LEASE_SECS", "2".to_owned()),
    ];
    let b = berth_on_sqlite(ctx, &bdir)?;
    let mut results = Vec::new();
    for is_berth in [true, false] {
        rx.set_status(500);
        let prefix = if is_berth { "bdur" } else { "ddur" };
        let mut reg = if is_berth {
            b.serve(&env)?
        } else {
            peers::distribution(&ddir, Some(&format!("{}/distribution", rx.url)))?
        };
        let c = if is_berth {
            let c = Client::new(&reg.host(), Some(b.registry_auth()));
            berth_repo_with_hook(&c, &b.token, "durable", &format!("{}/berth", rx.url)).await?;
            c
        } else {
            Client::new(&reg.host(), None)
        };
        prepare_tiny(&c, "bench/durable", &img).await?;
        for i in 0..n {
            c.put_manifest("bench/durable", &format!("{prefix}{i}"), &img.manifest)
                .await?;
        }
        reg.kill9();
        let _restarted = if is_berth {
            b.serve(&env)?
        } else {
            peers::distribution(&ddir, Some(&format!("{}/distribution", rx.url)))?
        };
        rx.set_status(200);
        let deadline = Instant::now() + Duration::from_secs(if is_berth { 120 } else { 20 });
        while rx.distinct(prefix) < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        results.push(rx.distinct(prefix) as f64);
        progress(&format!(
            "5. durability: {} delivered {} of {n} after kill -9",
            if is_berth { "Berth" } else { "Distribution" },
            rx.distinct(prefix)
        ));
    }
    let mut f = figure(
        "5. durability",
        &format!("events delivered of {n} after kill -9"),
        "events",
        true,
        &format!("Berth {n} of {n}"),
    );
    f.berth.push(results[0]);
    f.peer.push(results[1]);
    Ok((
        vec![f],
        vec![format!(
            "Durability: the receiver answered 500 while {n} tagged pushes were made, then each registry was killed with SIGKILL, restarted and the receiver healed (Berth with retry_schedule_secs = [3] and lease_secs = 2 so that the run is short)."
        )],
    ))
}

/// Scenario 6, last figures: Berth's RSS with a large queue of pending deliveries, and its CPU
/// when it has nothing to do.
pub async fn pending_memory(ctx: &Ctx) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let db = Database::sqlite(dir.path());
    let rx = EventReceiver::start().await?;
    let p = InProcess::start(dir.path(), &db, false).await?;
    let token = p.init().await?;
    hooks_setup(&p, &token, 1, 10, &[&rx]).await?;
    p.raise_backlog(1, ctx.plan.pending / 10, "m").await?;
    progress(&format!("6. memory: {} pending deliveries queued", ctx.plan.pending));
    p.stop().await?;
    let b = Berth {
        bin: ctx.berth_bin.clone(),
        dir: dir.path().to_path_buf(),
        database_url: db.url.clone(),
        token: String::new(),
    };
    // Idle CPU first, on an empty database of its own: polling must cost next to nothing.
    let idle_dir = tempfile::tempdir()?;
    let idle_server = Berth {
        bin: ctx.berth_bin.clone(),
        dir: idle_dir.path().to_path_buf(),
        database_url: format!("sqlite://{}", idle_dir.path().join("berth.db").display()),
        token: String::new(),
    }
    .serve(&[])?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = cpu_share(idle_server.child.id(), Duration::from_secs(10)).await;
    drop(idle_server);
    // The receiver fails every delivery, so they stay pending while the server works on them.
    rx.set_status(503);
    let server = b.serve(&[])?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, hwm) = memory_mib(server.child.id());
    let mut f = figure(
        "6. memory",
        &format!("RSS with {} pending deliveries (peak)", ctx.plan.pending),
        "MiB",
        false,
        "≤ 200 MB",
    );
    f.berth.push(rss.max(hwm));
    let mut idle = figure("6. memory", "CPU while idle (10 s)", "% of a core", false, "near 0");
    idle.berth.push(cpu);
    Ok(vec![f, idle])
}

/// The share of one core a process used over `span`.
async fn cpu_share(pid: u32, span: Duration) -> f64 {
    let before = cpu_seconds(pid);
    tokio::time::sleep(span).await;
    100.0 * (cpu_seconds(pid) - before) / span.as_secs_f64()
}
