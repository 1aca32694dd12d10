//! The in-app bell: who receives a `quay_notification` delivery and its rows (one per receiving
//! account, written by the delivery recorder in the transaction that completes the job, so a retry
//! never duplicates), telling admins that a notification was disabled (and raising
//! `notification_disabled` for the tooling of its repository or namespace), and the signed-in
//! user's notification list with per-user dismissal.

use berth_core::{AccountKind, RepoRole, Scope};
use berth_notify::methods::{InAppConfig, MethodConfig, Target};
use berth_notify::{EventKind, MethodKind};
use berth_store::accounts::AccountRow;
use berth_store::inapp::{self, InAppRow};
use berth_store::notifications::NotificationRow;
use berth_store::repos::RepoRow;
use berth_store::{Exec, Tx, accounts, repos, teams};
use chrono::Utc;
use serde_json::{Value, json};

use crate::notifications::Owner;
use crate::paging::Paging;
use crate::{App, AppError, Caller, Result};

/// The bell kind of "a notification of your repository was disabled".
pub const DISABLED_KIND: &str = "repo_notification_disabled";

fn disabled_metadata(owner: &Owner, n: &NotificationRow, why: &str) -> Value {
    let (repository, name) = match owner {
        Owner::Repository(r) => (Some(format!("{}/{}", r.namespace, r.name)), Some(r.name.as_str())),
        Owner::Namespace(_) => (None, None),
    };
    json!({
        "repository": repository,
        "namespace": owner.namespace(),
        "name": name,
        "notification_uuid": n.uuid,
        "title": n.title,
        "event": n.event,
        "method": n.method,
        "reason": why,
        "disabled_at": Utc::now().to_rfc3339(),
    })
}

/// The users who administer a repository: its owner (or the organization's admins), users
/// granted admin, and members of teams granted admin. Robots are left out.
pub(crate) async fn repo_admins(ex: &mut impl Exec, repo: &RepoRow) -> Result<Vec<AccountRow>> {
    let mut out: Vec<AccountRow> = match repo.namespace_kind {
        AccountKind::Organization => teams::org_admins(ex, repo.namespace_id).await?,
        _ => accounts::by_id(ex, repo.namespace_id).await?.into_iter().collect(),
    };
    for g in repos::user_grants(ex, repo.id).await? {
        if g.role == RepoRole::Admin
            && g.kind == AccountKind::User
            && let Some(a) = accounts::by_id(ex, g.account_id).await?
        {
            out.push(a);
        }
    }
    for g in repos::team_grants(ex, repo.id).await? {
        if g.role == RepoRole::Admin {
            out.extend(teams::members(ex, g.team_id).await?);
        }
    }
    out.retain(|a| a.kind == AccountKind::User);
    out.sort_by_key(|a| a.id.0);
    out.dedup_by_key(|a| a.id.0);
    Ok(out)
}

/// Who receives a notification: account ids, with the organization name when they receive it as
/// its administrators. A target deleted since creation resolves to nobody.
async fn recipients(ex: &mut impl Exec, n: &NotificationRow) -> Result<(Vec<berth_core::AccountId>, Option<String>)> {
    let Ok(MethodConfig::InApp(InAppConfig { target })) = MethodConfig::read(MethodKind::QuayNotification, &n.config.0)
    else {
        return Ok((Vec::new(), None));
    };
    let Some(owner) = Owner::of(ex, n).await? else {
        return Ok((Vec::new(), None));
    };
    Ok(match target {
        Target::User(name) => {
            let user = accounts::by_name(ex, &name)
                .await?
                .filter(|a| a.kind == AccountKind::User);
            (user.map(|u| u.id).into_iter().collect(), None)
        }
        Target::Org(name) if name == owner.namespace() => (
            teams::org_admins(ex, owner.namespace_id())
                .await?
                .into_iter()
                .map(|a| a.id)
                .collect(),
            Some(name),
        ),
        Target::Org(_) => (Vec::new(), None),
        Target::Team(name) => match teams::by_name(ex, owner.namespace_id(), &name).await? {
            Some(t) => (
                teams::members(ex, t.id).await?.into_iter().map(|a| a.id).collect(),
                None,
            ),
            None => (Vec::new(), None),
        },
    })
}

/// The bell rows one in-app delivery writes: resolved when it is performed, written by the
/// recorder in the transaction that completes its job (so a retry never duplicates them).
#[derive(Debug, Clone)]
pub(crate) struct BellRows {
    /// Who receives it.
    pub recipients: Vec<berth_core::AccountId>,
    /// The organization, when they receive it as its administrators.
    pub organization: Option<String>,
}

/// Resolves who receives an in-app notification, for [`write_bell_rows`].
pub(crate) async fn bell_rows(ex: &mut impl Exec, n: &NotificationRow) -> Result<BellRows> {
    let (recipients, organization) = recipients(ex, n).await?;
    Ok(BellRows {
        recipients,
        organization,
    })
}

/// Writes one in-app delivery's rows, in the recorder's transaction.
pub(crate) async fn write_bell_rows(tx: &mut Tx, rows: &BellRows, event: &str, data: &Value) -> Result<()> {
    for t in &rows.recipients {
        let uuid = uuid::Uuid::new_v4().to_string();
        inapp::insert(tx, &uuid, event, *t, rows.organization.as_deref(), data).await?;
    }
    Ok(())
}

impl App {
    /// Tells the admins of the notification's repository or namespace in the bell that it was
    /// disabled, and raises `notification_disabled` (in the transaction that disabled it).
    pub(crate) async fn announce_disabled(&self, tx: &mut Tx, n: &NotificationRow, why: &str) -> Result<()> {
        let Some(owner) = Owner::of(tx, n).await? else {
            return Ok(());
        };
        let meta = disabled_metadata(&owner, n, why);
        for admin in owner.admins(tx).await? {
            let uuid = uuid::Uuid::new_v4().to_string();
            inapp::insert(tx, &uuid, DISABLED_KIND, admin.id, None, &meta).await?;
        }
        self.raise_disabled(tx, &owner, n, why, None).await
    }

    /// Raises `notification_disabled` about `n` (Berth's operational event, so that tooling
    /// learns of it without polling): for a repository's notification, to the notifications of
    /// that event of the repository and of its namespace; for a namespace-wide one, to the
    /// namespace's, with the namespace's block and no repository.
    pub(crate) async fn raise_disabled(
        &self,
        tx: &mut Tx,
        owner: &Owner,
        n: &NotificationRow,
        why: &str,
        performer: Option<&crate::Principal>,
    ) -> Result<()> {
        let target = MethodConfig::read_stored(&n.method, &n.config.0)
            .map(|c| c.summary())
            .unwrap_or_default();
        let title = n
            .title
            .clone()
            .unwrap_or_else(|| format!("{} by {}", n.event, n.method));
        let about = berth_notify::events::DisabledNotification {
            uuid: &n.uuid,
            title: &title,
            event: &n.event,
            method: &n.method,
            target: &target,
            reason: why,
        };
        let event = berth_notify::EventKind::NotificationDisabled.name();
        match owner {
            Owner::Repository(repo) => {
                let place = crate::events::repo_context(&self.settings, repo);
                let data = berth_notify::events::notification_disabled(&place, &about);
                self.raise(tx, repo, event, &data, performer).await?;
            }
            Owner::Namespace(ns) => {
                let place = berth_notify::events::NamespaceContext {
                    hostname: &self.settings.server_hostname,
                    scheme: &self.settings.preferred_url_scheme,
                    namespace: &ns.name,
                    organization: ns.kind == AccountKind::Organization,
                };
                let data = berth_notify::events::namespace_notification_disabled(&place, &about);
                self.raise_in_namespace(tx, ns, event, &data, performer).await?;
            }
        }
        Ok(())
    }

    /// Mails the repository's admins that a notification was disabled (best effort: the bell
    /// already has it).
    pub(crate) async fn tell_admins_by_mail(&self, n: &NotificationRow, why: &str) {
        let Ok(mailer) = self.mailer() else {
            return;
        };
        let found = async {
            let mut conn = self.store.conn().await?;
            let Some(owner) = Owner::of(&mut conn, n).await? else {
                return Ok::<_, AppError>(None);
            };
            let admins = owner.admins(&mut conn).await?;
            Ok(Some((owner, admins)))
        }
        .await;
        let Ok(Some((owner, admins))) = found else {
            return;
        };
        let manage = owner.manage_url(&self.settings.base_url());
        let mail = berth_notify::mail::notification_disabled_mail(
            &owner.label(),
            n.title.as_deref().unwrap_or(&n.uuid),
            why,
            &manage,
        );
        for admin in admins {
            if let Some(to) = admin.email.as_deref() {
                let outcome = mailer.send(to, &mail, None).await;
                if !matches!(outcome, berth_notify::send::Outcome::Delivered { .. }) {
                    tracing::warn!(notification = %n.uuid, admin = %admin.name, ?outcome, "could not mail an admin about a disabled notification");
                }
            }
        }
    }

    /// The signed-in user's undismissed notifications, newest first: page `page` (from 0) of
    /// `limit`, and whether more follow.
    pub async fn my_notifications(&self, caller: &Caller, page: u32, limit: u32) -> Result<(Vec<InAppRow>, bool)> {
        let p = caller
            .user_with(Scope::UserRead)
            .or_else(|_| caller.user_with(Scope::UserAdmin))?;
        let paging = Paging::new(page, limit)?;
        let mut conn = self.store.conn().await?;
        let rows = inapp::active_for(&mut conn, p.id, paging.fetch(), paging.offset()).await?;
        Ok(paging.split(rows))
    }

    /// How many undismissed notifications the signed-in user has (0 for anyone else).
    pub async fn unread_count(&self, caller: &Caller) -> Result<i64> {
        match caller.account() {
            Some(p) if p.kind == AccountKind::User => {
                Ok(inapp::count_active(&mut self.store.conn().await?, p.id).await?)
            }
            _ => Ok(0),
        }
    }

    /// The one-line text of a bell item.
    pub fn bell_summary(row: &InAppRow) -> String {
        let data = &row.metadata.0;
        if row.kind == DISABLED_KIND {
            let what = data["title"]
                .as_str()
                .filter(|t| !t.is_empty())
                .or(data["event"].as_str())
                .unwrap_or("A notification");
            return format!(
                "Notification '{what}' of {} was disabled: {}",
                data["repository"].as_str().unwrap_or_default(),
                data["reason"].as_str().unwrap_or_default()
            );
        }
        match EventKind::parse(&row.kind) {
            Ok(kind) => kind.summary(data),
            Err(_) => row.kind.clone(),
        }
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
