//! Notifications, held by a repository or (Berth) namespace-wide by an organization or a user:
//! creation with full validation (event, method, method configuration, event configuration, and
//! the database checks of in-app targets and e-mail addresses), editing and pausing (validated the
//! same way), listing, reading, deletion, re-enabling and test sends. Every operation needs admin
//! of what holds the notification (the repository, or the namespace), and every operation by uuid
//! is scoped to it.

use berth_core::{AccountId, AccountKind, JobQueue, RepoId, RepoRole};
use berth_notify::events::Reach;
use berth_notify::methods::{EmailConfig, InAppConfig, MethodConfig, Target};
use berth_notify::{EventKind, MethodKind};
use berth_store::accounts::{self, AccountRow};
use berth_store::notifications::{self, NewNotification, NotificationRow, NotificationScope};
use berth_store::repos::{self, RepoRow};
use berth_store::{Exec, teams};
use serde_json::{Value, json};

use crate::accounts::AdminNamespace;
use crate::audit::record;
use crate::events::{DeliveryPayload, Occurrence};
use crate::sealing::Purpose;
use crate::{App, AppError, Caller, Ctx, Result};

/// Where notifications are managed: one repository's (its admins), or a namespace's
/// namespace-wide ones (Berth; the organization's admins, or the user).
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// The notifications of the repository `namespace/name`.
    Repository {
        /// Its namespace.
        namespace: &'a str,
        /// Its name in the namespace.
        name: &'a str,
    },
    /// A namespace's namespace-wide notifications.
    Namespace(AdminNamespace<'a>),
}

impl<'a> Place<'a> {
    /// The repository `namespace/name`.
    pub fn repo(namespace: &'a str, name: &'a str) -> Place<'a> {
        Place::Repository { namespace, name }
    }
}

/// What holds notifications, loaded, after the caller was found to administer it.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// A repository.
    Repository(RepoRow),
    /// A namespace (organization or user).
    Namespace(AccountRow),
}

/// What an audit entry about a notification records.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Audit {
    Add,
    Change,
    Delete,
    Reset,
    Rotate,
}

impl Owner {
    /// The holder of a stored notification; `None` once it is gone.
    pub(crate) async fn of(ex: &mut impl Exec, n: &NotificationRow) -> Result<Option<Owner>> {
        Ok(match n.scope {
            NotificationScope::Repository(r) => repos::by_id(ex, r).await?.map(Owner::Repository),
            NotificationScope::Namespace(a) => accounts::by_id(ex, a).await?.map(Owner::Namespace),
        })
    }

    /// Its notifications' scope in the store.
    pub(crate) fn scope(&self) -> NotificationScope {
        match self {
            Owner::Repository(r) => NotificationScope::Repository(r.id),
            Owner::Namespace(a) => NotificationScope::Namespace(a.id),
        }
    }

    fn reach(&self) -> Reach {
        match self {
            Owner::Repository(_) => Reach::Repository,
            Owner::Namespace(_) => Reach::Namespace,
        }
    }

    /// The namespace (the repository's, or itself).
    pub(crate) fn namespace_id(&self) -> AccountId {
        match self {
            Owner::Repository(r) => r.namespace_id,
            Owner::Namespace(a) => a.id,
        }
    }

    /// The namespace's name.
    pub(crate) fn namespace(&self) -> &str {
        match self {
            Owner::Repository(r) => &r.namespace,
            Owner::Namespace(a) => &a.name,
        }
    }

    /// Whether the namespace is a user or an organization.
    pub(crate) fn namespace_kind(&self) -> AccountKind {
        match self {
            Owner::Repository(r) => r.namespace_kind,
            Owner::Namespace(a) => a.kind,
        }
    }

    fn repo_id(&self) -> Option<RepoId> {
        match self {
            Owner::Repository(r) => Some(r.id),
            Owner::Namespace(_) => None,
        }
    }

    /// `repository acme/web` or `namespace acme`.
    pub(crate) fn label(&self) -> String {
        match self {
            Owner::Repository(r) => format!("repository {}/{}", r.namespace, r.name),
            Owner::Namespace(a) => format!("namespace {}", a.name),
        }
    }

    /// The web page where its notifications are managed.
    pub(crate) fn manage_url(&self, base: &str) -> String {
        match self {
            Owner::Repository(r) => format!("{base}/repository/{}/{}?tab=settings", r.namespace, r.name),
            Owner::Namespace(a) if a.kind == AccountKind::Organization => {
                format!("{base}/organization/{}/notifications", a.name)
            }
            Owner::Namespace(_) => format!("{base}/user/notifications"),
        }
    }

    /// The users who administer it: a repository's admins; an organization's admins; the user.
    pub(crate) async fn admins(&self, ex: &mut impl Exec) -> Result<Vec<AccountRow>> {
        match self {
            Owner::Repository(r) => crate::inapp::repo_admins(ex, r).await,
            Owner::Namespace(a) if a.kind == AccountKind::Organization => Ok(teams::org_admins(ex, a.id).await?),
            Owner::Namespace(a) => Ok(vec![a.clone()]),
        }
    }

    /// The queue name of its redeliveries: a repository's events' (see `events::queue_name`), or,
    /// for a namespace, Quay's name of a namespace notification's own queue.
    pub(crate) fn queue_name(&self, n: &NotificationRow) -> String {
        match self {
            Owner::Repository(r) => crate::events::queue_name(r, &n.event),
            Owner::Namespace(a) => format!("{}/{}/{}/{}/", JobQueue::Notification, a.name, n.uuid, n.event),
        }
    }

    fn not_found(&self, uuid: &str) -> AppError {
        AppError::NotFound(match self {
            Owner::Repository(r) => format!(
                "No repository notification found for: {}, {}, {uuid}",
                r.namespace, r.name
            ),
            Owner::Namespace(a) => format!("No namespace notification found for: {}, {uuid}", a.name),
        })
    }

    /// Records an audit entry about `n` in `tx`: Quay's kinds (`add_repo_notification`,
    /// `create_namespace_notification`, …) and Berth's (`change_…`, `rotate_…_secret`).
    pub(crate) async fn audit(
        &self,
        tx: &mut berth_store::Tx,
        ctx: &Ctx,
        what: Audit,
        n: &NotificationRow,
        extra: Option<Value>,
    ) -> Result<()> {
        let kind = match (self, what) {
            (Owner::Repository(_), Audit::Add) => "add_repo_notification",
            (Owner::Repository(_), Audit::Change) => "change_repo_notification",
            (Owner::Repository(_), Audit::Delete) => "delete_repo_notification",
            (Owner::Repository(_), Audit::Reset) => "reset_repo_notification",
            (Owner::Repository(_), Audit::Rotate) => "rotate_repo_notification_secret",
            (Owner::Namespace(_), Audit::Add) => "create_namespace_notification",
            (Owner::Namespace(_), Audit::Change) => "change_namespace_notification",
            (Owner::Namespace(_), Audit::Delete) => "delete_namespace_notification",
            (Owner::Namespace(_), Audit::Reset) => "reset_namespace_notification",
            (Owner::Namespace(_), Audit::Rotate) => "rotate_namespace_notification_secret",
        };
        let mut meta =
            json!({"namespace": self.namespace(), "notification_id": n.uuid, "event": n.event, "method": n.method});
        if let Owner::Repository(r) = self {
            meta["repo"] = json!(r.name);
        }
        if let (Some(Value::Object(extra)), Some(m)) = (extra, meta.as_object_mut()) {
            m.extend(extra);
        }
        record(tx, ctx, kind, Some(self.namespace_id()), self.repo_id(), meta).await
    }
}

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

    /// What holds the notifications of `place`, once the caller is found to administer it.
    pub(crate) async fn owner(&self, caller: &Caller, place: Place<'_>) -> Result<Owner> {
        match place {
            Place::Repository { namespace, name } => {
                Ok(Owner::Repository(self.admin_repo(caller, namespace, name).await?))
            }
            Place::Namespace(ns) => {
                let mut conn = self.store.conn().await?;
                Ok(Owner::Namespace(self.admin_namespace(&mut conn, caller, ns).await?))
            }
        }
    }

    pub(crate) async fn scoped(&self, ex: &mut impl Exec, owner: &Owner, uuid: &str) -> Result<NotificationRow> {
        notifications::by_uuid(ex, owner.scope(), uuid)
            .await?
            .ok_or_else(|| owner.not_found(uuid))
    }

    /// The notifications of `place`.
    pub async fn list_notifications(&self, caller: &Caller, place: Place<'_>) -> Result<Vec<NotificationRow>> {
        let owner = self.owner(caller, place).await?;
        let mut conn = self.store.conn().await?;
        Ok(notifications::of_scope(&mut conn, owner.scope()).await?)
    }

    /// One notification of `place`.
    pub async fn get_notification(&self, caller: &Caller, place: Place<'_>, uuid: &str) -> Result<NotificationRow> {
        let owner = self.owner(caller, place).await?;
        let mut conn = self.store.conn().await?;
        self.scoped(&mut conn, &owner, uuid).await
    }

    /// Validates and creates a notification of `place`. A namespace-wide one takes every
    /// repository event (and `repo_created`/`repo_deleted`, which only it takes), narrowed by
    /// `repository-regex`.
    pub async fn create_notification(
        &self,
        ctx: &Ctx,
        place: Place<'_>,
        req: &NotificationRequest,
    ) -> Result<NotificationRow> {
        let owner = self.owner(&ctx.caller, place).await?;
        let event = EventKind::parse(&req.event).map_err(AppError::invalid)?;
        if event.namespace_only() && matches!(owner, Owner::Repository(_)) {
            return Err(AppError::invalid_field(
                "event",
                format!(
                    "Invalid event '{}': it is raised only for namespace-wide notifications (an organization's or a user's)",
                    event.name()
                ),
            ));
        }
        let method = MethodKind::parse(&req.method).map_err(|m| AppError::invalid_field("method", m))?;
        let config = self.validated(
            event,
            method,
            (&req.config, &req.event_config, owner.reach()),
            req.title.as_deref(),
        )?;
        let mut tx = self.store.begin().await?;
        let max = self.settings.max_notifications_per_repository;
        if usize::try_from(notifications::count_in(&mut tx, owner.scope()).await?).unwrap_or(usize::MAX) >= max {
            let holder = match owner {
                Owner::Repository(_) => "repository",
                Owner::Namespace(_) => "namespace",
            };
            return Err(AppError::invalid(format!(
                "this {holder} already has {max} notifications, the most allowed (notifications.max_per_repository)"
            )));
        }
        self.check_recipients(&mut tx, &owner, &config).await?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let secret = self.keyring.seal(Purpose::NotificationSecret, &new_signing_secret())?;
        let row = notifications::insert(
            &mut tx,
            &NewNotification {
                uuid: &uuid,
                scope: owner.scope(),
                event: event.name(),
                method: method.name(),
                title: req.title.as_deref(),
                config: &req.config,
                event_config: &req.event_config,
                secret: &secret,
            },
        )
        .await?;
        owner.audit(&mut tx, ctx, Audit::Add, &row, None).await?;
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
        place: Place<'_>,
        uuid: &str,
        change: &NotificationChange,
    ) -> Result<NotificationRow> {
        let owner = self.owner(&ctx.caller, place).await?;
        let mut tx = self.store.begin().await?;
        let row = self.scoped(&mut tx, &owner, uuid).await?;
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
        let typed = self.validated(event, method, (config, event_config, owner.reach()), title.as_deref())?;
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
            self.check_recipients(&mut tx, &owner, &typed).await?;
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
                self.raise_disabled(&mut tx, &owner, &row, &reason, ctx.caller.account())
                    .await?;
                changed.push("paused");
            }
            Some(true) if !row.enabled => {
                notifications::reset(&mut tx, row.id).await?;
                changed.push("resumed");
            }
            _ => {}
        }
        let row = self.scoped(&mut tx, &owner, uuid).await?;
        if !changed.is_empty() {
            owner
                .audit(&mut tx, ctx, Audit::Change, &row, Some(json!({"changed": changed})))
                .await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Checks a notification's configuration as far as it can be without the database: its size,
    /// the method's configuration, the event's (for a notification of `reach`) and the title.
    /// Errors name their field.
    fn validated(
        &self,
        event: EventKind,
        method: MethodKind,
        (config, event_config, reach): (&Value, &Value, Reach),
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
            .validate_config(event_config, reach)
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
    /// address is authorized (and mail is still configured).
    async fn check_recipients(&self, tx: &mut berth_store::Tx, owner: &Owner, config: &MethodConfig) -> Result<()> {
        match config {
            MethodConfig::InApp(InAppConfig { target }) => check_target(tx, owner, target).await,
            MethodConfig::Email(EmailConfig { address }) => {
                if !self.may_mail(tx, owner, address).await? {
                    let message = match owner {
                        Owner::Repository(_) => {
                            "The specified e-mail address is not authorized to receive notifications for this repository"
                        }
                        Owner::Namespace(_) => {
                            "The specified e-mail address is neither the namespace's nor one of its administrators'"
                        }
                    };
                    return Err(AppError::invalid_field("email", message));
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

    /// Whether notifications of `owner` may mail `address`: for a repository, an address
    /// authorized for it (confirmed by mail, as in Quay); for a namespace, the organization's own
    /// address or one of its admins', or the user's (Quay mails namespace notifications to those).
    pub(crate) async fn may_mail(&self, ex: &mut impl Exec, owner: &Owner, address: &str) -> Result<bool> {
        match owner {
            Owner::Repository(r) => self.email_is_authorized(ex, r.id, address).await,
            Owner::Namespace(a) => {
                let same = |e: &Option<String>| e.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(address));
                Ok(same(&a.email) || owner.admins(ex).await?.iter().any(|u| same(&u.email)))
            }
        }
    }

    /// Deletes a notification.
    pub async fn delete_notification(&self, ctx: &Ctx, place: Place<'_>, uuid: &str) -> Result<()> {
        self.delete_notifications(ctx, place, &[uuid]).await
    }

    /// Clears the failure count and re-enables a notification.
    pub async fn reset_notification(&self, ctx: &Ctx, place: Place<'_>, uuid: &str) -> Result<()> {
        self.reset_notifications(ctx, place, &[uuid]).await
    }

    /// Deletes notifications, all or none: one that is not held by `place` changes nothing.
    pub async fn delete_notifications(&self, ctx: &Ctx, place: Place<'_>, uuids: &[&str]) -> Result<()> {
        self.change_notifications(ctx, place, uuids, Change::Delete).await
    }

    /// Clears the failure counts and re-enables notifications, all or none (as
    /// [`App::delete_notifications`]).
    pub async fn reset_notifications(&self, ctx: &Ctx, place: Place<'_>, uuids: &[&str]) -> Result<()> {
        self.change_notifications(ctx, place, uuids, Change::Reset).await
    }

    /// Applies `change` to each notification in one transaction, each with its audit entry.
    async fn change_notifications(&self, ctx: &Ctx, place: Place<'_>, uuids: &[&str], change: Change) -> Result<()> {
        let owner = self.owner(&ctx.caller, place).await?;
        let mut tx = self.store.begin().await?;
        for uuid in uuids {
            let row = self.scoped(&mut tx, &owner, uuid).await?;
            let what = match change {
                Change::Delete => {
                    notifications::delete(&mut tx, row.id).await?;
                    Audit::Delete
                }
                Change::Reset => {
                    notifications::reset(&mut tx, row.id).await?;
                    Audit::Reset
                }
            };
            owner.audit(&mut tx, ctx, what, &row, None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Queues a test send of the event's sample data to this notification only. A
    /// namespace-wide notification's sample happens in a repository named `sample` of its
    /// namespace.
    pub async fn test_notification(&self, ctx: &Ctx, place: Place<'_>, uuid: &str) -> Result<()> {
        let owner = self.owner(&ctx.caller, place).await?;
        let mut tx = self.store.begin().await?;
        let row = self.scoped(&mut tx, &owner, uuid).await?;
        let event = EventKind::parse(&row.event).map_err(AppError::Internal)?;
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let place = berth_notify::RepoContext {
            hostname: &self.settings.server_hostname,
            scheme: &self.settings.preferred_url_scheme,
            namespace: owner.namespace(),
            name: match &owner {
                Owner::Repository(r) => &r.name,
                Owner::Namespace(_) => SAMPLE_REPOSITORY,
            },
        };
        let sample = event.sample(&place, &row.event_config.0, now);
        let queue_name = format!(
            "{}/{}/{}/{}/",
            JobQueue::Notification,
            owner.namespace(),
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

/// The repository a namespace-wide notification's test send is about.
pub const SAMPLE_REPOSITORY: &str = "sample";

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

/// The database checks of an in-app target (spec §2.1), with Quay's messages; its 500s are 400s.
async fn check_target(ex: &mut impl Exec, owner: &Owner, target: &Target) -> Result<()> {
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
            if name != owner.namespace() {
                return Err(AppError::invalid_field(
                    "target",
                    "Organization name must match repository namespace",
                ));
            }
        }
        Target::Team(name) => {
            let found = if owner.namespace_kind() == AccountKind::Organization {
                teams::by_name(ex, owner.namespace_id(), name).await?
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
