//! The repository pages: `/repository/{ns}/{repo}` with its tabs (Information, Tags, Builds,
//! Security, and Settings for admins), a build's page with its live log, and the forms those
//! pages post (delete a tag, start or cancel a build, add or delete a trigger). Each page and
//! form is an axum route after `/repository/{ns}/{repo}` ([`PAGES`], [`ACTIONS`]); repository
//! names may contain `/`, which `repo_path` re-encodes by the same table before routing.

use super::notify::Holder;
use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use berth_app::builds::StartBuild;
use berth_app::notifications::Place;
use berth_app::secscan::ScanState;
use berth_app::{AppError, Ctx};
use berth_core::RepoRole;

use super::flash::Flash;
use serde::Deserialize;
use serde_json::json;
use tower::Layer;

use super::{Chrome, Session, error_page, render, require, when};
use crate::HttpState;
use crate::extract::ClientAddr;

/// A page under `/repository/{ns}/{repo}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Page {
    Repo,
    Build,
    BuildLog,
    NewNotification,
    Notification,
    EditNotification,
    Delivery,
}

/// The pages, by the route that follows `/repository/{ns}/{repo}`.
pub(super) const PAGES: [(&str, Page); 8] = [
    ("", Page::Repo),
    ("/", Page::Repo),
    ("/build/{uuid}", Page::Build),
    ("/build/{uuid}/log", Page::BuildLog),
    ("/notification/new", Page::NewNotification),
    ("/notification/{uuid}", Page::Notification),
    ("/notification/{uuid}/edit", Page::EditNotification),
    ("/notification/{uuid}/delivery/{id}", Page::Delivery),
];

/// The parameters of the repository routes; those a route does not have are empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RepoParams {
    ns: String,
    repo: String,
    uuid: String,
    id: String,
    tag: String,
    kind: String,
    name: String,
    verb: String,
}

#[derive(Debug, Deserialize, Default)]
pub(super) struct RepoQuery {
    #[serde(default)]
    tab: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    start: i64,
    #[serde(default)]
    flash: String,
    /// Everything else (the Create Notification form's fields when it is shown again).
    #[serde(flatten)]
    extra: std::collections::HashMap<String, String>,
}

pub(super) async fn get(
    page: Page,
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    Path(p): Path<RepoParams>,
    uri: axum::http::Uri,
    Query(q): Query<RepoQuery>,
) -> Response {
    // Signing in comes back here with the query (`?tab=tags`) kept.
    let session = match require(&s, &headers, ip, super::target(&uri)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (ns, name, uuid) = (p.ns.as_str(), p.repo.as_str(), p.uuid.as_str());
    let result = match page {
        Page::Repo => repo_page(&s, &session, ns, name, &q, None).await,
        Page::Build => build_page(&s, &session, ns, name, uuid).await,
        Page::BuildLog => log_fragment(&s, &session, ns, name, uuid, q.start).await,
        Page::NewNotification => {
            let f = super::notify::NotificationForm::from_fields(|k| q.extra.get(k).cloned().unwrap_or_default());
            super::notify::new_page(&s, &session, &Holder::repo(ns, name), f, Default::default(), None).await
        }
        Page::Notification => {
            let flash = Flash::text_of(&q.flash);
            let status = q.extra.get("status").map(String::as_str);
            let shown = super::notify::Shown::Newest(status);
            super::notify::deliveries_page(&s, &session, &Holder::repo(ns, name), uuid, shown, flash, None).await
        }
        Page::EditNotification => super::notify::edit_page(&s, &session, &Holder::repo(ns, name), uuid).await,
        Page::Delivery => {
            let (shown, flash) = (super::notify::Shown::One(&p.id), Flash::text_of(&q.flash));
            super::notify::deliveries_page(&s, &session, &Holder::repo(ns, name), uuid, shown, flash, None).await
        }
    };
    result.unwrap_or_else(|e| error_page(&session.chrome, e))
}

/// A tab: its key and label.
type Tab = (&'static str, &'static str);

struct TagView {
    name: String,
    short: String,
    digest: String,
    size: String,
    platforms: String,
    updated: String,
    /// When it expires (empty when it does not).
    expires: String,
}

struct BuildItem {
    uuid: String,
    name: String,
    phase: String,
    tags: String,
    trigger: String,
    commit: String,
    started: String,
}

struct VulnRow {
    package: String,
    version: String,
    id: String,
    link: String,
    severity: String,
    fixed_by: String,
}

struct SecurityView {
    digest: String,
    status: String,
    reason: String,
    counts: Vec<(String, usize)>,
    packages: usize,
    rows: Vec<VulnRow>,
}

struct PermissionItem {
    name: String,
    kind: &'static str,
    role: &'static str,
}

struct TriggerItem {
    uuid: String,
    service: String,
    source: String,
    webhook_url: String,
    secret: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "repo.html")]
struct RepoPage {
    title: String,
    chrome: Chrome,
    path: String,
    tab: String,
    tabs: Vec<Tab>,
    flash: Option<String>,
    error: Option<String>,
    host: String,
    /// ` --tls-verify=false` on a plain-HTTP instance.
    tls: &'static str,
    /// The newest tag, which the pull command names.
    newest_tag: Option<String>,
    description: String,
    /// `public` or `private`.
    visibility: String,
    last_push: Option<String>,
    can_write: bool,
    tags: Vec<TagView>,
    builds_enabled: bool,
    builds: Vec<BuildItem>,
    security_tags: Vec<String>,
    selected_tag: String,
    security: Option<SecurityView>,
    triggers: Vec<TriggerItem>,
    notifications: Vec<super::notify::NotificationItem>,
    /// How many notifications there are before the filter, and the filter (event name and
    /// `enabled`/`disabled`, empty: any) with the events to choose from.
    notifications_total: usize,
    notification_event: String,
    notification_status: String,
    notification_events: Vec<(String, String)>,
    permissions: Vec<PermissionItem>,
    /// Who may write to it: `NORMAL`, `READ_ONLY` or `MIRROR`.
    state: String,
    /// The Mirroring tab: the mirror, when it has one, and the robots that may write for it.
    mirror: Option<MirrorView>,
    robots: Vec<String>,
}

/// A mirror as the Mirroring tab shows and edits it.
struct MirrorView {
    enabled: bool,
    reference: String,
    username: String,
    interval: i64,
    start: String,
    robot: String,
    timeout: i64,
    globs: String,
    verify_tls: bool,
    architectures: String,
    status: String,
    retries: i32,
    error: String,
    log: String,
}

/// The API body the Mirroring form means: the fields it has; an empty password keeps the stored
/// one, and a number that does not parse is passed on for the use case to refuse by name.
fn mirror_body(get: impl Fn(&str) -> String) -> serde_json::Value {
    let number = |k: &str| {
        let v = get(k);
        v.trim().parse::<i64>().map_or_else(|_| json!(v), |n| json!(n))
    };
    let list = |k: &str| -> Vec<String> {
        get(k)
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    };
    // A `datetime-local` field: `YYYY-MM-DDTHH:MM`, read as UTC.
    let start = get("sync_start_date");
    let start = if start.len() == 16 {
        format!("{start}:00Z")
    } else {
        start
    };
    let mut body = json!({
        "is_enabled": get("is_enabled") == "on",
        "external_reference": get("external_reference").trim(),
        "external_registry_username": get("external_registry_username").trim(),
        "sync_interval": number("sync_interval"),
        "sync_start_date": start,
        "robot_username": get("robot_username"),
        "skopeo_timeout_interval": number("skopeo_timeout_interval"),
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": list("tags")},
        "external_registry_config": {"verify_tls": get("verify_tls") == "on", "unsigned_images": false, "proxy": {}},
        "architecture_filter": list("architecture_filter"),
    });
    let password = get("external_registry_password");
    if !password.is_empty() {
        body["external_registry_password"] = json!(password);
    }
    body
}

fn human_size(bytes: i64) -> String {
    let b = bytes as f64;
    match bytes {
        n if n >= 1 << 30 => format!("{:.1} GiB", b / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", b / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", b / 1024.0),
        n => format!("{n} B"),
    }
}

async fn repo_page(
    s: &HttpState,
    session: &Session,
    ns: &str,
    name: &str,
    q: &RepoQuery,
    error: Option<String>,
) -> Result<Response, AppError> {
    let app = &s.app;
    let caller = &session.ctx.caller;
    let (repo, role) = app.repo_access(caller, ns, name, RepoRole::Read).await?;
    let is_admin = role >= RepoRole::Admin;
    let mut tabs: Vec<Tab> = vec![
        ("info", "Information"),
        ("tags", "Tags"),
        ("builds", "Builds"),
        ("security", "Security"),
    ];
    if is_admin {
        tabs.push(("mirroring", "Mirroring"));
        tabs.push(("settings", "Settings"));
    }
    let tab = if tabs.iter().any(|t| t.0 == q.tab) {
        q.tab.clone()
    } else {
        "info".to_owned()
    };
    let (recent, _) = app
        .repo_tags(caller, ns, name, None, berth_app::paging::Paging::newest())
        .await?;
    let mut page = RepoPage {
        title: format!("{ns}/{name}"),
        chrome: session.chrome.clone(),
        path: format!("{ns}/{name}"),
        tab: tab.clone(),
        tabs,
        flash: Flash::text_of(&q.flash),
        error,
        host: app.settings().server_hostname.clone(),
        tls: app.settings().podman_tls_flag(),
        newest_tag: recent.first().map(|t| t.name.clone()),
        description: repo.description.clone(),
        visibility: repo.visibility.as_str().to_owned(),
        last_push: recent
            .first()
            .map(|t| format!("{} ({})", when(t.last_modified), t.name)),
        can_write: role >= RepoRole::Write,
        tags: Vec::new(),
        builds_enabled: app.settings().builds.enabled,
        builds: Vec::new(),
        security_tags: recent.iter().map(|t| t.name.clone()).collect(),
        selected_tag: String::new(),
        security: None,
        triggers: Vec::new(),
        notifications: Vec::new(),
        notifications_total: 0,
        notification_event: q.extra.get("nevent").cloned().unwrap_or_default(),
        notification_status: q.extra.get("nstatus").cloned().unwrap_or_default(),
        notification_events: Vec::new(),
        permissions: Vec::new(),
        state: repo.state.as_str().to_owned(),
        mirror: None,
        robots: Vec::new(),
    };
    match tab.as_str() {
        "tags" => {
            for t in &recent {
                let platforms = app.platforms(&repo, &t.manifest_digest).await?;
                page.tags.push(TagView {
                    name: t.name.clone(),
                    short: t.manifest_digest.chars().take(19).collect(),
                    digest: t.manifest_digest.clone(),
                    size: t.size.map(human_size).unwrap_or_else(|| "—".into()),
                    platforms: if platforms.is_empty() {
                        "—".into()
                    } else {
                        platforms.join(", ")
                    },
                    updated: when(t.last_modified),
                    expires: t.expires_at.map(when).unwrap_or_default(),
                });
            }
        }
        "builds" => {
            for v in app.list_builds(&session.ctx, ns, name, 50).await? {
                let b = &v.build;
                page.builds.push(BuildItem {
                    uuid: b.uuid.clone(),
                    name: b.display_name.clone(),
                    phase: b.phase.to_string(),
                    tags: b.docker_tags.0.join(", "),
                    trigger: v.trigger.as_ref().map(|t| t.service.clone()).unwrap_or_else(|| {
                        b.manual_user
                            .clone()
                            .map(|u| format!("upload by {u}"))
                            .unwrap_or_default()
                    }),
                    commit: b.trigger_metadata.0["commit_info"]["short_sha"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    started: when(b.created_at),
                });
            }
        }
        "security" => {
            let chosen = recent.iter().find(|t| t.name == q.tag).or(recent.first());
            if let Some(t) = chosen {
                page.selected_tag = t.name.clone();
                page.security = Some(security_view(s, session, ns, name, &t.manifest_digest).await?);
            }
        }
        "mirroring" => {
            page.mirror = match app.get_mirror(caller, ns, name).await {
                Ok(v) => {
                    let m = v.row;
                    let list = |v: &serde_json::Value| -> String {
                        v.as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    Some(MirrorView {
                        enabled: m.is_enabled,
                        reference: m.external_reference,
                        username: m.username.unwrap_or_default(),
                        interval: m.sync_interval,
                        start: m.sync_start_date.format("%Y-%m-%dT%H:%M").to_string(),
                        robot: v.robot_username,
                        timeout: m.timeout_secs,
                        globs: list(&m.root_rule.0["rule_value"]),
                        verify_tls: m.registry_config.0["verify_tls"].as_bool().unwrap_or(true),
                        architectures: list(&m.architecture_filter.0),
                        status: m.sync_status,
                        retries: m.sync_retries_remaining,
                        error: m.last_error.unwrap_or_default(),
                        log: m.last_log,
                    })
                }
                Err(AppError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            let owner = if repo.namespace_kind == berth_core::AccountKind::Organization {
                berth_app::accounts::AdminNamespace::Org(ns)
            } else {
                berth_app::accounts::AdminNamespace::CurrentUser
            };
            page.robots = app
                .list_robots(caller, owner)
                .await
                .map(|r| r.into_iter().map(|r| r.account.name).collect())
                .unwrap_or_default();
        }
        "settings" => {
            let all = super::notify::items(s, session, &Holder::repo(ns, name)).await?;
            page.notifications_total = all.len();
            for n in &all {
                if !page.notification_events.iter().any(|(k, _)| *k == n.event_name) {
                    page.notification_events.push((n.event_name.clone(), n.event.clone()));
                }
            }
            let (event, status) = (&page.notification_event, &page.notification_status);
            page.notifications = all
                .into_iter()
                .filter(|n| event.is_empty() || n.event_name == *event)
                .filter(|n| match status.as_str() {
                    "enabled" => n.enabled,
                    "disabled" => !n.enabled,
                    _ => true,
                })
                .collect();
            for u in app.user_permissions(caller, ns, name).await? {
                page.permissions.push(PermissionItem {
                    name: u.name,
                    kind: if u.is_robot { "robot" } else { "user" },
                    role: u.role.as_str(),
                });
            }
            for t in app.team_permissions(caller, ns, name).await? {
                page.permissions.push(PermissionItem {
                    name: t.name,
                    kind: "team",
                    role: t.role.as_str(),
                });
            }
            for t in app.list_triggers(&session.ctx, ns, name).await? {
                page.triggers.push(TriggerItem {
                    secret: app.trigger_secret(&t)?,
                    webhook_url: app.trigger_webhook_url(&t.uuid),
                    source: t.config.0["build_source"].as_str().unwrap_or("").to_owned(),
                    uuid: t.uuid,
                    service: t.service,
                    active: t.activated,
                });
            }
        }
        _ => {}
    }
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(status, &page))
}

async fn security_view(
    s: &HttpState,
    session: &Session,
    ns: &str,
    name: &str,
    digest: &str,
) -> Result<SecurityView, AppError> {
    let report = s.app.security_report(&session.ctx.caller, ns, name, digest).await?;
    let reason = match &report.state {
        ScanState::Failed(r) | ScanState::Unsupported(r) => r.clone(),
        _ => String::new(),
    };
    let mut counts = Vec::new();
    for level in berth_app::vocab::Severity::ALL {
        let n = report.vulnerabilities.iter().filter(|v| v.severity == level).count();
        if n > 0 {
            counts.push((level.as_str().to_owned(), n));
        }
    }
    let mut rows = Vec::new();
    if let Some(image) = &report.image {
        for v in &report.vulnerabilities {
            for (i, fix) in &v.packages {
                let Some(p) = image.packages.get(*i) else { continue };
                rows.push(VulnRow {
                    package: p.package.name.clone(),
                    version: p.package.version.clone(),
                    id: v.advisory.id.clone(),
                    link: web_link(&v.advisory.link()),
                    severity: v.severity.as_str().to_owned(),
                    fixed_by: fix.clone().unwrap_or_default(),
                });
            }
        }
    }
    Ok(SecurityView {
        digest: report.digest.clone(),
        status: report.state.as_str().to_owned(),
        reason,
        counts,
        packages: report.image.as_ref().map_or(0, |i| i.packages.len()),
        rows,
    })
}

#[derive(Template)]
#[template(path = "build.html")]
struct BuildPage {
    title: String,
    chrome: Chrome,
    path: String,
    uuid: String,
    name: String,
    phase: String,
    tags: String,
    started: String,
    source: String,
    error: String,
    image: String,
    cancellable: bool,
    lines: Vec<String>,
    next: i64,
    finished: bool,
}

fn line_text(l: &berth_app::model::LogLine) -> String {
    match l.kind.as_str() {
        "phase" => format!("== {} ==", l.message),
        "command" => format!("$ {}", l.message),
        "error" => format!("error: {}", l.message),
        _ => l.message.clone(),
    }
}

async fn build_page(s: &HttpState, session: &Session, ns: &str, name: &str, uuid: &str) -> Result<Response, AppError> {
    let v = s.app.get_build(&session.ctx, ns, name, uuid).await?;
    let (lines, total) = s.app.build_logs(&session.ctx, ns, name, uuid, 0).await?;
    let b = &v.build;
    let page = BuildPage {
        title: format!("Build {}", b.display_name),
        chrome: session.chrome.clone(),
        path: format!("{ns}/{name}"),
        uuid: b.uuid.clone(),
        name: b.display_name.clone(),
        phase: b.phase.to_string(),
        tags: b.docker_tags.0.join(", "),
        started: when(b.created_at),
        source: b.source.0.to_string(),
        error: b.error.clone().unwrap_or_default(),
        image: b.image_id.clone().unwrap_or_default(),
        cancellable: v.can_write && !b.phase.is_final(),
        lines: lines.iter().map(line_text).collect(),
        next: total,
        finished: b.phase.is_final(),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "log_fragment.html")]
struct LogFragment {
    path: String,
    uuid: String,
    lines: Vec<String>,
    next: i64,
    finished: bool,
    phase: String,
}

async fn log_fragment(
    s: &HttpState,
    session: &Session,
    ns: &str,
    name: &str,
    uuid: &str,
    start: i64,
) -> Result<Response, AppError> {
    let v = s.app.get_build(&session.ctx, ns, name, uuid).await?;
    let (lines, total) = s.app.build_logs(&session.ctx, ns, name, uuid, start).await?;
    // Finished only once every line has been sent.
    let finished = v.build.phase.is_final() && start + lines.len() as i64 >= total;
    let page = LogFragment {
        path: format!("{ns}/{name}"),
        uuid: uuid.to_owned(),
        next: start + lines.len() as i64,
        lines: lines.iter().map(line_text).collect(),
        finished,
        phase: v.build.phase.to_string(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// What a form post on a repository page does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    DeleteTag,
    StartBuild,
    CancelBuild,
    AddTrigger,
    DeleteTrigger,
    CreateNotification,
    EditNotification,
    SendVerification,
    Notification,
    Redeliver,
    Grant,
    Revoke,
    SetDescription,
    BulkNotifications,
    SetVisibility,
    DeleteRepo,
    ChangeState,
    SaveMirror,
    SyncNow,
    SyncCancel,
}

/// The forms, by the route that follows `/repository/{ns}/{repo}`.
pub(super) const ACTIONS: [(&str, Action); 20] = [
    ("/tag/{tag}/delete", Action::DeleteTag),
    ("/builds", Action::StartBuild),
    ("/build/{uuid}/cancel", Action::CancelBuild),
    ("/triggers", Action::AddTrigger),
    ("/trigger/{uuid}/delete", Action::DeleteTrigger),
    ("/notifications", Action::CreateNotification),
    ("/notification/{uuid}/edit", Action::EditNotification),
    ("/authorizedemail", Action::SendVerification),
    ("/notification/{uuid}/{verb}", Action::Notification),
    ("/notification/{uuid}/delivery/{id}/redeliver", Action::Redeliver),
    ("/permissions", Action::Grant),
    ("/permission/{kind}/{name}/delete", Action::Revoke),
    ("/description", Action::SetDescription),
    ("/notifications/bulk", Action::BulkNotifications),
    ("/visibility", Action::SetVisibility),
    ("/delete", Action::DeleteRepo),
    ("/changestate", Action::ChangeState),
    ("/mirror", Action::SaveMirror),
    ("/mirror/sync-now", Action::SyncNow),
    ("/mirror/sync-cancel", Action::SyncCancel),
];

impl Action {
    /// The tab a refused form is shown again on.
    fn tab(self) -> &'static str {
        match self {
            Action::DeleteTag => "tags",
            Action::StartBuild | Action::CancelBuild => "builds",
            Action::ChangeState | Action::SaveMirror | Action::SyncNow | Action::SyncCancel => "mirroring",
            _ => "settings",
        }
    }
}

/// `link` if it is an http(s) URL (an advisory feed could name `javascript:` or `data:`), else
/// empty: only the advisory's id is shown.
fn web_link(link: &str) -> String {
    match url::Url::parse(link) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => link.to_owned(),
        _ => String::new(),
    }
}

/// A form's fields: URL-encoded or multipart (the build upload).
pub(super) struct Fields {
    /// Every field in order, repeated names included (checkboxes).
    pairs: Vec<(String, String)>,
    file: Option<Vec<u8>>,
}

impl Fields {
    /// A field's value (the last one, if it repeats), or empty.
    pub(super) fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of a field that may repeat.
    fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

async fn fields(headers: &HeaderMap, body: axum::body::Body, limit: usize) -> Result<Fields, AppError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut out = Fields {
        pairs: Vec::new(),
        file: None,
    };
    if content_type.starts_with("multipart/form-data") {
        let req = axum::http::Request::builder()
            .header(axum::http::header::CONTENT_TYPE, content_type)
            .body(limited(body, limit))
            .map_err(|e| AppError::invalid(e.to_string()))?;
        // The form's own limit (the build context's), not the extractor's default of 2 MB.
        let extract = tower::service_fn(|req: axum::extract::Request| async move {
            <Multipart as axum::extract::FromRequest<()>>::from_request(req, &()).await
        });
        let mut multipart = tower::ServiceExt::oneshot(axum::extract::DefaultBodyLimit::max(limit).layer(extract), req)
            .await
            .map_err(|e| AppError::invalid(format!("unreadable form: {e}")))?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| AppError::invalid(format!("unreadable form: {e}")))?
        {
            let name = field.name().unwrap_or("").to_owned();
            let is_file = field.file_name().is_some();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| AppError::invalid(format!("unreadable upload: {e}")))?;
            if is_file {
                out.file = Some(bytes.to_vec());
            } else {
                out.pairs.push((name, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    } else {
        let bytes = axum::body::to_bytes(body, 64 << 10)
            .await
            .map_err(|_| AppError::invalid("the form is too large"))?;
        out.pairs = url_pairs(&bytes);
    }
    Ok(out)
}

/// The body, failing past `limit` bytes.
fn limited(body: axum::body::Body, limit: usize) -> axum::body::Body {
    axum::body::Body::from_stream(futures_util::stream::unfold(
        (body.into_data_stream(), 0usize),
        move |(mut s, seen)| async move {
            use futures_util::StreamExt;
            match s.next().await {
                Some(Ok(chunk)) => {
                    let seen = seen + chunk.len();
                    if seen > limit {
                        Some((Err(std::io::Error::other("the upload is too large")), (s, seen)))
                    } else {
                        Some((Ok(chunk), (s, seen)))
                    }
                }
                Some(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), (s, seen))),
                None => None,
            }
        },
    ))
}

fn url_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(bytes).unwrap_or_default()
}

pub(super) async fn post(
    action: Action,
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    Path(p): Path<RepoParams>,
    uri: axum::http::Uri,
    body: axum::body::Body,
) -> Response {
    let session = match require(&s, &headers, ip, uri.path()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (ns, repo) = (p.ns.as_str(), p.repo.as_str());
    let limit = usize::try_from(s.app.settings().builds.max_context_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 << 10);
    let form = match fields(&headers, body, limit).await {
        Ok(f) => f,
        Err(e) => return error_page(&session.chrome, e),
    };
    if let Some(refused) = session.refused(form.get("csrf")) {
        return refused;
    }
    let ctx = &session.ctx;
    let done = |repo: &str, tab: &str, flash: Flash| {
        Redirect::to(&flash.after(&format!("/repository/{ns}/{repo}?tab={tab}"))).into_response()
    };
    let outcome: Result<Response, AppError> = async {
        Ok(match action {
            Action::DeleteTag => {
                s.app.delete_tag(ctx, ns, repo, &p.tag).await?;
                done(repo, "tags", Flash::TagDeleted)
            }
            Action::StartBuild => {
                let Some(file) = form.file.as_ref().filter(|f| !f.is_empty()) else {
                    return Err(AppError::invalid("choose a Dockerfile or an archive to build"));
                };
                let uuid = start_upload_build(&s, ctx, ns, repo, file, form.get("tags")).await?;
                Redirect::to(&format!("/repository/{ns}/{repo}/build/{uuid}")).into_response()
            }
            Action::CancelBuild => {
                s.app.cancel_build(ctx, ns, repo, &p.uuid).await?;
                Redirect::to(&format!("/repository/{ns}/{repo}/build/{}", p.uuid)).into_response()
            }
            Action::AddTrigger => {
                let config = json!({
                    "build_source": form.get("build_source").trim(),
                    "dockerfile_path": form.get("dockerfile_path"),
                    "context": form.get("context"),
                    "branchtag_regex": form.get("branchtag_regex"),
                });
                s.app.add_trigger(ctx, ns, repo, form.get("service"), &config).await?;
                done(repo, "settings", Flash::TriggerAdded)
            }
            Action::DeleteTrigger => {
                s.app.delete_trigger(ctx, ns, repo, &p.uuid).await?;
                done(repo, "settings", Flash::TriggerDeleted)
            }
            Action::CreateNotification => {
                let f = super::notify::NotificationForm::from_fields(|k| form.get(k).to_owned());
                super::notify::create(&s, &session, &Holder::repo(ns, repo), f).await?
            }
            Action::EditNotification => {
                let f = super::notify::NotificationForm::from_fields(|k| form.get(k).to_owned());
                super::notify::save(&s, &session, &Holder::repo(ns, repo), &p.uuid, f).await?
            }
            Action::SendVerification => {
                let f = super::notify::NotificationForm::from_fields(|k| form.get(k).to_owned());
                super::notify::send_verification(&s, &session, &Holder::repo(ns, repo), f).await?
            }
            Action::Notification => {
                super::notify::act(
                    &s,
                    &session,
                    &Holder::repo(ns, repo),
                    &p.uuid,
                    &p.verb,
                    form.get("since"),
                )
                .await?
            }
            Action::Redeliver => {
                super::notify::redeliver(&s, &session, &Holder::repo(ns, repo), &p.uuid, &p.id).await?
            }
            Action::Grant => {
                let role = RepoRole::parse(form.get("role")).map_err(|e| AppError::invalid(e.to_string()))?;
                let who = form.get("name").trim();
                if form.get("kind") == "team" {
                    s.app.set_team_permission(ctx, ns, repo, who, role).await?;
                } else {
                    s.app.set_user_permission(ctx, ns, repo, who, role).await?;
                }
                done(repo, "settings", Flash::PermissionSaved)
            }
            Action::Revoke => {
                if p.kind == "team" {
                    s.app.delete_team_permission(ctx, ns, repo, &p.name).await?;
                } else {
                    s.app.delete_user_permission(ctx, ns, repo, &p.name).await?;
                }
                done(repo, "settings", Flash::PermissionRemoved)
            }
            Action::BulkNotifications => {
                let mut chosen = form.all("uuid");
                chosen.sort_unstable();
                chosen.dedup();
                if chosen.is_empty() {
                    return Err(AppError::invalid("choose at least one notification"));
                }
                // All or nothing: one that is not this repository's changes none.
                let flash = match form.get("op") {
                    "enable" => {
                        s.app.reset_notifications(ctx, Place::repo(ns, repo), &chosen).await?;
                        Flash::NotificationsEnabled
                    }
                    "delete" => {
                        s.app.delete_notifications(ctx, Place::repo(ns, repo), &chosen).await?;
                        Flash::NotificationsDeleted
                    }
                    other => {
                        return Err(AppError::invalid(format!(
                            "unknown action '{other}' for the chosen notifications: enable or delete"
                        )));
                    }
                };
                done(repo, "settings", flash)
            }
            Action::SetDescription => {
                s.app
                    .set_repo_description(ctx, ns, repo, form.get("description"))
                    .await?;
                done(repo, "settings", Flash::DescriptionSaved)
            }
            Action::SetVisibility => {
                let visibility = berth_core::Visibility::parse(form.get("visibility"))
                    .map_err(|e| AppError::invalid(e.to_string()))?;
                s.app.set_repo_visibility(ctx, ns, repo, visibility).await?;
                done(repo, "settings", Flash::VisibilitySaved)
            }
            Action::ChangeState => {
                s.app.set_repo_state(ctx, ns, repo, form.get("state")).await?;
                done(repo, "mirroring", Flash::StateSaved)
            }
            Action::SaveMirror => {
                let exists = s.app.get_mirror(&ctx.caller, ns, repo).await.is_ok();
                let body = mirror_body(|k| form.get(k).to_owned());
                s.app.put_mirror(ctx, ns, repo, &body, !exists).await?;
                done(repo, "mirroring", Flash::MirrorSaved)
            }
            Action::SyncNow => {
                s.app.mirror_sync_now(ctx, ns, repo).await.map_err(|e| match e {
                    AppError::Conflict(m) => AppError::invalid(m),
                    e => e,
                })?;
                done(repo, "mirroring", Flash::SyncAsked)
            }
            Action::SyncCancel => {
                s.app.mirror_sync_cancel(ctx, ns, repo).await?;
                done(repo, "mirroring", Flash::SyncCancelled)
            }
            Action::DeleteRepo => {
                let typed = form.get("confirm").trim();
                if typed != repo && typed != format!("{ns}/{repo}").as_str() {
                    return Err(AppError::invalid(format!(
                        "to delete the repository, type its name '{repo}' in the box"
                    )));
                }
                s.app.delete_repo(ctx, ns, repo).await?;
                Redirect::to(&format!("/repository/{ns}")).into_response()
            }
        })
    }
    .await;
    match outcome {
        Ok(r) => r,
        Err(e @ AppError::Invalid { .. }) => {
            let tab = action.tab();
            let q = RepoQuery {
                tab: tab.to_owned(),
                ..RepoQuery::default()
            };
            repo_page(&s, &session, ns, repo, &q, Some(e.to_string()))
                .await
                .unwrap_or_else(|e| error_page(&session.chrome, e))
        }
        Err(e) => error_page(&session.chrome, e),
    }
}

/// Starts a build from an uploaded file through the same filedrop the API uses.
async fn start_upload_build(
    s: &HttpState,
    ctx: &Ctx,
    ns: &str,
    repo: &str,
    file: &[u8],
    tags: &str,
) -> Result<String, AppError> {
    let (file_id, token) = s.app.request_filedrop(ctx, "application/octet-stream").await?;
    let mut reader = file;
    s.app
        .fill_filedrop(&file_id, &token, Some(file.len() as u64), &mut reader)
        .await?;
    let req = StartBuild {
        file_id: Some(file_id),
        docker_tags: tags.split_whitespace().map(str::to_owned).collect(),
        ..StartBuild::default()
    };
    Ok(s.app.start_build(ctx, ns, repo, &req).await?.uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisory_links_are_web_links_only() {
        assert_eq!(
            web_link("https://osv.dev/vulnerability/X"),
            "https://osv.dev/vulnerability/X"
        );
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "JAVASCRIPT:alert(1)",
            "//evil.example",
            "",
        ] {
            assert_eq!(web_link(bad), "", "{bad}");
        }
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            url_pairs(b"csrf=x&tags=v1+v2&path=a%2Fb"),
            [
                ("csrf".to_owned(), "x".to_owned()),
                ("tags".to_owned(), "v1 v2".to_owned()),
                ("path".to_owned(), "a/b".to_owned())
            ]
        );
    }
}
