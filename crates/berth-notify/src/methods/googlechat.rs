//! Google Chat, through a space's incoming webhook: one `cardsV2` card (the summary as its
//! header, the repository as subtitle, the message in Chat's HTML subset, a button to the
//! event's page), with the summary as the notification's fallback text. Values are HTML-escaped.

use serde_json::{Value, json};

use super::MethodKind;
use super::chat::{ChatConfig, ChatFormat, page};
use crate::events::EventKind;
use crate::message;

/// Google Chat: a space's webhook URL (its `key` and `token` query values are masked in the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleChat;

/// A Google Chat notification's configuration.
pub type GoogleChatConfig = ChatConfig<GoogleChat>;

impl ChatFormat for GoogleChat {
    const KIND: MethodKind = MethodKind::GoogleChat;
    const LABEL: &'static str = "Google Chat webhook";
    const WHAT: &'static str = "Google Chat";
    const TOKEN_IN_PATH: bool = false;

    fn body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value {
        let summary = kind.summary(data);
        let mut widgets = vec![json!({"textParagraph": {
            "text": message::to_html(&message::segments(kind, data, performer)),
        }})];
        if let Some(url) = page(data) {
            widgets.push(json!({"buttonList": {"buttons": [
                {"text": "Open in Berth", "onClick": {"openLink": {"url": url}}},
            ]}}));
        }
        json!({
            "fallbackText": summary,
            "cardsV2": [{
                "cardId": format!("berth-{}", kind.name()),
                "card": {
                    "header": {"title": summary, "subtitle": data["repository"].as_str().unwrap_or_default()},
                    "sections": [{"widgets": widgets}],
                },
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_card_in_chats_html() {
        let ctx = crate::events::TEST_PLACE;
        let mut data = EventKind::BuildFailure.sample(&ctx, &json!({}), 0.0);
        data["error_message"] = json!("<script>x</script>");
        let body = GoogleChat::body(EventKind::BuildFailure, &data, None);
        let card = &body["cardsV2"][0]["card"];
        assert_eq!(body["cardsV2"][0]["cardId"], "berth-build_failure");
        assert_eq!(card["header"]["title"], EventKind::BuildFailure.summary(&data));
        assert_eq!(card["header"]["subtitle"], "acme/web");
        let text = card["sections"][0]["widgets"][0]["textParagraph"]["text"]
            .as_str()
            .unwrap();
        assert!(text.ends_with("<br>&lt;script&gt;x&lt;/script&gt;"), "{text}");
        assert_eq!(
            card["sections"][0]["widgets"][1]["buttonList"]["buttons"][0]["onClick"]["openLink"]["url"],
            "https://b.example/repository/acme/web/build/fake-build-id"
        );
        assert_eq!(body["fallbackText"], EventKind::BuildFailure.summary(&data));
    }
}
