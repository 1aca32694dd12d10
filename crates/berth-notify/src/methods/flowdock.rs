//! Flowdock's team-inbox messages (spec §2.6).

use serde_json::{Value, json};

use crate::events::EventKind;
use crate::message;

/// Flowdock's team-inbox body (spec §2.6), with an escaped HTML message.
pub fn body(kind: EventKind, data: &Value, performer: Option<&str>, from_address: &str) -> Value {
    let ns = data["namespace"].as_str().unwrap_or_default();
    let name = data["name"].as_str().unwrap_or_default();
    json!({
        "source": "Berth",
        "from_address": from_address,
        "subject": kind.summary(data),
        "content": message::to_html(&message::segments(kind, data, performer)),
        "from_name": ns,
        "project": format!("{ns} {name}"),
        "tags": [format!("#{}", kind.name())],
        "link": data["homepage"],
    })
}

/// Flowdock's team-inbox URL under `base`.
pub fn url(base: &str, token: &str) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("flowdock_api_base: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| "flowdock_api_base cannot be a base".to_owned())?
        .pop_if_empty()
        .extend(["v1", "messages", "team_inbox", token]);
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_carries_the_token() {
        assert_eq!(
            url("https://api.flowdock.com", "tok/en").unwrap(),
            "https://api.flowdock.com/v1/messages/team_inbox/tok%2Fen"
        );
        assert!(url("not a url", "t").is_err());
    }
}
