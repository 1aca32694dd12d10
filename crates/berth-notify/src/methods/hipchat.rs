//! HipChat's room notifications (spec §2.5).

use serde_json::{Value, json};

use crate::events::{EventKind, Level};
use crate::message;

/// HipChat's colour for a level (spec §2.5).
pub fn color(level: Level) -> &'static str {
    match level {
        Level::Info => "gray",
        Level::Warning => "yellow",
        Level::Error => "red",
        Level::Success => "green",
        Level::Primary => "purple",
    }
}

/// HipChat's room-notification body (spec §2.5), with an escaped HTML message.
pub fn body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value {
    let level = kind.level(data);
    json!({
        "color": color(level),
        "message": message::to_html(&message::segments(kind, data, performer)),
        "notify": level == Level::Error,
        "message_format": "html",
    })
}

/// HipChat's notification URL under `base` (the token goes in the query, as HipChat requires).
pub fn url(base: &str, room_id: &str, token: &str) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("hipchat_api_base: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| "hipchat_api_base cannot be a base".to_owned())?
        .pop_if_empty()
        .extend(["v2", "room", room_id, "notification"]);
    url.query_pairs_mut().append_pair("auth_token", token);
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_carries_the_room_and_the_token() {
        assert_eq!(
            url("https://api.hipchat.com", "42", "t o/k").unwrap(),
            "https://api.hipchat.com/v2/room/42/notification?auth_token=t+o%2Fk"
        );
        assert_eq!(
            url("http://127.0.0.1:9/base/", "a/b", "t").unwrap(),
            "http://127.0.0.1:9/base/v2/room/a%2Fb/notification?auth_token=t"
        );
    }
}
