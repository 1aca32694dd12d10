//! Flowdock's team-inbox messages (spec §2.6).

use serde_json::{Value, json};

use super::{ConfigError, Method, MethodKind, required};
use crate::events::EventKind;
use crate::message;
use crate::outbound::{About, Destination, Endpoints, EventData, Route, Target};

/// A Flowdock notification's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowdockConfig {
    /// The flow's API token (`flow_api_token`).
    pub token: String,
}

impl Method for FlowdockConfig {
    const KIND: MethodKind = MethodKind::Flowdock;
    const FORM_KEYS: &'static [&'static str] = &["flow_api_token"];

    fn read(config: &Value) -> Result<Self, ConfigError> {
        Ok(FlowdockConfig {
            token: required(config, "flow_api_token", "Missing Flowdock API Token")?,
        })
    }

    fn to_json(&self) -> Value {
        json!({"flow_api_token": self.token})
    }

    fn summary(&self) -> String {
        "Flowdock token ***".to_owned()
    }

    fn destination(&self, endpoints: &Endpoints) -> Destination {
        Destination::of_base(&endpoints.flowdock_api_base)
    }

    fn delivers(&self, endpoints: &Endpoints) -> Result<Target, String> {
        Ok(Target::Http(Box::new(Route::parse(
            url(&endpoints.flowdock_api_base, &self.token)?,
            "flowdock",
            true,
        )?)))
    }

    fn body(
        &self,
        event: EventKind,
        data: EventData<'_>,
        about: &About<'_>,
        endpoints: &Endpoints,
    ) -> Result<String, String> {
        Ok(body(event, &data.parse()?, about.performer, &endpoints.from_address).to_string())
    }
}

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
