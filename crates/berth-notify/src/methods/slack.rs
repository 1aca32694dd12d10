//! Slack's incoming-webhook messages (spec §2.4).

use serde_json::{Value, json};

use super::{ConfigError, Method, MethodKind, MethodPolicy, check_destination, http_url};
use crate::events::{EventKind, Level};
use crate::message::{self, slack_escape};
use crate::outbound::{Destination, Endpoints, EventData, Route, Target};
use crate::send::mask_url;

/// A Slack notification's configuration: an incoming-webhook URL. Any URL the delivery guard
/// accepts, as Quay: Mattermost and Rocket.Chat speak Slack's format from their own hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackConfig {
    /// The incoming-webhook URL (`url`); its last segment is a token.
    pub url: url::Url,
}

impl Method for SlackConfig {
    const KIND: MethodKind = MethodKind::Slack;
    const FORM_KEYS: &'static [&'static str] = &["url"];

    fn read(config: &Value) -> Result<Self, ConfigError> {
        Ok(SlackConfig {
            url: http_url(config, "Missing Slack Callback URL", "Invalid Slack Callback URL")?,
        })
    }

    fn check(&self, policy: &MethodPolicy) -> Result<(), ConfigError> {
        check_destination(&self.url, policy, "Invalid Slack Callback URL")
    }

    fn to_json(&self) -> Value {
        json!({"url": self.url.as_str()})
    }

    fn summary(&self) -> String {
        mask_url(self.url.as_str(), true)
    }

    fn destination(&self, _: &Endpoints) -> Destination {
        Destination::of_url(&self.url)
    }

    fn delivers(&self, _: &Endpoints) -> Result<Target, String> {
        Ok(Target::Http(Route::new(self.url.clone(), "Slack", true)))
    }

    fn body(
        &self,
        event: EventKind,
        data: EventData<'_>,
        performer: Option<&str>,
        _: &Endpoints,
    ) -> Result<String, String> {
        Ok(body(event, &data.parse()?, performer).to_string())
    }
}

/// Slack's colour for a level (spec §2.4).
pub fn color(level: Level) -> &'static str {
    match level {
        Level::Info => "#ffffff",
        Level::Warning => "warning",
        Level::Error => "danger",
        Level::Success | Level::Primary => "good",
    }
}

/// The Slack message of an event, built from the event data (no HTML scraping, no stray
/// whitespace), with a performer name when known.
pub fn text(kind: EventKind, data: &Value, performer: Option<&str>) -> String {
    message::to_slack(&message::segments(kind, data, performer))
}

/// Slack's incoming-webhook body (spec §2.4).
pub fn body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value {
    let summary = kind.summary(data);
    json!({
        "text": slack_escape(&summary),
        "username": "Berth",
        "attachments": [{
            "fallback": slack_escape(&summary),
            "text": text(kind, data, performer),
            "color": color(kind.level(data)),
            "mrkdwn_in": ["text"],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RepoContext;

    #[test]
    fn slack_messages_are_clean_and_escaped() {
        let ctx = RepoContext {
            hostname: "b.example",
            scheme: "https",
            namespace: "acme",
            name: "web",
        };
        let data = crate::events::repo_push(&ctx, &["v1"], &["sha256:x"]);
        let body = body(EventKind::RepoPush, &data, None);
        assert_eq!(body["text"], "Repository acme/web updated");
        assert_eq!(body["attachments"][0]["color"], "good");
        assert_eq!(
            body["attachments"][0]["text"],
            "Push of <https://b.example/repository/acme/web?tag=v1&tab=tags|v1> in repository <https://b.example/repository/acme/web|acme/web>"
        );
        let with_user = text(EventKind::RepoPush, &data, Some("a<b>&c"));
        assert!(with_user.starts_with("*a&lt;b&gt;&amp;c* pushed "), "{with_user}");
        let mut failed = EventKind::BuildFailure.sample(&ctx, &json!({}), 0.0);
        failed["error_message"] = json!("<script> & co");
        let t = text(EventKind::BuildFailure, &failed, None);
        assert!(t.contains("&lt;script&gt; &amp; co") && !t.contains("<script>"), "{t}");
        assert!(
            t.starts_with("<https://b.example/repository/acme/web/build/fake-build-id|Build fake-bu> failed"),
            "{t}"
        );
        for e in EventKind::all() {
            let sample = e.sample(&ctx, &json!({"days": 3}), 0.0);
            let text = text(*e, &sample, None);
            assert!(
                !text.contains("  ") && !text.trim().is_empty() && text == text.trim(),
                "{}: {text:?}",
                e.name()
            );
        }
    }
}
