//! Configuration: built-in defaults, then a TOML file (`--config`), then `BERTH_*` environment
//! variables, then `BERTH_*_FILE` variables (the value is read from the named file, for container
//! secrets). Every failure names the key and the source it came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
        }
    }
}

/// A configuration error: a message naming the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads the layered configuration from `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
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
                    .filter(|k| !k.as_str().ends_with("_file") && k.as_str() != "config")
                    .global(),
            )
            .merge(SecretFiles(secret_files));
        let config: Config = fig.extract().map_err(|e| ConfigError(describe(&e)))?;
        config.validate(&fig)?;
        Ok(config)
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
            && (h.is_empty()
                || h.contains("://")
                || h.contains('/')
                || h.chars().any(char::is_whitespace))
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
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return fail(
                "log_format",
                format!("'{}' must be text or json", self.log_format),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return fail(
                "log_level",
                format!("'{}' is not a valid filter: {e}", self.log_level),
            );
        }
        if self.database_max_connections == 0 {
            return fail("database_max_connections", "must be at least 1".into());
        }
        if self.registry_token_ttl_secs == 0 {
            return fail("registry_token_ttl_secs", "must be at least 1".into());
        }
        Ok(())
    }

    /// The host Berth names itself by.
    pub fn hostname(&self) -> String {
        self.server_hostname
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// The database URL, defaulting to SQLite under `data_dir`.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("berth.db").display()))
    }

    /// How long shutdown waits for in-flight requests.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
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
        _ => {
            let path: Vec<&str> = key.split('.').collect();
            let name = md.interpolate(&Profile::Default, &path);
            if name == key {
                md.name.to_string()
            } else {
                name
            }
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

/// `BERTH_<KEY>_FILE=/path`: the value of `<key>` is the content of the file, without a trailing
/// newline.
struct SecretFiles(BTreeMap<String, String>);

impl Provider for SecretFiles {
    fn metadata(&self) -> Metadata {
        Metadata::named("secret file").interpolater(|_, path| {
            format!("{ENV_PREFIX}{}_FILE", path.join("__").to_ascii_uppercase())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (var, path) in &self.0 {
            let Some(key) = var
                .strip_prefix(ENV_PREFIX)
                .and_then(|k| k.strip_suffix("_FILE"))
            else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if !Config::keys().contains(&key.as_str()) {
                return Err(figment::Error::from(format!("{var}: unknown key '{key}'")));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| figment::Error::from(format!("{var}: cannot read {path}: {e}")))?;
            dict.insert(
                key,
                Value::from(text.trim_end_matches(['\n', '\r']).to_owned()),
            );
        }
        Ok(Profile::Default.collect(dict))
    }
}
