//! What admins do with deliveries after the fact: read the log (paged, by status), redeliver one
//! delivery now, recover every failed or skipped delivery since a time (after a reset), and
//! reveal or rotate the notification's signing secret. Admins of what holds the notification only
//! (its repository, or its namespace); everything is scoped to the notification in the path,
//! itself scoped to its holder.

use berth_core::DeliveryStatus;
use berth_store::deliveries::{self, AttemptRow, DeliveryRow};
use berth_store::notifications::{self, NotificationRow};
use berth_store::secrets::Sealed;
use chrono::{DateTime, Utc};

use crate::delivery::chrono_of;
use crate::notifications::{Owner, Place, new_signing_secret};
use crate::paging::Paging;
use crate::sealing::Purpose;
use crate::{App, AppError, Caller, Ctx, Result};

/// A notification's current signing secret, and the previous one while it still signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// The secret new deliveries are signed with.
    pub secret: String,
    /// The secret before the last rotation.
    pub previous: Option<String>,
    /// Until when the previous secret also signs.
    pub previous_until: Option<DateTime<Utc>>,
}

impl App {
    async fn admin_notification(
        &self,
        caller: &Caller,
        place: Place<'_>,
        uuid: &str,
    ) -> Result<(Owner, NotificationRow)> {
        let owner = self.owner(caller, place).await?;
        let mut conn = self.store.conn().await?;
        let n = self.scoped(&mut conn, &owner, uuid).await?;
        Ok((owner, n))
    }

    /// A page of the notification's deliveries, newest first, optionally of one status; and
    /// whether more follow.
    #[allow(clippy::too_many_arguments)]
    pub async fn list_deliveries(
        &self,
        caller: &Caller,
        place: Place<'_>,
        uuid: &str,
        status_filter: Option<&str>,
        page: u32,
        limit: u32,
    ) -> Result<(Vec<DeliveryRow>, bool)> {
        let status_filter = status_filter
            .map(DeliveryStatus::parse)
            .transpose()
            .map_err(|e| AppError::invalid(e.to_string()))?;
        let paging = Paging::new(page, limit)?;
        let (_, n) = self.admin_notification(caller, place, uuid).await?;
        let mut conn = self.store.conn().await?;
        let rows = deliveries::list(&mut conn, n.id, status_filter, paging.fetch(), paging.offset()).await?;
        Ok(paging.split(rows))
    }

    /// A page of the notification's deliveries as [`App::list_deliveries`] gives it, each with
    /// its attempts: the access is checked once for the page (the deliveries page shows them all).
    #[allow(clippy::too_many_arguments)]
    pub async fn list_deliveries_with_attempts(
        &self,
        caller: &Caller,
        place: Place<'_>,
        uuid: &str,
        status_filter: Option<&str>,
        page: u32,
        limit: u32,
    ) -> Result<(Vec<(DeliveryRow, Vec<AttemptRow>)>, bool)> {
        let (rows, more) = self
            .list_deliveries(caller, place, uuid, status_filter, page, limit)
            .await?;
        let mut conn = self.store.conn().await?;
        let mut out = Vec::with_capacity(rows.len());
        for d in rows {
            let attempts = deliveries::attempts(&mut conn, d.id).await?;
            out.push((d, attempts));
        }
        Ok((out, more))
    }

    /// One delivery with all its attempts.
    pub async fn get_delivery(
        &self,
        caller: &Caller,
        place: Place<'_>,
        uuid: &str,
        delivery: &str,
    ) -> Result<(DeliveryRow, Vec<AttemptRow>)> {
        let (_, n) = self.admin_notification(caller, place, uuid).await?;
        let mut conn = self.store.conn().await?;
        let d = deliveries::get(&mut conn, n.id, delivery)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("No delivery {delivery} for notification {uuid}")))?;
        let attempts = deliveries::attempts(&mut conn, d.id).await?;
        Ok((d, attempts))
    }

    fn require_enabled(n: &NotificationRow) -> Result<()> {
        if n.enabled {
            Ok(())
        } else {
            Err(AppError::invalid(
                "the notification is disabled: re-enable it first (POST on the notification resets it)",
            ))
        }
    }

    /// Sends one delivery again now, with its original body and id.
    pub async fn redeliver(&self, ctx: &Ctx, place: Place<'_>, uuid: &str, delivery: &str) -> Result<()> {
        let (owner, n) = self.admin_notification(&ctx.caller, place, uuid).await?;
        Self::require_enabled(&n)?;
        let mut tx = self.store.begin().await?;
        let d = deliveries::get(&mut tx, n.id, delivery)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("No delivery {delivery} for notification {uuid}")))?;
        if d.status == DeliveryStatus::Pending {
            return Err(AppError::invalid(format!(
                "delivery {delivery} is still pending; it will be attempted on its schedule"
            )));
        }
        self.requeue_delivery(&mut tx, &owner.queue_name(&n), &n, &d).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Re-queues every failed or skipped delivery created since `since`. Returns how many.
    pub async fn recover(&self, ctx: &Ctx, place: Place<'_>, uuid: &str, since: DateTime<Utc>) -> Result<usize> {
        let (owner, n) = self.admin_notification(&ctx.caller, place, uuid).await?;
        Self::require_enabled(&n)?;
        let mut tx = self.store.begin().await?;
        let unsent = deliveries::unsent_since(&mut tx, n.id, since).await?;
        let name = owner.queue_name(&n);
        for d in &unsent {
            self.requeue_delivery(&mut tx, &name, &n, d).await?;
        }
        tx.commit().await?;
        Ok(unsent.len())
    }

    /// The notification's signing secrets (created now for notifications from before signing).
    pub async fn notification_secret(&self, caller: &Caller, place: Place<'_>, uuid: &str) -> Result<Secrets> {
        let (_, n) = self.admin_notification(caller, place, uuid).await?;
        let open = |s: &Sealed| self.keyring.open(Purpose::NotificationSecret, s);
        if let Some(secret) = &n.secret {
            let live = n.previous_secret_until.filter(|t| *t > Utc::now());
            let previous = match (live, &n.previous_secret) {
                (Some(_), Some(p)) => Some(open(p)?),
                _ => None,
            };
            return Ok(Secrets {
                secret: open(secret)?,
                previous,
                previous_until: live,
            });
        }
        let secret = new_signing_secret();
        let sealed = self.keyring.seal(Purpose::NotificationSecret, &secret)?;
        let mut tx = self.store.begin().await?;
        notifications::set_secret(&mut tx, n.id, &sealed, None, None).await?;
        tx.commit().await?;
        Ok(Secrets {
            secret,
            previous: None,
            previous_until: None,
        })
    }

    /// Replaces the signing secret; the old one keeps signing (side by side) for the grace period.
    pub async fn rotate_secret(&self, ctx: &Ctx, place: Place<'_>, uuid: &str) -> Result<Secrets> {
        let (owner, n) = self.admin_notification(&ctx.caller, place, uuid).await?;
        let secret = new_signing_secret();
        let until = Utc::now() + chrono_of(self.settings.delivery.secret_grace);
        let previous = match &n.secret {
            Some(p) => Some(self.keyring.open(Purpose::NotificationSecret, p)?),
            None => None,
        };
        let mut tx = self.store.begin().await?;
        notifications::set_secret(
            &mut tx,
            n.id,
            &self.keyring.seal(Purpose::NotificationSecret, &secret)?,
            n.secret.as_ref(),
            previous.as_ref().map(|_| until),
        )
        .await?;
        owner
            .audit(&mut tx, ctx, crate::notifications::Audit::Rotate, &n, None)
            .await?;
        tx.commit().await?;
        Ok(Secrets {
            secret,
            previous_until: previous.as_ref().map(|_| until),
            previous,
        })
    }
}
