//! What the chat services that take one incoming-webhook URL share: Slack (and Mattermost, which
//! speaks its format), Microsoft Teams, Discord and Google Chat. The URL is read, checked by the
//! delivery guard's rules at creation, masked in the log and routed the same way for all; each
//! service's module says how the URL is named and builds its message ([`ChatFormat`]).

use std::marker::PhantomData;

use serde_json::{Value, json};

use super::{ConfigError, Method, MethodKind, MethodPolicy, check_destination, http_url};
use crate::events::EventKind;
use crate::outbound::{About, Destination, Endpoints, EventData, Route, Target};
use crate::send::mask_url;

/// A chat service's message format and how its configuration names its URL.
pub trait ChatFormat {
    /// The method.
    const KIND: MethodKind;
    /// How validation messages name the URL: "Missing {LABEL} URL", "Invalid {LABEL} URL".
    const LABEL: &'static str;
    /// The method's name in delivery messages (never the URL).
    const WHAT: &'static str;
    /// Whether the URL's last path segment is a token (masked in the log, as query values are).
    const TOKEN_IN_PATH: bool;

    /// The JSON body of one event's message, built from the event data; every interpolated value
    /// is escaped for the service.
    fn body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value;
}

/// A chat notification's configuration: the service's incoming-webhook URL (`url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig<F> {
    /// Where messages are posted.
    pub url: url::Url,
    format: PhantomData<F>,
}

impl<F> ChatConfig<F> {
    /// A configuration posting to `url`.
    pub fn to(url: url::Url) -> Self {
        ChatConfig {
            url,
            format: PhantomData,
        }
    }
}

impl<F: ChatFormat> Method for ChatConfig<F> {
    const KIND: MethodKind = F::KIND;
    const FORM_KEYS: &'static [&'static str] = &["url"];

    fn read(config: &Value) -> Result<Self, ConfigError> {
        let missing = format!("Missing {} URL", F::LABEL);
        let invalid = format!("Invalid {} URL", F::LABEL);
        Ok(ChatConfig::to(http_url(config, &missing, &invalid)?))
    }

    fn check(&self, policy: &MethodPolicy) -> Result<(), ConfigError> {
        check_destination(&self.url, policy, &format!("Invalid {} URL", F::LABEL))
    }

    fn to_json(&self) -> Value {
        json!({"url": self.url.as_str()})
    }

    fn summary(&self) -> String {
        mask_url(self.url.as_str(), F::TOKEN_IN_PATH)
    }

    fn destination(&self, _: &Endpoints) -> Destination {
        Destination::of_url(&self.url)
    }

    fn delivers(&self, _: &Endpoints) -> Result<Target, String> {
        Ok(Target::Http(Box::new(Route::new(
            self.url.clone(),
            F::WHAT,
            F::TOKEN_IN_PATH,
        ))))
    }

    fn body(&self, event: EventKind, data: EventData<'_>, about: &About<'_>, _: &Endpoints) -> Result<String, String> {
        Ok(F::body(event, &data.parse()?, about.performer).to_string())
    }
}

/// `s` cut to at most `max` characters (services refuse longer fields), with `…` when cut.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The event's page in Berth (`homepage`), when it is an http(s) URL a button or link may open.
pub(crate) fn page(data: &Value) -> Option<&str> {
    data["homepage"]
        .as_str()
        .filter(|u| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
}
