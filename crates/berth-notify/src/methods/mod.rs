//! Notification methods: each one's configuration, typed ([`MethodConfig`]), read and checked by
//! its own module behind the [`Method`] trait, which also owns what its deliveries do (destination,
//! route, body). Validation, the UI and delivery all read a configuration through it, so each
//! method's keys are known in one place.
//!
//! Validation at creation (spec §2) keeps Quay's exact messages. Every case where Quay answered
//! 500 (a URL without a host, a non-string template, an unknown target kind, an unknown method) is
//! a 400 here. Checks that need the database (that a target user, organization or team exists,
//! that an e-mail address is authorized) are made by the application layer on the typed
//! configuration.

pub mod chat;
pub mod discord;
pub mod email;
pub mod flowdock;
pub mod googlechat;
pub mod hipchat;
pub mod inapp;
pub mod slack;
pub mod teams;
pub mod webhook;

use serde_json::Value;

use crate::events::EventKind;
use crate::outbound::{About, Destination, Endpoints, EventData, Target as Delivers};

pub use discord::DiscordConfig;
pub use email::EmailConfig;
pub use flowdock::FlowdockConfig;
pub use googlechat::GoogleChatConfig;
pub use hipchat::HipchatConfig;
pub use inapp::{InAppConfig, Target};
pub use slack::{MattermostConfig, SlackConfig};
pub use teams::TeamsConfig;
pub use webhook::{MAX_TEMPLATE, TlsOptions, WebhookConfig};

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
    /// `msteams`: Microsoft Teams through a Workflows webhook (Berth).
    Msteams,
    /// `discord` (Berth).
    Discord,
    /// `googlechat`: a Google Chat space webhook (Berth).
    GoogleChat,
    /// `mattermost`: Slack's format under its own name (Berth).
    Mattermost,
}

const ALL: [MethodKind; 10] = [
    MethodKind::QuayNotification,
    MethodKind::Email,
    MethodKind::Webhook,
    MethodKind::Slack,
    MethodKind::Msteams,
    MethodKind::Discord,
    MethodKind::GoogleChat,
    MethodKind::Mattermost,
    MethodKind::Flowdock,
    MethodKind::Hipchat,
];

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
            MethodKind::Msteams => "msteams",
            MethodKind::Discord => "discord",
            MethodKind::GoogleChat => "googlechat",
            MethodKind::Mattermost => "mattermost",
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
            MethodKind::Msteams => "Microsoft Teams",
            MethodKind::Discord => "Discord",
            MethodKind::GoogleChat => "Google Chat",
            MethodKind::Mattermost => "Mattermost",
        }
    }

    /// The configuration keys a form edits ([`Method::FORM_KEYS`]).
    fn form_keys(self) -> &'static [&'static str] {
        match self {
            MethodKind::QuayNotification => InAppConfig::FORM_KEYS,
            MethodKind::Email => EmailConfig::FORM_KEYS,
            MethodKind::Webhook => WebhookConfig::FORM_KEYS,
            MethodKind::Slack => SlackConfig::FORM_KEYS,
            MethodKind::Msteams => TeamsConfig::FORM_KEYS,
            MethodKind::Discord => DiscordConfig::FORM_KEYS,
            MethodKind::GoogleChat => GoogleChatConfig::FORM_KEYS,
            MethodKind::Mattermost => MattermostConfig::FORM_KEYS,
            MethodKind::Flowdock => FlowdockConfig::FORM_KEYS,
            MethodKind::Hipchat => HipchatConfig::FORM_KEYS,
        }
    }

    /// What a form calls the method's URL, for the methods configured by one.
    pub fn url_label(self) -> Option<&'static str> {
        match self {
            MethodKind::Webhook => Some("Webhook URL"),
            MethodKind::Slack => Some("Slack webhook URL"),
            MethodKind::Msteams => Some("Teams Workflows webhook URL"),
            MethodKind::Discord => Some("Discord webhook URL"),
            MethodKind::GoogleChat => Some("Google Chat space webhook URL"),
            MethodKind::Mattermost => Some("Mattermost webhook URL"),
            MethodKind::QuayNotification | MethodKind::Email | MethodKind::Flowdock | MethodKind::Hipchat => None,
        }
    }
}

/// One method: how its configuration is read and checked, and what its deliveries do.
pub trait Method: Sized {
    /// The method.
    const KIND: MethodKind;

    /// The configuration keys a form edits, each in a field of the same name (as text, but for
    /// the bell's target, a `kind:name` choice).
    const FORM_KEYS: &'static [&'static str];

    /// Reads a configuration object (submitted or stored): every key the method knows, in its
    /// shape. An error names the key, in Quay's words.
    fn read(config: &Value) -> Result<Self, ConfigError>;

    /// What creation checks beyond the shape: the server's policy on destinations.
    fn check(&self, _policy: &MethodPolicy) -> Result<(), ConfigError> {
        Ok(())
    }

    /// The configuration as the API takes and shows it.
    fn to_json(&self) -> Value;

    /// What it points at, secrets masked (the Settings table).
    fn summary(&self) -> String;

    /// The destination the delivery engine counts its deliveries against.
    fn destination(&self, endpoints: &Endpoints) -> Destination;

    /// What its deliveries do (for HTTP methods, the route). An error is permanent: no request
    /// can be built from this configuration.
    fn delivers(&self, endpoints: &Endpoints) -> Result<Delivers, String>;

    /// The JSON body one delivery POSTs, serialized (HTTP methods only). An error is permanent.
    fn body(
        &self,
        _event: EventKind,
        _data: EventData<'_>,
        _about: &About<'_>,
        _endpoints: &Endpoints,
    ) -> Result<String, String> {
        Err(format!("{} is not sent over HTTP", Self::KIND.name()))
    }
}

/// A method's configuration, typed: one variant per method.
#[derive(Debug, Clone)]
pub enum MethodConfig {
    /// The in-app bell.
    InApp(InAppConfig),
    /// E-mail.
    Email(EmailConfig),
    /// A webhook POST.
    Webhook(WebhookConfig),
    /// Slack.
    Slack(SlackConfig),
    /// Microsoft Teams.
    Msteams(TeamsConfig),
    /// Discord.
    Discord(DiscordConfig),
    /// Google Chat.
    GoogleChat(GoogleChatConfig),
    /// Mattermost.
    Mattermost(MattermostConfig),
    /// Flowdock.
    Flowdock(FlowdockConfig),
    /// HipChat.
    Hipchat(HipchatConfig),
}

/// Calls the same [`Method`] function on whichever configuration `$c` holds.
macro_rules! each {
    ($c:expr, $m:ident => $e:expr) => {
        match $c {
            MethodConfig::InApp($m) => $e,
            MethodConfig::Email($m) => $e,
            MethodConfig::Webhook($m) => $e,
            MethodConfig::Slack($m) => $e,
            MethodConfig::Msteams($m) => $e,
            MethodConfig::Discord($m) => $e,
            MethodConfig::GoogleChat($m) => $e,
            MethodConfig::Mattermost($m) => $e,
            MethodConfig::Flowdock($m) => $e,
            MethodConfig::Hipchat($m) => $e,
        }
    };
}

impl MethodConfig {
    /// Reads `config` as `kind`'s configuration (its shape only: what delivery and display need).
    pub fn read(kind: MethodKind, config: &Value) -> Result<MethodConfig, ConfigError> {
        if !config.is_object() {
            return Err(ConfigError::at("config", "config must be a JSON object"));
        }
        Ok(match kind {
            MethodKind::QuayNotification => MethodConfig::InApp(InAppConfig::read(config)?),
            MethodKind::Email => MethodConfig::Email(EmailConfig::read(config)?),
            MethodKind::Webhook => MethodConfig::Webhook(WebhookConfig::read(config)?),
            MethodKind::Slack => MethodConfig::Slack(SlackConfig::read(config)?),
            MethodKind::Msteams => MethodConfig::Msteams(TeamsConfig::read(config)?),
            MethodKind::Discord => MethodConfig::Discord(DiscordConfig::read(config)?),
            MethodKind::GoogleChat => MethodConfig::GoogleChat(GoogleChatConfig::read(config)?),
            MethodKind::Mattermost => MethodConfig::Mattermost(MattermostConfig::read(config)?),
            MethodKind::Flowdock => MethodConfig::Flowdock(FlowdockConfig::read(config)?),
            MethodKind::Hipchat => MethodConfig::Hipchat(HipchatConfig::read(config)?),
        })
    }

    /// A stored notification's configuration, read by its method's name; `None` when the method
    /// is unknown or the configuration does not read (for display: summaries, forms).
    pub fn read_stored(method: &str, config: &Value) -> Option<MethodConfig> {
        MethodConfig::read(MethodKind::parse(method).ok()?, config).ok()
    }

    /// Validates `config` for creation as far as it can be without the database: its shape and
    /// the server's policy. An error names the configuration key it is about.
    pub fn validate(kind: MethodKind, config: &Value, policy: &MethodPolicy) -> Result<MethodConfig, ConfigError> {
        let read = MethodConfig::read(kind, config)?;
        each!(&read, m => m.check(policy))?;
        Ok(read)
    }

    /// The configuration a form means: each of the method's [`Method::FORM_KEYS`] that is not
    /// blank, trimmed; for the bell, the target chosen as `kind:name`. It is validated like any
    /// other (a blank required field is reported missing).
    pub fn from_form(kind: MethodKind, field: impl Fn(&str) -> String) -> Value {
        if kind == MethodKind::QuayNotification {
            return Target::parse_choice(field("target").trim()).map_or_else(
                || Value::Object(Default::default()),
                |target| InAppConfig { target }.to_json(),
            );
        }
        kind.form_keys()
            .iter()
            .filter_map(|k| {
                let v = field(k);
                let v = v.trim();
                (!v.is_empty()).then(|| ((*k).to_owned(), Value::String(v.to_owned())))
            })
            .collect()
    }

    /// `existing` (a stored configuration) with what a form edits replaced by the form's values
    /// ([`MethodConfig::from_form`]); keys the form does not show (a webhook's headers and TLS
    /// settings) are kept.
    pub fn merge_form(kind: MethodKind, existing: &Value, field: impl Fn(&str) -> String) -> Value {
        let mut out = existing.as_object().cloned().unwrap_or_default();
        for key in kind.form_keys() {
            out.remove(*key);
        }
        if let Value::Object(form) = MethodConfig::from_form(kind, field) {
            out.extend(form);
        }
        Value::Object(out)
    }

    /// The form's fields of this configuration: each text key as a string, and the bell's
    /// target as `kind:name` (the inverse of [`MethodConfig::from_form`]).
    pub fn form_fields(&self) -> Vec<(&'static str, String)> {
        if let MethodConfig::InApp(c) = self {
            return vec![("target", format!("{}:{}", c.target.kind(), c.target.name()))];
        }
        let json = self.to_json();
        self.kind()
            .form_keys()
            .iter()
            .filter_map(|k| match &json[*k] {
                Value::String(v) => Some((*k, v.clone())),
                Value::Number(n) => Some((*k, n.to_string())),
                _ => None,
            })
            .collect()
    }

    /// The method.
    pub fn kind(&self) -> MethodKind {
        fn of<M: Method>(_: &M) -> MethodKind {
            M::KIND
        }
        each!(self, m => of(m))
    }

    /// The configuration as the API takes and shows it.
    pub fn to_json(&self) -> Value {
        each!(self, m => m.to_json())
    }

    /// What it points at, secrets masked.
    pub fn summary(&self) -> String {
        each!(self, m => m.summary())
    }

    /// The destination its deliveries count against.
    pub fn destination(&self, endpoints: &Endpoints) -> Destination {
        each!(self, m => m.destination(endpoints))
    }

    /// What its deliveries do.
    pub fn delivers(&self, endpoints: &Endpoints) -> Result<Delivers, String> {
        each!(self, m => m.delivers(endpoints))
    }

    /// The JSON body one delivery POSTs (HTTP methods only).
    pub fn body(
        &self,
        event: EventKind,
        data: EventData<'_>,
        about: &About<'_>,
        endpoints: &Endpoints,
    ) -> Result<String, String> {
        each!(self, m => m.body(event, data, about, endpoints))
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
    pub(crate) fn at(field: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field,
            message: message.into(),
        }
    }
}

/// The trimmed, non-empty string at `key`.
pub(crate) fn text<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The trimmed, non-empty string at `key`, or `message` about that key.
pub(crate) fn required(config: &Value, key: &'static str, message: &str) -> Result<String, ConfigError> {
    text(config, key)
        .map(str::to_owned)
        .ok_or_else(|| ConfigError::at(key, message))
}

/// A URL that deliveries will POST to, at `url` in the configuration: present (else `missing`),
/// and http(s) with a host (else `invalid`).
pub(crate) fn http_url(config: &Value, missing: &str, invalid: &str) -> Result<url::Url, ConfigError> {
    let url = required(config, "url", missing)?;
    url::Url::parse(&url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
        .ok_or_else(|| ConfigError::at("url", invalid))
}

/// Checks a URL's host against the policy: not a blocked host name, and not an address literal the
/// delivery guard refuses (names are judged again, resolved, at send time). `invalid` starts every
/// refusal, as Quay words it.
pub(crate) fn check_destination(url: &url::Url, policy: &MethodPolicy, invalid: &str) -> Result<(), ConfigError> {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    // Every refusal names its reason and the setting that lifts it. Loopback names and addresses
    // are the guard's to judge (`allowed_networks` lifts them); other blocked names are Quay's
    // host list.
    if policy.blocked_hosts.iter().any(|b| b.eq_ignore_ascii_case(&host)) && !lifted(&host, &policy.guard) {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let why = if bare == "localhost" || bare.parse::<std::net::IpAddr>().is_ok() {
            format!("{invalid}: {bare} is not a public address (see notifications.allowed_networks)")
        } else {
            format!("{invalid}: {bare} is refused by notifications.blocked_hosts")
        };
        return Err(ConfigError::at("url", why));
    }
    if let Some(ip) = crate::guard::literal_of(url.as_str())
        && !policy.guard.permits(ip)
    {
        return Err(ConfigError::at(
            "url",
            format!("{invalid}: {ip} is not a public address (see notifications.allowed_networks)"),
        ));
    }
    Ok(())
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

    fn check(m: MethodKind, config: Value) -> Result<MethodConfig, String> {
        MethodConfig::validate(m, &config, &MethodPolicy::default()).map_err(|e| e.message)
    }

    #[test]
    fn errors_name_their_key() {
        let field = |m: MethodKind, config: Value| {
            MethodConfig::validate(m, &config, &MethodPolicy::default())
                .unwrap_err()
                .field
        };
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
            (
                M::Webhook,
                json!({"url": "https://e.example/", "format": "xml"}),
                "Invalid webhook format 'xml': must be quay or cloudevents",
            ),
            (
                M::Webhook,
                json!({"url": "https://e.example/", "format": "cloudevents", "template": "{}"}),
                "Invalid webhook format: a CloudEvents body carries the event's own data, so it takes no template",
            ),
            (M::Slack, json!({}), "Missing Slack Callback URL"),
            (M::Discord, json!({}), "Missing Discord webhook URL"),
            (
                M::Msteams,
                json!({"url": "teams"}),
                "Invalid Teams Workflows webhook URL",
            ),
            (
                M::GoogleChat,
                json!({"url": "http://10.0.0.1/x"}),
                "Invalid Google Chat webhook URL: 10.0.0.1 is not a public address (see notifications.allowed_networks)",
            ),
            (
                M::Mattermost,
                json!({"url": "http://localhost/hooks/x"}),
                "Invalid Mattermost webhook URL: localhost is not a public address (see notifications.allowed_networks)",
            ),
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
            assert_eq!(check(m, cfg.clone()).unwrap_err(), msg, "{} {cfg}", m.name());
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
            assert!(check(MethodKind::Slack, json!({"url": url})).is_ok(), "{url}");
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
        assert!(matches!(
            check(
                MethodKind::QuayNotification,
                json!({"target": {"kind": "team", "name": "owners", "avatar": {}}})
            ),
            Ok(MethodConfig::InApp(InAppConfig { target: Target::Team(t) })) if t == "owners"
        ));
        assert!(matches!(
            check(MethodKind::Email, json!({"email": " a@b.c "})),
            Ok(MethodConfig::Email(EmailConfig { address })) if address == "a@b.c"
        ));
        let hook = |url: &str, policy: &MethodPolicy| {
            MethodConfig::validate(MethodKind::Webhook, &json!({"url": url}), policy)
                .map(|_| ())
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

    #[test]
    fn configurations_read_back_as_written() {
        let written = [
            (
                MethodKind::QuayNotification,
                json!({"target": {"kind": "org", "name": "acme"}}),
                "org acme",
            ),
            (MethodKind::Email, json!({"email": "a@b.c"}), "a@b.c"),
            (
                MethodKind::Webhook,
                json!({"url": "https://ci.example/hook?token=abc", "template": "{\"r\": \"${repository}\"}",
                       "headers": {"authorization": "Bearer t"}}),
                "https://ci.example/hook?token=***",
            ),
            (
                MethodKind::Webhook,
                json!({"url": "https://ci.example/ce", "format": "cloudevents"}),
                "https://ci.example/ce",
            ),
            (
                MethodKind::Slack,
                json!({"url": "https://hooks.slack.com/services/T/B/secret"}),
                "https://hooks.slack.com/services/T/B/***",
            ),
            (
                MethodKind::Flowdock,
                json!({"flow_api_token": "t"}),
                "Flowdock token ***",
            ),
            (
                MethodKind::Hipchat,
                json!({"room_id": "42", "notification_token": "t"}),
                "HipChat room 42",
            ),
        ];
        for (kind, config, summary) in written {
            let read = MethodConfig::read(kind, &config).unwrap();
            assert_eq!(read.kind(), kind);
            assert_eq!(read.to_json(), config, "{}", kind.name());
            assert_eq!(read.summary(), summary, "{}", kind.name());
        }
        let numbered = MethodConfig::read(MethodKind::Hipchat, &json!({"room_id": 7, "notification_token": "t"}));
        assert_eq!(
            numbered.unwrap().summary(),
            "HipChat room 7",
            "Quay takes a numeric room id"
        );
    }

    #[test]
    fn forms_edit_their_keys_and_keep_the_rest() {
        let stored = json!({"url": "https://old.example/", "headers": {"authorization": "Bearer t"}, "template": "{}"});
        let field = |k: &str| {
            if k == "url" {
                " https://new.example/ ".to_owned()
            } else {
                String::new()
            }
        };
        assert_eq!(
            MethodConfig::merge_form(MethodKind::Webhook, &stored, field),
            json!({"url": "https://new.example/", "headers": {"authorization": "Bearer t"}}),
            "the form's keys take the form's values (a blank one goes); the headers stay"
        );
        let read = MethodConfig::read(MethodKind::Hipchat, &json!({"room_id": 7, "notification_token": "t"})).unwrap();
        assert_eq!(
            read.form_fields(),
            [("room_id", "7".to_owned()), ("notification_token", "t".to_owned())]
        );
        let bell = MethodConfig::read(
            MethodKind::QuayNotification,
            &json!({"target": {"kind": "team", "name": "ops"}}),
        );
        assert_eq!(bell.unwrap().form_fields(), [("target", "team:ops".to_owned())]);
        let bell = MethodConfig::merge_form(MethodKind::QuayNotification, &json!({}), |_| "user:alice".to_owned());
        assert_eq!(bell, json!({"target": {"kind": "user", "name": "alice"}}));
    }
}
