//! The in-app bell: delivering `quay_notification` (one row per receiving account, written in the
//! same transaction that completes the job, so a retry never duplicates), and the signed-in user's
//! notification list with per-user dismissal.

use berth_core::{AccountKind, Scope};
use berth_notify::MethodKind;
use berth_notify::methods::{Checked, MethodPolicy, Target};
use berth_store::inapp::{self, InAppRow};
use berth_store::notifications::{self, NotificationRow};
use berth_store::queue::{self, Claimed};
use berth_store::{Exec, accounts, repos, teams};
use serde_json::Value;

use crate::{App, AppError, Caller, Result};

/// The most notifications one page returns.
pub const MAX_PAGE: u32 = 100;

/// Who receives a notification: account ids, with the organization name when they receive it as
/// its administrators. A target deleted since creation resolves to nobody.
async fn recipients(ex: &mut impl Exec, n: &NotificationRow) -> Result<(Vec<berth_core::AccountId>, Option<String>)> {
    let Ok(Checked::Target(target)) = MethodKind::QuayNotification.validate(&n.config.0, &MethodPolicy::default())
    else {
        return Ok((Vec::new(), None));
    };
    let Some(repo) = repos::by_id(ex, n.repository_id).await? else {
        return Ok((Vec::new(), None));
    };
    Ok(match target {
        Target::User(name) => {
            let user = accounts::by_name(ex, &name)
                .await?
                .filter(|a| a.kind == AccountKind::User);
            (user.map(|u| u.id).into_iter().collect(), None)
        }
        Target::Org(name) if name == repo.namespace => (
            teams::org_admins(ex, repo.namespace_id)
                .await?
                .into_iter()
                .map(|a| a.id)
                .collect(),
            Some(name),
        ),
        Target::Org(_) => (Vec::new(), None),
        Target::Team(name) => match teams::by_name(ex, repo.namespace_id, &name).await? {
            Some(t) => (
                teams::members(ex, t.id).await?.into_iter().map(|a| a.id).collect(),
                None,
            ),
            None => (Vec::new(), None),
        },
    })
}

impl App {
    /// Delivers an in-app notification: the rows, the job's completion and the success are one
    /// transaction.
    pub(crate) async fn deliver_in_app(
        &self,
        job: &Claimed,
        n: &NotificationRow,
        event: &str,
        data: &Value,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let (targets, organization) = recipients(&mut tx, n).await?;
        for t in targets {
            let uuid = uuid::Uuid::new_v4().to_string();
            inapp::insert(&mut tx, &uuid, event, t, organization.as_deref(), data).await?;
        }
        queue::complete(&mut tx, job.id, &job.state_id).await?;
        notifications::record_outcome(&mut tx, n.id, true, 0, "").await?;
        tx.commit().await?;
        metrics::counter!("berth_deliveries_total", "method" => "quay_notification", "outcome" => "delivered")
            .increment(1);
        Ok(())
    }

    /// The signed-in user's undismissed notifications, newest first: page `page` (from 0) of
    /// `limit`, and whether more follow.
    pub async fn my_notifications(&self, caller: &Caller, page: u32, limit: u32) -> Result<(Vec<InAppRow>, bool)> {
        let p = caller
            .user_with(Scope::UserRead)
            .or_else(|_| caller.user_with(Scope::UserAdmin))?;
        if limit == 0 || limit > MAX_PAGE {
            return Err(AppError::Invalid(format!(
                "invalid limit: must be between 1 and {MAX_PAGE}"
            )));
        }
        let mut conn = self.store.conn().await?;
        let offset = i64::from(page) * i64::from(limit);
        let mut rows = inapp::active_for(&mut conn, p.id, i64::from(limit) + 1, offset).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok((rows, more))
    }

    /// One of the signed-in user's notifications.
    pub async fn my_notification(&self, caller: &Caller, uuid: &str) -> Result<InAppRow> {
        let p = caller
            .user_with(Scope::UserRead)
            .or_else(|_| caller.user_with(Scope::UserAdmin))?;
        let mut conn = self.store.conn().await?;
        inapp::get(&mut conn, p.id, uuid).await?.ok_or_else(AppError::not_found)
    }

    /// Dismisses (or restores) one of the signed-in user's notifications, for that user only.
    pub async fn dismiss_notification(&self, caller: &Caller, uuid: &str, dismissed: bool) -> Result<InAppRow> {
        let p = caller.user_with(Scope::UserAdmin)?;
        let mut tx = self.store.begin().await?;
        if !inapp::set_dismissed(&mut tx, p.id, uuid, dismissed).await? {
            return Err(AppError::not_found());
        }
        let row = inapp::get(&mut tx, p.id, uuid).await?.ok_or_else(AppError::not_found)?;
        tx.commit().await?;
        Ok(row)
    }
}
