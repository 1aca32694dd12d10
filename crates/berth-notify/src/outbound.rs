//! What deliveries send: the destination a notification's deliveries count against (the delivery
//! engine limits concurrency and pauses per destination), what they do (for HTTP methods, the
//! route: URL, masked URL, extra headers, TLS settings), and the stored event data a body is built
//! from. Each method works these out from its typed configuration (`methods`).

use serde_json::Value;
use serde_json::value::RawValue;

use crate::methods::TlsOptions;
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

    /// Where deliveries of a configuration no request can be built from are counted.
    pub fn invalid() -> Destination {
        Destination("invalid".into())
    }

    pub(crate) fn named(name: &str) -> Destination {
        Destination(name.into())
    }

    pub(crate) fn of_url(u: &url::Url) -> Destination {
        match u.host_str() {
            Some(host) => Destination(format!("{host}:{}", u.port_or_known_default().unwrap_or(0))),
            None => Destination::invalid(),
        }
    }

    /// The destination of a service's configured API base URL.
    pub(crate) fn of_base(base: &str) -> Destination {
        url::Url::parse(base).map_or_else(|_| Destination::invalid(), |u| Destination::of_url(&u))
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
    /// The body's media type (`application/json`, or `application/cloudevents+json`).
    pub content_type: &'static str,
}

impl Route {
    /// A plain route to `url`; with `mask_last_segment`, the log hides its last path segment (a
    /// token) as well as its query values.
    pub(crate) fn new(url: url::Url, what: &'static str, mask_last_segment: bool) -> Route {
        Route {
            log_url: mask_url(url.as_str(), mask_last_segment),
            url,
            what,
            headers: Vec::new(),
            tls: None,
            content_type: "application/json",
        }
    }

    /// [`Route::new`] for a URL built from configuration.
    pub(crate) fn parse(url: String, what: &'static str, mask_last_segment: bool) -> Result<Route, String> {
        let parsed = url::Url::parse(&url).map_err(|e| format!("invalid {what} URL: {e}"))?;
        Ok(Route::new(parsed, what, mask_last_segment))
    }
}

/// What a notification's deliveries do.
#[derive(Debug, Clone)]
pub enum Target {
    /// POST a JSON body along a route (webhook and the chat services).
    Http(Box<Route>),
    /// Mail the address (which the application checks is still authorized).
    Mail {
        /// The address.
        to: String,
    },
    /// Write bell rows for the recipients (resolved by the application).
    InApp(crate::methods::Target),
}

/// What a body may say about the delivery besides the event data.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// Who caused the event, when known.
    pub performer: Option<&'a str>,
    /// The delivery's id, the same on every retry.
    pub delivery_id: &'a str,
    /// When the event happened, RFC 3339.
    pub occurred_at: &'a str,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crate::methods::{MethodConfig, MethodKind};
    use serde_json::json;

    fn read(m: MethodKind, c: Value) -> MethodConfig {
        MethodConfig::read(m, &c).unwrap()
    }

    #[test]
    fn destinations() {
        let e = Endpoints::default();
        let d = |m, c: Value| read(m, c).destination(&e).as_str().to_owned();
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
        let hipchat = json!({"room_id": 1, "notification_token": "t"});
        assert_eq!(d(MethodKind::Hipchat, hipchat), "api.hipchat.com:443");
        assert_eq!(
            d(MethodKind::Flowdock, json!({"flow_api_token": "t"})),
            "api.flowdock.com:443"
        );
        assert_eq!(d(MethodKind::Email, json!({"email": "a@b.c"})), "mail");
        let bell = json!({"target": {"kind": "user", "name": "u"}});
        assert_eq!(d(MethodKind::QuayNotification, bell), "in-app");
        assert_eq!(Destination::of_base("nope").as_str(), "invalid");
    }

    const ABOUT: About<'static> = About {
        performer: None,
        delivery_id: "d-1.n-1",
        occurred_at: "2026-12-07T10:00:00.000Z",
    };

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
        let route = |m, c: Value| match read(m, c).delivers(&e).unwrap() {
            Target::Http(r) => r,
            other => panic!("{m:?} is HTTP: {other:?}"),
        };
        let body = |m, c: Value| {
            read(m, c)
                .body(EventKind::RepoPush, EventData::new(&stored), &ABOUT, &e)
                .unwrap()
        };
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
        let flowdock_config = json!({"flow_api_token": "secret"});
        let r = route(MethodKind::Flowdock, flowdock_config.clone());
        assert_eq!(r.url.as_str(), "http://127.0.0.1:9/f/v1/messages/team_inbox/secret");
        assert_eq!(r.log_url, "http://127.0.0.1:9/f/v1/messages/team_inbox/***");
        let flowdock: Value = serde_json::from_str(&body(MethodKind::Flowdock, flowdock_config)).unwrap();
        assert_eq!(flowdock["from_address"], "b@example.com");
        let slack_config = json!({"url": "https://hooks.slack.com/services/A/B/sekrit"});
        let r = route(MethodKind::Slack, slack_config.clone());
        assert_eq!(r.log_url, "https://hooks.slack.com/services/A/B/***");
        let slack: Value = serde_json::from_str(&body(MethodKind::Slack, slack_config)).unwrap();
        assert_eq!(slack["text"], "Repository acme/web updated");
        assert!(matches!(
            read(MethodKind::Email, json!({"email": "a@b.c"})).delivers(&e),
            Ok(Target::Mail { to }) if to == "a@b.c"
        ));
        assert!(matches!(
            read(MethodKind::QuayNotification, json!({"target": {"kind": "team", "name": "ops"}})).delivers(&e),
            Ok(Target::InApp(crate::methods::Target::Team(t))) if t == "ops"
        ));
        let mail = read(MethodKind::Email, json!({"email": "a@b.c"}));
        assert!(
            mail.body(EventKind::RepoPush, EventData::new(&stored), &ABOUT, &e)
                .is_err_and(|m| m == "email is not sent over HTTP")
        );
        let bad = json!({"url": "http://r.example/", "template": "{\"a\": ${nope"});
        assert_eq!(
            MethodConfig::read(MethodKind::Webhook, &bad).unwrap_err().field,
            "template",
            "a stored template that does not parse fails the delivery before any request"
        );
    }

    #[test]
    fn webhook_templates_render_the_parsed_data() {
        let data = raw(&json!({"repository": "acme/web", "updated_tags": ["v1"]}));
        let t = json!({"url": "https://r.example/", "template": "{\"text\": \"pushed ${updated_tags[*]} to ${repository}\"}"});
        let e = Endpoints::default();
        let got = read(MethodKind::Webhook, t)
            .body(EventKind::RepoPush, EventData::new(&data), &ABOUT, &e)
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&got).unwrap(),
            json!({"text": "pushed v1 to acme/web"})
        );
    }

    #[test]
    fn cloudevents_wrap_the_data_in_structured_mode() {
        let e = Endpoints::default();
        let push = json!({"repository": "acme/web", "namespace": "acme", "name": "web", "updated_tags": ["v1", "v2"],
            "homepage": "https://b.example/repository/acme/web"});
        let config = read(
            MethodKind::Webhook,
            json!({"url": "https://r.example/ce", "format": "cloudevents"}),
        );
        let Target::Http(route) = config.delivers(&e).unwrap() else {
            panic!("a webhook is HTTP")
        };
        assert_eq!(route.content_type, "application/cloudevents+json");
        let body = config
            .body(EventKind::RepoPush, EventData::new(&raw(&push)), &ABOUT, &e)
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"specversion": "1.0", "id": "d-1.n-1", "source": "https://b.example/repository/acme/web",
                   "type": "dev.berth.repo_push", "subject": "v1", "time": "2026-12-07T10:00:00.000Z",
                   "datacontenttype": "application/json", "data": push})
        );
        let build = json!({"repository": "acme/web", "build_id": "b-1",
            "homepage": "https://b.example/repository/acme/web/build/b-1"});
        let event = crate::methods::webhook::cloudevent(EventKind::BuildSuccess, &build, &ABOUT);
        assert_eq!(
            (&event["source"], &event["subject"], &event["type"]),
            (
                &json!("https://b.example/repository/acme/web"),
                &json!("b-1"),
                &json!("dev.berth.build_success")
            )
        );
        let plain = read(MethodKind::Webhook, json!({"url": "https://r.example/"}));
        let Target::Http(route) = plain.delivers(&e).unwrap() else {
            panic!("a webhook is HTTP")
        };
        assert_eq!(route.content_type, "application/json");
    }
}
