//! `berth-bench`: Berth against CNCF Distribution (`docker-registry`), side by side in one run.
//!
//! Each scenario runs against both registries in alternation (Berth alone where no peer has the
//! feature), on 127.0.0.1 only, in temporary directories that are removed afterwards, and every
//! process it starts is killed when it ends. Output: a Markdown table of medians with min and max
//! and the Berth/Distribution ratio (`results.md`), and every sample (`samples.json`).
//!
//! Scenarios: 1. push and pull throughput (skopeo); 2. small requests (wrk, 32 connections);
//! 3. push → webhook latency; 4. dispatch throughput and event-to-arrival latency (Berth, SQLite
//! and PostgreSQL); 5. durability across `kill -9`; 6. memory; 7. hostile input; 8. push and
//! pull with blobs in S3 (SeaweedFS), against Distribution's `s3` driver.

mod dispatch;
mod hostile;
mod image;
mod peers;
mod receiver;
mod s3;
mod scenarios;
mod stats;

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "berth-bench",
    version,
    about = "Benchmarks Berth against CNCF Distribution in one run"
)]
pub struct Args {
    /// A smoke run: fewer samples and smaller loads (a few minutes).
    #[arg(long)]
    pub quick: bool,
    /// Where results.md and samples.json go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// The `berth` binary to measure (default: `berth` next to this program).
    #[arg(long)]
    pub berth: Option<PathBuf>,
    /// Run only these scenarios (1–8), e.g. `--only 1,3`.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<u32>,
    /// Scenario 4's parts to run (drain, isolation, paced, crash); all when not given.
    #[arg(long, value_delimiter = ',')]
    pub parts: Vec<String>,
    /// Scenario 4's backends (sqlite, postgres); both when not given.
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Print the delivery engine's own metrics (`berth_delivery_*`, `berth_events_*`) and the event → arrival
    /// latency per 50 ms (the spells over 10 ms) after each paced run of scenario 4, to see where time goes.
    #[arg(long)]
    pub engine_metrics: bool,
    /// PostgreSQL server for the PostgreSQL runs (a database is created and dropped).
    #[arg(
        long,
        env = "TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres: String,
}

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Samples per throughput figure.
    pub repeats: usize,
    /// Seconds per wrk run.
    pub wrk_secs: u32,
    /// Pushes measured for push → webhook latency.
    pub latency_pushes: usize,
    /// Deliveries drained per dispatch repetition.
    pub drain_deliveries: usize,
    /// Deliveries queued before the `kill -9` of a draining server.
    pub crash_deliveries: usize,
    /// Seconds of paced raising per rate.
    pub paced_secs: u64,
    /// Events queued before the `kill -9`.
    pub durable_events: usize,
    /// Pending deliveries for the memory figure.
    pub pending: usize,
    /// Repositories in the registry whose catalog is read.
    pub catalog_repos: usize,
}

impl Plan {
    fn of(quick: bool) -> Plan {
        if quick {
            Plan {
                repeats: 1,
                wrk_secs: 3,
                latency_pushes: 20,
                drain_deliveries: 4_000,
                crash_deliveries: 10_000,
                paced_secs: 2,
                durable_events: 200,
                pending: 20_000,
                catalog_repos: 2_000,
            }
        } else {
            Plan {
                repeats: 5,
                wrk_secs: 10,
                latency_pushes: 200,
                drain_deliveries: 40_000,
                crash_deliveries: 100_000,
                paced_secs: 5,
                durable_events: 1_000,
                pending: 1_000_000,
                catalog_repos: 100_000,
            }
        }
    }
}

/// Prints a progress line.
pub fn progress(msg: &str) {
    eprintln!("[berth-bench {}] {msg}", chrono::Local::now().format("%H:%M:%S"));
}

fn environment(args: &Args) -> String {
    let run = |cmd: &str, a: &[&str]| {
        std::process::Command::new(cmd)
            .args(a)
            .output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .unwrap_or_else(|| "not found".into())
    };
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "- Date: {}\n- Machine: {cores} cores, {mem} memory; disk: {}\n- Berth: {}\n- Distribution: {}\n- skopeo: {}\n- wrk: {}\n- rustc: {}\n- Command: `{}`\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        run(
            "sh",
            &[
                "-c",
                &format!("df -h --output=source,fstype,size {} | tail -n 1", args.out.display())
            ]
        )
        .trim(),
        run(
            &args.berth.clone().unwrap_or_default().to_string_lossy(),
            &["--version"]
        ),
        run("docker-registry", &["--version"]),
        run("skopeo", &["--version"]),
        run("sh", &["-c", "wrk -v 2>&1 | head -n 1"]),
        run("rustc", &["--version"]),
        std::env::args().collect::<Vec<_>>().join(" "),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.berth.is_none() {
        let me = std::env::current_exe()?;
        args.berth = Some(me.with_file_name("berth"));
    }
    let berth = args.berth.clone().context("berth binary")?;
    anyhow::ensure!(
        berth.is_file(),
        "{} not found: build it with `cargo build --release`",
        berth.display()
    );
    for tool in ["docker-registry", "skopeo", "wrk", "psql"] {
        anyhow::ensure!(
            peers::which(tool).is_some(),
            "{tool} is required (scripts/bench installs it)"
        );
    }
    std::fs::create_dir_all(&args.out)?;
    let plan = Plan::of(args.quick);
    let wanted = |n: u32| args.only.is_empty() || args.only.contains(&n);
    let started = std::time::Instant::now();
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let ctx = scenarios::Ctx {
        berth_bin: berth,
        postgres: args.postgres.clone(),
        plan,
        parts: args.parts.clone(),
        backends: args.backends.clone(),
        engine_metrics: args.engine_metrics,
    };
    if wanted(1) || wanted(6) {
        figures.extend(scenarios::throughput(&ctx).await?);
    }
    if wanted(2) {
        figures.extend(scenarios::small_requests(&ctx).await?);
    }
    if wanted(3) {
        figures.extend(scenarios::push_to_webhook(&ctx).await?);
    }
    if wanted(4) {
        let (f, n) = dispatch::dispatch(&ctx).await?;
        figures.extend(f);
        notes.extend(n);
    }
    if wanted(5) {
        let (f, n) = scenarios::durability(&ctx).await?;
        figures.extend(f);
        notes.extend(n);
    }
    if wanted(6) {
        figures.extend(scenarios::pending_memory(&ctx).await?);
    }
    if wanted(7) {
        let (f, n) = hostile::password_flood(&ctx).await?;
        figures.extend(f);
        notes.extend(n);
    }
    if wanted(8) {
        figures.extend(s3::s3_throughput(&ctx).await?);
    }
    let mode = if args.quick { "quick" } else { "full" };
    let mut md = format!(
        "## Run ({mode}, {:.0} s)\n\n{}\n{}",
        started.elapsed().as_secs_f64(),
        environment(&args),
        stats::table(&figures)
    );
    if !notes.is_empty() {
        md.push_str("\nNotes:\n");
        for n in &notes {
            md.push_str(&format!("- {n}\n"));
        }
    }
    std::fs::write(args.out.join("results.md"), &md)?;
    let samples = serde_json::json!({"mode": mode, "figures": figures.iter().map(stats::Figure::json).collect::<Vec<_>>(), "notes": notes});
    std::fs::write(args.out.join("samples.json"), serde_json::to_vec_pretty(&samples)?)?;
    println!("{md}");
    progress(&format!("wrote {}/results.md and samples.json", args.out.display()));
    Ok(())
}
