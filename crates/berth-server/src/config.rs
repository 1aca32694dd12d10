//! Configuration: built-in defaults, then a TOML file (`--config`), then `BERTH_*` environment
//! variables, then `BERTH_*_FILE` variables (the value is read from the named file, for container
//! secrets). Every failure names the key and the source it came from.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

/// Prefix of every environment variable Berth reads.
pub const ENV_PREFIX: &str = "BERTH_";

/// Berth's configuration. `config.example.toml` documents every key with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// `host[:port]` used in URLs, payloads and the registry token realm; defaults to `listen`.
    pub server_hostname: Option<String>,
    /// `http` or `https`: the scheme of URLs Berth generates.
    pub preferred_url_scheme: String,
    /// Directory for the SQLite database and local blobs.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to SQLite at `<data_dir>/berth.db`.
    pub database_url: Option<String>,
    /// Most connections in the database pool.
    pub database_max_connections: u32,
    /// Apply pending schema migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// `text` or `json` log lines.
    pub log_format: String,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    pub log_level: String,
    /// Lifetime of registry bearer tokens, in seconds.
    pub registry_token_ttl_secs: u64,
    /// How long shutdown waits for in-flight requests, in seconds.
    pub shutdown_grace_secs: u64,
    /// How long a request's headers may take to arrive, and a keep-alive connection may idle
    /// between requests, in seconds.
    pub header_read_timeout_secs: u64,
    /// When set, `/metrics` answers only `Authorization: Bearer <metrics_token>` (prefer
    /// `BERTH_METRICS_TOKEN_FILE`).
    pub metrics_token: Option<String>,
    /// The key that seals secrets stored in the database: the base64 of 32 random bytes (prefer
    /// `BERTH_SECRET_KEY_FILE`). Unset, `<data_dir>/secret.key` is used, generated on first start.
    /// Every instance sharing a database needs the same key.
    pub secret_key: Option<String>,
    /// Older keys that still open secrets sealed before a rotation (`berth admin
    /// rotate-secret-key` re-seals everything; keep the old key here until every instance runs
    /// with the new one).
    pub previous_secret_keys: Vec<String>,
    /// Most HTTP connections open at once; 0 takes the open-file limit less a reserve. At the
    /// limit the oldest connection with no request in progress is closed to make room.
    pub max_connections: usize,
    /// How often garbage collection runs, in seconds (0 turns it off).
    pub gc_interval_secs: u64,
    /// Upload sessions untouched for this long are removed, in seconds.
    pub upload_max_age_secs: u64,
    /// Blobs no manifest references are kept this long after they were stored or linked, in seconds.
    pub blob_gc_grace_secs: u64,
    /// Notification delivery (`[notifications]`, env `BERTH_NOTIFICATIONS__KEY`).
    pub notifications: NotificationsConfig,
    /// Outgoing e-mail (`[mail]`, env `BERTH_MAIL__KEY`).
    pub mail: MailConfig,
    /// Vulnerability scanning (`[secscan]`, env `BERTH_SECSCAN__KEY`).
    pub secscan: SecscanConfig,
    /// Dockerfile builds (`[builds]`, env `BERTH_BUILDS__KEY`).
    pub builds: BuildsConfig,
    /// Tag expiration (`[expiry]`, env `BERTH_EXPIRY__KEY`).
    pub expiry: ExpiryConfig,
    /// Repository mirroring (`[mirror]`, env `BERTH_MIRROR__KEY`).
    pub mirror: MirroringConfig,
    /// Where blobs live (`[storage]`, env `BERTH_STORAGE__KEY`).
    pub storage: StorageConfig,
    /// What this instance does: `all` (the default), `api` (the HTTP surface: `/api/v1`, `/v2`,
    /// the UI, inbound webhooks; it only enqueues work) or `worker` (deliveries, scans, builds,
    /// mirrors, GC, tag expiry, the feed; HTTP only for health and metrics). `serve --role`
    /// overrides it.
    pub role: Role,
}

/// What an instance does (see [`Config::role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The HTTP surface and every worker.
    All,
    /// The HTTP surface only.
    Api,
    /// The workers only.
    Worker,
}

impl Role {
    /// Whether it serves the API, the registry and the UI.
    pub fn serves(self) -> bool {
        self != Role::Worker
    }

    /// Whether it runs the background workers.
    pub fn works(self) -> bool {
        self != Role::Api
    }
}

/// Which blob store (see [`StorageConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Files under `data_dir`.
    Filesystem,
    /// An S3-compatible bucket.
    S3,
}

/// The `[storage]` section: where blobs live. Several instances share blobs only through `s3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `filesystem` (under `data_dir`) or `s3`.
    pub kind: StorageKind,
    /// The bucket (`s3`).
    pub bucket: String,
    /// The bucket's region.
    pub region: String,
    /// The S3 service's URL; empty means AWS.
    pub endpoint: String,
    /// A key prefix inside the bucket, for sharing one bucket.
    pub prefix: String,
    /// The access key id; empty takes credentials from the environment (instance roles).
    pub access_key_id: String,
    /// The secret access key (prefer `BERTH_STORAGE__SECRET_ACCESS_KEY_FILE`).
    pub secret_access_key: String,
    /// Allow a plain-HTTP `endpoint` (a service on loopback).
    pub allow_http: bool,
    /// Answer blob downloads with a 307 to a presigned URL of the bucket, valid for five minutes.
    pub redirect: bool,
    /// How long the service may stay silent (connecting, or in the middle of an answer) before a
    /// request to it fails and the registry answers 503, in seconds.
    pub timeout_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: StorageKind::Filesystem,
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint: String::new(),
            prefix: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
            redirect: false,
            timeout_secs: 30,
        }
    }
}

impl StorageConfig {
    /// The blob store this section describes.
    pub fn blob_store(&self, data_dir: &Path) -> Result<Arc<dyn berth_blob::BlobStore>, berth_blob::BlobError> {
        Ok(match self.kind {
            StorageKind::Filesystem => Arc::new(berth_blob::LocalBlobStore::new(data_dir)),
            StorageKind::S3 => Arc::new(berth_blob::S3BlobStore::new(berth_blob::S3Settings {
                bucket: self.bucket.clone(),
                region: self.region.clone(),
                endpoint: Some(self.endpoint.clone()).filter(|e| !e.is_empty()),
                prefix: self.prefix.clone(),
                access_key_id: self.access_key_id.clone(),
                secret_access_key: self.secret_access_key.clone(),
                allow_http: self.allow_http,
                redirect: self.redirect,
                timeout: Duration::from_secs(self.timeout_secs.max(1)),
                part_size: berth_blob::s3::DEFAULT_PART_SIZE,
            })?),
        })
    }

    fn problem(&self) -> Option<(&'static str, String)> {
        if self.kind != StorageKind::S3 {
            return None;
        }
        if self.bucket.is_empty() {
            return Some((
                "storage.bucket",
                "must name a bucket when storage.kind is \"s3\"".into(),
            ));
        }
        if self.timeout_secs == 0 {
            return Some(("storage.timeout_secs", "must be at least 1".into()));
        }
        if self.access_key_id.is_empty() != self.secret_access_key.is_empty() {
            return Some((
                "storage.secret_access_key",
                "storage.access_key_id and storage.secret_access_key go together: set both, or neither to use the environment's credentials".into(),
            ));
        }
        if !self.endpoint.is_empty() {
            match url::Url::parse(&self.endpoint) {
                Ok(u) if u.scheme() == "https" => {}
                Ok(u) if u.scheme() == "http" && !self.allow_http => {
                    return Some((
                        "storage.endpoint",
                        format!(
                            "'{}' is plain HTTP: set storage.allow_http = true to allow it",
                            self.endpoint
                        ),
                    ));
                }
                Ok(u) if u.scheme() == "http" => {}
                _ => {
                    return Some((
                        "storage.endpoint",
                        format!("'{}' must be an http or https URL", self.endpoint),
                    ));
                }
            }
        }
        None
    }
}

/// The `[mirror]` section: the workers that sync repository mirrors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirroringConfig {
    /// How long a sync job's lease lasts, in seconds (renewed while it runs); after a crash,
    /// another worker takes the sync over once it ends.
    pub lease_secs: u64,
}

impl Default for MirroringConfig {
    fn default() -> Self {
        MirroringConfig { lease_secs: 60 }
    }
}

/// The `[expiry]` section: the pass that removes expired tags and announces expiring ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExpiryConfig {
    /// How often the pass runs, in seconds (also once at start-up); 0 turns it off.
    pub interval_secs: u64,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig { interval_secs: 300 }
    }
}

/// The `[builds]` section: Dockerfile builds with a local builder (buildah by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildsConfig {
    /// Accept builds and run the build worker in `serve` (the builder must be installed).
    pub enabled: bool,
    /// The builder command and its arguments, with placeholders.
    pub build_command: Vec<String>,
    /// The push command and its arguments, with placeholders.
    pub push_command: Vec<String>,
    /// How long one build may run, in seconds.
    pub timeout_secs: u64,
    /// Where per-build directories go; empty means `<data_dir>/builds`.
    pub workdir: String,
    /// Largest uploaded or downloaded build context, in bytes.
    pub max_context_bytes: u64,
    /// `host[:port]` builds push to and pull this registry's images from; empty means this
    /// instance's own listen address (on loopback when it listens on every address).
    pub registry_host: String,
    /// Whether the builder verifies TLS when it talks to this registry. Unset, it follows how
    /// `registry_host` is served: off for the listen address (Berth itself speaks plain HTTP),
    /// and for a named host on when `preferred_url_scheme` is `https`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_verify: Option<bool>,
    /// Tries per build when infrastructure fails (a build error is never retried).
    pub tries: i32,
    /// Wait before the second try, in seconds; doubled for each later one.
    pub retry_delay_secs: u64,
    /// How many builds one worker instance runs at once.
    pub concurrency: usize,
}

impl Default for BuildsConfig {
    fn default() -> Self {
        let d = berth_app::builds::BuildSettings::default();
        BuildsConfig {
            enabled: d.enabled,
            build_command: d.build_command,
            push_command: d.push_command,
            timeout_secs: d.timeout.as_secs(),
            workdir: String::new(),
            max_context_bytes: d.max_context_bytes,
            registry_host: String::new(),
            tls_verify: None,
            tries: d.tries,
            retry_delay_secs: d.retry_delay.as_secs(),
            concurrency: d.concurrency,
        }
    }
}

impl BuildsConfig {
    /// Where builds push to: `registry_host`, or this instance's own listen address (`listen`,
    /// as bound), reached on loopback when it listens on every address.
    pub fn push_host(&self, listen: SocketAddr) -> String {
        if !self.registry_host.is_empty() {
            return self.registry_host.clone();
        }
        let ip = match listen.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, listen.port()).to_string()
    }

    /// Whether the builder verifies TLS: as configured; unset, off for the listen address (served
    /// over plain HTTP), and for a named host only when `preferred_url_scheme` is `https`.
    pub fn verifies_tls(&self, preferred_url_scheme: &str) -> bool {
        self.tls_verify
            .unwrap_or_else(|| !self.registry_host.is_empty() && preferred_url_scheme == "https")
    }

    /// The build settings, with directories resolved against `data_dir` and the push host and TLS
    /// verification resolved against how this instance serves (`listen` as bound).
    pub fn settings(
        &self,
        data_dir: &std::path::Path,
        listen: SocketAddr,
        preferred_url_scheme: &str,
    ) -> berth_app::builds::BuildSettings {
        berth_app::builds::BuildSettings {
            enabled: self.enabled,
            build_command: self.build_command.clone(),
            push_command: self.push_command.clone(),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            workdir: if self.workdir.is_empty() {
                data_dir.join("builds")
            } else {
                PathBuf::from(&self.workdir)
            },
            max_context_bytes: self.max_context_bytes,
            registry_host: Some(self.push_host(listen)),
            tls_verify: self.verifies_tls(preferred_url_scheme),
            tries: self.tries.max(1),
            retry_delay: Duration::from_secs(self.retry_delay_secs),
            concurrency: self.concurrency.max(1),
            ..berth_app::builds::BuildSettings::default()
        }
    }
}

/// The `[secscan]` section: the built-in vulnerability scanner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecscanConfig {
    /// Scan pushed images (and run the scan worker in `serve`).
    pub enabled: bool,
    /// Largest compressed layer that is read, in bytes.
    pub max_layer_bytes: u64,
    /// Largest uncompressed layer, in bytes.
    pub max_unpacked_bytes: u64,
    /// Most entries in one layer.
    pub max_files: u64,
    /// Largest file read inside a layer (package databases, lockfiles, binaries), in bytes.
    pub max_file_bytes: u64,
    /// Time for indexing one manifest, in seconds.
    pub time_budget_secs: u64,
    /// `vulnerability_found` events per repository per scan before the rest is summarised in one.
    pub max_events_per_scan: usize,
    /// An OSV export to fetch periodically (a zip such as OSV's per-ecosystem `all.zip`, or JSON);
    /// empty for none. Offline installs import with `berth secscan import PATH`.
    pub feed_url: String,
    /// How often to fetch `feed_url`, in seconds.
    pub feed_interval_secs: u64,
}

impl Default for SecscanConfig {
    fn default() -> Self {
        let d = berth_app::secscan::ScanSettings::default();
        SecscanConfig {
            enabled: d.enabled,
            max_layer_bytes: d.max_layer_bytes,
            max_unpacked_bytes: d.max_unpacked_bytes,
            max_files: d.max_files,
            max_file_bytes: d.max_file_bytes,
            time_budget_secs: d.time_budget.as_secs(),
            max_events_per_scan: d.max_events_per_scan,
            feed_url: String::new(),
            feed_interval_secs: d.feed_interval.as_secs(),
        }
    }
}

impl SecscanConfig {
    /// The scanner's settings.
    pub fn settings(&self) -> berth_app::secscan::ScanSettings {
        berth_app::secscan::ScanSettings {
            enabled: self.enabled,
            max_layer_bytes: self.max_layer_bytes,
            max_unpacked_bytes: self.max_unpacked_bytes,
            max_files: self.max_files,
            max_file_bytes: self.max_file_bytes,
            time_budget: Duration::from_secs(self.time_budget_secs.max(1)),
            max_events_per_scan: self.max_events_per_scan.max(1),
            feed_url: (!self.feed_url.is_empty()).then(|| self.feed_url.clone()),
            feed_interval: Duration::from_secs(self.feed_interval_secs.max(60)),
            ..berth_app::secscan::ScanSettings::default()
        }
    }
}

/// The `[mail]` section: the SMTP server e-mail notifications and authorization mails go through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// SMTP server host; empty turns e-mail off.
    pub host: String,
    /// SMTP server port.
    pub port: u16,
    /// `none`, `starttls` or `implicit`.
    pub tls: String,
    /// User name for SMTP AUTH; empty for none.
    pub username: String,
    /// Password for SMTP AUTH (prefer `BERTH_MAIL__PASSWORD_FILE`).
    pub password: String,
    /// Sender address of every mail (also Flowdock's `from_address`).
    pub from: String,
    /// Timeout of one SMTP exchange, in seconds.
    pub timeout_secs: u64,
    /// How long an e-mail authorization link works, in seconds.
    pub authorization_ttl_secs: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            host: String::new(),
            port: 587,
            tls: "starttls".into(),
            username: String::new(),
            password: String::new(),
            from: "berth@localhost".into(),
            timeout_secs: 10,
            authorization_ttl_secs: 7 * 24 * 3600,
        }
    }
}

impl MailConfig {
    /// The mailer settings, or `None` when no host is configured.
    pub fn settings(&self) -> Option<berth_notify::mail::MailSettings> {
        if self.host.is_empty() {
            return None;
        }
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Some(berth_notify::mail::MailSettings {
            host: self.host.clone(),
            port: self.port,
            tls: berth_notify::mail::MailTls::parse(&self.tls).unwrap_or(berth_notify::mail::MailTls::Starttls),
            username: non_empty(&self.username),
            password: non_empty(&self.password),
            from: self.from.clone(),
            timeout: Duration::from_secs(self.timeout_secs),
        })
    }
}

/// The `[notifications]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Hostnames webhooks may not target (checked at creation).
    pub blocked_hosts: Vec<String>,
    /// Deprecated and ignored: Slack notifications take any URL the delivery guard accepts.
    /// Still parsed so that existing files load; a non-empty list logs a warning.
    pub slack_extra_hosts: Vec<String>,
    /// Timeout of one delivery request, in seconds.
    pub send_timeout_secs: u64,
    /// Connect timeout of one delivery request, in seconds.
    pub connect_timeout_secs: u64,
    /// Consecutive failed attempts after which a notification is disabled (0: no threshold; 3 is
    /// Quay's behaviour).
    pub failure_threshold: u32,
    /// Most notifications one repository may have.
    pub max_per_repository: usize,
    /// A notification failing continuously for this long is disabled, in seconds.
    pub disable_after_secs: u64,
    /// Delay before each retry of a failed delivery, in seconds (±20 % jitter; the last repeats).
    pub retry_schedule_secs: Vec<u64>,
    /// Run the delivery worker in this process (turn off on API-only instances).
    pub deliver: bool,
    /// Base URL of the Flowdock API (discontinued service; override to test against a receiver).
    pub flowdock_api_base: String,
    /// Base URL of the HipChat API (discontinued service; override to test against a receiver).
    pub hipchat_api_base: String,
    /// Networks (CIDRs) deliveries may reach besides public addresses, e.g. `["127.0.0.0/8"]`.
    pub allowed_networks: Vec<String>,
    /// Redirect hops a delivery follows (0: none; each hop is checked by the SSRF guard).
    pub max_redirects: usize,
    /// How long a worker holds a claimed job before another may take it, in seconds (heartbeats
    /// extend it while the job runs; after a crash, this is how long its jobs wait).
    pub lease_secs: u64,
    /// Most deliveries in flight (sent and not yet recorded) per process, across destinations.
    pub max_in_flight: usize,
    /// Optional hard cap of deliveries in flight to one destination (`host:port`); 0 (the
    /// default) leaves it to each destination's adaptive limit.
    pub per_host: usize,
    /// Jobs one repository's event may hold in a process before claims look past it.
    pub per_repository: usize,
    /// How long a rotated-out signing secret keeps signing, in seconds.
    pub secret_grace_secs: u64,
    /// How long the delivery log keeps finished deliveries, in seconds.
    pub log_retention_secs: u64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        // The engine's defaults are written once, in `DeliverySettings`.
        let d = berth_app::delivery::DeliverySettings::default();
        NotificationsConfig {
            blocked_hosts: berth_notify::methods::MethodPolicy::default().blocked_hosts,
            slack_extra_hosts: Vec::new(),
            send_timeout_secs: d.send_timeout.as_secs(),
            connect_timeout_secs: d.connect_timeout.as_secs(),
            failure_threshold: d.failure_threshold,
            max_per_repository: 100,
            disable_after_secs: d.disable_after.as_secs(),
            retry_schedule_secs: d.schedule.iter().map(Duration::as_secs).collect(),
            deliver: true,
            flowdock_api_base: d.endpoints.flowdock_api_base,
            hipchat_api_base: d.endpoints.hipchat_api_base,
            allowed_networks: Vec::new(),
            max_redirects: d.max_redirects,
            lease_secs: d.lease.as_secs(),
            max_in_flight: d.max_in_flight,
            per_host: d.per_host,
            per_repository: d.per_repository,
            secret_grace_secs: d.secret_grace.as_secs(),
            log_retention_secs: d.log_retention.as_secs(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            server_hostname: None,
            preferred_url_scheme: "http".into(),
            data_dir: PathBuf::from("./berth-data"),
            database_url: None,
            database_max_connections: 10,
            migrate_on_start: true,
            log_format: "text".into(),
            log_level: "info".into(),
            registry_token_ttl_secs: 3600,
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 30,
            max_connections: 0,
            metrics_token: None,
            secret_key: None,
            previous_secret_keys: Vec::new(),
            gc_interval_secs: 3600,
            upload_max_age_secs: 86_400,
            blob_gc_grace_secs: 3600,
            notifications: NotificationsConfig::default(),
            mail: MailConfig::default(),
            secscan: SecscanConfig::default(),
            builds: BuildsConfig::default(),
            expiry: ExpiryConfig::default(),
            mirror: MirroringConfig::default(),
            storage: StorageConfig::default(),
            role: Role::All,
        }
    }
}

/// A configuration error: a message naming the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// The configuration a TOML text gives over the defaults, validated, without the environment
    /// (the fuzz target `config` drives it).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_figment(&Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)))
    }

    /// The configuration the layers give, validated; errors name the key and its source.
    fn from_figment(fig: &Figment) -> Result<Config, ConfigError> {
        let config: Config = fig.extract().map_err(|e| ConfigError(describe(&e)))?;
        config.validate(fig)?;
        Ok(config)
    }

    /// Loads the layered configuration from `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!("config file {} does not exist", path.display())));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        let secret_files: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.ends_with("_FILE"))
            .collect();
        fig = fig
            .merge(
                // BERTH_CONFIG is the --config flag's own variable, not a key.
                Env::prefixed(ENV_PREFIX)
                    .filter(|k| !k.as_str().to_ascii_lowercase().ends_with("_file") && k != "config")
                    .split("__")
                    .global(),
            )
            .merge(SecretFiles(secret_files));
        Config::from_figment(&fig)
    }

    fn keys() -> Vec<&'static str> {
        vec![
            "listen",
            "server_hostname",
            "preferred_url_scheme",
            "data_dir",
            "database_url",
            "database_max_connections",
            "migrate_on_start",
            "log_format",
            "log_level",
            "registry_token_ttl_secs",
            "shutdown_grace_secs",
            "header_read_timeout_secs",
            "max_connections",
            "metrics_token",
            "secret_key",
            "previous_secret_keys",
            "gc_interval_secs",
            "upload_max_age_secs",
            "blob_gc_grace_secs",
            "notifications",
            "mail",
            "secscan",
            "builds",
            "expiry",
            "mirror",
            "storage",
            "role",
        ]
    }

    fn validate(&self, fig: &Figment) -> Result<(), ConfigError> {
        let fail = |key: &str, why: String| {
            Err(ConfigError(format!(
                "invalid value for {key} (from {}): {why}",
                source_of(fig, key)
            )))
        };
        if !matches!(self.preferred_url_scheme.as_str(), "http" | "https") {
            return fail(
                "preferred_url_scheme",
                format!("'{}' must be http or https", self.preferred_url_scheme),
            );
        }
        if let Some(h) = &self.server_hostname
            && (h.is_empty() || h.contains("://") || h.contains('/') || h.chars().any(char::is_whitespace))
        {
            return fail(
                "server_hostname",
                format!("'{h}' must be host[:port], without scheme or path"),
            );
        }
        if let Some(url) = &self.database_url
            && let Err(e) = berth_store::Backend::of_url(url)
        {
            return fail("database_url", e.to_string());
        }
        for (key, text) in self
            .secret_key
            .iter()
            .map(|k| ("secret_key", k))
            .chain(self.previous_secret_keys.iter().map(|k| ("previous_secret_keys", k)))
        {
            if let Err(e) = berth_app::sealing::SecretKey::parse(text) {
                return fail(key, e.to_string());
            }
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return fail("log_format", format!("'{}' must be text or json", self.log_format));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return fail("log_level", format!("'{}' is not a valid filter: {e}", self.log_level));
        }
        if self.header_read_timeout_secs == 0 {
            return fail("header_read_timeout_secs", "must be at least 1".into());
        }
        if self.database_max_connections == 0 {
            return fail("database_max_connections", "must be at least 1".into());
        }
        if self.notifications.retry_schedule_secs.is_empty() {
            return fail(
                "notifications.retry_schedule_secs",
                "must list at least one delay".into(),
            );
        }
        if let Err(e) = berth_notify::guard::parse_networks(&self.notifications.allowed_networks) {
            return fail("notifications.allowed_networks", e);
        }
        let n = &self.notifications;
        for (key, value) in [
            ("max_in_flight", n.max_in_flight),
            ("per_repository", n.per_repository),
            ("max_per_repository", n.max_per_repository),
        ] {
            if value == 0 {
                return fail(&format!("notifications.{key}"), "must be at least 1".into());
            }
        }
        if let Err(e) = berth_notify::mail::MailTls::parse(&self.mail.tls) {
            return fail("mail.tls", e);
        }
        if self.mail.authorization_ttl_secs == 0 {
            return fail("mail.authorization_ttl_secs", "must be at least 1".into());
        }
        if let Err(e) = berth_notify::mail::sender(&self.mail.from) {
            return fail("mail.from", e);
        }
        if self.registry_token_ttl_secs == 0 {
            return fail("registry_token_ttl_secs", "must be at least 1".into());
        }
        let scan = &self.secscan;
        for (key, value) in [
            ("max_layer_bytes", scan.max_layer_bytes),
            ("max_unpacked_bytes", scan.max_unpacked_bytes),
            ("max_files", scan.max_files),
            ("max_file_bytes", scan.max_file_bytes),
            ("time_budget_secs", scan.time_budget_secs),
            ("max_events_per_scan", scan.max_events_per_scan as u64),
        ] {
            if value == 0 {
                return fail(&format!("secscan.{key}"), "must be at least 1".into());
            }
        }
        if !scan.feed_url.is_empty() {
            match url::Url::parse(&scan.feed_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return fail(
                        "secscan.feed_url",
                        format!("'{}' must be an http or https URL", scan.feed_url),
                    );
                }
            }
        }
        let b = &self.builds;
        for (key, list) in [("build_command", &b.build_command), ("push_command", &b.push_command)] {
            if list.first().is_none_or(|p| p.trim().is_empty()) {
                return fail(&format!("builds.{key}"), "must name a program".into());
            }
        }
        if b.tries < 1 {
            return fail("builds.tries", "must be at least 1".into());
        }
        if b.timeout_secs == 0 {
            return fail("builds.timeout_secs", "must be at least 1".into());
        }
        if scan.feed_interval_secs < 60 {
            return fail("secscan.feed_interval_secs", "must be at least 60".into());
        }
        if let Some((key, why)) = self.storage.problem() {
            return fail(key, why);
        }
        Ok(())
    }

    /// The host Berth names itself by.
    pub fn hostname(&self) -> String {
        self.server_hostname.clone().unwrap_or_else(|| self.listen.to_string())
    }

    /// The database URL, defaulting to SQLite under `data_dir`.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("berth.db").display()))
    }

    /// The garbage collection thresholds.
    pub fn gc_policy(&self) -> berth_app::gc::GcPolicy {
        berth_app::gc::GcPolicy {
            upload_max_age: Duration::from_secs(self.upload_max_age_secs),
            blob_grace: Duration::from_secs(self.blob_gc_grace_secs),
        }
    }

    /// The delivery engine's settings.
    pub fn delivery(&self) -> berth_app::delivery::DeliverySettings {
        let n = &self.notifications;
        let secs = Duration::from_secs;
        berth_app::delivery::DeliverySettings {
            send_timeout: secs(n.send_timeout_secs),
            connect_timeout: secs(n.connect_timeout_secs),
            failure_threshold: n.failure_threshold,
            disable_after: secs(n.disable_after_secs),
            schedule: n.retry_schedule_secs.iter().map(|s| secs(*s)).collect(),
            endpoints: berth_notify::outbound::Endpoints {
                flowdock_api_base: n.flowdock_api_base.clone(),
                hipchat_api_base: n.hipchat_api_base.clone(),
                from_address: self.mail.from.clone(),
            },
            shutdown_grace: self.shutdown_grace(),
            guard: self.guard(),
            lease: secs(n.lease_secs.max(1)),
            max_redirects: n.max_redirects,
            max_in_flight: n.max_in_flight,
            per_host: n.per_host,
            per_repository: n.per_repository,
            secret_grace: secs(n.secret_grace_secs),
            log_retention: secs(n.log_retention_secs),
            ..berth_app::delivery::DeliverySettings::default()
        }
    }

    /// The SSRF guard with the configured allowed networks (validated at load).
    pub fn guard(&self) -> berth_notify::guard::Guard {
        berth_notify::guard::Guard::new(
            berth_notify::guard::parse_networks(&self.notifications.allowed_networks).unwrap_or_default(),
        )
    }

    /// How long shutdown waits for in-flight requests.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// The HTTP listener's limits.
    pub fn listen_limits(&self) -> crate::listen::Limits {
        crate::listen::Limits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            max_connections: match self.max_connections {
                0 => crate::listen::Limits::automatic_max_connections(),
                n => n,
            },
        }
    }
}

/// Names the provider that supplied `key`, e.g. "BERTH_LISTEN environment variable".
fn source_of(fig: &Figment, key: &str) -> String {
    match fig.find_metadata(key) {
        Some(md) => describe_metadata(md, key),
        None => "defaults".into(),
    }
}

fn describe_metadata(md: &Metadata, key: &str) -> String {
    match &md.source {
        Some(figment::Source::File(p)) => format!("{} {}", md.name, p.display()),
        // figment's own interpolation drops the prefix; name the exact variable.
        _ if md.name.contains("environment variable") => {
            format!(
                "{ENV_PREFIX}{} environment variable",
                key.replace('.', "__").to_ascii_uppercase()
            )
        }
        _ => {
            let path: Vec<&str> = key.split('.').collect();
            md.interpolate(&Profile::Default, &path)
        }
    }
}

/// Renders a figment error as "`<what>` for key `<key>` in `<source>`".
fn describe(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e.metadata.as_ref().map(|md| describe_metadata(md, &key));
            if let figment::error::Kind::UnknownField(field, expected) = &e.kind {
                return unknown_key(&key, field, expected, source.as_deref());
            }
            match (key.is_empty(), source) {
                (false, Some(src)) => format!("invalid value for {key} (from {src}): {}", e.kind),
                (false, None) => format!("invalid value for {key}: {}", e.kind),
                (true, Some(src)) => format!("{} (in {src})", e.kind),
                (true, None) => e.kind.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// "unknown key `notifications.max_in_fligt` in TOML file berth.toml; did you mean `max_in_flight`?"
/// (`key` is the full path of the unknown field, `expected` the keys its section has).
fn unknown_key(key: &str, field: &str, expected: &[&str], source: Option<&str>) -> String {
    let key = if key.is_empty() { field } else { key };
    let mut out = format!("unknown key `{key}`");
    if let Some(src) = source {
        out.push_str(&format!(" in {src}"));
    }
    let closest = expected
        .iter()
        .map(|k| (strsim::jaro_winkler(field, k), *k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, k)) => out.push_str(&format!("; did you mean `{k}`?")),
        None => out.push_str(&format!("; the keys here are: {}", expected.join(", "))),
    }
    out
}

/// `BERTH_<KEY>_FILE=/path`: the value of `<key>` is the content of the file, without a trailing
/// newline.
struct SecretFiles(BTreeMap<String, String>);

impl Provider for SecretFiles {
    fn metadata(&self) -> Metadata {
        Metadata::named("secret file")
            .interpolater(|_, path| format!("{ENV_PREFIX}{}_FILE", path.join("__").to_ascii_uppercase()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (var, path) in &self.0 {
            let Some(key) = var.strip_prefix(ENV_PREFIX).and_then(|k| k.strip_suffix("_FILE")) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            // `SECTION__KEY` names a key of a section, e.g. BERTH_MAIL__PASSWORD_FILE.
            let (top, sub) = match key.split_once("__") {
                Some((section, sub)) => (section.to_owned(), Some(sub.to_owned())),
                None => (key.clone(), None),
            };
            if !Config::keys().contains(&top.as_str()) {
                return Err(figment::Error::from(format!("{var}: unknown key '{top}'")));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| figment::Error::from(format!("{var}: cannot read {path}: {e}")))?;
            let value = Value::from(text.trim_end_matches(['\n', '\r']).to_owned());
            match sub {
                None => {
                    dict.insert(top, value);
                }
                Some(sub) => {
                    let entry = dict.entry(top).or_insert_with(|| Value::from(Dict::new()));
                    if let Value::Dict(_, section) = entry {
                        section.insert(sub, value);
                    }
                }
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn err_of(r: Result<Config, ConfigError>) -> String {
        r.expect_err("configuration should be rejected").to_string()
    }

    #[test]
    fn defaults_need_no_configuration() {
        Jail::expect_with(|_| {
            let c = Config::load(None).unwrap();
            assert_eq!(c, Config::default());
            assert_eq!(c.hostname(), "127.0.0.1:8080");
            assert_eq!(c.database_url(), "sqlite://./berth-data/berth.db");
            Ok(())
        });
    }

    #[test]
    fn storage_takes_its_secret_from_a_file_and_names_what_is_wrong() {
        Jail::expect_with(|jail| {
            jail.create_file("s3-secret", "topsecret\n")?;
            jail.set_env("BERTH_STORAGE__KIND", "s3");
            jail.set_env("BERTH_STORAGE__BUCKET", "blobs");
            jail.set_env("BERTH_STORAGE__ACCESS_KEY_ID", "AKID");
            jail.set_env("BERTH_STORAGE__SECRET_ACCESS_KEY_FILE", "s3-secret");
            let c = Config::load(None).unwrap();
            assert_eq!(
                (
                    c.storage.kind,
                    c.storage.secret_access_key.as_str(),
                    c.storage.region.as_str()
                ),
                (StorageKind::S3, "topsecret", "us-east-1")
            );
            jail.set_env("BERTH_STORAGE__ENDPOINT", "http://127.0.0.1:9000");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("storage.endpoint") && e.contains("allow_http"), "{e}");
            jail.set_env("BERTH_STORAGE__ALLOW_HTTP", "true");
            assert!(Config::load(None).is_ok());
            jail.set_env("BERTH_STORAGE__BUCKET", "");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("storage.bucket"), "{e}");
            jail.set_env("BERTH_STORAGE__BUCKET", "blobs");
            jail.set_env("BERTH_STORAGE__KIND", "tape");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("storage.kind") || e.contains("tape"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn file_then_env_then_secret_files() {
        Jail::expect_with(|jail| {
            jail.create_file("berth.toml", "listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\n")?;
            jail.create_file("db-url", "postgres://u:p@127.0.0.1/db\n")?;
            jail.set_env("BERTH_LOG_FORMAT", "text");
            jail.set_env("BERTH_NOTIFICATIONS__SEND_TIMEOUT_SECS", "20");
            jail.set_env("BERTH_DATABASE_URL_FILE", "db-url");
            jail.create_file("smtp-password", "s3cret\n")?;
            jail.set_env("BERTH_MAIL__PASSWORD_FILE", "smtp-password");
            jail.set_env("BERTH_MAIL__HOST", "smtp.example.com");
            let c = Config::load(Some(Path::new("berth.toml"))).unwrap();
            assert_eq!(c.listen.port(), 9000, "file overrides defaults");
            assert_eq!(c.log_format, "text", "environment overrides the file");
            assert_eq!(
                c.notifications.send_timeout_secs, 20,
                "sections use a double underscore"
            );
            assert_eq!(
                c.notifications.max_in_flight, 512,
                "other keys of the section keep their defaults"
            );
            assert_eq!(
                c.database_url(),
                "postgres://u:p@127.0.0.1/db",
                "secret file, without its newline"
            );
            assert_eq!(c.mail.password, "s3cret", "a section's key from a secret file");
            let mail = c.mail.settings().expect("mail is on once a host is set");
            assert_eq!((mail.host.as_str(), mail.port), ("smtp.example.com", 587));
            Ok(())
        });
    }

    #[test]
    fn errors_name_key_and_source() {
        Jail::expect_with(|jail| {
            jail.create_file("berth.toml", "database_max_connections = \"many\"\n")?;
            let e = err_of(Config::load(Some(Path::new("berth.toml"))));
            assert!(
                e.contains("database_max_connections") && e.contains("berth.toml"),
                "{e}"
            );

            jail.create_file("typo.toml", "lisen = \"127.0.0.1:1\"\n")?;
            let e = err_of(Config::load(Some(Path::new("typo.toml"))));
            assert!(e.contains("lisen"), "{e}");

            let e = err_of(Config::load(Some(Path::new("missing.toml"))));
            assert!(e.contains("missing.toml does not exist"), "{e}");

            jail.set_env("BERTH_SERVER_HOSTNAME", "https://registry.example.com");
            let e = err_of(Config::load(None));
            assert!(
                e.contains("server_hostname") && e.contains("BERTH_SERVER_HOSTNAME environment variable"),
                "{e}"
            );
            jail.clear_env();

            jail.set_env("BERTH_DATABASE_URL", "mysql://root:secret@h/db");
            let e = err_of(Config::load(None));
            assert!(
                e.contains("database_url") && !e.contains("secret"),
                "the password is redacted: {e}"
            );
            jail.clear_env();

            jail.set_env(
                "BERTH_NOTIFICATIONS__ALLOWED_NETWORKS",
                "[\"127.0.0.0/8\", \"10.0.0.0/33\"]",
            );
            let e = err_of(Config::load(None));
            assert!(
                e.contains("notifications.allowed_networks") && e.contains("'10.0.0.0/33' is not a network"),
                "{e}"
            );
            jail.clear_env();

            jail.set_env("BERTH_MAIL__TLS", "ssl");
            let e = err_of(Config::load(None));
            assert!(
                e.contains("mail.tls") && e.contains("BERTH_MAIL__TLS") && e.contains("none, starttls or implicit"),
                "{e}"
            );
            jail.clear_env();

            jail.set_env("BERTH_SECSCAN__FEED_URL", "ftp://osv.example/all.zip");
            let e = err_of(Config::load(None));
            assert!(
                e.contains("secscan.feed_url") && e.contains("BERTH_SECSCAN__FEED_URL") && e.contains("http or https"),
                "{e}"
            );
            jail.clear_env();

            jail.set_env("BERTH_SECSCAN__MAX_EVENTS_PER_SCAN", "0");
            let e = err_of(Config::load(None));
            assert!(
                e.contains("secscan.max_events_per_scan") && e.contains("at least 1"),
                "{e}"
            );
            jail.clear_env();

            jail.set_env("BERTH_LOG_LEVEL_FILE", "nowhere");
            let e = err_of(Config::load(None));
            assert!(e.contains("BERTH_LOG_LEVEL_FILE") && e.contains("nowhere"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn toml_text_alone_gives_a_validated_configuration() {
        let c = Config::from_toml("listen = \"127.0.0.1:9\"\n[notifications]\nmax_per_repository = 7\n").unwrap();
        assert_eq!((c.listen.port(), c.notifications.max_per_repository), (9, 7));
        for (text, key) in [
            ("listen = \"nowhere\"", "listen"),
            ("log_format = \"xml\"", "log_format"),
            ("secret_key = \"short\"", "secret_key"),
            ("[bogus]\nx = 1", "bogus"),
        ] {
            let e = Config::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        // A misspelt key is named with the one it was probably meant to be.
        for (text, key, want) in [
            ("listen_adress = \"x\"", "listen_adress", "; did you mean `listen`?"),
            (
                "[notifications]\nmax_in_fligt = 3",
                "notifications.max_in_fligt",
                "; did you mean `max_in_flight`?",
            ),
        ] {
            let e = Config::from_toml(text).unwrap_err().to_string();
            assert!(
                e.contains(&format!("unknown key `{key}`")) && e.ends_with(want),
                "{text}: {e}"
            );
        }
        let e = Config::from_toml("zzz = 1").unwrap_err().to_string();
        assert!(
            e.contains("unknown key `zzz`") && e.contains("the keys here are: listen, "),
            "{e}"
        );
    }

    #[test]
    fn builds_push_to_the_listen_address_without_tls_unless_told_otherwise() {
        let b = BuildsConfig::default();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(b.push_host(any), "127.0.0.1:8080");
        assert_eq!(b.push_host("[::]:5000".parse().unwrap()), "[::1]:5000");
        assert_eq!(b.push_host("10.1.2.3:80".parse().unwrap()), "10.1.2.3:80");
        // Berth serves plain HTTP itself, whatever the scheme of the URLs it generates.
        assert!(!b.verifies_tls("http") && !b.verifies_tls("https"));
        let named = BuildsConfig {
            registry_host: "registry.example.com".into(),
            ..BuildsConfig::default()
        };
        assert_eq!(named.push_host(any), "registry.example.com");
        assert!(named.verifies_tls("https") && !named.verifies_tls("http"));
        let forced = BuildsConfig {
            tls_verify: Some(true),
            ..BuildsConfig::default()
        };
        assert!(forced.verifies_tls("http"));
        let s = forced.settings(Path::new("/d"), any, "http");
        assert_eq!(
            (s.registry_host.as_deref(), s.tls_verify),
            (Some("127.0.0.1:8080"), true)
        );
    }

    #[test]
    fn example_file_documents_every_key_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        Jail::expect_with(|_| {
            assert_eq!(
                Config::load(Some(&path)).unwrap(),
                Config::default(),
                "example values are the defaults"
            );
            Ok(())
        });
        let documented = |key: &str| {
            text.lines()
                .any(|l| l.trim_start_matches('#').trim_start().starts_with(&format!("{key} =")))
        };
        let all = toml::Value::try_from(Config {
            server_hostname: Some("h".into()),
            database_url: Some("sqlite:x".into()),
            metrics_token: Some("t".into()),
            secret_key: Some("k".into()),
            builds: BuildsConfig {
                tls_verify: Some(true),
                ..BuildsConfig::default()
            },
            ..Config::default()
        })
        .unwrap();
        for (key, value) in all.as_table().unwrap() {
            match value.as_table() {
                // A section: its header and every key in it.
                Some(section) => {
                    assert!(
                        text.contains(&format!("[{key}]")),
                        "config.example.toml has no [{key}] section"
                    );
                    for sub in section.keys() {
                        assert!(documented(sub), "config.example.toml does not document {key}.{sub}");
                    }
                }
                None => assert!(documented(key), "config.example.toml does not document {key}"),
            }
        }
        // And keys() is complete: every field of Config is listed.
        let mut fields: Vec<_> = all.as_table().unwrap().keys().cloned().collect();
        let mut keys: Vec<_> = Config::keys().into_iter().map(String::from).collect();
        fields.sort();
        keys.sort();
        assert_eq!(fields, keys);
    }
}
