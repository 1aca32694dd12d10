//! Tag expiration (Quay's): setting a tag's expiry (the API, or the `quay.expires-after` label of
//! a pushed image), and the expiry pass, a periodic job that one process at a time runs: it
//! removes the tags whose time has come, each with its audit entry and `tag_deleted` (reason
//! `expired`), and tells each `repo_image_expiry` notification of the tags of its repository (or
//! namespace) that expire within its `days`, once per tag and expiry time, the notice committed
//! with the delivery (Quay recorded it before delivering, and lost it on a failure).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_core::RepoRole;
use berth_notify::EventKind;
use berth_store::notifications::{self, NotificationRow};
use berth_store::registry as reg;
use berth_store::{expiry, repos};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::events::{DeliveryPayload, Occurrence, queue_name, repo_context};
use crate::{App, AppError, Ctx, Result};

/// Most expired tags one pass removes (the next pass takes the rest).
const REMOVALS_PER_PASS: i64 = 1000;
/// The label that sets a pushed image's expiry, as Quay reads it.
pub const EXPIRES_AFTER_LABEL: &str = "quay.expires-after";

/// What one expiry pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Whether this process ran it (another held the pass when `false`).
    pub ran: bool,
    /// Expired tags removed.
    pub removed: usize,
    /// `repo_image_expiry` deliveries queued (one per notification and repository).
    pub announced: usize,
}

/// A label's duration, Quay's way: a whole number and a unit, `s`, `m`, `h`, `d` or `w`
/// (`12h`, `3d`, `2w`); anything else is `None`.
pub fn parse_expires_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: i64 = text[..text.len() - unit.len_utf8()].parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    Duration::try_seconds(n.checked_mul(seconds)?)
}

/// The expiry an image's config sets through its `quay.expires-after` label, counted from `now`.
pub(crate) fn expiry_of_config(config: &Value, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let label = config["config"]["Labels"][EXPIRES_AFTER_LABEL].as_str()?;
    match parse_expires_after(label) {
        Some(after) => now.checked_add_signed(after),
        None => {
            tracing::warn!(label = %label, "ignoring a {EXPIRES_AFTER_LABEL} label that is not a duration such as 12h, 3d or 2w");
            None
        }
    }
}

impl App {
    /// Sets (`Some` Unix time, in the future) or clears (`None`) a tag's expiry (repository
    /// write), as Quay's `PUT …/tag/{tag}` does with `expiration`.
    pub async fn set_tag_expiration(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        tag: &str,
        expiration: Option<i64>,
    ) -> Result<()> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Write).await?;
        crate::registry::writable(&repo)?;
        let now = Utc::now();
        let at = match expiration {
            None => None,
            Some(ts) => {
                let at = DateTime::from_timestamp(ts, 0).ok_or_else(|| {
                    AppError::invalid_field("expiration", format!("invalid expiration: {ts} is not a Unix time"))
                })?;
                if at <= now {
                    return Err(AppError::invalid_field(
                        "expiration",
                        "Expiration must be in the future".to_owned(),
                    ));
                }
                Some(at)
            }
        };
        let mut tx = self.store.begin().await?;
        if !reg::set_tag_expiry(&mut tx, repo.id, tag, at).await? {
            return Err(AppError::NotFound(format!("No such tag: {tag}")));
        }
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "tag": tag,
                          "expiration_date": at.map(|t| t.to_rfc3339())});
        crate::audit::record(
            &mut tx,
            ctx,
            "change_tag_expiration",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One expiry pass as of `now`, unless another process is running one.
    pub async fn expire_tags(&self, now: DateTime<Utc>) -> Result<ExpiryReport> {
        let pass = async {
            let removed = self.remove_expired(now).await?;
            let announced = self.announce_expiring(now).await?;
            Ok(ExpiryReport {
                ran: true,
                removed,
                announced,
            })
        };
        let Some(report) = self.run_alone(crate::jobs::PeriodicJob::Expiry, pass).await? else {
            return Ok(ExpiryReport::default());
        };
        metrics::counter!("berth_expired_tags_total").increment(report.removed as u64);
        Ok(report)
    }

    /// Removes the tags that expired by `now`, each in its own transaction with its audit entry
    /// and `tag_deleted`.
    async fn remove_expired(&self, now: DateTime<Utc>) -> Result<usize> {
        let expired = reg::expired_tags(&mut self.store.conn().await?, now, REMOVALS_PER_PASS).await?;
        let mut removed = 0;
        for t in expired {
            let mut tx = self.store.begin().await?;
            let Some(repo) = repos::by_id(&mut tx, t.repository_id).await? else {
                continue;
            };
            let Some(digest) = reg::delete_expired_tag(&mut tx, repo.id, &t.name, now).await? else {
                continue;
            };
            let meta = json!({"repo": repo.name, "namespace": repo.namespace, "tag": t.name,
                              "manifest_digest": digest, "reason": "expired"});
            crate::audit::record(
                &mut tx,
                &Ctx::system(),
                "delete_tag",
                Some(repo.namespace_id),
                Some(repo.id),
                meta,
            )
            .await?;
            self.raise_tag_deleted(&mut tx, &repo, &t.name, &digest, "expired", None)
                .await?;
            tx.commit().await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Queues `repo_image_expiry` for each notification and repository with tags expiring within
    /// the notification's `days` that it has not heard of at that expiry time.
    async fn announce_expiring(&self, now: DateTime<Utc>) -> Result<usize> {
        let event = EventKind::ImageExpiry.name();
        let listeners = notifications::of_event(&mut self.store.conn().await?, event).await?;
        let mut announced = 0;
        for n in listeners {
            let Some(days) = berth_notify::events::expiry_days(&n.event_config.0) else {
                continue;
            };
            // At most a century ahead: every window still fits a date.
            let until = now + Duration::days(i64::try_from(days.min(36_500)).unwrap_or(36_500));
            let tags = expiry::unannounced(&mut self.store.conn().await?, n.id, n.scope, now, until).await?;
            let mut by_repo: BTreeMap<i64, Vec<expiry::ExpiringTag>> = BTreeMap::new();
            for t in tags {
                by_repo.entry(t.repository_id.0).or_default().push(t);
            }
            let n = Arc::new(n);
            for tags in by_repo.into_values() {
                if self.announce_to(&n, &tags, days).await? {
                    announced += 1;
                }
            }
        }
        Ok(announced)
    }

    /// Queues one `repo_image_expiry` delivery of `tags` (one repository's) to `n` and records the
    /// notices, in one transaction; `false` when the repository is gone.
    async fn announce_to(&self, n: &Arc<NotificationRow>, tags: &[expiry::ExpiringTag], days: u64) -> Result<bool> {
        let Some(first) = tags.first() else {
            return Ok(false);
        };
        let mut tx = self.store.begin().await?;
        let Some(repo) = repos::by_id(&mut tx, first.repository_id).await? else {
            return Ok(false);
        };
        let names: Vec<&str> = tags.iter().map(|t| t.tag.as_str()).collect();
        let data = berth_notify::events::image_expiry(&repo_context(&self.settings, &repo), &names, days);
        let occurrence = Occurrence {
            name: queue_name(&repo, &n.event),
            notifications: vec![n.clone()],
            event: n.event.clone(),
            payload: DeliveryPayload::new(&data, None, false)?,
        };
        self.enqueue_deliveries(&mut tx, std::slice::from_ref(&occurrence))
            .await?;
        expiry::record_notices(&mut tx, n.id, tags).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_quay_reads_them() {
        assert_eq!(parse_expires_after("12h"), Some(Duration::hours(12)));
        assert_eq!(parse_expires_after("3d"), Some(Duration::days(3)));
        assert_eq!(parse_expires_after("2w"), Some(Duration::weeks(2)));
        assert_eq!(parse_expires_after(" 90m "), Some(Duration::minutes(90)));
        assert_eq!(parse_expires_after("30s"), Some(Duration::seconds(30)));
        for bad in [
            "",
            "h",
            "3",
            "3x",
            "-3d",
            "0d",
            "1.5d",
            "3 d",
            "99999999999999999w",
            "3dé",
        ] {
            assert_eq!(parse_expires_after(bad), None, "{bad}");
        }
        let now = Utc::now();
        let config = json!({"config": {"Labels": {"quay.expires-after": "1d"}}});
        assert_eq!(expiry_of_config(&config, now), Some(now + Duration::days(1)));
        assert_eq!(
            expiry_of_config(&json!({"config": {"Labels": {"quay.expires-after": "soon"}}}), now),
            None
        );
        assert_eq!(expiry_of_config(&json!({"config": {}}), now), None);
    }
}
