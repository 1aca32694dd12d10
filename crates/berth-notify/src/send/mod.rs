//! Sending: what a delivery attempt produced (`Outcome`, `Exchange`) and how an answer is
//! classified; the HTTP client every method uses is in `client`, each chat method's body in
//! `methods`.
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

mod client;

pub use client::Sender;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
