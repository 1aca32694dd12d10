//! Organization pages: teams with their roles and members, robot accounts (created with their
//! token shown once, deleted), and Settings → Notifications, the organization's namespace-wide
//! notifications (the same forms and pages as a repository's, from `notify`, under
//! `/organization/{org}`). Repository roles for users, teams and robots are granted in each
//! repository's Settings. Organization admins manage; members look.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use berth_app::AppError;
use berth_app::accounts::AdminNamespace;
use berth_core::TeamRole;

use super::flash::Flash;
use super::notify::{Holder, NotificationForm, Shown};
use super::{Chrome, Session, error_page, render, require};
use crate::HttpState;
use crate::extract::ClientAddr;

struct TeamItem {
    name: String,
    role: &'static str,
    members: Vec<String>,
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage {
    title: String,
    chrome: Chrome,
    org: String,
    host: String,
    /// ` --tls-verify=false` on a plain-HTTP instance.
    tls: &'static str,
    is_admin: bool,
    /// The organization's repositories the caller may see.
    repos: Vec<super::RepoItem>,
    teams: Vec<TeamItem>,
    robots: Vec<(String, String)>,
    new_token: Option<(String, String)>,
    flash: Option<String>,
    error: Option<String>,
}

async fn page(
    s: &HttpState,
    session: &Session,
    org: &str,
    new_token: Option<(String, String)>,
    flash: Option<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let caller = &session.ctx.caller;
    let info = s.app.org_info(caller, org).await?;
    if !info.is_member && !info.is_admin {
        return Err(AppError::NotFound(format!("no organization {org} that you belong to")));
    }
    let mut teams = Vec::new();
    for t in info.teams.unwrap_or_default() {
        let members = match s.app.team_members(caller, org, &t.name).await {
            Ok((_, m, _)) => m.into_iter().map(|a| a.name).collect(),
            Err(_) => Vec::new(),
        };
        teams.push(TeamItem {
            role: t.role.as_str(),
            name: t.name,
            members,
        });
    }
    let repos = super::repo_items(s, caller, "", Some(org)).await?;
    let robots = if info.is_admin {
        s.app
            .list_robots(caller, AdminNamespace::Org(org))
            .await?
            .into_iter()
            .map(|r| {
                let short = r
                    .account
                    .name
                    .split_once('+')
                    .map(|(_, s)| s.to_owned())
                    .unwrap_or_default();
                (r.account.name, short)
            })
            .collect()
    } else {
        Vec::new()
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        &OrgPage {
            title: format!("Organization {org}"),
            chrome: session.chrome.clone(),
            org: org.to_owned(),
            host: s.app.settings().server_hostname.clone(),
            tls: s.app.settings().podman_tls_flag(),
            is_admin: info.is_admin,
            repos,
            teams,
            robots,
            new_token,
            flash,
            error,
        },
    ))
}

/// The organization page's query: the message a redirect asks it to show.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct FlashQuery {
    #[serde(default)]
    flash: String,
}

pub(super) async fn get(
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    Path(org): Path<String>,
    uri: axum::http::Uri,
    axum::extract::Query(q): axum::extract::Query<FlashQuery>,
) -> Response {
    let session = match require(&s, &headers, ip, super::target(&uri)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    page(&s, &session, &org, None, Flash::text_of(&q.flash), None)
        .await
        .unwrap_or_else(|e| error_page(&session.chrome, e))
}

/// A page of an organization's namespace-wide notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Page {
    Notifications,
    NewNotification,
    Notification,
    EditNotification,
    Delivery,
}

/// The notification pages, by the route that follows `/organization/{org}`.
pub(super) const PAGES: [(&str, Page); 5] = [
    ("/notifications", Page::Notifications),
    ("/notification/new", Page::NewNotification),
    ("/notification/{uuid}", Page::Notification),
    ("/notification/{uuid}/edit", Page::EditNotification),
    ("/notification/{uuid}/delivery/{id}", Page::Delivery),
];

#[derive(Template)]
#[template(path = "org_notifications.html")]
struct NotificationsPage {
    title: String,
    chrome: Chrome,
    org: String,
    notifications: Vec<super::notify::NotificationItem>,
    flash: Option<String>,
}

/// An organization's notification page's query: a flash message, a delivery status to filter
/// by, and the Create Notification form's fields when it is shown again.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct PageQuery {
    #[serde(default)]
    flash: String,
    #[serde(flatten)]
    extra: std::collections::HashMap<String, String>,
}

pub(super) async fn notification_page(
    page: Page,
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    Path(p): Path<OrgParams>,
    uri: axum::http::Uri,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Response {
    let session = match require(&s, &headers, ip, super::target(&uri)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let holder = Holder::org(&p.org);
    let flash = Flash::text_of(&q.flash);
    let result = match page {
        Page::Notifications => match super::notify::items(&s, &session, &holder).await {
            Ok(notifications) => Ok(render(
                StatusCode::OK,
                &NotificationsPage {
                    title: format!("Notifications of {}", p.org),
                    chrome: session.chrome.clone(),
                    org: p.org.clone(),
                    notifications,
                    flash,
                },
            )),
            Err(e) => Err(e),
        },
        Page::NewNotification => {
            let f = NotificationForm::from_fields(|k| q.extra.get(k).cloned().unwrap_or_default());
            super::notify::new_page(&s, &session, &holder, f, Default::default(), None).await
        }
        Page::Notification => {
            let shown = Shown::Newest(q.extra.get("status").map(String::as_str));
            super::notify::deliveries_page(&s, &session, &holder, &p.uuid, shown, flash, None).await
        }
        Page::EditNotification => super::notify::edit_page(&s, &session, &holder, &p.uuid).await,
        Page::Delivery => {
            let shown = Shown::One(&p.id);
            super::notify::deliveries_page(&s, &session, &holder, &p.uuid, shown, flash, None).await
        }
    };
    result.unwrap_or_else(|e| error_page(&session.chrome, e))
}

/// A form post on an organization's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    CreateTeam,
    DeleteTeam,
    AddMember,
    RemoveMember,
    CreateRobot,
    DeleteRobot,
    CreateNotification,
    EditNotification,
    Notification,
    Redeliver,
}

/// The forms, by the route that follows `/organization/{org}`.
pub(super) const ACTIONS: [(&str, Action); 10] = [
    ("/teams", Action::CreateTeam),
    ("/team/{team}/delete", Action::DeleteTeam),
    ("/team/{team}/members", Action::AddMember),
    ("/team/{team}/member/{member}/delete", Action::RemoveMember),
    ("/robots", Action::CreateRobot),
    ("/robot/{short}/delete", Action::DeleteRobot),
    ("/notifications", Action::CreateNotification),
    ("/notification/{uuid}/edit", Action::EditNotification),
    ("/notification/{uuid}/{verb}", Action::Notification),
    ("/notification/{uuid}/delivery/{id}/redeliver", Action::Redeliver),
];

/// The parameters of the organization routes; those a route does not have are empty.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct OrgParams {
    org: String,
    team: String,
    member: String,
    short: String,
    uuid: String,
    verb: String,
    id: String,
}

pub(super) async fn post(
    action: Action,
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    Path(p): Path<OrgParams>,
    axum::extract::Form(form): axum::extract::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let get = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let (org, team, member, short) = (p.org.as_str(), p.team.as_str(), p.member.as_str(), p.short.as_str());
    let session = match super::form_session(&s, &headers, ip, &format!("/organization/{org}"), &get("csrf")).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ctx = &session.ctx;
    let back = |flash: Flash| Redirect::to(&flash.after(&format!("/organization/{org}"))).into_response();
    let outcome: Result<Response, AppError> = async {
        match action {
            Action::CreateTeam => {
                let role = TeamRole::parse(&get("role")).map_err(|e| AppError::invalid(e.to_string()))?;
                let name = get("name");
                s.app.put_team(ctx, org, &name, role, None).await?;
                Ok(back(Flash::TeamCreated))
            }
            Action::DeleteTeam => {
                s.app.delete_team(ctx, org, team).await?;
                Ok(back(Flash::TeamDeleted))
            }
            Action::AddMember => {
                let member = get("member");
                s.app.add_team_member(ctx, org, team, &member).await?;
                Ok(back(Flash::MemberAdded))
            }
            Action::RemoveMember => {
                s.app.remove_team_member(ctx, org, team, member).await?;
                Ok(back(Flash::MemberRemoved))
            }
            Action::CreateRobot => {
                let robot = s
                    .app
                    .create_robot(ctx, AdminNamespace::Org(org), &get("name"), "")
                    .await?;
                page(&s, &session, org, Some((robot.account.name, robot.token)), None, None).await
            }
            Action::DeleteRobot => {
                s.app.delete_robot(ctx, AdminNamespace::Org(org), short).await?;
                Ok(back(Flash::RobotDeleted))
            }
            Action::CreateNotification => {
                let f = NotificationForm::from_fields(|k| form.get(k).cloned().unwrap_or_default());
                super::notify::create(&s, &session, &Holder::org(org), f).await
            }
            Action::EditNotification => {
                let f = NotificationForm::from_fields(|k| form.get(k).cloned().unwrap_or_default());
                super::notify::save(&s, &session, &Holder::org(org), &p.uuid, f).await
            }
            Action::Notification => {
                let holder = Holder::org(org);
                super::notify::act(&s, &session, &holder, &p.uuid, &p.verb, &get("since")).await
            }
            Action::Redeliver => super::notify::redeliver(&s, &session, &Holder::org(org), &p.uuid, &p.id).await,
        }
    }
    .await;
    match outcome {
        Ok(r) => r,
        Err(e @ (AppError::Invalid { .. } | AppError::Conflict(_))) => {
            page(&s, &session, org, None, None, Some(e.to_string()))
                .await
                .unwrap_or_else(|e| error_page(&session.chrome, e))
        }
        Err(e) => error_page(&session.chrome, e),
    }
}
