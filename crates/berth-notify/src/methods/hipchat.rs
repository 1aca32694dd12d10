//! HipChat's room notifications (spec §2.5).

use serde_json::{Value, json};

use super::{ConfigError, Method, MethodKind, required};
use crate::events::{EventKind, Level};
use crate::message;
use crate::outbound::{About, Destination, Endpoints, EventData, Route, Target};

/// A HipChat notification's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HipchatConfig {
    /// The room (`room_id`, a string or, as Quay also takes, a number).
    pub room_id: String,
    /// The room notification token (`notification_token`).
    pub token: String,
}

impl Method for HipchatConfig {
    const KIND: MethodKind = MethodKind::Hipchat;
    const FORM_KEYS: &'static [&'static str] = &["room_id", "notification_token"];

    fn read(config: &Value) -> Result<Self, ConfigError> {
        let token = required(config, "notification_token", "Missing Hipchat Room Notification Token")?;
        let room_id = match config.get("room_id") {
            Some(Value::String(r)) if !r.trim().is_empty() => r.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(ConfigError::at("room_id", "Missing Hipchat Room ID")),
        };
        Ok(HipchatConfig { room_id, token })
    }

    fn to_json(&self) -> Value {
        json!({"room_id": self.room_id, "notification_token": self.token})
    }

    fn summary(&self) -> String {
        format!("HipChat room {}", self.room_id)
    }

    fn destination(&self, endpoints: &Endpoints) -> Destination {
        Destination::of_base(&endpoints.hipchat_api_base)
    }

    fn delivers(&self, endpoints: &Endpoints) -> Result<Target, String> {
        Ok(Target::Http(Box::new(Route::parse(
            url(&endpoints.hipchat_api_base, &self.room_id, &self.token)?,
            "hipchat",
            false,
        )?)))
    }

    fn body(&self, event: EventKind, data: EventData<'_>, about: &About<'_>, _: &Endpoints) -> Result<String, String> {
        Ok(body(event, &data.parse()?, about.performer).to_string())
    }
}

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
