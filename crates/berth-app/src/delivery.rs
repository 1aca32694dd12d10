//! The notification delivery worker: claims jobs from the durable queue (leased, so a crashed
//! worker's jobs come back), drops jobs of deleted or disabled notifications and occurrences the
//! filter rejects, performs the method, and records the outcome:
//! - delivered: the job is done and the notification's failure count resets;
//! - retryable: retried on the schedule (default 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each
//!   ±20 %), honouring `Retry-After` clamped to [scheduled, 2 × scheduled]; when retries run out
//!   the job is kept as dead and counts as one failure;
//! - permanent: the job is kept as dead and counts as one failure; 410 Gone disables at once.
//!
//! At `failure_threshold` consecutive failed deliveries the notification is disabled, and the
//! reason (with the last error) is stored for the API and UI to show.

use std::time::Duration;

use berth_notify::send::{self, DeliveryMeta, Outcome, Sender, slack_body};
use berth_notify::{EventKind, JsonTemplate, MethodKind};
use berth_store::notifications;
use berth_store::queue::{self, Claimed};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::Value;

use crate::events::NOTIFICATION_QUEUE;
use crate::{App, Result};

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Request timeout.
    pub send_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Consecutive failed deliveries that disable a notification.
    pub failure_threshold: u32,
    /// Delay before each retry.
    pub schedule: Vec<Duration>,
    /// How long a claimed job is leased.
    pub lease: Duration,
    /// Base URL of the Flowdock API.
    pub flowdock_api_base: String,
    /// Base URL of the HipChat API.
    pub hipchat_api_base: String,
    /// Sender address of outgoing messages (Flowdock's `from_address`).
    pub from_address: String,
    /// Allow destinations that are not public addresses.
    pub allow_private: bool,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let m = |x: u64| Duration::from_secs(60 * x);
        DeliverySettings {
            send_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            failure_threshold: 3,
            schedule: vec![Duration::from_secs(5), m(5), m(30), m(120), m(300), m(600), m(600)],
            lease: Duration::from_secs(60),
            flowdock_api_base: "https://api.flowdock.com".into(),
            hipchat_api_base: "https://api.hipchat.com".into(),
            from_address: "berth@localhost".into(),
            allow_private: false,
        }
    }
}

/// When to retry after attempt `attempt` (1-based): the schedule with ±20 % jitter, and a
/// receiver's `Retry-After` clamped between the scheduled delay and twice it.
pub fn retry_delay(schedule: &[Duration], attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let idx = usize::try_from(attempt.saturating_sub(1))
        .unwrap_or(usize::MAX)
        .min(schedule.len().saturating_sub(1));
    let base = schedule.get(idx).copied().unwrap_or(Duration::from_secs(600));
    match retry_after {
        Some(ra) => ra.clamp(base, base * 2),
        None => base.mul_f64(1.0 + jitter.clamp(-0.2, 0.2)),
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl App {
    /// Claims and performs up to `limit` due deliveries. Returns how many jobs were handled.
    pub async fn deliver_pending(&self, sender: &Sender, worker: &str, limit: i64) -> Result<usize> {
        let lease = chrono_of(self.settings.delivery.lease);
        let claimed = {
            let mut tx = self.store.begin().await?;
            let c = queue::claim(&mut tx, NOTIFICATION_QUEUE, Utc::now(), lease, limit, worker).await?;
            tx.commit().await?;
            c
        };
        let n = claimed.len();
        for job in claimed {
            if let Err(e) = self.deliver_one(sender, &job).await {
                // The lease expires and the job comes back; nothing is lost.
                tracing::warn!(job = job.id, error = %e, "delivery bookkeeping failed; the job will be retried");
            }
        }
        Ok(n)
    }

    async fn deliver_one(&self, sender: &Sender, job: &Claimed) -> Result<()> {
        let body = &job.body.0;
        let uuid = body["notification_uuid"].as_str().unwrap_or_default();
        let notification = {
            let mut conn = self.store.conn().await?;
            notifications::by_uuid_any(&mut conn, uuid).await?
        };
        let Some(n) = notification.filter(|n| n.enabled) else {
            return self.finish(job, None).await;
        };
        let (Ok(event), Ok(method)) = (EventKind::parse(&n.event), MethodKind::parse(&n.method)) else {
            return self.bury(job, &n, "unknown event or method", false).await;
        };
        let data = &body["event_data"];
        if !event.should_perform(data, &n.event_config.0) {
            return self.finish(job, None).await;
        }
        let event_id = body["event_id"].as_str().unwrap_or_default();
        let delivery_id = format!("{event_id}.{uuid}");
        let meta = DeliveryMeta {
            event: event.name(),
            delivery_id: &delivery_id,
        };
        let performer = body["performer_data"]["entity_name"].as_str();
        let outcome = match method {
            MethodKind::QuayNotification => return self.deliver_in_app(job, &n, event.name(), data).await,
            MethodKind::Email => {
                let Ok(mailer) = self.mailer() else {
                    // Configuration, not the receiver, is at fault: keep the job until mail is set up.
                    let at = Utc::now() + chrono::Duration::hours(1);
                    let note = "e-mail is not configured on this server (mail.host); the job waits";
                    let mut tx = self.store.begin().await?;
                    queue::defer(&mut tx, job.id, &job.state_id, at, note).await?;
                    tx.commit().await?;
                    return Ok(());
                };
                self.send_email(mailer, &n, event, data, performer, &meta).await?
            }
            _ => match self.http_request(method, &n.config.0, event, data, performer) {
                Ok((url, body, what)) => sender.post_json(&url, &body, &meta, what).await,
                Err(e) => Outcome::Permanent { reason: e, gone: false },
            },
        };
        match outcome {
            Outcome::Delivered { .. } => {
                metrics::counter!("berth_deliveries_total", "method" => method.name(), "outcome" => "delivered")
                    .increment(1);
                self.finish(job, Some(n.id)).await
            }
            Outcome::Retryable { reason, retry_after } if job.retries_remaining > 0 => {
                metrics::counter!("berth_deliveries_total", "method" => method.name(), "outcome" => "retry")
                    .increment(1);
                let jitter = rand::rng().random_range(-0.2..=0.2);
                let attempt = u32::try_from(job.attempt).unwrap_or(1);
                let at: DateTime<Utc> = Utc::now()
                    + chrono_of(retry_delay(
                        &self.settings.delivery.schedule,
                        attempt,
                        retry_after,
                        jitter,
                    ));
                let mut tx = self.store.begin().await?;
                queue::retry_at(&mut tx, job.id, &job.state_id, at, &reason).await?;
                tx.commit().await?;
                Ok(())
            }
            Outcome::Retryable { reason, .. } => {
                self.bury(&job.clone(), &n, &format!("{reason} (retries exhausted)"), false)
                    .await
            }
            Outcome::Permanent { reason, gone } => self.bury(job, &n, &reason, gone).await,
        }
    }

    /// Where an HTTP-based method POSTs, what, and the method's label for messages (never the URL,
    /// which may carry a token).
    fn http_request(
        &self,
        method: MethodKind,
        config: &Value,
        event: EventKind,
        data: &Value,
        performer: Option<&str>,
    ) -> std::result::Result<(String, Value, &'static str), String> {
        let d = &self.settings.delivery;
        let url = || config["url"].as_str().unwrap_or_default().to_owned();
        Ok(match method {
            MethodKind::Webhook => (url(), webhook_body(config, data)?, "webhook"),
            MethodKind::Slack => (url(), slack_body(event, data, performer), "Slack"),
            MethodKind::Hipchat => {
                let room = match &config["room_id"] {
                    Value::String(r) => r.clone(),
                    other => other.to_string(),
                };
                let token = config["notification_token"].as_str().unwrap_or_default();
                (
                    send::hipchat_url(&d.hipchat_api_base, &room, token)?,
                    send::hipchat_body(event, data, performer),
                    "hipchat",
                )
            }
            MethodKind::Flowdock => {
                let token = config["flow_api_token"].as_str().unwrap_or_default();
                let body = send::flowdock_body(event, data, performer, &d.from_address);
                (send::flowdock_url(&d.flowdock_api_base, token)?, body, "flowdock")
            }
            MethodKind::QuayNotification | MethodKind::Email => {
                return Err(format!("{} is not sent over HTTP", method.name()));
            }
        })
    }

    /// Mails one occurrence to the notification's address, which must still be authorized.
    async fn send_email(
        &self,
        mailer: &berth_notify::mail::Mailer,
        n: &berth_store::notifications::NotificationRow,
        event: EventKind,
        data: &Value,
        performer: Option<&str>,
        meta: &DeliveryMeta<'_>,
    ) -> Result<Outcome> {
        let to = n.config.0["email"].as_str().unwrap_or_default();
        let authorized = {
            let mut conn = self.store.conn().await?;
            self.email_is_authorized(&mut conn, n.repository_id, to).await?
        };
        if !authorized {
            return Ok(Outcome::Permanent {
                reason: "the e-mail address is no longer authorized for this repository".into(),
                gone: false,
            });
        }
        let repository = data["repository"].as_str().unwrap_or_default();
        let manage = format!("{}/repository/{repository}?tab=settings", self.settings.base_url());
        let mail = berth_notify::mail::notification_mail(event, data, performer, repository, &manage);
        Ok(mailer.send(to, &mail, Some(meta)).await)
    }

    /// Completes a job; with a notification id, records a success for it.
    async fn finish(&self, job: &Claimed, success_for: Option<i64>) -> Result<()> {
        let mut tx = self.store.begin().await?;
        queue::complete(&mut tx, job.id, &job.state_id).await?;
        if let Some(id) = success_for {
            notifications::record_outcome(&mut tx, id, true, 0, "").await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Keeps a job as dead and counts a failure for its notification (disabling it at the threshold,
    /// or at once when the endpoint is gone).
    async fn bury(
        &self,
        job: &Claimed,
        n: &berth_store::notifications::NotificationRow,
        reason: &str,
        gone: bool,
    ) -> Result<()> {
        metrics::counter!("berth_deliveries_total", "method" => n.method.clone(), "outcome" => "failed").increment(1);
        let threshold = if gone {
            1
        } else {
            i32::try_from(self.settings.delivery.failure_threshold).unwrap_or(i32::MAX)
        };
        let count = n.number_of_failures + 1;
        let why = if gone {
            format!("disabled: {reason}")
        } else {
            format!("disabled after {count} consecutive failed deliveries; last error: {reason}")
        };
        let mut tx = self.store.begin().await?;
        queue::bury(&mut tx, job.id, &job.state_id, reason).await?;
        notifications::record_outcome(&mut tx, n.id, false, threshold, &why).await?;
        tx.commit().await?;
        tracing::warn!(notification = %n.uuid, method = %n.method, error = %reason, "delivery failed");
        Ok(())
    }
}

/// The webhook body: the event data, or the notification's template rendered against it.
fn webhook_body(config: &Value, data: &Value) -> std::result::Result<Value, String> {
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

    #[test]
    fn schedule_jitter_and_retry_after() {
        let s = DeliverySettings::default().schedule;
        assert_eq!(retry_delay(&s, 1, None, 0.0), Duration::from_secs(5));
        assert_eq!(retry_delay(&s, 2, None, 0.2), Duration::from_secs(360));
        assert_eq!(retry_delay(&s, 7, None, -0.2), Duration::from_secs(480 * 60));
        assert_eq!(
            retry_delay(&s, 99, None, 0.0),
            Duration::from_secs(600 * 60),
            "the last step repeats"
        );
        assert_eq!(
            retry_delay(&s, 1, None, 5.0),
            Duration::from_secs(6),
            "jitter is clamped to ±20 %"
        );
        assert_eq!(
            retry_delay(&s, 1, Some(Duration::from_secs(1)), 0.0),
            Duration::from_secs(5)
        );
        assert_eq!(
            retry_delay(&s, 1, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_delay(&s, 1, Some(Duration::from_secs(3600)), 0.0),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn webhook_bodies() {
        let data = serde_json::json!({"repository": "acme/web", "updated_tags": ["v1"]});
        assert_eq!(webhook_body(&serde_json::json!({"url": "x"}), &data).unwrap(), data);
        let t = serde_json::json!({"template": "{\"text\": \"pushed ${updated_tags[*]} to ${repository}\"}"});
        assert_eq!(
            webhook_body(&t, &data).unwrap(),
            serde_json::json!({"text": "pushed v1 to acme/web"})
        );
    }
}
