//! E-mail: SMTP settings, the mailer (lettre over tokio and rustls), and the two mails Berth
//! sends: event notifications and repository e-mail authorizations.
//!
//! Every mail has a plain-text part and an HTML part built from the same structured message
//! ([`crate::message`]), so every interpolated value is escaped in the HTML. Notification mails
//! carry the summary as subject (as in Quay), a footer naming the repository with a link to manage
//! its notifications (spec §8 item 30), and `X-Berth-Event`/`X-Berth-Delivery` headers so that
//! mail filters can route and deduplicate them.
//!
//! SMTP outcomes map onto the delivery engine's classification: permanent SMTP replies (5xx) are
//! permanent failures; transient replies (4xx), timeouts and connection or TLS errors are retryable.

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use crate::events::EventKind;
use crate::message::{self, Segment};
use crate::send::{DeliveryMeta, Outcome};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTls {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// Plain connection upgraded with STARTTLS, which is required.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
}

impl MailTls {
    /// Parses `none`, `starttls` or `implicit`.
    pub fn parse(s: &str) -> Result<MailTls, String> {
        match s {
            "none" => Ok(MailTls::None),
            "starttls" => Ok(MailTls::Starttls),
            "implicit" => Ok(MailTls::Implicit),
            other => Err(format!("'{other}' must be none, starttls or implicit")),
        }
    }
}

/// Where and how mail is sent.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// SMTP server host name.
    pub host: String,
    /// SMTP server port.
    pub port: u16,
    /// Connection security.
    pub tls: MailTls,
    /// User name for SMTP AUTH, if the server needs it.
    pub username: Option<String>,
    /// Password for SMTP AUTH.
    pub password: Option<String>,
    /// The sender (`From:`), an address or `Name <address>`.
    pub from: String,
    /// Timeout of one SMTP exchange.
    pub timeout: Duration,
}

/// A rendered mail: subject and both bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The subject line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part (a whole document).
    pub html: String,
}

/// Sends mail through one SMTP server. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from.to_string()).finish()
    }
}

const EVENT_HEADER: HeaderName = HeaderName::new_from_ascii_str("X-Berth-Event");
const DELIVERY_HEADER: HeaderName = HeaderName::new_from_ascii_str("X-Berth-Delivery");

impl Mailer {
    /// A mailer for the settings; fails (naming the problem) on an invalid sender or TLS setup.
    pub fn new(s: &MailSettings) -> Result<Mailer, String> {
        let from = sender(&s.from)?;
        let tls = |host: &str| {
            TlsParameters::new(host.to_owned()).map_err(|e| format!("mail.tls: cannot set up TLS for {host}: {e}"))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .timeout(Some(s.timeout));
        builder = match s.tls {
            MailTls::None => builder.tls(Tls::None),
            MailTls::Starttls => builder.tls(Tls::Required(tls(&s.host)?)),
            MailTls::Implicit => builder.tls(Tls::Wrapper(tls(&s.host)?)),
        };
        if let Some(user) = &s.username {
            builder = builder.credentials(Credentials::new(user.clone(), s.password.clone().unwrap_or_default()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    /// Sends `mail` to `to`, with the delivery headers when given.
    pub async fn send(&self, to: &str, mail: &Mail, meta: Option<&DeliveryMeta<'_>>) -> Outcome {
        let to: Mailbox = match to.parse() {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("invalid recipient address: {e}"),
                    gone: false,
                };
            }
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone());
        if let Some(meta) = meta {
            builder = builder
                .raw_header(HeaderValue::new(EVENT_HEADER, meta.event.to_owned()))
                .raw_header(HeaderValue::new(DELIVERY_HEADER, meta.delivery_id.to_owned()));
        }
        let message = match builder.multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone())) {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("cannot build the mail: {e}"),
                    gone: false,
                };
            }
        };
        match self.transport.send(message).await {
            Ok(response) => Outcome::Delivered {
                status: response.code().into(),
            },
            Err(e) if e.is_permanent() => Outcome::Permanent {
                reason: format!("SMTP server refused the mail: {e}"),
                gone: false,
            },
            Err(e) => Outcome::Retryable {
                reason: format!("SMTP error: {e}"),
                retry_after: None,
            },
        }
    }
}

/// Parses the configured sender, naming the key when it is not an address.
pub fn sender(from: &str) -> Result<Mailbox, String> {
    from.parse()
        .map_err(|e| format!("mail.from '{from}' is not a valid address: {e}"))
}

/// The notification mail of an event occurrence. `manage_url` is the repository's notification
/// settings page, named in the footer.
pub fn notification_mail(
    kind: EventKind,
    data: &Value,
    performer: Option<&str>,
    repository: &str,
    manage_url: &str,
) -> Mail {
    let segments = message::segments(kind, data, performer);
    let footer = vec![
        Segment::Text(format!(
            "You receive this mail because a notification of {repository} sends it to this address. "
        )),
        Segment::Link {
            url: manage_url.to_owned(),
            text: "Manage the repository's notifications".into(),
        },
        Segment::Text(".".into()),
    ];
    Mail {
        subject: kind.summary(data),
        text: format!(
            "{}\n\n-- \n{}\n",
            message::to_text(&segments),
            message::to_text(&footer)
        ),
        html: html_document(&message::to_html(&segments), &message::to_html(&footer)),
    }
}

/// The mail telling the admins of a repository or namespace (`holder`: `repository acme/web`,
/// `namespace acme`) that one of its notifications was disabled.
pub fn notification_disabled_mail(holder: &str, notification: &str, why: &str, manage_url: &str) -> Mail {
    let body = vec![
        Segment::Text("The notification ".into()),
        Segment::Bold(notification.to_owned()),
        Segment::Text(format!(" of {holder} was disabled: {why}.")),
        Segment::Break,
        Segment::Text("Events that happen while it is disabled are kept as skipped deliveries. ".into()),
        Segment::Link {
            url: manage_url.to_owned(),
            text: "Re-enable it and recover them".into(),
        },
        Segment::Text(" once the receiver works again.".into()),
    ];
    Mail {
        subject: format!("[Berth] A notification of {holder} was disabled"),
        text: format!("{}\n", message::to_text(&body)),
        html: html_document(&message::to_html(&body), ""),
    }
}

/// The mail asking the owner of an address to authorize it for a repository's notifications.
pub fn authorization_mail(registry_title: &str, repository: &str, link: &str, expires: &str) -> Mail {
    let body = vec![
        Segment::Text("Someone asked that notifications of the repository ".into()),
        Segment::Bold(repository.to_owned()),
        Segment::Text(" be sent to this address. To allow it, open this link:".into()),
        Segment::Break,
        Segment::Link {
            url: link.to_owned(),
            text: link.to_owned(),
        },
        Segment::Break,
        Segment::Text(format!(
            "The link works until {expires}. If you did not expect this mail, ignore it: nothing will be sent."
        )),
    ];
    Mail {
        subject: format!("[{registry_title}] Please verify your e-mail address for repository {repository}"),
        text: format!("{}\n", message::to_text(&body)),
        html: html_document(&message::to_html(&body), ""),
    }
}

fn html_document(body: &str, footer: &str) -> String {
    let footer = if footer.is_empty() {
        String::new()
    } else {
        format!("<hr><p style=\"color:#666;font-size:12px\">{footer}</p>")
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Berth</title></head>\
         <body style=\"font-family:sans-serif\"><p>{body}</p>{footer}</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tls_modes_parse_with_a_clear_error() {
        assert_eq!(MailTls::parse("starttls"), Ok(MailTls::Starttls));
        assert_eq!(MailTls::parse("implicit"), Ok(MailTls::Implicit));
        assert_eq!(
            MailTls::parse("ssl").unwrap_err(),
            "'ssl' must be none, starttls or implicit"
        );
    }

    #[test]
    fn notification_mails_escape_and_carry_both_parts() {
        let data = json!({
            "repository": "acme/web",
            "namespace": "acme",
            "name": "web",
            "docker_url": "h/acme/web",
            "homepage": "http://h/repository/acme/web",
            "updated_tags": ["<b>v1</b>"],
        });
        let m = notification_mail(
            EventKind::RepoPush,
            &data,
            None,
            "acme/web",
            "http://h/repository/acme/web?tab=settings",
        );
        assert_eq!(m.subject, "Repository acme/web updated");
        assert!(m.html.contains("&lt;b&gt;v1&lt;/b&gt;"), "{}", m.html);
        assert!(!m.html.contains("<b>v1</b>"));
        assert!(m.text.contains("<b>v1</b>"), "text is not HTML: {}", m.text);
        assert!(m.html.contains("href=\"http://h/repository/acme/web?tab=settings\""));
        assert!(
            m.text.contains("http://h/repository/acme/web?tab=settings"),
            "{}",
            m.text
        );
    }

    #[tokio::test]
    async fn sender_must_be_an_address() {
        let s = MailSettings {
            host: "127.0.0.1".into(),
            port: 25,
            tls: MailTls::None,
            username: None,
            password: None,
            from: "not an address".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(Mailer::new(&s).unwrap_err().contains("mail.from 'not an address'"));
        assert!(
            Mailer::new(&MailSettings {
                from: "Berth <berth@example.com>".into(),
                ..s
            })
            .is_ok()
        );
    }
}
