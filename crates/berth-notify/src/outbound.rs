//! What deliveries send, per method: the destination a notification's deliveries count against
//! (the delivery engine limits concurrency and pauses per destination), its target (for HTTP
//! methods, the route: URL, masked URL, extra headers, TLS settings), and each delivery's body,
//! built from the event. This is the one place that reads a method's configuration keys at
//! delivery time.

use serde_json::Value;
use serde_json::value::RawValue;

use crate::events::EventKind;
use crate::jsontemplate::JsonTemplate;
use crate::methods::{MethodKind, TlsOptions, custom_headers, flowdock, hipchat, slack, tls_options};
use crate::send::mask_url;

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

/// Where and how a notification's HTTP deliveries go: the same for all of its deliveries, so it is
/// worked out once per notification and batch, not per delivery.
#[derive(Debug, Clone)]
pub struct Route {
    /// Where it goes (may carry a token).
    pub url: url::Url,
    /// The URL as the delivery log may show it (tokens masked).
    pub log_url: String,
    /// The method's label for messages (never the URL).
    pub what: &'static str,
    /// The notification's own headers (webhooks only).
    pub headers: Vec<(String, String)>,
    /// The notification's own CA and client certificate (webhooks only).
    pub tls: Option<TlsOptions>,
}

/// What a notification's deliveries do.
#[derive(Debug, Clone)]
pub enum Target {
    /// POST a JSON body along a route (webhook, Slack, HipChat, Flowdock).
    Http(Route),
    /// Mail the address (which the application checks is still authorized).
    Mail {
        /// The address.
        to: String,
    },
    /// Write bell rows for the target (resolved by the application).
    InApp,
}

/// Works out a notification's target from its method and configuration. An error is permanent:
/// no request can be built from this configuration.
pub fn target(method: MethodKind, config: &Value, endpoints: &Endpoints) -> Result<Target, String> {
    let route = |url: String, what: &'static str, mask_last_segment: bool| -> Result<Route, String> {
        let parsed = url::Url::parse(&url).map_err(|e| format!("invalid {what} URL: {e}"))?;
        Ok(Route {
            log_url: mask_url(&url, mask_last_segment),
            url: parsed,
            what,
            headers: Vec::new(),
            tls: None,
        })
    };
    let url = || config["url"].as_str().unwrap_or_default().to_owned();
    Ok(match method {
        MethodKind::Webhook => {
            let mut r = route(url(), "webhook", false)?;
            r.headers = custom_headers(config)?;
            r.tls = tls_options(config)?;
            Target::Http(r)
        }
        MethodKind::Slack => Target::Http(route(url(), "Slack", true)?),
        MethodKind::Hipchat => {
            let room = match &config["room_id"] {
                Value::String(r) => r.clone(),
                other => other.to_string(),
            };
            let token = config["notification_token"].as_str().unwrap_or_default();
            Target::Http(route(
                hipchat::url(&endpoints.hipchat_api_base, &room, token)?,
                "hipchat",
                false,
            )?)
        }
        MethodKind::Flowdock => {
            let token = config["flow_api_token"].as_str().unwrap_or_default();
            Target::Http(route(
                flowdock::url(&endpoints.flowdock_api_base, token)?,
                "flowdock",
                true,
            )?)
        }
        MethodKind::Email => Target::Mail {
            to: config["email"].as_str().unwrap_or_default().to_owned(),
        },
        MethodKind::QuayNotification => Target::InApp,
    })
}

/// The event data of one delivery: as stored (JSON text), parsed only when something needs it.
#[derive(Debug, Clone, Copy)]
pub struct EventData<'a> {
    raw: &'a RawValue,
}

impl<'a> EventData<'a> {
    /// The data, as stored.
    pub fn new(raw: &'a RawValue) -> Self {
        EventData { raw }
    }

    /// The JSON text.
    pub fn text(&self) -> &'a str {
        self.raw.get()
    }

    /// The data, parsed.
    pub fn parse(&self) -> Result<Value, String> {
        serde_json::from_str(self.raw.get()).map_err(|e| format!("unreadable event data: {e}"))
    }
}

/// The JSON body one delivery POSTs along its route, serialized. A plain webhook sends the event
/// data as stored, without parsing it; the other methods render it. An error is permanent: the
/// template cannot render this event.
pub fn http_body(
    method: MethodKind,
    config: &Value,
    event: EventKind,
    data: EventData<'_>,
    performer: Option<&str>,
    endpoints: &Endpoints,
) -> Result<String, String> {
    let template = config["template"].as_str().filter(|t| !t.trim().is_empty());
    Ok(match method {
        MethodKind::Webhook => match template {
            None => data.text().to_owned(),
            Some(t) => {
                let data = data.parse()?;
                JsonTemplate::parse(t)
                    .and_then(|tpl| tpl.render(&data))
                    .map_err(|e| format!("webhook template: {e}"))?
                    .to_string()
            }
        },
        MethodKind::Slack => slack::body(event, &data.parse()?, performer).to_string(),
        MethodKind::Hipchat => hipchat::body(event, &data.parse()?, performer).to_string(),
        MethodKind::Flowdock => flowdock::body(event, &data.parse()?, performer, &endpoints.from_address).to_string(),
        MethodKind::Email | MethodKind::QuayNotification => {
            return Err(format!("{} is not sent over HTTP", method.name()));
        }
    })
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

    fn raw(v: &Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(v).unwrap()
    }

    #[test]
    fn targets_and_bodies_per_method() {
        let e = Endpoints {
            hipchat_api_base: "http://127.0.0.1:9/h".into(),
            flowdock_api_base: "http://127.0.0.1:9/f".into(),
            from_address: "b@example.com".into(),
        };
        let data = json!({"repository": "acme/web", "namespace": "acme", "name": "web", "updated_tags": ["v1"],
            "homepage": "http://x/repository/acme/web", "docker_url": "x/acme/web", "pushed_image_count": 1,
            "prune_image_count": 0});
        let stored = raw(&data);
        let route = |m, c: Value| match target(m, &c, &e).unwrap() {
            Target::Http(r) => r,
            other => panic!("{m:?} is HTTP: {other:?}"),
        };
        let body = |m, c: Value| http_body(m, &c, EventKind::RepoPush, EventData::new(&stored), None, &e).unwrap();
        let hook = json!({"url": "http://r.example/h?k=s", "headers": {"Authorization": "Bearer t"}});
        let r = route(MethodKind::Webhook, hook.clone());
        assert_eq!(
            (r.url.as_str(), r.log_url.as_str()),
            ("http://r.example/h?k=s", "http://r.example/h?k=***")
        );
        assert_eq!(r.headers, [("authorization".to_owned(), "Bearer t".to_owned())]);
        assert_eq!(
            body(MethodKind::Webhook, hook),
            stored.get(),
            "a plain webhook sends the data as stored"
        );
        let r = route(MethodKind::Hipchat, json!({"room_id": 42, "notification_token": "tok"}));
        assert_eq!(
            r.url.as_str(),
            "http://127.0.0.1:9/h/v2/room/42/notification?auth_token=tok"
        );
        assert_eq!(r.log_url, "http://127.0.0.1:9/h/v2/room/42/notification?auth_token=***");
        let r = route(MethodKind::Flowdock, json!({"flow_api_token": "secret"}));
        assert_eq!(r.url.as_str(), "http://127.0.0.1:9/f/v1/messages/team_inbox/secret");
        assert_eq!(r.log_url, "http://127.0.0.1:9/f/v1/messages/team_inbox/***");
        let flowdock: Value = serde_json::from_str(&body(MethodKind::Flowdock, json!({}))).unwrap();
        assert_eq!(flowdock["from_address"], "b@example.com");
        let r = route(
            MethodKind::Slack,
            json!({"url": "https://hooks.slack.com/services/A/B/sekrit"}),
        );
        assert_eq!(r.log_url, "https://hooks.slack.com/services/A/B/***");
        let slack: Value = serde_json::from_str(&body(MethodKind::Slack, json!({}))).unwrap();
        assert_eq!(slack["text"], "Repository acme/web updated");
        assert!(
            matches!(target(MethodKind::Email, &json!({"email": "a@b.c"}), &e), Ok(Target::Mail { to }) if to == "a@b.c")
        );
        assert!(matches!(
            target(MethodKind::QuayNotification, &json!({}), &e),
            Ok(Target::InApp)
        ));
        assert!(target(MethodKind::Webhook, &json!({"url": "not a url"}), &e).is_err());
        let bad = http_body(
            MethodKind::Webhook,
            &json!({"url": "http://r.example/", "template": "{\"a\": ${nope"}),
            EventKind::RepoPush,
            EventData::new(&stored),
            None,
            &e,
        );
        assert!(bad.is_err_and(|m| m.starts_with("webhook template:")));
    }

    #[test]
    fn webhook_templates_render_the_parsed_data() {
        let data = raw(&json!({"repository": "acme/web", "updated_tags": ["v1"]}));
        let t = json!({"template": "{\"text\": \"pushed ${updated_tags[*]} to ${repository}\"}"});
        let e = Endpoints::default();
        let got = http_body(
            MethodKind::Webhook,
            &t,
            EventKind::RepoPush,
            EventData::new(&data),
            None,
            &e,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&got).unwrap(),
            json!({"text": "pushed v1 to acme/web"})
        );
    }
}
