//! Wiring: builds the store, the application and the HTTP server from a [`Config`], binds the
//! listener (port 0 works, for tests), and runs until a shutdown signal, then drains in-flight
//! requests for at most the configured grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use berth_app::{App, Settings};
use berth_http::HttpState;
use berth_store::Store;
use berth_store::db::ConnectOptions;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::telemetry::metrics_handle;

/// Connects to the configured database, creating the data directory for SQLite.
pub async fn connect_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
    }
    let opts = ConnectOptions {
        max_connections: config.database_max_connections,
        ..ConnectOptions::default()
    };
    Store::connect(&url, &opts)
        .await
        .with_context(|| format!("connecting to {}", berth_store::db::redact_url(&url)))
}

/// Builds the application on a connected store (migrating first if configured); `listen` is the
/// address the server is bound to (builds push there unless `builds.registry_host` is set).
pub async fn build_app(config: &Config, store: Store, listen: std::net::SocketAddr) -> anyhow::Result<App> {
    if config.migrate_on_start {
        store.migrate().await.context("applying migrations")?;
    } else if !store.is_migrated().await? {
        anyhow::bail!("the database schema is not up to date: run `berth migrate`");
    }
    let settings = Settings {
        server_hostname: config.hostname(),
        preferred_url_scheme: config.preferred_url_scheme.clone(),
        registry_token_ttl: std::time::Duration::from_secs(config.registry_token_ttl_secs),
        method_policy: berth_notify::methods::MethodPolicy {
            blocked_hosts: config.notifications.blocked_hosts.clone(),
            guard: config.guard(),
        },
        delivery: config.delivery(),
        mail: config.mail.settings(),
        email_code_ttl: std::time::Duration::from_secs(config.mail.authorization_ttl_secs),
        secscan: config.secscan.settings(),
        builds: config
            .builds
            .settings(&config.data_dir, listen, &config.preferred_url_scheme),
        max_notifications_per_repository: config.notifications.max_per_repository,
        mirror_lease: std::time::Duration::from_secs(config.mirror.lease_secs.max(1)),
    };
    if !config.notifications.slack_extra_hosts.is_empty() {
        tracing::warn!(
            "notifications.slack_extra_hosts is deprecated and ignored: Slack notifications accept any URL \
             that the delivery guard accepts (notifications.allowed_networks); remove the setting"
        );
    }
    if config.builds.enabled {
        check_builder(&config.builds.build_command)?;
    }
    let blobs = open_blob_store(config).await?;
    let keyring = crate::keys::keyring(config)?;
    Ok(App::new(store, blobs, settings, keyring).await?)
}

/// The configured blob store, checked: an S3 bucket that cannot be reached, refuses the
/// credentials or cannot be written stops the start with a message naming the key to fix.
pub async fn open_blob_store(config: &Config) -> anyhow::Result<Arc<dyn berth_blob::BlobStore>> {
    let blobs = config
        .storage
        .blob_store(&config.data_dir)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    blobs.check().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(blobs)
}

/// Refuses to start when builds are enabled but the builder is not installed, and says how to fix
/// it; a missing `git` only disables triggers, so it is a warning.
fn check_builder(command: &[String]) -> anyhow::Result<()> {
    let program = command.first().map(String::as_str).unwrap_or_default();
    if find_program(program).is_none() {
        anyhow::bail!(
            "builds are enabled (builds.enabled = true) but the builder '{program}' (builds.build_command) is not installed \
             or not on PATH: install it (Debian: apt-get install buildah) or set builds.enabled = false"
        );
    }
    if find_program("git").is_none() {
        tracing::warn!("git is not installed: builds from triggers will fail until it is");
    }
    Ok(())
}

/// Where `program` is: itself when it names a path, else the first match on `PATH`.
fn find_program(program: &str) -> Option<std::path::PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A server that is bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    app: App,
    limits: crate::listen::Limits,
    grace: std::time::Duration,
    gc: Option<(std::time::Duration, berth_app::gc::GcPolicy)>,
    expiry: Option<std::time::Duration>,
    deliver: bool,
    /// Whether it runs the background workers (not for `role = "api"`).
    works: bool,
}

impl Application {
    /// Connects, migrates, builds the router and binds the configured listener.
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        Self::build_on(config, listener).await
    }

    /// Like [`Application::build`], on a listener bound by the caller (tests bind port 0 first so
    /// that `server_hostname` can name the real port).
    pub async fn build_on(config: &Config, listener: TcpListener) -> anyhow::Result<Application> {
        let store = connect_store(config).await?;
        let bound = listener.local_addr().context("reading the bound address")?;
        let app = build_app(config, store, bound).await?;
        let handle = metrics_handle();
        let state = HttpState {
            app: app.clone(),
            metrics: Arc::new(move || handle.render()),
            metrics_token: config.metrics_token.as_deref().filter(|t| !t.is_empty()).map(Arc::from),
        };
        let router = if config.role.serves() {
            berth_http::router(state)
        } else {
            berth_http::worker_router(state)
        };
        let gc = (config.gc_interval_secs > 0).then(|| {
            (
                std::time::Duration::from_secs(config.gc_interval_secs),
                config.gc_policy(),
            )
        });
        Ok(Application {
            listener,
            router,
            app,
            grace: config.shutdown_grace(),
            limits: config.listen_limits(),
            gc,
            expiry: (config.expiry.interval_secs > 0)
                .then(|| std::time::Duration::from_secs(config.expiry.interval_secs)),
            deliver: config.notifications.deliver && config.role.works(),
            works: config.role.works(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The application behind the server.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` completes, then stops accepting, waits for in-flight requests (at
    /// most the grace period) and closes the database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application {
            listener,
            router,
            app,
            grace,
            limits,
            gc,
            expiry,
            deliver,
            works,
        } = self;
        let gc_task = gc
            .filter(|_| works)
            .map(|(every, policy)| tokio::spawn(run_gc(app.clone(), every, policy)));
        let expiry_task = expiry
            .filter(|_| works)
            .map(|every| tokio::spawn(run_expiry(app.clone(), every)));
        // The delivery worker drains on the same signal as the HTTP server, side by side.
        let (stop_delivery, delivery_stop) = tokio::sync::oneshot::channel::<()>();
        let delivery_task = deliver.then(|| {
            let app = app.clone();
            tokio::spawn(async move {
                app.run_delivery_worker(async move {
                    let _ = delivery_stop.await;
                })
                .await;
            })
        });
        let mut background = Vec::new();
        if works && app.settings().secscan.enabled {
            let worker = app.clone();
            background.push(tokio::spawn(async move { worker.run_secscan_worker().await }));
        }
        if works && app.settings().builds.enabled {
            for _ in 0..app.settings().builds.concurrency.max(1) {
                let builder = app.clone();
                background.push(tokio::spawn(async move { builder.run_build_worker().await }));
            }
        }
        if works {
            let mirrors = app.clone();
            background.push(tokio::spawn(async move { mirrors.run_mirror_worker().await }));
        }
        if works && app.settings().secscan.feed_url.is_some() {
            let fetcher = app.clone();
            background.push(tokio::spawn(async move { fetcher.run_feed_fetcher().await }));
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = crate::listen::serve(listener, router, limits, async move {
            shutdown.await;
            let _ = stop_delivery.send(());
            let _ = tx.send(());
        });
        let mut server = Box::pin(server);
        tokio::select! {
            res = &mut server => res?,
            _ = async { let _ = rx.await; } => {
                tracing::info!(grace_secs = grace.as_secs(), "shutting down: draining in-flight requests");
                match tokio::time::timeout(grace, &mut server).await {
                    Ok(res) => res?,
                    Err(_) => tracing::warn!("grace period over; dropping remaining connections"),
                }
            }
        }
        for t in gc_task.into_iter().chain(expiry_task) {
            t.abort();
        }
        // Deliveries in flight finish and are recorded within the grace period (the worker
        // enforces it); what is left is released to run again after the restart.
        if let Some(t) = delivery_task {
            let _ = t.await;
        }
        // Likewise a scan or build in progress: its job's lease expires and it runs again.
        for t in background {
            t.abort();
        }
        app.store().close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Collects garbage every `every`, forever (aborted at shutdown). Failures are logged and retried
/// at the next tick.
async fn run_gc(app: App, every: std::time::Duration, policy: berth_app::gc::GcPolicy) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; start one period after start-up
    loop {
        tick.tick().await;
        let collect = app.collect_garbage(policy, chrono::Utc::now());
        if let Err(e) = app.run_alone(berth_app::jobs::PeriodicJob::Gc, collect).await {
            tracing::warn!(error = %e, "garbage collection failed; retrying at the next interval");
        }
    }
}

/// Runs the tag expiry pass at start-up and then every `every`, forever (aborted at shutdown).
/// Failures are logged and retried at the next tick.
async fn run_expiry(app: App, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match app.expire_tags(chrono::Utc::now()).await {
            Ok(r) if r.removed + r.announced > 0 => {
                tracing::info!(removed = r.removed, announced = r.announced, "tag expiry pass");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the tag expiry pass failed; retrying at the next interval"),
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
