//! Slack's incoming-webhook messages (spec §2.4), which Mattermost also takes.

use serde_json::{Value, json};

use super::MethodKind;
use super::chat::{ChatConfig, ChatFormat};
use crate::events::{EventKind, Level};
use crate::message::{self, slack_escape};

/// Slack: any URL the delivery guard accepts, as Quay, whose messages name it the "Slack
/// Callback URL".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slack;

impl ChatFormat for Slack {
    const KIND: MethodKind = MethodKind::Slack;
    const LABEL: &'static str = "Slack Callback";
    const WHAT: &'static str = "Slack";
    const TOKEN_IN_PATH: bool = true;

    fn body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value {
        body(kind, data, performer)
    }
}

/// Mattermost's incoming webhooks take Slack's format; only the name differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mattermost;

impl ChatFormat for Mattermost {
    const KIND: MethodKind = MethodKind::Mattermost;
    const LABEL: &'static str = "Mattermost webhook";
    const WHAT: &'static str = "Mattermost";
    const TOKEN_IN_PATH: bool = true;

    fn body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value {
        body(kind, data, performer)
    }
}

/// A Slack notification's configuration.
pub type SlackConfig = ChatConfig<Slack>;

/// A Mattermost notification's configuration.
pub type MattermostConfig = ChatConfig<Mattermost>;

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

    #[test]
    fn slack_messages_are_clean_and_escaped() {
        let ctx = crate::events::TEST_PLACE;
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
