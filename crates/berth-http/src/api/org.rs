//! Organizations, their teams and members, and organization robots.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_app::accounts::{AdminNamespace, Robot};
use berth_app::model::{AccountRow, TeamRow};
use berth_core::TeamRole;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Avatar, avatar, avatar_kind, quay_date};
use crate::HttpState;
use crate::api::repo::{LogsOut, LogsQuery};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiCtx, ApiJson, SignedCtx, optional_json};

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(create_org))
        .routes(routes!(get_org))
        .routes(routes!(put_team, delete_team))
        .routes(routes!(get_team_members))
        .routes(routes!(put_team_member, delete_team_member))
        .routes(routes!(list_org_robots))
        .routes(routes!(org_logs))
        .routes(routes!(get_org_robot, put_org_robot, delete_org_robot))
}

/// Body of `POST /api/v1/organization/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrgIn {
    /// The organization's name (also its namespace).
    pub name: String,
    /// A contact address.
    #[serde(default)]
    pub email: Option<String>,
}

/// Creates an organization; the caller joins its `owners` admin team.
#[utoipa::path(post, path = "/api/v1/organization/", tag = "organization", operation_id = "createOrganization",
    request_body = CreateOrgIn,
    responses((status = 201, body = String, content_type = "application/json", description = "\"Created\""), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_org(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    ApiJson(body): ApiJson<CreateOrgIn>,
) -> ApiResult<(StatusCode, Json<&'static str>)> {
    s.app.create_org(&ctx, &body.name, body.email.as_deref()).await?;
    Ok((StatusCode::CREATED, Json("Created")))
}

/// A team as Quay shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamOut {
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `member`, `creator` or `admin`.
    pub role: String,
    /// Its avatar.
    pub avatar: Avatar,
    /// Whether the caller may see its members.
    pub can_view: bool,
    /// How many accounts belong to it.
    pub member_count: i64,
    /// Always false: no external group sync.
    pub is_synced: bool,
}

impl TeamOut {
    fn new(t: &TeamRow, can_view: bool) -> Self {
        TeamOut {
            name: t.name.clone(),
            description: t.description.clone(),
            role: t.role.as_str().to_owned(),
            avatar: avatar(&t.name, "team"),
            can_view,
            member_count: t.member_count,
            is_synced: false,
        }
    }
}

/// Answer of `GET /api/v1/organization/{orgname}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgOut {
    /// Its name.
    pub name: String,
    /// Its avatar.
    pub avatar: Avatar,
    /// Whether the caller administers it.
    pub is_admin: bool,
    /// Whether the caller is in one of its teams.
    pub is_member: bool,
    /// Contact address, shown to admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Teams by name, shown to members only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teams: Option<std::collections::BTreeMap<String, TeamOut>>,
    /// Team names in order, shown to members only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordered_teams: Option<Vec<String>>,
}

/// An organization: anyone sees its name, members its teams, admins its e-mail.
#[utoipa::path(get, path = "/api/v1/organization/{orgname}", tag = "organization", operation_id = "getOrganization",
    params(("orgname" = String, Path, description = "The organization")),
    responses((status = 200, body = OrgOut), (status = 404, body = ErrorBody)))]
async fn get_org(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx, Path(org): Path<String>) -> ApiResult<Json<OrgOut>> {
    let info = s.app.org_info(&ctx.caller, &org).await?;
    let teams = info.teams.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.clone(), TeamOut::new(t, info.is_admin)))
            .collect()
    });
    let ordered_teams = info
        .teams
        .as_ref()
        .map(|ts| ts.iter().map(|t| t.name.clone()).collect());
    Ok(Json(OrgOut {
        avatar: avatar(&info.org.name, "org"),
        name: info.org.name,
        is_admin: info.is_admin,
        is_member: info.is_member,
        email: if info.is_admin { info.org.email } else { None },
        teams,
        ordered_teams,
    }))
}

/// Body of `PUT /api/v1/organization/{orgname}/team/{teamname}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TeamIn {
    /// `member`, `creator` or `admin`.
    pub role: String,
    /// Free text; unchanged when absent.
    #[serde(default)]
    pub description: Option<String>,
}

/// Creates a team or changes its role and description (organization admin, scope `org:admin`).
#[utoipa::path(put, path = "/api/v1/organization/{orgname}/team/{teamname}", tag = "organization", operation_id = "updateOrganizationTeam",
    params(("orgname" = String, Path), ("teamname" = String, Path)),
    request_body = TeamIn,
    responses((status = 200, body = TeamOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_team(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((org, team)): Path<(String, String)>,
    ApiJson(body): ApiJson<TeamIn>,
) -> ApiResult<Json<TeamOut>> {
    let role = TeamRole::parse(&body.role).map_err(berth_app::AppError::from)?;
    let row = s
        .app
        .put_team(&ctx, &org, &team, role, body.description.as_deref())
        .await?;
    Ok(Json(TeamOut::new(&row, true)))
}

/// Deletes a team (organization admin); the last admin team cannot be deleted.
#[utoipa::path(delete, path = "/api/v1/organization/{orgname}/team/{teamname}", tag = "organization", operation_id = "deleteOrganizationTeam",
    params(("orgname" = String, Path), ("teamname" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_team(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_team(&ctx, &org, &team).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A team member as Quay shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOut {
    /// The account's name.
    pub name: String,
    /// Always `user` (robots are users with `is_robot`).
    pub kind: String,
    /// Whether it is a robot.
    pub is_robot: bool,
    /// Its avatar.
    pub avatar: Avatar,
    /// Always false: members are added directly.
    pub invited: bool,
}

impl From<AccountRow> for MemberOut {
    fn from(a: AccountRow) -> Self {
        MemberOut {
            avatar: avatar(&a.name, avatar_kind(a.kind)),
            is_robot: a.kind == berth_core::AccountKind::Robot,
            name: a.name,
            kind: "user".into(),
            invited: false,
        }
    }
}

/// Answer of `GET /api/v1/organization/{orgname}/team/{teamname}/members`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersOut {
    /// The team's name.
    pub name: String,
    /// Its members.
    pub members: Vec<MemberOut>,
    /// Whether the caller may change them.
    pub can_edit: bool,
}

/// A team's members (organization admins and the team's own members).
#[utoipa::path(get, path = "/api/v1/organization/{orgname}/team/{teamname}/members", tag = "organization", operation_id = "getOrganizationTeamMembers",
    params(("orgname" = String, Path), ("teamname" = String, Path)),
    responses((status = 200, body = MembersOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_team_members(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<Json<MembersOut>> {
    let (t, members, can_edit) = s.app.team_members(&ctx.caller, &org, &team).await?;
    Ok(Json(MembersOut {
        name: t.name,
        members: members.into_iter().map(MemberOut::from).collect(),
        can_edit,
    }))
}

/// Adds a user, or a robot of the organization, to a team (organization admin).
#[utoipa::path(put, path = "/api/v1/organization/{orgname}/team/{teamname}/members/{membername}", tag = "organization", operation_id = "updateOrganizationTeamMember",
    params(("orgname" = String, Path), ("teamname" = String, Path), ("membername" = String, Path)),
    responses((status = 200, body = MemberOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_team_member(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((org, team, member)): Path<(String, String, String)>,
) -> ApiResult<Json<MemberOut>> {
    Ok(Json(s.app.add_team_member(&ctx, &org, &team, &member).await?.into()))
}

/// Removes a member from a team (organization admin).
#[utoipa::path(delete, path = "/api/v1/organization/{orgname}/team/{teamname}/members/{membername}", tag = "organization", operation_id = "deleteOrganizationTeamMember",
    params(("orgname" = String, Path), ("teamname" = String, Path), ("membername" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_team_member(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((org, team, member)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    s.app.remove_team_member(&ctx, &org, &team, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Optional body when creating a robot.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RobotIn {
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// A robot as Quay shows it, with its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct RobotOut {
    /// The full name, `namespace+short`.
    pub name: String,
    /// The token, used as the password.
    pub token: String,
    /// Free text.
    pub description: String,
    /// When it was created (RFC 2822).
    pub created: String,
    /// Not tracked yet: always null.
    pub last_accessed: Option<String>,
    /// Free-form metadata (always empty).
    pub unstructured_metadata: serde_json::Value,
}

impl From<Robot> for RobotOut {
    fn from(Robot { account: a, token }: Robot) -> Self {
        RobotOut {
            name: a.name,
            token,
            description: a.description,
            created: quay_date(a.created_at),
            last_accessed: None,
            unstructured_metadata: serde_json::json!({}),
        }
    }
}

/// A list of robots.
#[derive(Debug, Serialize, ToSchema)]
pub struct RobotList {
    /// The robots, by name.
    pub robots: Vec<RobotOut>,
}

/// The robots of an organization (organization admin).
#[utoipa::path(get, path = "/api/v1/organization/{orgname}/robots", tag = "robot", operation_id = "getOrgRobots",
    params(("orgname" = String, Path)),
    responses((status = 200, body = RobotList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_org_robots(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path(org): Path<String>,
) -> ApiResult<Json<RobotList>> {
    let robots = s.app.list_robots(&ctx.caller, AdminNamespace::Org(&org)).await?;
    Ok(Json(RobotList {
        robots: robots.into_iter().map(RobotOut::from).collect(),
    }))
}

/// One robot of an organization, with its token (organization admin).
#[utoipa::path(get, path = "/api/v1/organization/{orgname}/robots/{robot_shortname}", tag = "robot", operation_id = "getOrgRobot",
    params(("orgname" = String, Path), ("robot_shortname" = String, Path)),
    responses((status = 200, body = RobotOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_org_robot(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((org, short)): Path<(String, String)>,
) -> ApiResult<Json<RobotOut>> {
    Ok(Json(
        s.app
            .get_robot(&ctx.caller, AdminNamespace::Org(&org), &short)
            .await?
            .into(),
    ))
}

/// Creates a robot in an organization (organization admin).
#[utoipa::path(put, path = "/api/v1/organization/{orgname}/robots/{robot_shortname}", tag = "robot", operation_id = "createOrgRobot",
    params(("orgname" = String, Path), ("robot_shortname" = String, Path)),
    request_body(content = Option<RobotIn>, description = "Optional description"),
    responses((status = 201, body = RobotOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_org_robot(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((org, short)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<RobotOut>)> {
    let description = optional_json::<RobotIn>(&body)?
        .map(|b| b.description)
        .unwrap_or_default();
    let row = s
        .app
        .create_robot(&ctx, AdminNamespace::Org(&org), &short, &description)
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Deletes a robot of an organization (organization admin).
#[utoipa::path(delete, path = "/api/v1/organization/{orgname}/robots/{robot_shortname}", tag = "robot", operation_id = "deleteOrgRobot",
    params(("orgname" = String, Path), ("robot_shortname" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_org_robot(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((org, short)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_robot(&ctx, AdminNamespace::Org(&org), &short).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organization's audit log, newest first: teams, members, robots and every repository in it
/// (organization admin).
#[utoipa::path(get, path = "/api/v1/organization/{orgname}/logs", tag = "logs", operation_id = "listOrgLogs",
    params(("orgname" = String, Path), LogsQuery),
    responses((status = 200, body = LogsOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn org_logs(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path(org): Path<String>,
    axum::extract::Query(q): axum::extract::Query<LogsQuery>,
) -> ApiResult<Json<LogsOut>> {
    Ok(Json(s.app.org_logs(&ctx, &org, q.next_page.as_deref()).await?.into()))
}
