//! The HTTP client every method uses: SSRF-guarded, signed, redirects hop by hop, capped bodies.

use std::time::Duration;

use crate::outbound::Route;

use super::{DeliveryMeta, Exchange, Outcome, REQUEST_BODY_CAP, RESPONSE_BODY_CAP, USER_AGENT, classify, retry_after};

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
            if let Some(identity) = tls.identity_pem() {
                builder = builder.identity(
                    reqwest::Identity::from_pem(identity.as_bytes()).map_err(|e| format!("client certificate: {e}"))?,
                );
            }
        }
        builder.build().map_err(|e| format!("building the HTTP client: {e}"))
    }

    /// An HTTP client for another registry (a mirror's upstream), through the same guard: names
    /// resolve only to addresses it permits, and each of at most five redirects (blob storage
    /// often answers with one) is judged again; `verify_tls` false accepts any certificate.
    pub fn registry_client(&self, verify_tls: bool, timeout: Duration) -> Result<reqwest::Client, String> {
        let guard = self.guard.clone();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if guard.url_refused(attempt.url()) {
                attempt.error("a redirect to an address the delivery guard refuses")
            } else {
                attempt.follow()
            }
        });
        reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(self.guard.clone()))
            .timeout(timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(policy)
            .danger_accept_invalid_certs(!verify_tls)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))
    }

    /// Whether the guard refuses `url` outright (an IP literal it does not permit).
    pub fn refuses(&self, url: &str) -> bool {
        self.guard.literal_refused(url)
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

    /// POSTs a JSON body (already serialized, of the route's media type) along a route, signed when
    /// the meta carries secrets. The route's `what` names the method in messages (never the URL: it
    /// may hold a token); its `log_url` is the URL as the log may show it.
    pub async fn post_json(&self, route: &Route, body: String, meta: &DeliveryMeta<'_>) -> (Outcome, Exchange) {
        let (url, log_url, what) = (&route.url, route.log_url.as_str(), route.what);
        use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT as UA};
        let started = std::time::Instant::now();
        let mut exchange = Exchange {
            url: log_url.to_owned(),
            ..Exchange::default()
        };
        let mut logged = vec![
            ("content-type".to_owned(), route.content_type.to_owned()),
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
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(route.content_type));
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
