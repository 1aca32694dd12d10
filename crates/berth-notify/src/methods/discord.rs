//! Discord's webhook messages: `content` (the summary) and one embed (title, link, colour by
//! level, the message as Markdown, the repository and the event as fields). Values are escaped for
//! Markdown, fields are cut to Discord's limits, and no mention pings anyone
//! (`allowed_mentions` is empty).

use serde_json::{Value, json};

use super::MethodKind;
use super::chat::{ChatConfig, ChatFormat, clip, page};
use crate::events::{EventKind, Level};
use crate::message::{self, markdown_escape};

/// Discord: a channel's webhook URL (`https://discord.com/api/webhooks/{id}/{token}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discord;

/// A Discord notification's configuration.
pub type DiscordConfig = ChatConfig<Discord>;

/// The embed's colour for a level (an RGB integer).
pub fn color(level: Level) -> u32 {
    match level {
        Level::Info => 0x95_a5_a6,
        Level::Warning => 0xf0_a3_0a,
        Level::Error => 0xd1_34_38,
        Level::Success => 0x2e_b6_7d,
        Level::Primary => 0x58_65_f2,
    }
}

impl ChatFormat for Discord {
    const KIND: MethodKind = MethodKind::Discord;
    const LABEL: &'static str = "Discord webhook";
    const WHAT: &'static str = "Discord";
    const TOKEN_IN_PATH: bool = true;

    fn body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value {
        let summary = kind.summary(data);
        let mut embed = json!({
            "title": clip(&summary, 256),
            "description": clip(&message::to_markdown(&message::segments(kind, data, performer)), 4096),
            "color": color(kind.level(data)),
            "fields": [
                {"name": "Repository", "value": clip(&markdown_escape(data["repository"].as_str().unwrap_or_default()), 1024), "inline": true},
                {"name": "Event", "value": kind.title(), "inline": true},
            ],
        });
        if let Some(url) = page(data) {
            embed["url"] = json!(url);
        }
        json!({
            "username": "Berth",
            "content": clip(&markdown_escape(&summary), 2000),
            "embeds": [embed],
            "allowed_mentions": {"parse": []},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_escape_and_ping_nobody() {
        let ctx = crate::events::TEST_PLACE;
        let mut data = EventKind::BuildFailure.sample(&ctx, &json!({}), 0.0);
        data["error_message"] = json!("@everyone **boom** [x](https://evil.example)");
        let body = Discord::body(EventKind::BuildFailure, &data, None);
        let embed = &body["embeds"][0];
        assert_eq!(embed["color"], 0xd1_34_38);
        assert_eq!(
            embed["url"],
            "https://b.example/repository/acme/web/build/fake-build-id"
        );
        assert_eq!(embed["fields"][0]["value"], "acme/web");
        assert_eq!(embed["fields"][1]["value"], EventKind::BuildFailure.title());
        let description = embed["description"].as_str().unwrap();
        assert!(
            description.ends_with("@everyone \\*\\*boom\\*\\* \\[x\\](https://evil.example)"),
            "{description}"
        );
        assert_eq!(body["allowed_mentions"], json!({"parse": []}));
        assert_eq!(
            body["content"],
            markdown_escape(&EventKind::BuildFailure.summary(&data))
        );
        data["homepage"] = json!("javascript:alert(1)");
        let body = Discord::body(EventKind::BuildFailure, &data, None);
        assert!(body["embeds"][0].get("url").is_none(), "only web links");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
