//! Webhook POSTs: a URL, an optional body template in Quay's JSON template language, the
//! notification's own headers and TLS settings, and the body's format. Quay's format (the default)
//! is the event data exactly as stored, or the template's rendering; `cloudevents` wraps the data
//! in a CloudEvents 1.0 event in structured mode (`application/cloudevents+json`).

use serde_json::{Value, json};

use super::{ConfigError, Method, MethodKind, MethodPolicy, check_destination, http_url};
use crate::events::EventKind;
use crate::jsontemplate::JsonTemplate;
use crate::outbound::{About, Destination, Endpoints, EventData, Route, Target};
use crate::send::mask_url;

/// The longest webhook template accepted, in bytes (rendering is linear in its size).
pub const MAX_TEMPLATE: usize = 64 * 1024;

/// Headers Berth sets itself, which a notification's custom headers may not replace.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// A webhook's configuration.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where it POSTs.
    pub url: url::Url,
    /// The body template, as written and parsed.
    pub template: Option<(String, JsonTemplate)>,
    /// Its own headers (`headers`, e.g. `Authorization`), names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Its own CA and client certificate (`tls`).
    pub tls: Option<TlsOptions>,
    /// The body's format (`format`).
    pub format: Format,
}

/// What a webhook's body is (`format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// `quay`: the event data as Quay sends it (or the template's rendering).
    #[default]
    Quay,
    /// `cloudevents`: a CloudEvents 1.0 event whose `data` is the event data (a Berth extension).
    CloudEvents,
}

impl Method for WebhookConfig {
    const KIND: MethodKind = MethodKind::Webhook;
    const FORM_KEYS: &'static [&'static str] = &["url", "template", "format"];

    fn read(config: &Value) -> Result<Self, ConfigError> {
        let url = http_url(config, "Missing webhook URL", "Invalid webhook URL")?;
        let template = |m: String| ConfigError::at("template", m);
        let template = match config.get("template") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.trim().is_empty() => None,
            Some(Value::String(t)) if t.len() > MAX_TEMPLATE => {
                return Err(template(format!(
                    "Invalid webhook template: longer than {MAX_TEMPLATE} bytes"
                )));
            }
            Some(Value::String(t)) => Some((t.clone(), JsonTemplate::parse(t).map_err(|e| template(e.to_string()))?)),
            Some(_) => return Err(template("Invalid webhook template: must be a string of JSON".into())),
        };
        let format = match config.get("format") {
            None | Some(Value::Null) => Format::Quay,
            Some(Value::String(f)) if f == "quay" => Format::Quay,
            Some(Value::String(f)) if f == "cloudevents" => Format::CloudEvents,
            Some(other) => {
                let shown = other.as_str().map_or_else(|| other.to_string(), str::to_owned);
                return Err(ConfigError::at(
                    "format",
                    format!("Invalid webhook format '{shown}': must be quay or cloudevents"),
                ));
            }
        };
        if format == Format::CloudEvents && template.is_some() {
            return Err(ConfigError::at(
                "format",
                "Invalid webhook format: a CloudEvents body carries the event's own data, so it takes no template",
            ));
        }
        Ok(WebhookConfig {
            url,
            template,
            headers: custom_headers(config).map_err(|m| ConfigError::at("headers", m))?,
            tls: tls_options(config).map_err(|m| ConfigError::at("tls", m))?,
            format,
        })
    }

    fn check(&self, policy: &MethodPolicy) -> Result<(), ConfigError> {
        check_destination(&self.url, policy, "Invalid webhook URL")
    }

    fn to_json(&self) -> Value {
        let mut c = json!({"url": self.url.as_str()});
        if let Some((t, _)) = &self.template {
            c["template"] = json!(t);
        }
        if !self.headers.is_empty() {
            c["headers"] = self.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        }
        if let Some(tls) = &self.tls {
            c["tls"] = tls.to_json();
        }
        if self.format == Format::CloudEvents {
            c["format"] = json!("cloudevents");
        }
        c
    }

    fn summary(&self) -> String {
        mask_url(self.url.as_str(), false)
    }

    fn destination(&self, _: &Endpoints) -> Destination {
        Destination::of_url(&self.url)
    }

    fn delivers(&self, _: &Endpoints) -> Result<Target, String> {
        Ok(Target::Http(Box::new(Route {
            headers: self.headers.clone(),
            tls: self.tls.clone(),
            content_type: match self.format {
                Format::Quay => "application/json",
                Format::CloudEvents => "application/cloudevents+json",
            },
            ..Route::new(self.url.clone(), "webhook", false)
        })))
    }

    fn body(&self, event: EventKind, data: EventData<'_>, about: &About<'_>, _: &Endpoints) -> Result<String, String> {
        match (&self.template, self.format) {
            (_, Format::CloudEvents) => Ok(cloudevent(event, &data.parse()?, about).to_string()),
            (None, Format::Quay) => Ok(data.text().to_owned()),
            (Some((_, t)), Format::Quay) => Ok(t
                .render(&data.parse()?)
                .map_err(|e| format!("webhook template: {e}"))?
                .to_string()),
        }
    }
}

/// The CloudEvents 1.0 event (JSON format, structured mode) of one delivery: `id` is the
/// delivery's stable id, `source` the repository's page, `type` `dev.berth.<event>`, `subject` the
/// build id or the (first) tag when the event has one, `time` when the event happened, and `data`
/// the event data as Quay's format sends it.
pub fn cloudevent(event: EventKind, data: &Value, about: &About<'_>) -> Value {
    let source = match data["homepage"].as_str().and_then(|h| h.split("/build/").next()) {
        Some(page) if !page.is_empty() => page.to_owned(),
        _ => format!("/repository/{}", data["repository"].as_str().unwrap_or_default()),
    };
    let subject = ["build_id", "updated_tags", "tags", "tag"]
        .iter()
        .find_map(|k| match &data[*k] {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Array(a) => a
                .iter()
                .find_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            _ => None,
        });
    let mut out = json!({
        "specversion": "1.0",
        "id": about.delivery_id,
        "source": source,
        "type": format!("dev.berth.{}", event.name()),
        "time": about.occurred_at,
        "datacontenttype": "application/json",
        "data": data,
    });
    if let Some(subject) = subject {
        out["subject"] = json!(subject);
    }
    out
}

/// A webhook's optional custom headers (`config.headers`, e.g. `{"Authorization": "Bearer …"}`):
/// an object of valid header names to string values, none of them Berth's own headers.
fn custom_headers(config: &Value) -> Result<Vec<(String, String)>, String> {
    let headers = match config.get("headers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("Invalid webhook headers: must be an object of header names to strings".into()),
    };
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("Invalid webhook headers: '{name}' is not a header name"));
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-berth-") {
            return Err(format!("Invalid webhook headers: '{name}' is set by Berth"));
        }
        let Some(v) = value
            .as_str()
            .filter(|v| reqwest::header::HeaderValue::from_str(v).is_ok())
        else {
            return Err(format!(
                "Invalid webhook headers: the value of '{name}' must be a header-safe string"
            ));
        };
        out.push((lower, v.to_owned()));
    }
    Ok(out)
}

/// A webhook's optional TLS settings (`config.tls`): a CA to trust besides the public roots
/// (`ca_pem`), and a client certificate and key to present (`client_cert_pem`, `client_key_pem`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Extra trusted CA certificate(s), PEM.
    pub ca_pem: Option<String>,
    /// The client certificate chain, PEM.
    pub client_cert_pem: Option<String>,
    /// The client certificate's private key, PEM.
    pub client_key_pem: Option<String>,
}

impl TlsOptions {
    /// The client certificate chain followed by its private key, PEM, when both are set.
    pub fn identity_pem(&self) -> Option<String> {
        match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(cert), Some(key)) => Some(format!("{}\n{}", cert.trim_end(), key.trim_end())),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (k, v) in [
            ("ca_pem", &self.ca_pem),
            ("client_cert_pem", &self.client_cert_pem),
            ("client_key_pem", &self.client_key_pem),
        ] {
            if let Some(v) = v {
                out.insert(k.into(), json!(v));
            }
        }
        Value::Object(out)
    }
}

/// Reads and checks `config.tls`; `None` when absent.
fn tls_options(config: &Value) -> Result<Option<TlsOptions>, String> {
    let tls = match config.get("tls") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => return Err("Invalid webhook TLS settings: must be an object".into()),
    };
    if let Some(k) = tls
        .keys()
        .find(|k| !["ca_pem", "client_cert_pem", "client_key_pem"].contains(&k.as_str()))
    {
        return Err(format!(
            "Invalid webhook TLS settings: unknown key '{k}' (expected ca_pem, client_cert_pem, client_key_pem)"
        ));
    }
    let text = |k: &str| -> Result<Option<String>, String> {
        match tls.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(format!("Invalid webhook TLS settings: {k} must be a PEM string")),
        }
    };
    let options = TlsOptions {
        ca_pem: text("ca_pem")?,
        client_cert_pem: text("client_cert_pem")?,
        client_key_pem: text("client_key_pem")?,
    };
    if let Some(ca) = &options.ca_pem
        && reqwest::Certificate::from_pem_bundle(ca.as_bytes()).map_or(true, |c| c.is_empty())
    {
        return Err("Invalid webhook TLS settings: ca_pem is not a PEM certificate".into());
    }
    match (
        &options.client_cert_pem,
        &options.client_key_pem,
        options.identity_pem(),
    ) {
        (None, None, _) => {}
        (_, _, Some(pem)) => {
            reqwest::Identity::from_pem(pem.as_bytes()).map_err(|_| {
                "Invalid webhook TLS settings: client_cert_pem and client_key_pem are not a PEM certificate and its key"
                    .to_owned()
            })?;
        }
        _ => {
            return Err("Invalid webhook TLS settings: client_cert_pem and client_key_pem go together".into());
        }
    }
    Ok(Some(options))
}
