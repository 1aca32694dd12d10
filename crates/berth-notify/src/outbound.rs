//! What one delivery sends, per method: the destination it counts against (the delivery engine
//! limits concurrency and pauses per destination), and the request itself (URL, body, extra
//! headers, TLS settings) built from the notification's configuration and the event. This is the
//! one place that reads a method's configuration keys at delivery time.

use serde_json::Value;

use crate::events::EventKind;
use crate::jsontemplate::JsonTemplate;
use crate::methods::{MethodKind, TlsOptions, custom_headers, tls_options};
use crate::send::{self, mask_url};

/// The fixed endpoints and identities that some methods use.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Base URL of the Flowdock API.
    pub flowdock_api_base: String,
    /// Base URL of the HipChat API.
    pub hipchat_api_base: String,
    /// Sender address of outgoing messages (Flowdock's `from_address`).
    pub from_address: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            flowdock_api_base: "https://api.flowdock.com".into(),
            hipchat_api_base: "https://api.hipchat.com".into(),
            from_address: "berth@localhost".into(),
        }
    }
}

/// Where a delivery goes, as the delivery engine counts it: `host:port` for the HTTP methods (two
/// receivers on one machine are two destinations), `mail` for the SMTP relay, `in-app` for the
/// bell, `invalid` for a configuration no request can be built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination(String);

impl Destination {
    /// The destination's name, as metrics and logs show it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn of_url(url: &str) -> Destination {
        match url::Url::parse(url) {
            Ok(u) if u.host_str().is_some() => Destination(format!(
                "{}:{}",
                u.host_str().unwrap_or_default(),
                u.port_or_known_default().unwrap_or(0)
            )),
            _ => Destination("invalid".into()),
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The destination of a notification's deliveries (cheap: no rendering).
pub fn destination(method: MethodKind, config: &Value, endpoints: &Endpoints) -> Destination {
    match method {
        MethodKind::Webhook | MethodKind::Slack => Destination::of_url(config["url"].as_str().unwrap_or_default()),
        MethodKind::Hipchat => Destination::of_url(&endpoints.hipchat_api_base),
        MethodKind::Flowdock => Destination::of_url(&endpoints.flowdock_api_base),
        MethodKind::Email => Destination("mail".into()),
        MethodKind::QuayNotification => Destination("in-app".into()),
    }
}

/// An HTTP POST of a JSON body.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Where it goes (may carry a token).
    pub url: String,
    /// The URL as the delivery log may show it (tokens masked).
    pub log_url: String,
    /// The body.
    pub body: Value,
    /// The method's label for messages (never the URL).
    pub what: &'static str,
    /// The notification's own headers (webhooks only).
    pub headers: Vec<(String, String)>,
    /// The notification's own CA and client certificate (webhooks only).
    pub tls: Option<TlsOptions>,
}

/// What a delivery does.
#[derive(Debug, Clone)]
pub enum Request {
    /// POSTs JSON (webhook, Slack, HipChat, Flowdock).
    Http(HttpRequest),
    /// Mails the address (which the application checks is still authorized).
    Mail {
        /// The address.
        to: String,
    },
    /// Writes bell rows for the target (resolved by the application).
    InApp,
}

/// Builds the request of one delivery of `event` (with `data`) to a notification of `method`
/// configured with `config`. An error is permanent: the configuration or the template cannot
/// produce a request.
pub fn request(
    method: MethodKind,
    config: &Value,
    event: EventKind,
    data: &Value,
    performer: Option<&str>,
    endpoints: &Endpoints,
) -> Result<Request, String> {
    let url = || config["url"].as_str().unwrap_or_default().to_owned();
    let http = |url: String, body: Value, what: &'static str, mask_last_segment: bool| HttpRequest {
        log_url: mask_url(&url, mask_last_segment),
        url,
        body,
        what,
        headers: Vec::new(),
        tls: None,
    };
    Ok(match method {
        MethodKind::Webhook => {
            let mut r = http(url(), webhook_body(config, data)?, "webhook", false);
            r.headers = custom_headers(config)?;
            r.tls = tls_options(config)?;
            Request::Http(r)
        }
        MethodKind::Slack => Request::Http(http(url(), send::slack_body(event, data, performer), "Slack", true)),
        MethodKind::Hipchat => {
            let room = match &config["room_id"] {
                Value::String(r) => r.clone(),
                other => other.to_string(),
            };
            let token = config["notification_token"].as_str().unwrap_or_default();
            let url = send::hipchat_url(&endpoints.hipchat_api_base, &room, token)?;
            Request::Http(http(url, send::hipchat_body(event, data, performer), "hipchat", false))
        }
        MethodKind::Flowdock => {
            let token = config["flow_api_token"].as_str().unwrap_or_default();
            let url = send::flowdock_url(&endpoints.flowdock_api_base, token)?;
            let body = send::flowdock_body(event, data, performer, &endpoints.from_address);
            Request::Http(http(url, body, "flowdock", true))
        }
        MethodKind::Email => Request::Mail {
            to: config["email"].as_str().unwrap_or_default().to_owned(),
        },
        MethodKind::QuayNotification => Request::InApp,
    })
}

/// The webhook body: the event data, or the notification's template rendered against it.
pub fn webhook_body(config: &Value, data: &Value) -> Result<Value, String> {
    match config["template"].as_str().filter(|t| !t.trim().is_empty()) {
        None => Ok(data.clone()),
        Some(t) => JsonTemplate::parse(t)
            .and_then(|tpl| tpl.render(data))
            .map_err(|e| format!("webhook template: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn destinations() {
        let e = Endpoints::default();
        let d = |m, c: Value| destination(m, &c, &e).as_str().to_owned();
        assert_eq!(
            d(MethodKind::Webhook, json!({"url": "http://10.1.2.3/x"})),
            "10.1.2.3:80"
        );
        assert_eq!(
            d(MethodKind::Webhook, json!({"url": "https://ci.example/x"})),
            "ci.example:443"
        );
        assert_eq!(
            d(MethodKind::Slack, json!({"url": "http://h.example:9000/s"})),
            "h.example:9000"
        );
        assert_eq!(d(MethodKind::Webhook, json!({"url": "nope"})), "invalid");
        assert_eq!(d(MethodKind::Hipchat, json!({})), "api.hipchat.com:443");
        assert_eq!(d(MethodKind::Flowdock, json!({})), "api.flowdock.com:443");
        assert_eq!(d(MethodKind::Email, json!({"email": "a@b.c"})), "mail");
        assert_eq!(d(MethodKind::QuayNotification, json!({})), "in-app");
    }

    #[test]
    fn requests_per_method() {
        let e = Endpoints {
            hipchat_api_base: "http://127.0.0.1:9/h".into(),
            flowdock_api_base: "http://127.0.0.1:9/f".into(),
            from_address: "b@example.com".into(),
        };
        let data = json!({"repository": "acme/web", "namespace": "acme", "name": "web", "updated_tags": ["v1"],
            "homepage": "http://x/repository/acme/web", "docker_url": "x/acme/web", "pushed_image_count": 1,
            "prune_image_count": 0});
        let req = |m, c: Value| request(m, &c, EventKind::RepoPush, &data, None, &e).unwrap();
        let Request::Http(h) = req(
            MethodKind::Webhook,
            json!({"url": "http://r.example/h?k=s", "headers": {"Authorization": "Bearer t"}}),
        ) else {
            panic!("webhooks are HTTP")
        };
        assert_eq!(
            (h.url.as_str(), h.log_url.as_str()),
            ("http://r.example/h?k=s", "http://r.example/h?k=***")
        );
        assert_eq!(h.body, data);
        assert_eq!(h.headers, [("authorization".to_owned(), "Bearer t".to_owned())]);
        let Request::Http(h) = req(MethodKind::Hipchat, json!({"room_id": 42, "notification_token": "tok"})) else {
            panic!("hipchat is HTTP")
        };
        assert_eq!(h.url, "http://127.0.0.1:9/h/v2/room/42/notification?auth_token=tok");
        assert_eq!(h.log_url, "http://127.0.0.1:9/h/v2/room/42/notification?auth_token=***");
        let Request::Http(h) = req(MethodKind::Flowdock, json!({"flow_api_token": "secret"})) else {
            panic!("flowdock is HTTP")
        };
        assert_eq!(h.url, "http://127.0.0.1:9/f/v1/messages/team_inbox/secret");
        assert_eq!(h.log_url, "http://127.0.0.1:9/f/v1/messages/team_inbox/***");
        assert_eq!(h.body["from_address"], "b@example.com");
        let Request::Http(h) = req(
            MethodKind::Slack,
            json!({"url": "https://hooks.slack.com/services/A/B/sekrit"}),
        ) else {
            panic!("slack is HTTP")
        };
        assert_eq!(h.log_url, "https://hooks.slack.com/services/A/B/***");
        assert!(matches!(req(MethodKind::Email, json!({"email": "a@b.c"})), Request::Mail { to } if to == "a@b.c"));
        assert!(matches!(req(MethodKind::QuayNotification, json!({})), Request::InApp));
        let bad = request(
            MethodKind::Webhook,
            &json!({"url": "http://r.example/", "template": "{\"a\": ${nope"}),
            EventKind::RepoPush,
            &data,
            None,
            &e,
        );
        assert!(bad.is_err_and(|m| m.starts_with("webhook template:")));
    }

    #[test]
    fn webhook_bodies() {
        let data = json!({"repository": "acme/web", "updated_tags": ["v1"]});
        assert_eq!(webhook_body(&json!({"url": "x"}), &data).unwrap(), data);
        let t = json!({"template": "{\"text\": \"pushed ${updated_tags[*]} to ${repository}\"}"});
        assert_eq!(
            webhook_body(&t, &data).unwrap(),
            json!({"text": "pushed v1 to acme/web"})
        );
    }
}
