//! Sending: the HTTP client every method uses, outcome classification, and the bodies of the
//! webhook and Slack methods.
//!
//! Classification (the delivery engine decides what to do with it):
//! - delivered: 2xx;
//! - retryable: 5xx, 408, 429, timeouts, connection and TLS errors (with `Retry-After` if given);
//! - permanent: any other status; 410 Gone also says the endpoint is gone for good.
//!
//! Redirects are not followed: a webhook must answer where it was registered.

use std::time::Duration;

use serde_json::{Value, json};

use crate::events::{EventKind, Level};
use crate::message::{self, slack_escape};

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver accepted it.
    Delivered {
        /// The status it answered.
        status: u16,
    },
    /// Worth trying again later.
    Retryable {
        /// What happened.
        reason: String,
        /// The receiver's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Trying again will not help.
    Permanent {
        /// What happened.
        reason: String,
        /// The receiver answered 410 Gone.
        gone: bool,
    },
}

/// Headers every delivery carries.
#[derive(Debug, Clone)]
pub struct DeliveryMeta<'a> {
    /// The event name.
    pub event: &'a str,
    /// A stable id, the same on every retry, so receivers can deduplicate.
    pub delivery_id: &'a str,
}

/// Classifies an HTTP answer.
pub fn classify(status: u16, retry_after: Option<Duration>, what: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered { status },
        408 | 429 | 500..=599 => Outcome::Retryable {
            reason: format!("{status} response for {what}"),
            retry_after,
        },
        410 => Outcome::Permanent {
            reason: format!("410 response for {what}: the endpoint is gone"),
            gone: true,
        },
        _ => Outcome::Permanent {
            reason: format!("{status} response for {what}"),
            gone: false,
        },
    }
}

/// Sends notifications over HTTP.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

impl Sender {
    /// A sender with the given timeouts. Unless `allow_private` is set, destinations must be
    /// public addresses (see [`crate::guard`]).
    pub fn new(timeout: Duration, connect_timeout: Duration, allow_private: bool) -> Result<Sender, String> {
        let mut builder = reqwest::Client::builder();
        if !allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(crate::guard::PublicOnly));
        }
        let client = builder
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Berth-Notifications/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Sender { client, allow_private })
    }

    /// POSTs a JSON body. `what` names the method in messages (never the URL: it may hold a token).
    pub async fn post_json(&self, url: &str, body: &Value, meta: &DeliveryMeta<'_>, what: &str) -> Outcome {
        let refused = || Outcome::Permanent {
            reason: format!("{what} refused: {}", crate::guard::REFUSED),
            gone: false,
        };
        if !self.allow_private && crate::guard::literal_refused(url) {
            return refused();
        }
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-berth-event", meta.event)
            .header("x-berth-delivery", meta.delivery_id)
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                classify(resp.status().as_u16(), retry_after, what)
            }
            Err(e) if without_url(&e).contains(crate::guard::REFUSED) => refused(),
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "failed"
                };
                Outcome::Retryable {
                    reason: format!("{what} {kind}: {}", without_url(&e)),
                    retry_after: None,
                }
            }
        }
    }
}

/// An error's text without the URL reqwest puts in it (URLs may carry tokens).
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut parts = Vec::new();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        "request error".into()
    } else {
        parts.join(": ")
    }
}

/// Slack's colour for a level (spec §2.4).
pub fn slack_color(level: Level) -> &'static str {
    match level {
        Level::Info => "#ffffff",
        Level::Warning => "warning",
        Level::Error => "danger",
        Level::Success | Level::Primary => "good",
    }
}

/// The Slack message of an event, built from the event data (no HTML scraping, no stray
/// whitespace), with a performer name when known.
pub fn slack_text(kind: EventKind, data: &Value, performer: Option<&str>) -> String {
    message::to_slack(&message::segments(kind, data, performer))
}

/// Slack's incoming-webhook body (spec §2.4).
pub fn slack_body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value {
    let summary = kind.summary(data);
    json!({
        "text": slack_escape(&summary),
        "username": "Berth",
        "attachments": [{
            "fallback": slack_escape(&summary),
            "text": slack_text(kind, data, performer),
            "color": slack_color(kind.level(data)),
            "mrkdwn_in": ["text"],
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::RepoContext;

    #[test]
    fn classification() {
        assert_eq!(classify(204, None, "webhook"), Outcome::Delivered { status: 204 });
        for s in [500, 503, 429, 408] {
            assert!(matches!(classify(s, None, "webhook"), Outcome::Retryable { .. }), "{s}");
        }
        assert_eq!(
            classify(410, None, "webhook"),
            Outcome::Permanent {
                reason: "410 response for webhook: the endpoint is gone".into(),
                gone: true
            }
        );
        assert!(matches!(
            classify(404, None, "webhook"),
            Outcome::Permanent { gone: false, .. }
        ));
        assert!(
            matches!(classify(301, None, "webhook"), Outcome::Permanent { .. }),
            "redirects are not followed"
        );
    }

    #[test]
    fn slack_messages_are_clean_and_escaped() {
        let ctx = RepoContext {
            hostname: "b.example",
            scheme: "https",
            namespace: "acme",
            name: "web",
        };
        let data = crate::events::repo_push(&ctx, &["v1"], &["sha256:x"]);
        let body = slack_body(EventKind::RepoPush, &data, None);
        assert_eq!(body["text"], "Repository acme/web updated");
        assert_eq!(body["attachments"][0]["color"], "good");
        assert_eq!(
            body["attachments"][0]["text"],
            "Push of <https://b.example/repository/acme/web?tag=v1&tab=tags|v1> in repository <https://b.example/repository/acme/web|acme/web>"
        );
        let with_user = slack_text(EventKind::RepoPush, &data, Some("a<b>&c"));
        assert!(with_user.starts_with("*a&lt;b&gt;&amp;c* pushed "), "{with_user}");
        let mut failed = EventKind::BuildFailure.sample(&ctx, &json!({}), 0.0);
        failed["error_message"] = json!("<script> & co");
        let t = slack_text(EventKind::BuildFailure, &failed, None);
        assert!(t.contains("&lt;script&gt; &amp; co") && !t.contains("<script>"), "{t}");
        assert!(
            t.starts_with("<https://b.example/repository/acme/web/build/fake-build-id|Build fake-bu> failed"),
            "{t}"
        );
        for e in EventKind::all() {
            let sample = e.sample(&ctx, &json!({"days": 3}), 0.0);
            let text = slack_text(*e, &sample, None);
            assert!(
                !text.contains("  ") && !text.trim().is_empty() && text == text.trim(),
                "{}: {text:?}",
                e.name()
            );
        }
    }
}

/// HipChat's colour for a level (spec §2.5).
pub fn hipchat_color(level: Level) -> &'static str {
    match level {
        Level::Info => "gray",
        Level::Warning => "yellow",
        Level::Error => "red",
        Level::Success => "green",
        Level::Primary => "purple",
    }
}

/// HipChat's room-notification body (spec §2.5), with an escaped HTML message.
pub fn hipchat_body(kind: EventKind, data: &Value, performer: Option<&str>) -> Value {
    let level = kind.level(data);
    json!({
        "color": hipchat_color(level),
        "message": message::to_html(&message::segments(kind, data, performer)),
        "notify": level == Level::Error,
        "message_format": "html",
    })
}

/// HipChat's notification URL under `base` (the token goes in the query, as HipChat requires).
pub fn hipchat_url(base: &str, room_id: &str, token: &str) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("hipchat_api_base: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| "hipchat_api_base cannot be a base".to_owned())?
        .pop_if_empty()
        .extend(["v2", "room", room_id, "notification"]);
    url.query_pairs_mut().append_pair("auth_token", token);
    Ok(url.into())
}

/// Flowdock's team-inbox body (spec §2.6), with an escaped HTML message.
pub fn flowdock_body(kind: EventKind, data: &Value, performer: Option<&str>, from_address: &str) -> Value {
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
pub fn flowdock_url(base: &str, token: &str) -> Result<String, String> {
    let mut url = url::Url::parse(base).map_err(|e| format!("flowdock_api_base: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| "flowdock_api_base cannot be a base".to_owned())?
        .pop_if_empty()
        .extend(["v1", "messages", "team_inbox", token]);
    Ok(url.into())
}

#[cfg(test)]
mod chat_tests {
    use super::*;

    #[test]
    fn legacy_chat_urls() {
        assert_eq!(
            hipchat_url("https://api.hipchat.com", "42", "t o/k").unwrap(),
            "https://api.hipchat.com/v2/room/42/notification?auth_token=t+o%2Fk"
        );
        assert_eq!(
            hipchat_url("http://127.0.0.1:9/base/", "a/b", "t").unwrap(),
            "http://127.0.0.1:9/base/v2/room/a%2Fb/notification?auth_token=t"
        );
        assert_eq!(
            flowdock_url("https://api.flowdock.com", "tok/en").unwrap(),
            "https://api.flowdock.com/v1/messages/team_inbox/tok%2Fen"
        );
        assert!(flowdock_url("not a url", "t").is_err());
    }
}
