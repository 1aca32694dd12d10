//! Repository notifications: creation with full validation (event, method, method configuration,
//! event configuration, and the database checks of in-app targets and e-mail addresses), editing
//! and pausing (validated the same way), listing, reading, deletion, re-enabling and test sends.
//! Every operation needs repository admin, and every operation by uuid is scoped to the
//! repository in the path.

use berth_core::{AccountKind, JobQueue, RepoRole};
use berth_notify::methods::{EmailConfig, InAppConfig, MethodConfig, Target};
use berth_notify::{EventKind, MethodKind};
use berth_store::accounts;
use berth_store::notifications::{self, NewNotification, NotificationRow};
use berth_store::repos::RepoRow;
use berth_store::{Exec, teams};
use serde_json::{Value, json};

use crate::audit::record;
use crate::events::{DeliveryPayload, Occurrence, repo_context};
use crate::sealing::Purpose;
use crate::{App, AppError, Caller, Ctx, Result};

/// What a client asks to create (Quay's request schema).
#[derive(Debug, Clone)]
pub struct NotificationRequest {
    /// Event name.
    pub event: String,
    /// Method name.
    pub method: String,
    /// Method configuration.
    pub config: Value,
    /// Event configuration.
    pub event_config: Value,
    /// Optional title.
    pub title: Option<String>,
}

/// What an edit changes (Berth): each field left out stays as it is.
#[derive(Debug, Clone, Default)]
pub struct NotificationChange {
    /// The event, which may only be repeated as it is.
    pub event: Option<String>,
    /// The method, which may only be repeated as it is.
    pub method: Option<String>,
    /// The new method configuration.
    pub config: Option<Value>,
    /// The new event configuration.
    pub event_config: Option<Value>,
    /// The new title (blank removes it).
    pub title: Option<String>,
    /// `false` pauses the notification, `true` resumes it.
    pub enabled: Option<bool>,
}

/// The longest title accepted.
pub const MAX_TITLE: usize = 255;
/// The largest `config` plus `eventConfig` of a notification, as JSON.
pub const MAX_CONFIG_BYTES: usize = 64 << 10;

impl App {
    pub(crate) async fn admin_repo(&self, caller: &Caller, namespace: &str, name: &str) -> Result<RepoRow> {
        Ok(self.repo_access(caller, namespace, name, RepoRole::Admin).await?.0)
    }

    pub(crate) async fn scoped(&self, ex: &mut impl Exec, repo: &RepoRow, uuid: &str) -> Result<NotificationRow> {
        notifications::by_uuid(ex, repo.id, uuid).await?.ok_or_else(|| {
            AppError::NotFound(format!(
                "No repository notification found for: {}, {}, {uuid}",
                repo.namespace, repo.name
            ))
        })
    }

    /// The repository's notifications.
    pub async fn list_notifications(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<NotificationRow>> {
        let repo = self.admin_repo(caller, namespace, name).await?;
        let mut conn = self.store.conn().await?;
        Ok(notifications::of_repo(&mut conn, repo.id).await?)
    }

    /// One notification of the repository.
    pub async fn get_notification(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        uuid: &str,
    ) -> Result<NotificationRow> {
        let repo = self.admin_repo(caller, namespace, name).await?;
        let mut conn = self.store.conn().await?;
        self.scoped(&mut conn, &repo, uuid).await
    }

    /// Validates and creates a notification.
    pub async fn create_notification(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        req: &NotificationRequest,
    ) -> Result<NotificationRow> {
        let repo = self.admin_repo(&ctx.caller, namespace, name).await?;
        let event = EventKind::parse(&req.event).map_err(AppError::invalid)?;
        let method = MethodKind::parse(&req.method).map_err(|m| AppError::invalid_field("method", m))?;
        let config = self.validated(event, method, &req.config, &req.event_config, req.title.as_deref())?;
        let mut tx = self.store.begin().await?;
        let max = self.settings.max_notifications_per_repository;
        if usize::try_from(notifications::count_for_repo(&mut tx, repo.id).await?).unwrap_or(usize::MAX) >= max {
            return Err(AppError::invalid(format!(
                "this repository already has {max} notifications, the most allowed (notifications.max_per_repository)"
            )));
        }
        self.check_recipients(&mut tx, &repo, &config).await?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let secret = self.keyring.seal(Purpose::NotificationSecret, &new_signing_secret())?;
        let row = notifications::insert(
            &mut tx,
            &NewNotification {
                uuid: &uuid,
                repo: repo.id,
                event: event.name(),
                method: method.name(),
                title: req.title.as_deref(),
                config: &req.config,
                event_config: &req.event_config,
                secret: &secret,
            },
        )
        .await?;
        record(
            &mut tx,
            ctx,
            "add_repo_notification",
            Some(repo.namespace_id),
            Some(repo.id),
            audit_meta(&repo, &row),
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Edits a notification (Berth): its title and configurations, validated as at creation, and
    /// pauses or resumes it. What the change leaves out stays; its event and method cannot change.
    /// Deliveries queued before the edit keep the configuration they were made under; a paused
    /// notification logs its events as `skipped`, which recovery can send after it resumes.
    pub async fn update_notification(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        uuid: &str,
        change: &NotificationChange,
    ) -> Result<NotificationRow> {
        let repo = self.admin_repo(&ctx.caller, namespace, name).await?;
        let mut tx = self.store.begin().await?;
        let row = self.scoped(&mut tx, &repo, uuid).await?;
        for (field, asked, has) in [
            ("event", &change.event, &row.event),
            ("method", &change.method, &row.method),
        ] {
            if let Some(asked) = asked
                && asked != has
            {
                return Err(AppError::invalid_field(
                    field,
                    format!("the {field} of a notification cannot change (it is {has}): create another notification"),
                ));
            }
        }
        let event = EventKind::parse(&row.event).map_err(AppError::Internal)?;
        let method = MethodKind::parse(&row.method).map_err(AppError::Internal)?;
        let config = change.config.as_ref().unwrap_or(&row.config.0);
        let event_config = change.event_config.as_ref().unwrap_or(&row.event_config.0);
        let title = match &change.title {
            None => row.title.clone(),
            Some(t) => Some(t.trim().to_owned()).filter(|t| !t.is_empty()),
        };
        let typed = self.validated(event, method, config, event_config, title.as_deref())?;
        let mut changed = Vec::new();
        if config != &row.config.0 {
            changed.push("config");
        }
        if event_config != &row.event_config.0 {
            changed.push("eventConfig");
        }
        if title != row.title {
            changed.push("title");
        }
        if changed.iter().any(|c| *c != "title") {
            self.check_recipients(&mut tx, &repo, &typed).await?;
            let revision = notifications::keep_revision(&mut tx, &row).await?;
            berth_store::deliveries::stamp_revision(&mut tx, row.id, revision).await?;
        }
        if !changed.is_empty() {
            notifications::update(&mut tx, row.id, title.as_deref(), config, event_config).await?;
        }
        match change.enabled {
            Some(false) if row.enabled => {
                let who = ctx.caller.account().map_or("an administrator", |p| p.name.as_str());
                let reason = format!("Paused by {who}");
                notifications::set_enabled(&mut tx, row.id, false, Some(&reason)).await?;
                self.raise_disabled(&mut tx, &repo, &row, &reason, ctx.caller.account())
                    .await?;
                changed.push("paused");
            }
            Some(true) if !row.enabled => {
                notifications::reset(&mut tx, row.id).await?;
                changed.push("resumed");
            }
            _ => {}
        }
        let row = self.scoped(&mut tx, &repo, uuid).await?;
        if !changed.is_empty() {
            let mut meta = audit_meta(&repo, &row);
            meta["changed"] = json!(changed);
            record(
                &mut tx,
                ctx,
                "change_repo_notification",
                Some(repo.namespace_id),
                Some(repo.id),
                meta,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Checks a notification's configuration as far as it can be without the database: its size,
    /// the method's configuration, the event's and the title. Errors name their field.
    fn validated(
        &self,
        event: EventKind,
        method: MethodKind,
        config: &Value,
        event_config: &Value,
        title: Option<&str>,
    ) -> Result<MethodConfig> {
        let size = config.to_string().len() + event_config.to_string().len();
        if size > MAX_CONFIG_BYTES {
            return Err(AppError::invalid(format!(
                "invalid config: {size} bytes of config and eventConfig, over the limit of {MAX_CONFIG_BYTES}"
            )));
        }
        let typed = MethodConfig::validate(method, config, &self.settings.method_policy)
            .map_err(|e| AppError::invalid_field(e.field, e.message))?;
        event
            .validate_config(event_config)
            .map_err(|e| AppError::invalid_field(e.field, e.to_string()))?;
        if let Some(t) = title
            && t.chars().count() > MAX_TITLE
        {
            return Err(AppError::invalid_field(
                "title",
                format!("invalid title: must be at most {MAX_TITLE} characters"),
            ));
        }
        Ok(typed)
    }

    /// The database checks of a configuration's recipients: an in-app target exists, an e-mail
    /// address is authorized for the repository (and mail is still configured).
    async fn check_recipients(&self, tx: &mut berth_store::Tx, repo: &RepoRow, config: &MethodConfig) -> Result<()> {
        match config {
            MethodConfig::InApp(InAppConfig { target }) => check_target(tx, repo, target).await,
            MethodConfig::Email(EmailConfig { address }) => {
                if !self.email_is_authorized(tx, repo.id, address).await? {
                    return Err(AppError::invalid_field(
                        "email",
                        "The specified e-mail address is not authorized to receive notifications for this repository",
                    ));
                }
                // Authorized earlier, but mail has since been turned off: say so rather than store
                // a notification that cannot deliver.
                self.mailer()?;
                Ok(())
            }
            // The rest post to a URL (judged again by the guard at each delivery) or to a service.
            _ => Ok(()),
        }
    }

    /// Deletes a notification.
    pub async fn delete_notification(&self, ctx: &Ctx, namespace: &str, name: &str, uuid: &str) -> Result<()> {
        self.delete_notifications(ctx, namespace, name, &[uuid]).await
    }

    /// Deletes notifications, all or none: one that is not the repository's changes nothing.
    pub async fn delete_notifications(&self, ctx: &Ctx, namespace: &str, name: &str, uuids: &[&str]) -> Result<()> {
        self.change_notifications(ctx, namespace, name, uuids, Change::Delete)
            .await
    }

    /// Clears the failure count and re-enables a notification.
    pub async fn reset_notification(&self, ctx: &Ctx, namespace: &str, name: &str, uuid: &str) -> Result<()> {
        self.reset_notifications(ctx, namespace, name, &[uuid]).await
    }

    /// Clears the failure counts and re-enables notifications, all or none (as
    /// [`App::delete_notifications`]).
    pub async fn reset_notifications(&self, ctx: &Ctx, namespace: &str, name: &str, uuids: &[&str]) -> Result<()> {
        self.change_notifications(ctx, namespace, name, uuids, Change::Reset)
            .await
    }

    /// Applies `change` to each notification in one transaction, each with its audit entry.
    async fn change_notifications(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        uuids: &[&str],
        change: Change,
    ) -> Result<()> {
        let repo = self.admin_repo(&ctx.caller, namespace, name).await?;
        let mut tx = self.store.begin().await?;
        for uuid in uuids {
            let row = self.scoped(&mut tx, &repo, uuid).await?;
            let kind = match change {
                Change::Delete => {
                    notifications::delete(&mut tx, row.id).await?;
                    "delete_repo_notification"
                }
                Change::Reset => {
                    notifications::reset(&mut tx, row.id).await?;
                    "reset_repo_notification"
                }
            };
            record(
                &mut tx,
                ctx,
                kind,
                Some(repo.namespace_id),
                Some(repo.id),
                audit_meta(&repo, &row),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Queues a test send of the event's sample data to this notification only.
    pub async fn test_notification(&self, ctx: &Ctx, namespace: &str, name: &str, uuid: &str) -> Result<()> {
        let repo = self.admin_repo(&ctx.caller, namespace, name).await?;
        let mut tx = self.store.begin().await?;
        let row = self.scoped(&mut tx, &repo, uuid).await?;
        let event = EventKind::parse(&row.event).map_err(AppError::Internal)?;
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let sample = event.sample(&repo_context(&self.settings, &repo), &row.event_config.0, now);
        let queue_name = format!(
            "{}/{}/{}/{}/",
            JobQueue::Notification,
            repo.namespace,
            row.uuid,
            row.event
        );
        let payload = DeliveryPayload::new(&sample, ctx.caller.account(), true)?;
        let occurrence = Occurrence {
            name: queue_name,
            event: row.event.clone(),
            notifications: vec![std::sync::Arc::new(row)],
            payload,
        };
        self.enqueue_deliveries(&mut tx, std::slice::from_ref(&occurrence))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl App {
    /// The secrets that sign a notification's deliveries at `now`: the current one, and the
    /// previous one during the grace period after a rotation.
    pub(crate) fn signing_secrets(
        &self,
        n: &NotificationRow,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(2);
        if let Some(s) = &n.secret {
            out.push(self.keyring.open(Purpose::NotificationSecret, s)?);
        }
        if let (Some(prev), Some(until)) = (&n.previous_secret, n.previous_secret_until)
            && until > now
        {
            out.push(self.keyring.open(Purpose::NotificationSecret, prev)?);
        }
        Ok(out)
    }
}

/// A fresh signing secret: `whsec_` and the base64 of 32 random bytes.
pub(crate) fn new_signing_secret() -> String {
    let key: [u8; 32] = rand::random();
    berth_notify::sign::secret_of(&key)
}

/// A change to an existing notification.
enum Change {
    Delete,
    Reset,
}

fn audit_meta(repo: &RepoRow, n: &NotificationRow) -> Value {
    json!({"repo": repo.name, "namespace": repo.namespace, "notification_id": n.uuid, "event": n.event, "method": n.method})
}

/// The database checks of an in-app target (spec §2.1), with Quay's messages; its 500s are 400s.
async fn check_target(ex: &mut impl Exec, repo: &RepoRow, target: &Target) -> Result<()> {
    match target {
        Target::User(name) => {
            let ok = accounts::by_name(ex, name)
                .await?
                .is_some_and(|a| a.kind == AccountKind::User);
            if !ok {
                return Err(AppError::invalid_field("target", format!("Unknown user {name}")));
            }
        }
        Target::Org(name) => {
            let ok = accounts::by_name(ex, name)
                .await?
                .is_some_and(|a| a.kind == AccountKind::Organization);
            if !ok {
                return Err(AppError::invalid_field(
                    "target",
                    format!("Unknown organization {name}"),
                ));
            }
            if name != &repo.namespace {
                return Err(AppError::invalid_field(
                    "target",
                    "Organization name must match repository namespace",
                ));
            }
        }
        Target::Team(name) => {
            let found = if repo.namespace_kind == AccountKind::Organization {
                teams::by_name(ex, repo.namespace_id, name).await?
            } else {
                None
            };
            if found.is_none() {
                return Err(AppError::invalid_field("target", format!("Unknown team {name}")));
            }
        }
    }
    Ok(())
}
