//! Microsoft Teams, through a Workflows webhook ("Post to a channel when a webhook request is
//! received"): a message with one Adaptive Card (the summary coloured by level, the message as
//! Markdown, the repository and event as facts, a button to the event's page). Values are escaped
//! for Markdown.

use serde_json::{Value, json};

use super::MethodKind;
use super::chat::{ChatConfig, ChatFormat, page};
use crate::events::{EventKind, Level};
use crate::message::{self, markdown_escape};

/// Teams: a Workflows webhook URL (its `sig` query value is a secret, masked in the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Teams;

/// A Microsoft Teams notification's configuration.
pub type TeamsConfig = ChatConfig<Teams>;

/// The Adaptive Card colour of the summary for a level.
pub fn color(level: Level) -> &'static str {
    match level {
        Level::Info => "Default",
        Level::Warning => "Warning",
        Level::Error => "Attention",
        Level::Success => "Good",
        Level::Primary => "Accent",
    }
}

impl ChatFormat for Teams {
    const KIND: MethodKind = MethodKind::Msteams;
    const LABEL: &'static str = "Teams Workflows webhook";
    const WHAT: &'static str = "Teams";
    const TOKEN_IN_PATH: bool = false;

    fn body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value {
        let mut card = json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": markdown_escape(&kind.summary(data)), "weight": "Bolder",
                 "size": "Medium", "wrap": true, "color": color(kind.level(data))},
                {"type": "TextBlock", "text": message::to_markdown(&message::segments(kind, data, performer)), "wrap": true},
                {"type": "FactSet", "facts": [
                    {"title": "Repository", "value": markdown_escape(data["repository"].as_str().unwrap_or_default())},
                    {"title": "Event", "value": kind.title()},
                ]},
            ],
        });
        if let Some(url) = page(data) {
            card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open in Berth", "url": url}]);
        }
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": card,
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_adaptive_card_with_escaped_values() {
        let ctx = crate::events::TEST_PLACE;
        let data = crate::events::repo_push(&ctx, &["v_1"], &["sha256:x"]);
        let body = Teams::body(EventKind::RepoPush, &data, Some("a*b"));
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["contentType"], "application/vnd.microsoft.card.adaptive");
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][0]["text"], "Repository acme/web updated");
        assert_eq!(card["body"][0]["color"], "Accent", "a push is primary");
        let text = card["body"][1]["text"].as_str().unwrap();
        assert!(
            text.starts_with("**a\\*b** pushed [v\\_1](https://b.example/repository/acme/web?tag=v_1&tab=tags)"),
            "{text}"
        );
        assert_eq!(card["body"][2]["facts"][0]["value"], "acme/web");
        assert_eq!(card["actions"][0]["url"], "https://b.example/repository/acme/web");
    }
}
