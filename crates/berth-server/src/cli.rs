//! The command line: `serve`, `migrate`, `check-config` and `admin` (create users and tokens).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use berth_app::Ctx;
use berth_app::accounts::NewUser;
use berth_core::ScopeSet;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::startup::{Application, build_app, connect_store, shutdown_signal};
use crate::telemetry::init_logs;

/// Berth: a container registry with repository notifications.
///
/// Configuration comes from built-in defaults, then the TOML file given with --config, then
/// BERTH_* environment variables (e.g. BERTH_LISTEN, BERTH_DATABASE_URL); any key can also be read
/// from a file named by BERTH_<KEY>_FILE. See config.example.toml for every key.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: a container registry whose repositories notify you (webhook, Slack, e-mail, the bell) \
             when an image is pushed, built or found vulnerable",
    long_about = "Berth: a container registry whose repositories notify you (webhook, Slack, e-mail, the bell) \
                  when an image is pushed, built or found vulnerable.\n\n\
                  Start it with `berth serve` (SQLite and local files under ./berth-data unless configured), \
                  then open the address it prints."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short, global = true, env = "BERTH_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the registry, the API and the workers (migrates first unless migrate_on_start = false).
    Serve(ServeArgs),
    /// Apply pending database schema migrations, then exit.
    Migrate,
    /// Validate the configuration, print the effective values, and exit (non-zero when invalid).
    CheckConfig,
    /// Ask the server on this configuration's `listen` address whether it is up
    /// (`/health/instance`); exits non-zero when it is not. For container health checks, where
    /// no HTTP client is installed.
    Healthcheck,
    /// Administrative tasks on the database.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The vulnerability scanner's data.
    #[command(subcommand)]
    Secscan(SecscanCommand),
}

/// `berth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// What this instance does: all, api (the HTTP surface only) or worker (the workers only);
    /// overrides the configuration's `role`.
    #[arg(long, value_enum)]
    pub role: Option<crate::config::Role>,
}

/// `berth secscan …`.
#[derive(Debug, Subcommand)]
pub enum SecscanCommand {
    /// Import OSV advisories from a directory (searched recursively for .json and .zip files), a
    /// zip export (such as OSV's per-ecosystem all.zip) or one JSON file. Stored images are
    /// re-matched by the running server, which raises vulnerability_found for new findings.
    Import {
        /// The directory, zip or JSON file.
        path: PathBuf,
    },
}

/// `berth admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user; the password is read from standard input.
    CreateUser(CreateUser),
    /// Create an access token for a user and print it (it is stored only as a hash).
    CreateToken(CreateToken),
    /// Re-seal every secret stored in the database with a new secret key, in one transaction.
    /// Without secret_key in the configuration, Berth generates the key and replaces
    /// <data_dir>/secret.key (the old one stays as secret.key.previous). Restart running servers
    /// afterwards.
    RotateSecretKey(RotateSecretKey),
}

/// Arguments of `admin rotate-secret-key`.
#[derive(Debug, Args)]
pub struct RotateSecretKey {
    /// The new key (the base64 of 32 random bytes) in a file; required when secret_key is set in
    /// the configuration, which must name it afterwards.
    #[arg(long, value_name = "PATH")]
    pub new_key_file: Option<PathBuf>,
}

/// Arguments of `admin create-user`.
#[derive(Debug, Args)]
pub struct CreateUser {
    /// The username.
    pub name: String,
    /// The user's e-mail address.
    #[arg(long)]
    pub email: String,
    /// Make the user a superuser.
    #[arg(long)]
    pub superuser: bool,
    /// Read the password from the first line of standard input (required: passwords never go on
    /// the command line).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

/// Arguments of `admin create-token`.
#[derive(Debug, Args)]
pub struct CreateToken {
    /// The user the token acts for.
    pub name: String,
    /// Scopes, repeated or comma-separated: repo:read, repo:write, repo:admin, repo:create,
    /// user:read, user:admin, org:admin, super:user.
    #[arg(long = "scope", required = true, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// What the token is for.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Expire the token after this many days (default: never).
    #[arg(long, value_name = "DAYS")]
    pub expires_in_days: Option<u32>,
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::CheckConfig => {
            // The bucket is checked for real: reachable, credentials accepted, writable.
            crate::startup::open_blob_store(&config).await?;
            // Secrets are masked: the database password and the SMTP password (however given).
            let mut shown = Config {
                database_url: config.database_url.as_deref().map(berth_store::db::redact_url),
                ..config
            };
            if !shown.mail.password.is_empty() {
                shown.mail.password = "***".into();
            }
            if shown.metrics_token.is_some() {
                shown.metrics_token = Some("***".into());
            }
            if shown.secret_key.is_some() {
                shown.secret_key = Some("***".into());
            }
            for k in &mut shown.previous_secret_keys {
                *k = "***".into();
            }
            if !shown.storage.secret_access_key.is_empty() {
                shown.storage.secret_access_key = "***".into();
            }
            let text = toml::to_string_pretty(&shown).context("rendering configuration")?;
            println!("# configuration is valid; effective values:\n{text}");
            Ok(())
        }
        Command::Serve(args) => {
            let mut config = config;
            if let Some(role) = args.role {
                config.role = role;
            }
            init_logs(&config);
            let app = Application::build(&config).await?;
            let addr = app.local_addr()?;
            tracing::info!(%addr, hostname = %config.hostname(), role = ?config.role, database = %berth_store::db::redact_url(&config.database_url()), "berth is listening");
            // For the person who just typed `berth serve`: where to go next, on stdout.
            let base = app.app().settings().base_url();
            println!("Berth is running: open {base}/ in a browser.");
            if app.app().needs_setup().await.unwrap_or(false) {
                println!(
                    "No user yet: create the administrator at {base}/setup (or POST {base}/api/v1/user/initialize)."
                );
            }
            app.run_until(shutdown_signal()).await
        }
        Command::Healthcheck => healthcheck(config.listen),
        Command::Migrate => {
            init_logs(&config);
            warn_if_new_database(&config);
            let store = connect_store(&config).await?;
            store.migrate().await.context("applying migrations")?;
            println!("migrations applied ({:?})", store.backend());
            Ok(())
        }
        Command::Admin(cmd) => {
            init_logs(&config);
            warn_if_new_database(&config);
            let store = connect_store(&config).await?;
            let args = match cmd {
                AdminCommand::RotateSecretKey(args) => return rotate_secret_key(&config, store, &args).await,
                AdminCommand::CreateUser(_) | AdminCommand::CreateToken(_) => cmd,
            };
            let app = build_app(&config, store, config.listen).await?;
            let result = admin(&app, args).await;
            app.store().close().await;
            result
        }
        Command::Secscan(SecscanCommand::Import { path }) => {
            init_logs(&config);
            warn_if_new_database(&config);
            let store = connect_store(&config).await?;
            let app = build_app(&config, store, config.listen).await?;
            let result = import(&app, path).await;
            app.store().close().await;
            result
        }
    }
}

/// Warns, before a command other than `serve` opens the database, that the SQLite file it names
/// does not exist yet and is about to be created: most often the command was run without the
/// server's `--config` (or from another directory), and would otherwise act on a new, empty
/// database without a word.
fn warn_if_new_database(config: &Config) {
    let Some(path) = berth_store::db::sqlite_file(&config.database_url()) else {
        return;
    };
    if !path.exists() {
        eprintln!(
            "warning: there is no database at {}: creating a new, empty one \
             (to use the server's, pass the --config it runs with)",
            path.display()
        );
    }
}

/// `berth admin create-user` and `create-token`, on the application.
async fn admin(app: &berth_app::App, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::CreateUser(args) => {
            let password = read_password()?;
            let new = NewUser {
                username: args.name,
                email: Some(args.email),
                password,
                superuser: args.superuser,
            };
            let row = app.create_user(&Ctx::system(), &new).await?;
            println!(
                "created user {}{}",
                row.name,
                if row.superuser { " (superuser)" } else { "" }
            );
        }
        AdminCommand::CreateToken(args) => {
            let scopes = ScopeSet::parse(&args.scopes.join(" "))?;
            let expires = args
                .expires_in_days
                .map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d)));
            let token = app
                .create_access_token(&args.name, scopes, &args.description, expires)
                .await?;
            println!("{token}");
        }
        AdminCommand::RotateSecretKey(_) => {
            anyhow::bail!("rotate-secret-key works on the database alone, not on a running application")
        }
    }
    Ok(())
}

/// `berth admin rotate-secret-key`: on the store alone (no application, so nothing is opened
/// with the old key meanwhile).
async fn rotate_secret_key(config: &Config, store: berth_store::Store, args: &RotateSecretKey) -> anyhow::Result<()> {
    if !store.is_migrated().await? {
        anyhow::bail!("the database schema is not up to date: run `berth migrate`");
    }
    let done = crate::keys::rotate(config, &store, args.new_key_file.as_deref()).await;
    store.close().await;
    let done = done?;
    println!("re-sealed {} stored secrets with key {}", done.resealed, done.key_id);
    match done.key_file {
        Some(path) => println!("the new key is in {}; restart running servers", path.display()),
        None => println!(
            "now set secret_key to the new key on every instance and restart them \
             (keep the old key in previous_secret_keys until they all run with the new one)"
        ),
    }
    Ok(())
}

/// Advisories stored per transaction. Small, so that a server running on the same SQLite file
/// gets the writer between batches (each batch is a few milliseconds of writing, far below the
/// busy timeout its own writes wait for).
const IMPORT_BATCH: usize = 100;

/// How an import's progress is shown: a bar with the total and the rate on a terminal, a line
/// every few seconds otherwise (logs, CI).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
    started: std::time::Instant,
    last_line: std::time::Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            let style = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} advisories read, {per_sec}, {eta} left {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let now = std::time::Instant::now();
        Progress {
            bar,
            total,
            started: now,
            last_line: now,
        }
    }

    fn update(&mut self, read: usize, summary: &berth_app::secscan::ImportSummary) {
        if let Some(bar) = &self.bar {
            bar.set_position(read as u64);
            bar.set_message(format!("({} stored, {} unchanged)", summary.stored, summary.unchanged));
        } else if self.last_line.elapsed() >= std::time::Duration::from_secs(5) {
            self.last_line = std::time::Instant::now();
            eprintln!("{}", self.line(read, summary));
        }
    }

    fn line(&self, read: usize, summary: &berth_app::secscan::ImportSummary) -> String {
        format!(
            "… {read} of {} advisories read ({:.0}/s), {} stored, {} unchanged",
            self.total,
            self.rate(read),
            summary.stored,
            summary.unchanged
        )
    }

    /// Documents read per second so far.
    fn rate(&self, read: usize) -> f64 {
        read as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    /// Leaves the terminal clean for what is printed next (a skipped document, the result).
    fn suspend(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Reads advisories on a blocking thread and stores them in batches, showing progress against
/// the number of documents found first.
async fn import(app: &berth_app::App, path: PathBuf) -> anyhow::Result<()> {
    let shown = path.display().to_string();
    let counted = path.clone();
    let total = tokio::task::spawn_blocking(move || berth_scan::feed::count_path(&counted))
        .await
        .context("counting the advisories stopped")?
        .with_context(|| format!("reading {shown}"))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<berth_scan::feed::Item>(IMPORT_BATCH * 2);
    let reader = tokio::task::spawn_blocking(move || {
        berth_scan::feed::read_path(&path, &mut |item| {
            let _ = tx.blocking_send(item);
        })
    });
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut summary = berth_app::secscan::ImportSummary::default();
    let mut invalid = 0usize;
    let mut read = 0usize;
    let mut progress = Progress::new(total);
    while let Some((name, item)) = rx.recv().await {
        read += 1;
        match item {
            Ok(a) => batch.push(a),
            Err(e) => {
                invalid += 1;
                progress.suspend(|| eprintln!("skipped {name}: {e}"));
            }
        }
        if batch.len() == IMPORT_BATCH {
            summary.add(app.import_advisories(&batch).await?);
            batch.clear();
        }
        progress.update(read, &summary);
    }
    if !batch.is_empty() {
        summary.add(app.import_advisories(&batch).await?);
    }
    let (elapsed, rate) = (progress.started.elapsed(), progress.rate(read));
    progress.finish();
    reader
        .await
        .context("the advisory reader stopped")?
        .with_context(|| format!("reading {shown}"))?;
    println!(
        "imported {shown}: {} stored, {} unchanged, {invalid} unreadable, {} advisories in the database ({:.1} s, {:.0}/s)",
        summary.stored,
        summary.unchanged,
        app.advisory_count().await?,
        elapsed.as_secs_f64(),
        rate
    );
    anyhow::ensure!(read > 0, "no OSV documents (.json or .zip) in {shown}");
    anyhow::ensure!(read > invalid, "no advisory in {shown} could be read");
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

/// `GET /health/instance` on `listen` (an unspecified address means this machine's loopback).
fn healthcheck(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let timeout = std::time::Duration::from_secs(5);
    let mut conn =
        std::net::TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.write_all(format!("GET /health/instance HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut answer = String::new();
    conn.take(4096).read_to_string(&mut answer)?;
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        println!("healthy: {status}");
        Ok(())
    } else {
        anyhow::bail!("{addr}/health/instance answered {status:?}")
    }
}
