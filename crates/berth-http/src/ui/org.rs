//! Organization pages: teams with their roles and members, and robot accounts (created with
//! their token shown once, deleted). Repository roles for users, teams and robots are granted in
//! each repository's Settings. Organization admins manage; members look.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use berth_app::AppError;
use berth_app::accounts::RobotOwner;
use berth_core::TeamRole;

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
    is_admin: bool,
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
    let robots = if info.is_admin {
        s.app
            .list_robots(caller, RobotOwner::Org(org))
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
            is_admin: info.is_admin,
            teams,
            robots,
            new_token,
            flash,
            error,
        },
    ))
}

pub(super) async fn get(
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    Path(org): Path<String>,
) -> Response {
    let session = match require(&s, &headers, ip, &format!("/organization/{org}")).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    page(&s, &session, &org, None, None, None)
        .await
        .unwrap_or_else(|e| error_page(&session.chrome, e))
}

pub(super) async fn post(
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    Path((org, rest)): Path<(String, String)>,
    axum::extract::Form(form): axum::extract::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let get = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let session = match super::form_session(&s, &headers, ip, &format!("/organization/{org}"), &get("csrf")).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ctx = &session.ctx;
    let parts: Vec<&str> = rest.split('/').collect();
    let back =
        |flash: &str| Redirect::to(&format!("/organization/{org}?flash={}", super::encode(flash))).into_response();
    let outcome: Result<Response, AppError> = async {
        match parts.as_slice() {
            ["teams"] => {
                let role = TeamRole::parse(&get("role")).map_err(|e| AppError::Invalid(e.to_string()))?;
                let name = get("name");
                s.app.put_team(ctx, &org, &name, role, None).await?;
                Ok(back(&format!("Team {name} created.")))
            }
            ["team", team, "delete"] => {
                s.app.delete_team(ctx, &org, team).await?;
                Ok(back(&format!("Team {team} deleted.")))
            }
            ["team", team, "members"] => {
                let member = get("member");
                s.app.add_team_member(ctx, &org, team, &member).await?;
                Ok(back(&format!("{member} joined {team}.")))
            }
            ["team", team, "member", member, "delete"] => {
                s.app.remove_team_member(ctx, &org, team, member).await?;
                Ok(back(&format!("{member} left {team}.")))
            }
            ["robots"] => {
                let robot = s.app.create_robot(ctx, RobotOwner::Org(&org), &get("name"), "").await?;
                page(&s, &session, &org, Some((robot.account.name, robot.token)), None, None).await
            }
            ["robot", short, "delete"] => {
                s.app.delete_robot(ctx, RobotOwner::Org(&org), short).await?;
                Ok(back(&format!("Robot {org}+{short} deleted.")))
            }
            _ => Err(AppError::NotFound(format!("no such page: /organization/{org}/{rest}"))),
        }
    }
    .await;
    match outcome {
        Ok(r) => r,
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            page(&s, &session, &org, None, None, Some(e.to_string()))
                .await
                .unwrap_or_else(|e| error_page(&session.chrome, e))
        }
        Err(e) => error_page(&session.chrome, e),
    }
}
