//! Settings → Notifications in the web UI: the table of a repository's notifications (with their
//! targets summarised and secrets masked), the Create Notification form (each event's and each
//! method's own fields, errors next to the offending field, nothing lost when shown again), a
//! notification's deliveries with their attempts, redelivery, recovery and the signing secret, and
//! the bell. Every action calls the same use case as the API.

use berth_app::events::DeliveryPayload;
use berth_app::notifications::Place;

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use berth_app::notifications::{NotificationChange, NotificationRequest};
use berth_app::vocab::{EventKind, MethodConfig, MethodKind};
use berth_app::{App, AppError};
use serde_json::{Value, json};

use super::flash::Flash;
use super::{Chrome, Session, render, when};
use crate::HttpState;

/// Whose notifications a page shows: a repository's, or an organization's namespace-wide ones;
/// with the addresses of its pages.
#[derive(Debug, Clone)]
pub(super) struct Holder {
    /// The namespace.
    pub namespace: String,
    /// The repository, for a repository's notifications.
    pub repository: Option<String>,
}

impl Holder {
    /// A repository's notifications.
    pub(super) fn repo(namespace: &str, name: &str) -> Holder {
        Holder {
            namespace: namespace.to_owned(),
            repository: Some(name.to_owned()),
        }
    }

    /// An organization's namespace-wide notifications.
    pub(super) fn org(org: &str) -> Holder {
        Holder {
            namespace: org.to_owned(),
            repository: None,
        }
    }

    fn place(&self) -> Place<'_> {
        match &self.repository {
            Some(name) => Place::repo(&self.namespace, name),
            None => Place::Namespace(berth_app::accounts::AdminNamespace::Org(&self.namespace)),
        }
    }

    /// Where its notification pages start: `/repository/acme/web`, `/organization/acme`.
    pub(super) fn base(&self) -> String {
        match &self.repository {
            Some(name) => format!("/repository/{}/{name}", self.namespace),
            None => format!("/organization/{}", self.namespace),
        }
    }

    /// Its list of notifications: the repository's Settings, the organization's Notifications.
    pub(super) fn list(&self) -> String {
        match &self.repository {
            Some(name) => format!("/repository/{}/{name}?tab=settings", self.namespace),
            None => format!("/organization/{}/notifications", self.namespace),
        }
    }

    fn list_label(&self) -> String {
        match &self.repository {
            Some(name) => format!("Settings of {}/{name}", self.namespace),
            None => format!("Notifications of {}", self.namespace),
        }
    }
}

/// A notification row of the Settings table.
pub(super) struct NotificationItem {
    pub uuid: String,
    pub title: String,
    /// The event's name (`repo_push`), which the list filters by; `event` is its title.
    pub event_name: String,
    pub event: String,
    pub method: String,
    pub target: String,
    pub enabled: bool,
    pub disabled: String,
    pub failures: i32,
    pub last: String,
}

/// What a method's configuration points at, with secrets masked.
pub(super) fn target_summary(method: &str, config: &Value) -> String {
    MethodConfig::read_stored(method, config)
        .map(|c| c.summary())
        .unwrap_or_default()
}

fn event_title(event: &str) -> String {
    EventKind::parse(event)
        .map(|e| e.title().to_owned())
        .unwrap_or_else(|_| event.to_owned())
}

fn method_title(method: &str) -> String {
    MethodKind::parse(method)
        .map(|m| m.title().to_owned())
        .unwrap_or_else(|_| method.to_owned())
}

/// The Settings table.
pub(super) async fn items(s: &HttpState, session: &Session, h: &Holder) -> Result<Vec<NotificationItem>, AppError> {
    let caller = &session.ctx.caller;
    let mut out = Vec::new();
    for n in s.app.list_notifications(caller, h.place()).await? {
        let (last, _) = s.app.list_deliveries(caller, h.place(), &n.uuid, None, 0, 1).await?;
        out.push(NotificationItem {
            title: n
                .title
                .clone()
                .unwrap_or_else(|| format!("{} → {}", event_title(&n.event), method_title(&n.method))),
            event_name: n.event.clone(),
            event: event_title(&n.event),
            method: method_title(&n.method),
            target: target_summary(&n.method, &n.config.0),
            enabled: n.enabled,
            disabled: match (&n.disabled_reason, n.disabled_at) {
                (Some(r), Some(t)) => format!("{r} ({})", when(t)),
                (Some(r), None) => r.clone(),
                _ => String::new(),
            },
            failures: n.number_of_failures,
            last: last
                .first()
                .map(|d| format!("{} · {}", d.status, when(d.updated_at)))
                .unwrap_or_else(|| "never".into()),
            uuid: n.uuid,
        });
    }
    Ok(out)
}

/// The Create Notification form's values, as typed.
#[derive(Debug, Default, Clone)]
pub(super) struct NotificationForm {
    pub event: String,
    pub method: String,
    pub title: String,
    pub ref_regex: String,
    pub tag_regex: String,
    pub repository_regex: String,
    pub level: String,
    pub days: String,
    pub url: String,
    pub template: String,
    pub format: String,
    pub email: String,
    pub target: String,
    pub flow_api_token: String,
    pub room_id: String,
    pub notification_token: String,
    /// The notification being edited, when the form edits one (its event and method are fixed).
    pub editing: Option<String>,
}

impl NotificationForm {
    pub(super) fn from_fields(get: impl Fn(&str) -> String) -> NotificationForm {
        let or = |v: String, d: &str| if v.is_empty() { d.to_owned() } else { v };
        NotificationForm {
            event: or(get("event"), "repo_push"),
            method: or(get("method"), "webhook"),
            title: get("title"),
            ref_regex: get("ref_regex"),
            tag_regex: get("tag_regex"),
            repository_regex: get("repository_regex"),
            level: or(get("level"), "1"),
            days: or(get("days"), "7"),
            url: get("url"),
            template: get("template"),
            format: get("format"),
            email: get("email"),
            target: get("target"),
            flow_api_token: get("flow_api_token"),
            room_id: get("room_id"),
            notification_token: get("notification_token"),
            editing: Some(get("editing")).filter(|u| !u.is_empty()),
        }
    }

    /// The form of an existing notification, filled in from its configurations.
    fn of(n: &berth_app::model::NotificationRow) -> NotificationForm {
        let mut fields: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
        fields.insert("event", n.event.clone());
        fields.insert("method", n.method.clone());
        fields.insert("title", n.title.clone().unwrap_or_default());
        for (key, form_key) in EVENT_CONFIG_FIELDS {
            match &n.event_config.0[key] {
                Value::String(v) => fields.insert(form_key, v.clone()),
                Value::Number(v) => fields.insert(form_key, v.to_string()),
                _ => None,
            };
        }
        if let Some(config) = MethodConfig::read_stored(&n.method, &n.config.0) {
            fields.extend(config.form_fields());
        }
        NotificationForm {
            editing: Some(n.uuid.clone()),
            ..NotificationForm::from_fields(|k| fields.get(k).cloned().unwrap_or_default())
        }
    }

    fn is_build(&self) -> bool {
        EventKind::parse(&self.event).is_ok_and(EventKind::is_build)
    }

    /// The form's value of a method's configuration key.
    fn field(&self, key: &str) -> &str {
        match key {
            "url" => &self.url,
            "template" => &self.template,
            "format" => &self.format,
            "email" => &self.email,
            "target" => &self.target,
            "flow_api_token" => &self.flow_api_token,
            "room_id" => &self.room_id,
            "notification_token" => &self.notification_token,
            _ => "",
        }
    }

    /// The API request this form means.
    fn request(&self) -> NotificationRequest {
        let mut event_config = json!({});
        if self.is_build() && !self.ref_regex.trim().is_empty() {
            event_config["ref-regex"] = json!(self.ref_regex.trim());
        }
        if self.event == "repo_push" && !self.tag_regex.trim().is_empty() {
            event_config["tag-regex"] = json!(self.tag_regex.trim());
        }
        // Shown only for namespace-wide notifications (the API refuses it on a repository's).
        if !self.repository_regex.trim().is_empty() {
            event_config["repository-regex"] = json!(self.repository_regex.trim());
        }
        match self.event.as_str() {
            "vulnerability_found" => event_config["level"] = json!(self.level.trim()),
            "repo_image_expiry" => {
                event_config["days"] = match self.days.trim().parse::<i64>() {
                    Ok(n) => json!(n),
                    Err(_) => json!(self.days.trim()),
                }
            }
            _ => {}
        }
        let config = match MethodKind::parse(&self.method) {
            Ok(kind) => MethodConfig::from_form(kind, |key| self.field(key).to_owned()),
            Err(_) => json!({}),
        };
        NotificationRequest {
            event: self.event.clone(),
            method: self.method.clone(),
            config,
            event_config,
            title: (!self.title.trim().is_empty()).then(|| self.title.trim().to_owned()),
        }
    }
}

/// The event configuration keys the form edits, with their form fields.
const EVENT_CONFIG_FIELDS: [(&str, &str); 5] = [
    ("ref-regex", "ref_regex"),
    ("tag-regex", "tag_regex"),
    ("repository-regex", "repository_regex"),
    ("level", "level"),
    ("days", "days"),
];

/// Errors placed next to their fields.
#[derive(Debug, Default)]
pub(super) struct FieldErrors {
    pub ref_regex: Option<String>,
    pub tag_regex: Option<String>,
    pub repository_regex: Option<String>,
    pub level: Option<String>,
    pub days: Option<String>,
    pub url: Option<String>,
    pub template: Option<String>,
    pub format: Option<String>,
    pub email: Option<String>,
    pub target: Option<String>,
    pub flow_api_token: Option<String>,
    pub room_id: Option<String>,
    pub notification_token: Option<String>,
    pub title: Option<String>,
}

/// Puts a validation message next to the form field its `field` names; gives it back when it is
/// about no field of the form (it is then shown above the form).
fn place(errors: &mut FieldErrors, field: Option<&str>, message: String) -> Option<String> {
    let slot = match field {
        Some("ref-regex") => &mut errors.ref_regex,
        Some("tag-regex") => &mut errors.tag_regex,
        Some("repository-regex") => &mut errors.repository_regex,
        Some("level") => &mut errors.level,
        Some("days") => &mut errors.days,
        Some("url") => &mut errors.url,
        Some("template") => &mut errors.template,
        Some("format") => &mut errors.format,
        Some("email") => &mut errors.email,
        Some("target") => &mut errors.target,
        Some("flow_api_token") => &mut errors.flow_api_token,
        Some("room_id") => &mut errors.room_id,
        Some("notification_token") => &mut errors.notification_token,
        Some("title") => &mut errors.title,
        _ => return Some(message),
    };
    *slot = Some(message);
    None
}

#[derive(Template)]
#[template(path = "notification_new.html")]
struct NewPage {
    title: String,
    chrome: Chrome,
    /// Where the holder's notification pages are, and its list of notifications.
    base: String,
    back: String,
    back_label: String,
    /// Whether the notification is namespace-wide (it takes `repository-regex`).
    namespace_wide: bool,
    f: NotificationForm,
    errors: FieldErrors,
    general_error: Option<String>,
    events: Vec<(&'static str, String)>,
    methods: Vec<(&'static str, &'static str, Option<&'static str>)>,
    levels: Vec<(String, &'static str)>,
    targets: Vec<(String, String)>,
    is_build: bool,
    /// The label of the URL field, for the methods configured by a URL.
    url_label: Option<&'static str>,
    email_state: String,
    can_verify: bool,
}

/// The in-app targets to choose from: the namespace (an organization), its teams and their
/// members, and the users granted the repository (robots read no bell).
async fn targets(s: &HttpState, session: &Session, h: &Holder) -> Vec<(String, String)> {
    let caller = &session.ctx.caller;
    let mut out = Vec::new();
    let mut users: Vec<String> = Vec::new();
    let ns = h.namespace.as_str();
    if let Ok(org) = s.app.org_info(caller, ns).await {
        out.push((format!("org:{ns}"), format!("Organization {ns} (its administrators)")));
        for t in org.teams.unwrap_or_default() {
            if let Ok((_, members, _)) = s.app.team_members(caller, ns, &t.name).await {
                users.extend(members.into_iter().map(|a| a.name));
            }
            out.push((format!("team:{}", t.name), format!("Team {}", t.name)));
        }
    } else {
        users.push(ns.to_owned());
    }
    if let Some(name) = &h.repository
        && let Ok(granted) = s.app.user_permissions(caller, ns, name).await
    {
        users.extend(granted.into_iter().map(|u| u.name));
    }
    for user in users {
        let v = format!("user:{user}");
        if !user.contains('+') && !out.iter().any(|(k, _)| *k == v) {
            out.push((v, format!("User {user}")));
        }
    }
    out
}

pub(super) async fn new_page(
    s: &HttpState,
    session: &Session,
    h: &Holder,
    f: NotificationForm,
    errors: FieldErrors,
    general_error: Option<String>,
) -> Result<Response, AppError> {
    // Admins only, like the API.
    s.app.list_notifications(&session.ctx.caller, h.place()).await?;
    let mut email_state = String::new();
    let mut can_verify = false;
    if f.method == "email"
        && let Some(name) = &h.repository
        && !f.email.trim().is_empty()
    {
        match s
            .app
            .authorized_email(&session.ctx.caller, &h.namespace, name, f.email.trim())
            .await
        {
            Ok(a) if a.confirmed => email_state = format!("{} is authorized for this repository.", f.email.trim()),
            Ok(_) => {
                email_state = "A verification mail was sent; the address works once its owner follows the link.".into();
                can_verify = true;
            }
            Err(AppError::NotFound(_)) => {
                email_state = "This address is not authorized yet: send it a verification mail first.".into();
                can_verify = true;
            }
            Err(e) => email_state = e.to_string(),
        }
    }
    let status = if errors_present(&errors) || general_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = NewPage {
        title: if f.editing.is_some() {
            "Edit Notification"
        } else {
            "Create Notification"
        }
        .into(),
        chrome: session.chrome.clone(),
        base: h.base(),
        back: h.list(),
        back_label: h.list_label(),
        is_build: f.is_build(),
        url_label: MethodKind::parse(&f.method).ok().and_then(MethodKind::url_label),
        namespace_wide: h.repository.is_none(),
        events: EventKind::all()
            .iter()
            .filter(|e| h.repository.is_none() || !e.namespace_only())
            .map(|e| (e.name(), e.title().to_owned()))
            .collect(),
        // A method that cannot work here is shown disabled, with the setting that enables it.
        methods: MethodKind::all()
            .iter()
            .map(|m| {
                let off = (*m == MethodKind::Email && s.app.settings().mail.is_none())
                    .then_some("needs a [mail] host in the configuration");
                (m.name(), m.title(), off)
            })
            .collect(),
        levels: berth_app::vocab::Severity::ALL
            .iter()
            .map(|l| (l.index().to_string(), l.as_str()))
            .collect(),
        targets: targets(s, session, h).await,
        f,
        errors,
        general_error,
        email_state,
        can_verify,
    };
    Ok(render(status, &page))
}

fn errors_present(e: &FieldErrors) -> bool {
    [
        &e.ref_regex,
        &e.tag_regex,
        &e.repository_regex,
        &e.level,
        &e.days,
        &e.url,
        &e.template,
        &e.format,
        &e.email,
        &e.target,
        &e.flow_api_token,
        &e.room_id,
        &e.notification_token,
        &e.title,
    ]
    .iter()
    .any(|x| x.is_some())
}

/// Creates a notification from the form; on a validation error the form comes back with the
/// message next to its field and every value kept.
pub(super) async fn create(
    s: &HttpState,
    session: &Session,
    h: &Holder,
    f: NotificationForm,
) -> Result<Response, AppError> {
    match s.app.create_notification(&session.ctx, h.place(), &f.request()).await {
        Ok(_) => Ok(Redirect::to(&Flash::NotificationCreated.after(&h.list())).into_response()),
        Err(AppError::Invalid { field, message }) => {
            let mut errors = FieldErrors::default();
            let general = place(&mut errors, field, message);
            new_page(s, session, h, f, errors, general).await
        }
        Err(e) => Err(e),
    }
}

/// The Edit form of a notification.
pub(super) async fn edit_page(s: &HttpState, session: &Session, h: &Holder, uuid: &str) -> Result<Response, AppError> {
    let n = s.app.get_notification(&session.ctx.caller, h.place(), uuid).await?;
    new_page(s, session, h, NotificationForm::of(&n), FieldErrors::default(), None).await
}

/// Saves the Edit form: the keys the form shows take its values, the others stay (a webhook's
/// headers set through the API, say); the event and the method are the notification's own.
pub(super) async fn save(
    s: &HttpState,
    session: &Session,
    h: &Holder,
    uuid: &str,
    mut f: NotificationForm,
) -> Result<Response, AppError> {
    let n = s.app.get_notification(&session.ctx.caller, h.place(), uuid).await?;
    f.event = n.event.clone();
    f.method = n.method.clone();
    f.editing = Some(n.uuid.clone());
    let mut event_config = n.event_config.0.as_object().cloned().unwrap_or_default();
    for (key, _) in EVENT_CONFIG_FIELDS {
        event_config.remove(key);
    }
    if let Value::Object(asked) = f.request().event_config {
        event_config.extend(asked);
    }
    let config = match MethodKind::parse(&n.method) {
        Ok(kind) => MethodConfig::merge_form(kind, &n.config.0, |k| f.field(k).to_owned()),
        Err(_) => n.config.0.clone(),
    };
    let change = NotificationChange {
        config: Some(config),
        event_config: Some(Value::Object(event_config)),
        title: Some(f.title.trim().to_owned()),
        ..NotificationChange::default()
    };
    match s.app.update_notification(&session.ctx, h.place(), uuid, &change).await {
        Ok(_) => Ok(
            Redirect::to(&Flash::NotificationSaved.after(&format!("{}/notification/{uuid}", h.base()))).into_response(),
        ),
        Err(AppError::Invalid { field, message }) => {
            let mut errors = FieldErrors::default();
            let general = place(&mut errors, field, message);
            new_page(s, session, h, f, errors, general).await
        }
        Err(e) => Err(e),
    }
}

/// Mails a verification link to the form's address, then shows the form again.
pub(super) async fn send_verification(
    s: &HttpState,
    session: &Session,
    h: &Holder,
    f: NotificationForm,
) -> Result<Response, AppError> {
    // Sent from the Edit form: it comes back to the Edit form of a notification of this repository.
    if let Some(uuid) = &f.editing {
        s.app.get_notification(&session.ctx.caller, h.place(), uuid).await?;
    }
    let Some(name) = &h.repository else {
        return Err(AppError::NotFound(
            "namespace-wide notifications mail the namespace's own addresses: there is nothing to verify".into(),
        ));
    };
    match s
        .app
        .authorize_email(&session.ctx.caller, &h.namespace, name, f.email.trim())
        .await
    {
        Ok(_) => new_page(s, session, h, f, FieldErrors::default(), None).await,
        Err(e @ (AppError::Invalid { .. } | AppError::NotConfigured(_) | AppError::Upstream(_))) => {
            let errors = FieldErrors {
                email: Some(e.to_string()),
                ..FieldErrors::default()
            };
            new_page(s, session, h, f, errors, None).await
        }
        Err(e) => Err(e),
    }
}

struct AttemptView {
    number: i32,
    outcome: String,
    code: String,
    duration: i64,
    started: String,
    request: String,
    response: String,
}

struct DeliveryView {
    id: String,
    status: String,
    event: String,
    /// Its build or tags (empty when the event names neither).
    subject: String,
    test: bool,
    created: String,
    error: String,
    redeliverable: bool,
    /// When the next attempt is due (empty unless it waits for a retry).
    next_attempt: String,
    attempts: Vec<AttemptView>,
}

#[derive(Template)]
#[template(path = "notification.html")]
struct DeliveriesPage {
    title: String,
    heading: String,
    chrome: Chrome,
    /// Where the holder's notification pages are, and its list of notifications.
    base: String,
    back: String,
    back_label: String,
    uuid: String,
    flash: Option<String>,
    error: Option<String>,
    event: String,
    method: String,
    target: String,
    enabled: bool,
    disabled: String,
    failures: i32,
    secret: String,
    /// The status the list is filtered by (empty: all), and the statuses to filter by.
    status: String,
    statuses: &'static [berth_core::DeliveryStatus],
    /// Whether it shows one delivery, on that delivery's own page.
    single: bool,
    /// Whether it sends outside Berth (not the bell): only then do the signing secret and
    /// recovery mean anything.
    outside: bool,
    pending: bool,
    deliveries: Vec<DeliveryView>,
}

fn headers_text(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A JSON body indented for reading; any other body as it is.
fn pretty(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

/// A delivery's card: its attempts newest first, with bodies indented for reading.
fn delivery_view(
    d: berth_app::model::DeliveryRow,
    attempts: Vec<berth_app::model::AttemptRow>,
    enabled: bool,
) -> DeliveryView {
    let attempts = attempts
        .into_iter()
        .rev()
        .map(|a| AttemptView {
            number: a.attempt,
            outcome: a.outcome.clone(),
            code: a.response_status.map(|c| c.to_string()).unwrap_or_default(),
            duration: a.duration_ms,
            started: when(a.started_at),
            request: format!(
                "POST {}\n{}\n\n{}",
                a.request_url,
                headers_text(&a.request_headers.0),
                pretty(&a.request_body)
            ),
            response: match (a.response_status, &a.error) {
                (Some(code), _) => format!(
                    "HTTP {code}\n{}\n\n{}",
                    a.response_headers
                        .as_ref()
                        .map(|h| headers_text(&h.0))
                        .unwrap_or_default(),
                    pretty(a.response_body.as_deref().unwrap_or_default())
                ),
                (None, Some(e)) => format!("no response: {e}"),
                (None, None) => "no response".into(),
            },
        })
        .collect();
    let payload = DeliveryPayload::of(&d).ok();
    DeliveryView {
        redeliverable: d.status != berth_core::DeliveryStatus::Pending && enabled,
        test: payload.as_ref().is_some_and(|p| p.test),
        subject: payload
            .and_then(|p| p.data().ok())
            .and_then(|data| berth_app::vocab::subject(&data))
            .unwrap_or_default(),
        // Set only while it waits for a retry: every other status change clears it.
        next_attempt: d.next_attempt_at.map(when).unwrap_or_default(),
        id: d.public_id,
        status: d.status.to_string(),
        event: event_title(&d.event),
        created: when(d.created_at),
        error: d.last_error.unwrap_or_default(),
        attempts,
    }
}

/// Which deliveries a notification's page shows.
pub(super) enum Shown<'a> {
    /// The newest, those with this status only when given.
    Newest(Option<&'a str>),
    /// One delivery, by its id: its own page.
    One(&'a str),
}

/// A notification's page: its settings, and its deliveries (see [`Shown`]), each with its
/// attempts.
#[allow(clippy::too_many_arguments)]
pub(super) async fn deliveries_page(
    s: &HttpState,
    session: &Session,
    h: &Holder,
    uuid: &str,
    shown: Shown<'_>,
    flash: Option<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let caller = &session.ctx.caller;
    let n = s.app.get_notification(caller, h.place(), uuid).await?;
    let secret = s.app.notification_secret(caller, h.place(), uuid).await?;
    let (status, single) = match shown {
        Shown::Newest(status) => (status.filter(|s| !s.is_empty()), None),
        Shown::One(id) => (None, Some(id)),
    };
    let mut deliveries = Vec::new();
    if let Some(id) = single {
        let (d, attempts) = s.app.get_delivery(caller, h.place(), uuid, id).await?;
        deliveries.push(delivery_view(d, attempts, n.enabled));
    } else {
        let (rows, _) = s
            .app
            .list_deliveries_with_attempts(caller, h.place(), uuid, status, 0, 50)
            .await?;
        for (d, attempts) in rows {
            deliveries.push(delivery_view(d, attempts, n.enabled));
        }
    }
    let of = n.title.clone().unwrap_or_else(|| event_title(&n.event));
    let page = DeliveriesPage {
        title: match single {
            Some(id) => format!("Delivery {id} of {of}"),
            None => format!("Deliveries of {of}"),
        },
        heading: n
            .title
            .clone()
            .unwrap_or_else(|| format!("{} → {}", event_title(&n.event), method_title(&n.method))),
        chrome: session.chrome.clone(),
        base: h.base(),
        back: h.list(),
        back_label: h.list_label(),
        uuid: uuid.to_owned(),
        flash,
        error,
        event: event_title(&n.event),
        method: method_title(&n.method),
        target: target_summary(&n.method, &n.config.0),
        enabled: n.enabled,
        disabled: n.disabled_reason.clone().unwrap_or_default(),
        failures: n.number_of_failures,
        secret: secret.secret,
        status: status.unwrap_or_default().to_owned(),
        statuses: berth_core::DeliveryStatus::ALL,
        single: single.is_some(),
        outside: MethodKind::parse(&n.method).is_ok_and(|m| m != MethodKind::QuayNotification),
        pending: deliveries.iter().any(|d| d.status == "pending"),
        deliveries,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(status, &page))
}

/// A notification action from its row or its deliveries page.
pub(super) async fn act(
    s: &HttpState,
    session: &Session,
    h: &Holder,
    uuid: &str,
    verb: &str,
    since: &str,
) -> Result<Response, AppError> {
    let ctx = &session.ctx;
    let back = |flash: Flash| Redirect::to(&flash.after(&format!("{}/notification/{uuid}", h.base()))).into_response();
    let outcome = match verb {
        "test" => s
            .app
            .test_notification(ctx, h.place(), uuid)
            .await
            .map(|_| back(Flash::TestSent)),
        "reset" => s
            .app
            .reset_notification(ctx, h.place(), uuid)
            .await
            .map(|_| back(Flash::Reenabled)),
        "delete" => s
            .app
            .delete_notification(ctx, h.place(), uuid)
            .await
            .map(|_| Redirect::to(&Flash::NotificationDeleted.after(&h.list())).into_response()),
        "rotate" => s
            .app
            .rotate_secret(ctx, h.place(), uuid)
            .await
            .map(|_| back(Flash::SecretRotated)),
        "recover" => {
            let parsed = chrono::NaiveDateTime::parse_from_str(since, "%Y-%m-%dT%H:%M")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(since, "%Y-%m-%dT%H:%M:%S"))
                .map_err(|_| AppError::invalid(format!("invalid since: '{since}' is not a date and time")))?;
            s.app
                .recover(ctx, h.place(), uuid, parsed.and_utc())
                .await
                .map(|_| back(Flash::Recovered))
        }
        "pause" | "resume" => {
            let change = NotificationChange {
                enabled: Some(verb == "resume"),
                ..NotificationChange::default()
            };
            let flash = if verb == "resume" {
                Flash::Resumed
            } else {
                Flash::Paused
            };
            s.app
                .update_notification(ctx, h.place(), uuid, &change)
                .await
                .map(|_| back(flash))
        }
        other => Err(AppError::NotFound(format!("no such action: {other}"))),
    };
    match outcome {
        Err(AppError::Invalid { message: msg, .. }) => {
            deliveries_page(s, session, h, uuid, Shown::Newest(None), None, Some(msg)).await
        }
        other => other,
    }
}

/// Redelivers one delivery.
pub(super) async fn redeliver(
    s: &HttpState,
    session: &Session,
    h: &Holder,
    uuid: &str,
    delivery: &str,
) -> Result<Response, AppError> {
    match s.app.redeliver(&session.ctx, h.place(), uuid, delivery).await {
        Ok(()) => {
            Ok(Redirect::to(&Flash::Redelivered.after(&format!("{}/notification/{uuid}", h.base()))).into_response())
        }
        Err(AppError::Invalid { message: msg, .. }) => {
            deliveries_page(s, session, h, uuid, Shown::Newest(None), None, Some(msg)).await
        }
        Err(e) => Err(e),
    }
}

struct BellItem {
    uuid: String,
    summary: String,
    repo: String,
    created: String,
    dismissed: bool,
}

#[derive(Template)]
#[template(path = "bell.html")]
struct BellPage {
    title: &'static str,
    chrome: Chrome,
    items: Vec<BellItem>,
}

/// The bell's list.
pub(super) async fn bell(session: &Session, app: &App) -> Result<Response, AppError> {
    let (rows, _) = app.my_notifications(&session.ctx.caller, 0, 100).await?;
    let items = rows
        .iter()
        .map(|r| BellItem {
            uuid: r.uuid.clone(),
            summary: App::bell_summary(r),
            repo: r.metadata.0["repository"].as_str().unwrap_or_default().to_owned(),
            created: when(r.created_at),
            dismissed: r.dismissed,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &BellPage {
            title: "Notifications",
            chrome: session.chrome.clone(),
            items,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_land_next_to_their_fields() {
        let mut e = FieldErrors::default();
        assert_eq!(place(&mut e, Some("url"), "Invalid webhook URL".into()), None);
        assert_eq!(
            place(&mut e, Some("ref-regex"), "invalid ref-regex: unclosed group".into()),
            None
        );
        assert_eq!(place(&mut e, Some("email"), "not authorized".into()), None);
        assert_eq!(
            place(&mut e, Some("headers"), "Invalid webhook headers".into()).as_deref(),
            Some("Invalid webhook headers"),
            "a key the form has no field for goes above the form"
        );
        assert_eq!(place(&mut e, None, "too many".into()).as_deref(), Some("too many"));
        assert_eq!(e.url.as_deref(), Some("Invalid webhook URL"));
        assert!(e.ref_regex.is_some() && e.email.is_some() && e.title.is_none());
    }

    #[test]
    fn targets_are_summarised_with_secrets_masked() {
        assert_eq!(
            target_summary("slack", &json!({"url": "https://hooks.slack.com/services/T/B/secret"})),
            "https://hooks.slack.com/services/T/B/***"
        );
        assert_eq!(
            target_summary("webhook", &json!({"url": "https://ci.example.com/hook?token=abc"})),
            "https://ci.example.com/hook?token=***"
        );
        assert_eq!(
            target_summary(
                "quay_notification",
                &json!({"target": {"kind": "team", "name": "devs"}})
            ),
            "team devs"
        );
        assert_eq!(
            target_summary("flowdock", &json!({"flow_api_token": "secret"})),
            "Flowdock token ***"
        );
    }

    #[test]
    fn forms_become_api_requests() {
        let f = NotificationForm::from_fields(|k| match k {
            "event" => "build_success".into(),
            "method" => "quay_notification".into(),
            "ref_regex" => "refs/heads/main".into(),
            "target" => "team:devs".into(),
            _ => String::new(),
        });
        let r = f.request();
        assert_eq!(r.event_config, json!({"ref-regex": "refs/heads/main"}));
        assert_eq!(r.config, json!({"target": {"kind": "team", "name": "devs"}}));
        assert_eq!(r.title, None);
        let hook = NotificationForm::from_fields(|k| match k {
            "method" => "webhook".into(),
            "url" => " https://ci.example/hook ".into(),
            "email" => "ignored@example.com".into(),
            _ => String::new(),
        });
        assert_eq!(
            hook.request().config,
            json!({"url": "https://ci.example/hook"}),
            "only the method's own keys, trimmed, blank ones left out"
        );
        let push = NotificationForm::from_fields(|k| match k {
            "tag_regex" => " v[0-9]+ ".into(),
            "ref_regex" => "refs/heads/main".into(),
            _ => String::new(),
        });
        assert_eq!(
            push.request().event_config,
            json!({"tag-regex": "v[0-9]+"}),
            "a push's filter is on tags, not refs"
        );
        let v = NotificationForm::from_fields(|k| {
            if k == "event" {
                "vulnerability_found".into()
            } else {
                String::new()
            }
        });
        assert_eq!(v.request().event_config, json!({"level": "1"}));
    }

    #[test]
    fn json_bodies_are_indented_and_others_kept_as_they_are() {
        assert_eq!(super::pretty(r#"{"a":[1,2]}"#), "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
        assert_eq!(super::pretty("ok"), "ok");
        assert_eq!(super::pretty("42"), "42", "a bare number is left alone");
        assert_eq!(super::pretty(""), "");
    }
}
