//! Berth's use cases. This is the only crate that combines the domain model with storage, blobs,
//! notifications and scanning; HTTP handlers and the CLI call into it and nothing else.
//!
//! Rules of this crate:
//! - every permission decision is made here, through [`App::repo_access`] and friends, never in a
//!   handler;
//! - every state-changing use case writes its audit entry in the same transaction as the change;
//! - no wire formats: results are plain structs; the HTTP crate shapes them into Quay's JSON.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod authorized_email;
pub mod builds;
pub mod caller;
pub mod delivery;
pub mod delivery_log;
pub mod entities;
pub mod error;
pub mod events;
pub mod expiry;
pub mod failpoint;
pub mod gc;
pub mod inapp;
pub mod jobs;
pub mod mirror;
pub mod notifications;
pub mod paging;
mod passwords;
pub mod registry;
pub mod repos;
pub mod sealing;
pub mod secret;
pub mod secscan;
pub mod sessions;
pub mod trigger_payload;
pub mod triggers;

use std::time::Duration;

use berth_store::Store;

pub use caller::{Caller, Ctx, Principal};

/// The stored records use cases return, re-exported so that outer layers need not depend on the store.
pub mod model {
    pub use berth_store::accounts::AccountRow;
    pub use berth_store::builds::{BuildRow, LogLine, TriggerRow};
    pub use berth_store::deliveries::{AttemptRow, DeliveryRow};
    pub use berth_store::inapp::InAppRow;
    pub use berth_store::notifications::NotificationRow;
    pub use berth_store::repos::RepoRow;
    pub use berth_store::teams::TeamRow;
}
pub use error::AppError;

/// The notification and scanner vocabulary outer layers show (event and method kinds, methods'
/// typed configurations, a delivery's subject, HTML escaping, severities and distributions),
/// re-exported so that they reach berth-notify and berth-scan only through the application.
pub mod vocab {
    pub use berth_notify::events::subject;
    pub use berth_notify::message::html_escape;
    pub use berth_notify::methods::MethodConfig;
    pub use berth_notify::{EventKind, MethodKind};
    pub use berth_scan::{Distro, Severity};
}

/// The result type of this crate.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// Settings the use cases need from configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `host[:port]` used in URLs and payloads.
    pub server_hostname: String,
    /// `http` or `https`.
    pub preferred_url_scheme: String,
    /// Lifetime of registry bearer tokens issued by `/v2/auth`.
    pub registry_token_ttl: Duration,
    /// What notification method configurations may contain.
    pub method_policy: berth_notify::methods::MethodPolicy,
    /// How deliveries are sent and retried.
    pub delivery: delivery::DeliverySettings,
    /// The SMTP server; without one, e-mail authorization and delivery are unavailable.
    pub mail: Option<berth_notify::mail::MailSettings>,
    /// How long an e-mail authorization link works.
    pub email_code_ttl: Duration,
    /// How images are scanned for vulnerabilities.
    pub secscan: secscan::ScanSettings,
    /// How Dockerfile builds run.
    pub builds: builds::BuildSettings,
    /// Most notifications one repository may have.
    pub max_notifications_per_repository: usize,
    /// How long a mirror sync job's lease lasts (renewed while it runs): a crashed worker's sync
    /// is taken over by another once it ends.
    pub mirror_lease: Duration,
}

impl Settings {
    /// `<scheme>://<host>`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.preferred_url_scheme, self.server_hostname)
    }

    /// What the commands the UI shows (`podman login`, `push`, `pull`) need to reach this
    /// instance: ` --tls-verify=false` when it is served over plain HTTP, where podman would
    /// otherwise insist on HTTPS; nothing behind HTTPS.
    pub fn podman_tls_flag(&self) -> &'static str {
        if self.preferred_url_scheme == "https" {
            ""
        } else {
            " --tls-verify=false"
        }
    }
}

/// The application: the store plus settings and instance secrets. Cheap to clone.
#[derive(Clone)]
pub struct App {
    store: Store,
    blobs: std::sync::Arc<dyn berth_blob::BlobStore>,
    settings: Settings,
    registry_key: std::sync::Arc<auth::RegistryKey>,
    /// Seals secrets before they are stored and opens them after they are read.
    keyring: sealing::Keyring,
    failpoints: failpoint::Failpoints,
    wake: std::sync::Arc<tokio::sync::Notify>,
    scan_wake: std::sync::Arc<tokio::sync::Notify>,
    build_wake: std::sync::Arc<tokio::sync::Notify>,
    mirror_wake: std::sync::Arc<tokio::sync::Notify>,
    /// Runs the commands of builds (as processes, but in tests of the build's phases).
    build_runner: std::sync::Arc<dyn builds::BuildRunner>,
    mailer: Option<berth_notify::mail::Mailer>,
    /// The group committer of `raise_event`, started by its first call.
    raiser: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<events::RaiseRequest>>>,
    /// The delivery worker of this process, while it runs (events raised here go straight to it).
    handoff: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<delivery::dispatch::Handoff>>>>,
    /// Bounded, rate-limited and cached password checks.
    passwords: std::sync::Arc<passwords::PasswordGate>,
}

impl App {
    /// Builds the application on a migrated store and a blob store, sealing stored secrets that
    /// are plain or sealed with an older key, and loading (or creating) the instance secrets.
    /// Fails when stored secrets are sealed with a key `keyring` lacks.
    pub async fn new(
        store: Store,
        blobs: std::sync::Arc<dyn berth_blob::BlobStore>,
        settings: Settings,
        keyring: sealing::Keyring,
    ) -> Result<App> {
        let resealed = sealing::reseal_all(&store, &keyring).await?;
        if resealed.changed > 0 {
            tracing::info!(
                changed = resealed.changed,
                key = keyring.current_id(),
                "sealed stored secrets with the current secret key"
            );
        }
        let registry_key = std::sync::Arc::new(auth::RegistryKey::load(&store, &keyring).await?);
        let mailer = match &settings.mail {
            Some(mail) => Some(berth_notify::mail::Mailer::new(mail).map_err(AppError::invalid)?),
            None => None,
        };
        Ok(App {
            mailer,
            store,
            blobs,
            settings,
            registry_key,
            keyring,
            failpoints: failpoint::Failpoints::default(),
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            scan_wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            build_wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            mirror_wake: std::sync::Arc::new(tokio::sync::Notify::new()),
            build_runner: std::sync::Arc::new(builds::ProcessRunner),
            handoff: std::sync::Arc::default(),
            raiser: std::sync::Arc::default(),
            passwords: std::sync::Arc::default(),
        })
    }

    /// The metadata store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Test-only fault injection points of this application.
    pub fn failpoints(&self) -> &failpoint::Failpoints {
        &self.failpoints
    }

    /// Signalled when deliveries were enqueued, so that the delivery worker wakes at once.
    pub fn delivery_wakeup(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The local delivery worker's handoff, while it runs.
    pub(crate) fn handoff(&self) -> Option<std::sync::Arc<delivery::dispatch::Handoff>> {
        self.handoff.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_handoff(&self, h: Option<std::sync::Arc<delivery::dispatch::Handoff>>) {
        *self.handoff.write().unwrap_or_else(|e| e.into_inner()) = h;
    }
}
