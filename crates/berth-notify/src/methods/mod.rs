//! Notification methods and the validation of their configuration at creation (spec §2), with
//! Quay's exact messages. Every case where Quay answered 500 (a URL without a host, a non-string
//! template, an unknown target kind, an unknown method) is a 400 here.
//!
//! Checks that need the database (that a target user, organization or team exists, that an e-mail
//! address is authorized) are made by the application layer on the parsed [`Target`] and address.

pub mod flowdock;
pub mod hipchat;
pub mod slack;

use serde_json::Value;

use crate::jsontemplate::JsonTemplate;

/// A notification method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// `quay_notification`: the in-app bell.
    QuayNotification,
    /// `email`.
    Email,
    /// `webhook`.
    Webhook,
    /// `slack`.
    Slack,
    /// `flowdock` (discontinued service; kept for API compatibility).
    Flowdock,
    /// `hipchat` (discontinued service; kept for API compatibility).
    Hipchat,
}

const ALL: [MethodKind; 6] = [
    MethodKind::QuayNotification,
    MethodKind::Email,
    MethodKind::Webhook,
    MethodKind::Slack,
    MethodKind::Flowdock,
    MethodKind::Hipchat,
];

/// Who receives an in-app notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One user.
    User(String),
    /// The admins of an organization (which must be the repository's namespace).
    Org(String),
    /// The members of a team of the repository's organization.
    Team(String),
}

/// What validation needs from configuration.
#[derive(Debug, Clone)]
pub struct MethodPolicy {
    /// Hostnames webhooks may not target (Quay: `localhost`, `127.0.0.1` and
    /// `WEBHOOK_HOSTNAME_BLACKLIST`). Addresses are checked again, resolved, at send time.
    pub blocked_hosts: Vec<String>,
    /// The delivery guard: URLs naming an address it refuses are refused at creation, and blocked
    /// host names that resolve into its allowed networks (`localhost` with `127.0.0.0/8`) pass.
    pub guard: crate::guard::Guard,
}

impl Default for MethodPolicy {
    fn default() -> Self {
        MethodPolicy {
            blocked_hosts: vec!["localhost".into(), "127.0.0.1".into()],
            guard: crate::guard::Guard::default(),
        }
    }
}

/// A validated configuration, with what the application still has to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Nothing more to check.
    Done,
    /// The in-app target must exist.
    Target(Target),
    /// The address must be authorized for the repository.
    Email(String),
}

fn text<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl MethodKind {
    /// Every method.
    pub fn all() -> &'static [MethodKind] {
        &ALL
    }

    /// Quay's name.
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::QuayNotification => "quay_notification",
            MethodKind::Email => "email",
            MethodKind::Webhook => "webhook",
            MethodKind::Slack => "slack",
            MethodKind::Flowdock => "flowdock",
            MethodKind::Hipchat => "hipchat",
        }
    }

    /// Parses Quay's name; an unknown one is an error (400), not Quay's 500.
    pub fn parse(name: &str) -> Result<MethodKind, String> {
        ALL.into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| format!("Unknown notification method '{name}'"))
    }

    /// The name the UI shows: what it sends by, in one style for all (no "Notification" after
    /// some and not others).
    pub fn title(self) -> &'static str {
        match self {
            MethodKind::QuayNotification => "Bell (in Berth)",
            MethodKind::Email => "E-mail",
            MethodKind::Webhook => "Webhook POST",
            MethodKind::Slack => "Slack",
            MethodKind::Flowdock => "Flowdock",
            MethodKind::Hipchat => "HipChat",
        }
    }

    /// Validates `config` as far as it can be without the database. An error names the
    /// configuration key it is about.
    pub fn validate(self, config: &Value, policy: &MethodPolicy) -> Result<Checked, ConfigError> {
        if !config.is_object() {
            return Err(ConfigError::at("config", "config must be a JSON object"));
        }
        let missing = |field: &'static str, message: &'static str| move || ConfigError::at(field, message);
        match self {
            MethodKind::Webhook => {
                let url = text(config, "url").ok_or_else(missing("url", "Missing webhook URL"))?;
                check_destination(url, policy, "Invalid webhook URL").map_err(|m| ConfigError::at("url", m))?;
                let template = |m: String| ConfigError::at("template", m);
                match config.get("template") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(t)) if t.trim().is_empty() => {}
                    Some(Value::String(t)) if t.len() > MAX_TEMPLATE => {
                        return Err(template(format!(
                            "Invalid webhook template: longer than {MAX_TEMPLATE} bytes"
                        )));
                    }
                    Some(Value::String(t)) => {
                        JsonTemplate::parse(t).map_err(|e| template(e.to_string()))?;
                    }
                    Some(_) => return Err(template("Invalid webhook template: must be a string of JSON".into())),
                }
                custom_headers(config).map_err(|m| ConfigError::at("headers", m))?;
                tls_options(config).map_err(|m| ConfigError::at("tls", m))?;
                Ok(Checked::Done)
            }
            MethodKind::Slack => {
                // Any URL the delivery guard accepts, as Quay: Mattermost and Rocket.Chat speak
                // Slack's format from their own hosts.
                let url = text(config, "url").ok_or_else(missing("url", "Missing Slack Callback URL"))?;
                check_destination(url, policy, "Invalid Slack Callback URL").map_err(|m| ConfigError::at("url", m))?;
                Ok(Checked::Done)
            }
            MethodKind::Email => Ok(Checked::Email(
                text(config, "email")
                    .ok_or_else(missing("email", "Missing e-mail address"))?
                    .to_owned(),
            )),
            MethodKind::Flowdock => {
                text(config, "flow_api_token").ok_or_else(missing("flow_api_token", "Missing Flowdock API Token"))?;
                Ok(Checked::Done)
            }
            MethodKind::Hipchat => {
                text(config, "notification_token")
                    .ok_or_else(missing("notification_token", "Missing Hipchat Room Notification Token"))?;
                config
                    .get("room_id")
                    .filter(|v| !v.is_null() && v.as_str() != Some(""))
                    .ok_or_else(missing("room_id", "Missing Hipchat Room ID"))?;
                Ok(Checked::Done)
            }
            MethodKind::QuayNotification => {
                let target = config
                    .get("target")
                    .and_then(Value::as_object)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(missing("target", "Missing target"))?;
                let kind = target
                    .get("kind")
                    .and_then(Value::as_str)
                    .ok_or_else(missing("target", "Missing target"))?;
                let name = target
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                match kind {
                    "user" => Ok(Checked::Target(Target::User(name))),
                    "org" => Ok(Checked::Target(Target::Org(name))),
                    "team" => Ok(Checked::Target(Target::Team(name))),
                    other => Err(ConfigError::at(
                        "target",
                        format!("Unknown target kind '{other}': must be user, org or team"),
                    )),
                }
            }
        }
    }
}

/// Why a method's configuration was refused: Quay's message, and the configuration key it is
/// about (`url`, `template`, `headers`, `tls`, `email`, `flow_api_token`, `notification_token`,
/// `room_id`, `target`, or `config` for the whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The configuration key.
    pub field: &'static str,
    /// What is wrong, as Quay says it.
    pub message: String,
}

impl ConfigError {
    fn at(field: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field,
            message: message.into(),
        }
    }
}

/// An http(s) URL with a host that is not blocked.
fn check_http_url(url: &str) -> Result<url::Url, ()> {
    let parsed = url::Url::parse(url).map_err(|_| ())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(());
    }
    Ok(parsed)
}

/// Checks a URL that deliveries will POST to: http(s) with a host, not a blocked host name, and
/// not an address literal the delivery guard refuses (names are judged again, resolved, at send
/// time). `invalid` starts every refusal, as Quay words it.
fn check_destination(url: &str, policy: &MethodPolicy, invalid: &str) -> Result<(), String> {
    let parsed = check_http_url(url).map_err(|_| invalid.to_owned())?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    // Every refusal names its reason and the setting that lifts it. Loopback names and addresses
    // are the guard's to judge (`allowed_networks` lifts them); other blocked names are Quay's
    // host list.
    if policy.blocked_hosts.iter().any(|b| b.eq_ignore_ascii_case(&host)) && !lifted(&host, &policy.guard) {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        return Err(if bare == "localhost" || bare.parse::<std::net::IpAddr>().is_ok() {
            format!("{invalid}: {bare} is not a public address (see notifications.allowed_networks)")
        } else {
            format!("{invalid}: {bare} is refused by notifications.blocked_hosts")
        });
    }
    if let Some(ip) = crate::guard::literal_of(parsed.as_str())
        && !policy.guard.permits(ip)
    {
        return Err(format!(
            "{invalid}: {ip} is not a public address (see notifications.allowed_networks)"
        ));
    }
    Ok(())
}

/// The longest webhook template accepted, in bytes (rendering is linear in its size).
pub const MAX_TEMPLATE: usize = 64 * 1024;

/// Headers Berth sets itself, which a notification's custom headers may not replace.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// A webhook's optional custom headers (`config.headers`, e.g. `{"Authorization": "Bearer …"}`):
/// an object of valid header names to string values, none of them Berth's own headers.
pub fn custom_headers(config: &Value) -> Result<Vec<(String, String)>, String> {
    let headers = match config.get("headers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("Invalid webhook headers: must be an object of header names to strings".into()),
    };
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("Invalid webhook headers: '{name}' is not a header name"));
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-berth-") {
            return Err(format!("Invalid webhook headers: '{name}' is set by Berth"));
        }
        let Some(v) = value
            .as_str()
            .filter(|v| reqwest::header::HeaderValue::from_str(v).is_ok())
        else {
            return Err(format!(
                "Invalid webhook headers: the value of '{name}' must be a header-safe string"
            ));
        };
        out.push((lower, v.to_owned()));
    }
    Ok(out)
}

/// A webhook's optional TLS settings (`config.tls`): a CA to trust besides the public roots
/// (`ca_pem`), and a client certificate and key to present (`client_cert_pem`, `client_key_pem`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Extra trusted CA certificate(s), PEM.
    pub ca_pem: Option<String>,
    /// Client certificate chain followed by its private key, PEM.
    pub identity_pem: Option<String>,
}

/// Reads and checks `config.tls`; `None` when absent.
pub fn tls_options(config: &Value) -> Result<Option<TlsOptions>, String> {
    let tls = match config.get("tls") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("Invalid webhook TLS settings: must be an object".into()),
    };
    if let Some(k) = tls
        .keys()
        .find(|k| !["ca_pem", "client_cert_pem", "client_key_pem"].contains(&k.as_str()))
    {
        return Err(format!(
            "Invalid webhook TLS settings: unknown key '{k}' (expected ca_pem, client_cert_pem, client_key_pem)"
        ));
    }
    let text = |k: &str| -> Result<Option<String>, String> {
        match tls.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(format!("Invalid webhook TLS settings: {k} must be a PEM string")),
        }
    };
    let ca_pem = text("ca_pem")?;
    if let Some(ca) = &ca_pem
        && reqwest::Certificate::from_pem_bundle(ca.as_bytes()).map_or(true, |c| c.is_empty())
    {
        return Err("Invalid webhook TLS settings: ca_pem is not a PEM certificate".into());
    }
    let identity_pem = match (text("client_cert_pem")?, text("client_key_pem")?) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let pem = format!("{}\n{}", cert.trim_end(), key.trim_end());
            reqwest::Identity::from_pem(pem.as_bytes()).map_err(|_| {
                "Invalid webhook TLS settings: client_cert_pem and client_key_pem are not a PEM certificate and its key"
                    .to_owned()
            })?;
            Some(pem)
        }
        _ => {
            return Err("Invalid webhook TLS settings: client_cert_pem and client_key_pem go together".into());
        }
    };
    Ok(Some(TlsOptions { ca_pem, identity_pem }))
}

/// Whether the guard's allowed networks lift Quay's literal refusal of `host` (`localhost` means
/// the loopback addresses; an IP literal means itself).
fn lifted(host: &str, guard: &crate::guard::Guard) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => guard.permits(ip),
        Err(_) if host == "localhost" => guard.permits(std::net::Ipv4Addr::LOCALHOST.into()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(m: MethodKind, config: Value) -> Result<Checked, String> {
        m.validate(&config, &MethodPolicy::default()).map_err(|e| e.message)
    }

    #[test]
    fn errors_name_their_key() {
        let field = |m: MethodKind, config: Value| m.validate(&config, &MethodPolicy::default()).unwrap_err().field;
        assert_eq!(field(MethodKind::Webhook, json!({})), "url");
        assert_eq!(
            field(MethodKind::Webhook, json!({"url": "https://e.com", "template": 5})),
            "template"
        );
        assert_eq!(
            field(
                MethodKind::Webhook,
                json!({"url": "https://e.com", "headers": {"bad name": "x"}})
            ),
            "headers"
        );
        assert_eq!(field(MethodKind::Email, json!({})), "email");
        assert_eq!(
            field(MethodKind::Hipchat, json!({"notification_token": "t"})),
            "room_id"
        );
        assert_eq!(
            field(MethodKind::QuayNotification, json!({"target": {"kind": "robot"}})),
            "target"
        );
        assert_eq!(field(MethodKind::Slack, json!([])), "config");
    }

    #[test]
    fn quays_messages() {
        use MethodKind as M;
        let cases = [
            (M::Webhook, json!({}), "Missing webhook URL"),
            (M::Webhook, json!({"url": ""}), "Missing webhook URL"),
            (M::Webhook, json!({"url": "ftp://example.com/x"}), "Invalid webhook URL"),
            (
                M::Webhook,
                json!({"url": "http://localhost:8080/x"}),
                "Invalid webhook URL: localhost is not a public address (see notifications.allowed_networks)",
            ),
            (
                M::Webhook,
                json!({"url": "http://127.0.0.1/x"}),
                "Invalid webhook URL: 127.0.0.1 is not a public address (see notifications.allowed_networks)",
            ),
            (M::Webhook, json!({"url": "http://"}), "Invalid webhook URL"),
            (M::Webhook, json!({"url": "mailto:x@y.z"}), "Invalid webhook URL"),
            (M::Webhook, json!({"url": "not a url"}), "Invalid webhook URL"),
            (M::Slack, json!({}), "Missing Slack Callback URL"),
            (M::Email, json!({"email": ""}), "Missing e-mail address"),
            (M::Flowdock, json!({}), "Missing Flowdock API Token"),
            (
                M::Hipchat,
                json!({"room_id": "1"}),
                "Missing Hipchat Room Notification Token",
            ),
            (M::Hipchat, json!({}), "Missing Hipchat Room Notification Token"),
            (
                M::Hipchat,
                json!({"notification_token": "t"}),
                "Missing Hipchat Room ID",
            ),
            (M::QuayNotification, json!({}), "Missing target"),
            (M::QuayNotification, json!({"target": {}}), "Missing target"),
            (M::QuayNotification, json!({"target": "devtable"}), "Missing target"),
            (M::QuayNotification, json!({"target": {"name": "x"}}), "Missing target"),
        ];
        for (m, cfg, msg) in cases {
            assert_eq!(check(m, cfg.clone()), Err(msg.to_owned()), "{} {cfg}", m.name());
        }
    }

    #[test]
    fn quays_500s_are_400s() {
        assert_eq!(
            MethodKind::parse("carrier_pigeon"),
            Err("Unknown notification method 'carrier_pigeon'".into())
        );
        let e = check(
            MethodKind::QuayNotification,
            json!({"target": {"kind": "robot", "name": "x"}}),
        )
        .unwrap_err();
        assert_eq!(e, "Unknown target kind 'robot': must be user, org or team");
        let e = check(
            MethodKind::Webhook,
            json!({"url": "https://example.com", "template": 5}),
        )
        .unwrap_err();
        assert!(e.starts_with("Invalid webhook template"), "{e}");
        let e = check(
            MethodKind::Webhook,
            json!({"url": "https://example.com", "template": "{\"a\":\"${}\"}"}),
        )
        .unwrap_err();
        assert_eq!(e, "Empty expression found");
        assert!(
            check(
                MethodKind::Webhook,
                json!({"url": "https://example.com/hook", "template": ""})
            )
            .is_ok()
        );
    }

    #[test]
    fn slack_hosts_targets_and_emails() {
        assert!(
            check(
                MethodKind::Slack,
                json!({"url": "https://hooks.slack.com/services/A/B/c"})
            )
            .is_ok()
        );
        // Any URL the guard accepts, as Quay (whose own tests use http://example.com): Mattermost
        // and Rocket.Chat speak Slack's format from their own hosts.
        for url in ["http://example.com", "https://chat.example.com/hooks/x"] {
            assert_eq!(
                check(MethodKind::Slack, json!({"url": url})),
                Ok(Checked::Done),
                "{url}"
            );
        }
        for (url, e) in [
            ("ftp://example.com/x", "Invalid Slack Callback URL"),
            (
                "http://localhost/x",
                "Invalid Slack Callback URL: localhost is not a public address (see notifications.allowed_networks)",
            ),
            (
                "http://10.0.0.1/x",
                "Invalid Slack Callback URL: 10.0.0.1 is not a public address (see notifications.allowed_networks)",
            ),
        ] {
            assert_eq!(check(MethodKind::Slack, json!({"url": url})).unwrap_err(), e, "{url}");
        }
        assert_eq!(
            check(
                MethodKind::QuayNotification,
                json!({"target": {"kind": "team", "name": "owners", "avatar": {}}})
            ),
            Ok(Checked::Target(Target::Team("owners".into())))
        );
        assert_eq!(
            check(MethodKind::Email, json!({"email": "a@b.c"})),
            Ok(Checked::Email("a@b.c".into()))
        );
        let hook = |url: &str, policy: &MethodPolicy| {
            MethodKind::Webhook
                .validate(&json!({"url": url}), policy)
                .map_err(|e| e.message)
        };
        let default = MethodPolicy::default();
        assert_eq!(
            hook("http://localhost/x", &default).unwrap_err(),
            "Invalid webhook URL: localhost is not a public address (see notifications.allowed_networks)"
        );
        let quay_list = MethodPolicy {
            blocked_hosts: vec!["internal.example".into()],
            ..MethodPolicy::default()
        };
        assert_eq!(
            hook("https://internal.example/x", &quay_list).unwrap_err(),
            "Invalid webhook URL: internal.example is refused by notifications.blocked_hosts"
        );
        assert_eq!(
            hook("http://10.0.0.1/x", &default).unwrap_err(),
            "Invalid webhook URL: 10.0.0.1 is not a public address (see notifications.allowed_networks)"
        );
        assert_eq!(
            hook("http://[::1]/x", &default).unwrap_err(),
            "Invalid webhook URL: ::1 is not a public address (see notifications.allowed_networks)"
        );
        let lab = MethodPolicy {
            guard: crate::guard::Guard::new(crate::guard::parse_networks(&["127.0.0.0/8".into()]).unwrap()),
            ..MethodPolicy::default()
        };
        assert!(
            hook("http://127.0.0.1:9/x", &lab).is_ok(),
            "allowed networks lift Quay's literal refusal"
        );
        assert!(hook("http://localhost:9/x", &lab).is_ok());
        assert!(
            hook("http://10.0.0.1/x", &lab).is_err(),
            "only for the allowed networks"
        );
    }
}
