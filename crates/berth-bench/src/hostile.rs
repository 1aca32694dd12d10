//! Scenario 7, hostile load (Berth alone): a flood of wrong passwords, the attack the hardening
//! issue measured (300 wrong-password `GET /api/v1/user/` as a real user, 100 at a time). Each
//! argon2 check costs about 19 MiB, so the figures are the server's memory during and after the
//! flood, and how long a valid token request waits meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::peers::{Berth, memory_mib};
use crate::progress;
use crate::scenarios::{Ctx, figure};
use crate::stats::{Figure, quantile};

/// Wrong-password requests in the flood, and how many are in flight at once.
const FLOOD: usize = 300;
const AT_ONCE: usize = 100;

/// Runs the password flood against a fresh Berth on SQLite.
pub async fn password_flood(ctx: &Ctx) -> anyhow::Result<(Vec<Figure>, Vec<String>)> {
    let dir = tempfile::tempdir()?;
    let b = Berth::setup(
        &ctx.berth_bin,
        dir.path(),
        &format!("sqlite://{}", dir.path().join("berth.db").display()),
    )?;
    let server = b.serve(&[])?;
    let pid = server.child.id();
    let url = format!("http://{}/api/v1/user/", server.host());
    let http = reqwest::Client::new();
    // One valid request first, so that the measured ones do not pay for warm-up.
    http.get(&url).bearer_auth(&b.token).send().await?.error_for_status()?;
    let (rss_before, _) = memory_mib(pid);

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A valid token request every 100 ms while the flood runs.
    let probe = {
        let (http, url, token, done) = (http.clone(), url.clone(), b.token.clone(), done.clone());
        tokio::spawn(async move {
            let mut waits = Vec::new();
            let mut failures = 0usize;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let t = Instant::now();
                match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status().is_success() => waits.push(t.elapsed().as_secs_f64() * 1000.0),
                    _ => failures += 1,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (waits, failures)
        })
    };
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(AT_ONCE));
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let permit = gate.clone().acquire_owned().await?;
        let (http, url) = (http.clone(), url.clone());
        flood.spawn(async move {
            let _permit = permit;
            let r = http
                .get(&url)
                .basic_auth("bench", Some(format!("wrong-password-{i}")))
                .timeout(Duration::from_secs(60))
                .send()
                .await;
            r.map(|r| r.status().as_u16()).unwrap_or(0)
        });
    }
    let statuses = flood.join_all().await;
    let flood_secs = started.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Release);
    let (waits, probe_failures) = probe.await?;
    let (_, peak) = memory_mib(pid);
    progress("7. hostile: flood done; waiting 15 s for the memory to settle");
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (rss_after, _) = memory_mib(pid);
    drop(server);

    let count = |code: u16| statuses.iter().filter(|s| **s == code).count();
    let mut figures = Vec::new();
    let mut rss_peak = figure(
        "7. hostile",
        &format!("RSS peak during {FLOOD} wrong passwords, {AT_ONCE} at a time"),
        "MiB",
        false,
        "< 300 MB",
    );
    rss_peak.berth.push(peak);
    let mut rss_later = figure("7. hostile", "RSS 15 s after the flood", "MiB", false, "—");
    rss_later.berth.push(rss_after);
    let mut probe_max = figure(
        "7. hostile",
        "valid token request during the flood, slowest",
        "ms",
        false,
        "≤ 1000",
    );
    probe_max.berth.push(waits.iter().copied().fold(0.0, f64::max));
    let mut probe_p50 = figure(
        "7. hostile",
        "valid token request during the flood, p50",
        "ms",
        false,
        "—",
    );
    probe_p50.berth.extend(quantile(&waits, 0.5));
    figures.extend([rss_peak, rss_later, probe_max, probe_p50]);
    let notes = vec![format!(
        "Password flood: {FLOOD} wrong passwords for a real user, {AT_ONCE} at a time, took {flood_secs:.1} s: \
         {} answered 401, {} answered 429 (shed or rate-limited), {} other; RSS before {rss_before:.0} MiB; \
         {} valid token requests during it, {probe_failures} of them failed.",
        count(401),
        count(429),
        FLOOD - count(401) - count(429),
        waits.len() + probe_failures,
    )];
    Ok((figures, notes))
}
