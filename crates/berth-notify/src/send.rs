//! Sending: the HTTP client every method uses, outcome classification, and the bodies of the
//! webhook and Slack methods.
//!
//! Classification (the delivery engine decides what to do with it):
//! - delivered: 2xx;
//! - retryable: 5xx, 408, 429, timeouts, connection and TLS errors (with `Retry-After` if given);
//! - permanent: any other status; 410 Gone also says the endpoint is gone for good.
//!
//! Redirects are not followed unless configuration allows a number of hops; then only 307 and 308
//! (which keep the method and body) are followed, every hop is checked by the SSRF guard again,
//! and a hop to another origin (scheme, host or port) drops the notification's own headers and
//! the signature. A 301, 302 or 303 to a POST is a failed delivery, never one logged as delivered. Request bodies are capped at [`REQUEST_BODY_CAP`]; response
//! bodies are read up to [`RESPONSE_BODY_CAP`].

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

/// What identifies and authenticates a delivery.
#[derive(Debug, Clone)]
pub struct DeliveryMeta<'a> {
    /// The event name.
    pub event: &'a str,
    /// A stable id, the same on every retry, so receivers can deduplicate.
    pub delivery_id: &'a str,
    /// Unix seconds of this attempt (`webhook-timestamp`).
    pub timestamp: i64,
    /// The notification's active signing secrets (`whsec_…`); none means unsigned.
    pub secrets: &'a [String],
    /// The notification's own headers (e.g. `Authorization`); their values are masked in the log.
    pub custom_headers: &'a [(String, String)],
}

/// Largest request body sent, in bytes; a bigger rendered body fails for good.
pub const REQUEST_BODY_CAP: usize = 1024 * 1024;

/// Most response-body bytes kept for the delivery log.
pub const RESPONSE_BODY_CAP: usize = 20 * 1024;

/// What one attempt sent and received, for the delivery log: the URL with its secrets masked,
/// the headers and body sent, and the answer (status, headers, body up to [`RESPONSE_BODY_CAP`])
/// or the error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Where it went, secrets masked.
    pub url: String,
    /// Headers sent.
    pub request_headers: Vec<(String, String)>,
    /// Body sent.
    pub request_body: String,
    /// Status received.
    pub status: Option<u16>,
    /// Headers received.
    pub response_headers: Vec<(String, String)>,
    /// Body received, cut at the cap.
    pub response_body: Option<String>,
    /// What went wrong when no answer came.
    pub error: Option<String>,
    /// How long it took.
    pub duration: Duration,
}

/// `url` with every query value and, when `mask_last_segment`, the last path segment replaced by
/// `***` (Slack and Flowdock URLs end in their token; HipChat's is a query value).
pub fn mask_url(url: &str, mask_last_segment: bool) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "(invalid URL)".into();
    };
    if mask_last_segment && let Ok(mut segs) = u.path_segments_mut() {
        segs.pop().push("***");
    }
    let pairs: Vec<(String, String)> = u.query_pairs().map(|(k, _)| (k.into_owned(), "***".into())).collect();
    if pairs.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.set_password(None).ok();
    u.to_string()
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
    guard: crate::guard::Guard,
    timeout: Duration,
    connect_timeout: Duration,
    max_redirects: usize,
}

impl Sender {
    /// A sender with the given timeouts, connecting only where `guard` permits. Redirects are
    /// followed only when `max_redirects` > 0, and then every hop is checked by the guard again
    /// (names through its resolver, IP literals here).
    pub fn new(
        timeout: Duration,
        connect_timeout: Duration,
        guard: crate::guard::Guard,
        max_redirects: usize,
    ) -> Result<Sender, String> {
        let client = Self::client(timeout, connect_timeout, &guard, None)?;
        Ok(Sender {
            client,
            guard,
            timeout,
            connect_timeout,
            max_redirects,
        })
    }

    /// The same sender, trusting the notification's CA and presenting its client certificate.
    pub fn with_tls(&self, tls: &crate::methods::TlsOptions) -> Result<Sender, String> {
        let client = Self::client(self.timeout, self.connect_timeout, &self.guard, Some(tls))?;
        Ok(Sender { client, ..self.clone() })
    }

    fn client(
        timeout: Duration,
        connect_timeout: Duration,
        guard: &crate::guard::Guard,
        tls: Option<&crate::methods::TlsOptions>,
    ) -> Result<reqwest::Client, String> {
        // Redirects are followed by `post_json` itself, hop by hop (see the module header).
        let mut builder = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(guard.clone()))
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = tls {
            if let Some(ca) = &tls.ca_pem {
                for cert in reqwest::Certificate::from_pem_bundle(ca.as_bytes()).map_err(|e| format!("ca_pem: {e}"))? {
                    builder = builder.add_root_certificate(cert);
                }
            }
            if let Some(identity) = &tls.identity_pem {
                builder = builder.identity(
                    reqwest::Identity::from_pem(identity.as_bytes()).map_err(|e| format!("client certificate: {e}"))?,
                );
            }
        }
        builder.build().map_err(|e| format!("building the HTTP client: {e}"))
    }

    /// GETs `url` through the same guard (no redirects), for at most `timeout` and `max_bytes`:
    /// a build's context archive. Errors name the URL and what went wrong.
    pub async fn download(&self, url: &str, max_bytes: u64, timeout: Duration) -> Result<Vec<u8>, String> {
        if self.guard.literal_refused(url) {
            return Err(format!("{url} is not a public address"));
        }
        let mut resp = self
            .client
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("downloading {url}: {e}"))?;
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("downloading {url}: {e}"))? {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > max_bytes {
                return Err(format!("{url} is larger than builds.max_context_bytes ({max_bytes})"));
            }
        }
        Ok(out)
    }

    /// POSTs a JSON body (already serialized), signed when the meta carries secrets. `what` names
    /// the method in messages (never the URL: it may hold a token); `log_url` is the URL as the
    /// log may show it.
    pub async fn post_json(
        &self,
        url: &url::Url,
        log_url: &str,
        body: String,
        meta: &DeliveryMeta<'_>,
        what: &str,
    ) -> (Outcome, Exchange) {
        use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT as UA};
        let started = std::time::Instant::now();
        let mut exchange = Exchange {
            url: log_url.to_owned(),
            ..Exchange::default()
        };
        let mut logged = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("user-agent".to_owned(), USER_AGENT.to_owned()),
            ("x-berth-event".to_owned(), meta.event.to_owned()),
            ("x-berth-delivery".to_owned(), meta.delivery_id.to_owned()),
            ("webhook-id".to_owned(), meta.delivery_id.to_owned()),
            ("webhook-timestamp".to_owned(), meta.timestamp.to_string()),
        ];
        if !meta.secrets.is_empty() {
            match crate::sign::signature_header(meta.secrets, meta.delivery_id, meta.timestamp, body.as_bytes()) {
                Ok(sig) => logged.push(("webhook-signature".to_owned(), sig)),
                Err(e) => {
                    exchange.request_headers = logged;
                    exchange.request_body = body;
                    exchange.error = Some(e.clone());
                    return (Outcome::Permanent { reason: e, gone: false }, exchange);
                }
            }
        }
        // What goes on the wire: the same headers, the notification's own ones unmasked.
        let mut headers = HeaderMap::with_capacity(logged.len() + meta.custom_headers.len());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(UA, HeaderValue::from_static(USER_AGENT));
        let dynamic = logged[2..].iter().chain(meta.custom_headers);
        let mut invalid = None;
        for (k, v) in dynamic {
            match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                (Ok(k), Ok(v)) => {
                    headers.insert(k, v);
                }
                _ => invalid = Some(k.clone()),
            }
        }
        logged.extend(meta.custom_headers.iter().map(|(k, _)| (k.clone(), "***".to_owned())));
        exchange.request_headers = logged;
        if body.len() > REQUEST_BODY_CAP {
            let reason = format!(
                "{what} body of {} bytes exceeds the {REQUEST_BODY_CAP}-byte cap",
                body.len()
            );
            exchange.error = Some(reason.clone());
            let mut cut = RESPONSE_BODY_CAP;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            exchange.request_body = body[..cut].to_owned();
            return (Outcome::Permanent { reason, gone: false }, exchange);
        }
        exchange.request_body = body.clone();
        if let Some(name) = invalid {
            let reason = format!("{what} header '{name}' cannot be sent");
            exchange.error = Some(reason.clone());
            return (Outcome::Permanent { reason, gone: false }, exchange);
        }
        let refused = |exchange: &mut Exchange| {
            let reason = format!("{what} refused: {}", crate::guard::REFUSED);
            exchange.error = Some(reason.clone());
            Outcome::Permanent { reason, gone: false }
        };
        let body = bytes::Bytes::from(body);
        let mut target = url.clone();
        let mut hops = 0;
        let outcome = loop {
            if self.guard.url_refused(&target) {
                break refused(&mut exchange);
            }
            let req = self.client.post(target.clone()).headers(headers.clone());
            let resp = req.body(body.clone()).send().await;
            if let Ok(r) = &resp
                && matches!(r.status().as_u16(), 307 | 308)
                && hops < self.max_redirects
                && let Some(next) = r
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| target.join(l).ok())
                    .filter(|n| matches!(n.scheme(), "http" | "https"))
            {
                if next.origin() != target.origin() {
                    // Another origin gets the delivery, not the receiver's credentials or our
                    // signature for it.
                    for (name, _) in meta.custom_headers {
                        headers.remove(name.as_str());
                    }
                    headers.remove("webhook-signature");
                }
                hops += 1;
                target = next;
                continue;
            }
            break match resp {
                Ok(mut resp) => {
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry_after(v, std::time::SystemTime::now()));
                    let status = resp.status().as_u16();
                    exchange.status = Some(status);
                    exchange.response_headers = resp
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                        .collect();
                    exchange.response_body = Some(read_capped(&mut resp).await);
                    classify(status, retry_after, what)
                }
                Err(e) if without_url(&e).contains(crate::guard::REFUSED) => refused(&mut exchange),
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "could not connect"
                    } else {
                        "failed"
                    };
                    let reason = format!("{what} {kind}: {}", without_url(&e));
                    exchange.error = Some(reason.clone());
                    Outcome::Retryable {
                        reason,
                        retry_after: None,
                    }
                }
            };
        };
        exchange.duration = started.elapsed();
        (outcome, exchange)
    }
}

/// How long a `Retry-After` value asks to wait, as of `now`: delay-seconds (`120`) or an HTTP
/// date (`Wed, 21 Oct 2026 07:28:00 GMT`, and the two obsolete formats HTTP still requires
/// receivers to read). A date in the past means no wait; anything else unreadable is ignored.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("Berth/", env!("CARGO_PKG_VERSION"), " (notifications)");

/// Reads a response body up to [`RESPONSE_BODY_CAP`] bytes (a receiver cannot make us buffer more).
async fn read_capped(resp: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = RESPONSE_BODY_CAP.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= RESPONSE_BODY_CAP {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
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
    fn urls_in_the_log_hide_their_secrets() {
        assert_eq!(
            mask_url("https://hooks.slack.com/services/T0/B0/sekrit", true),
            "https://hooks.slack.com/services/T0/B0/***"
        );
        assert_eq!(
            mask_url("https://u:pw@h.example/hook?token=abc&x=1", false),
            "https://u@h.example/hook?token=***&x=***"
        );
        assert_eq!(mask_url("http://h.example/plain", false), "http://h.example/plain");
        assert_eq!(mask_url("not a url", false), "(invalid URL)");
    }

    #[test]
    fn retry_after_as_seconds_or_a_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after("Wed Oct 21 07:28:30 2015", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Tue, 20 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO),
            "past dates wait for nothing"
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

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
