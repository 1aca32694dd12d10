//! The signed-in user, first-run initialization, superuser user creation and the user's own robots.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_app::accounts::{AdminNamespace, NewUser};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Avatar, avatar, avatar_kind};
use crate::HttpState;
use crate::api::org::{RobotIn, RobotList, RobotOut};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiCtx, ApiJson, SignedCtx, optional_json};

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(initialize))
        .routes(routes!(get_user))
        .routes(routes!(superuser_create_user))
        .routes(routes!(list_user_robots))
        .routes(routes!(get_user_robot, put_user_robot, delete_user_robot))
        .routes(routes!(list_my_notifications))
        .routes(routes!(get_my_notification, update_my_notification))
}

/// Body of `POST /api/v1/user/initialize`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InitializeIn {
    /// The first user's name.
    pub username: String,
    /// Its password (at least 8 characters).
    pub password: String,
    /// Its e-mail address.
    pub email: String,
    /// Also return an access token with every scope.
    #[serde(default)]
    pub access_token: bool,
}

/// Answer of `POST /api/v1/user/initialize`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InitializeOut {
    /// The new superuser's name.
    pub username: String,
    /// Its e-mail address.
    pub email: Option<String>,
    /// An access token with every scope, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
}

/// Creates the first user, a superuser, on an instance that has none.
#[utoipa::path(post, path = "/api/v1/user/initialize", tag = "user", operation_id = "initializeUser",
    request_body = InitializeIn,
    responses((status = 200, body = InitializeOut), (status = 400, description = "Instance not empty or invalid input", body = ErrorBody)))]
async fn initialize(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    ApiJson(body): ApiJson<InitializeIn>,
) -> ApiResult<Json<InitializeOut>> {
    let new = NewUser {
        username: body.username,
        email: Some(body.email),
        password: body.password,
        superuser: true,
    };
    let (row, token) = s.app.initialize(&ctx, new, body.access_token).await?;
    Ok(Json(InitializeOut {
        username: row.name,
        email: row.email,
        access_token: token,
    }))
}

/// An organization in the user view.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOrg {
    /// Its name.
    pub name: String,
    /// Its avatar.
    pub avatar: Avatar,
    /// Whether the user administers it.
    pub is_org_admin: bool,
    /// Whether the user may create repositories in it.
    pub can_create_repo: bool,
    /// Always false (Quay field).
    pub public: bool,
    /// Always false (Quay field).
    pub preferred_namespace: bool,
}

/// Answer of `GET /api/v1/user/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    /// Always false: anonymous callers get a 401.
    pub anonymous: bool,
    /// The account name.
    pub username: String,
    /// Its e-mail address.
    pub email: Option<String>,
    /// Always true: Berth does not gate accounts on e-mail confirmation.
    pub verified: bool,
    /// Whether the account is a superuser.
    pub super_user: bool,
    /// Whether it may create repositories in its own namespace.
    pub can_create_repo: bool,
    /// Always true.
    pub is_me: bool,
    /// Its avatar.
    pub avatar: Avatar,
    /// Organizations it belongs to.
    pub organizations: Vec<UserOrg>,
    /// External logins (none).
    pub logins: Vec<serde_json::Value>,
    /// Pending prompts (none).
    pub prompts: Vec<serde_json::Value>,
}

/// The signed-in account (scope `user:read`).
#[utoipa::path(get, path = "/api/v1/user/", tag = "user", operation_id = "getLoggedInUser",
    responses((status = 200, body = UserOut), (status = 401, body = ErrorBody)))]
async fn get_user(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx) -> ApiResult<Json<UserOut>> {
    let info = s.app.user_info(&ctx.caller).await?;
    let organizations = info
        .organizations
        .into_iter()
        .map(|(org, admin)| UserOrg {
            avatar: avatar(&org.name, "org"),
            name: org.name,
            is_org_admin: admin,
            can_create_repo: admin,
            public: false,
            preferred_namespace: false,
        })
        .collect();
    let a = info.account;
    Ok(Json(UserOut {
        anonymous: false,
        avatar: avatar(&a.name, avatar_kind(a.kind)),
        username: a.name,
        email: a.email,
        verified: true,
        super_user: a.superuser,
        can_create_repo: a.kind == berth_core::AccountKind::User,
        is_me: true,
        organizations,
        logins: Vec::new(),
        prompts: Vec::new(),
    }))
}

/// Body of `POST /api/v1/superuser/users/`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SuperuserCreateIn {
    /// The new user's name.
    pub username: String,
    /// Its e-mail address.
    #[serde(default)]
    pub email: Option<String>,
}

/// Answer of `POST /api/v1/superuser/users/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuperuserCreateOut {
    /// The new user's name.
    pub username: String,
    /// Its e-mail address.
    pub email: Option<String>,
    /// The generated password, shown only here.
    pub password: String,
}

/// Creates a user with a generated password (superuser, scope `super:user`).
#[utoipa::path(post, path = "/api/v1/superuser/users/", tag = "superuser", operation_id = "createInstallUser",
    request_body = SuperuserCreateIn,
    responses((status = 200, body = SuperuserCreateOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn superuser_create_user(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    ApiJson(body): ApiJson<SuperuserCreateIn>,
) -> ApiResult<Json<SuperuserCreateOut>> {
    let (row, password) = s
        .app
        .superuser_create_user(&ctx, &body.username, body.email.as_deref())
        .await?;
    Ok(Json(SuperuserCreateOut {
        username: row.name,
        email: row.email,
        password,
    }))
}

/// The robots of the signed-in user.
#[utoipa::path(get, path = "/api/v1/user/robots", tag = "robot", operation_id = "getUserRobots",
    responses((status = 200, body = RobotList), (status = 401, body = ErrorBody)))]
async fn list_user_robots(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx) -> ApiResult<Json<RobotList>> {
    let robots = s.app.list_robots(&ctx.caller, AdminNamespace::CurrentUser).await?;
    Ok(Json(RobotList {
        robots: robots.into_iter().map(RobotOut::from).collect(),
    }))
}

/// One robot of the signed-in user, with its token.
#[utoipa::path(get, path = "/api/v1/user/robots/{robot_shortname}", tag = "robot", operation_id = "getUserRobot",
    params(("robot_shortname" = String, Path, description = "The robot's name after the '+'")),
    responses((status = 200, body = RobotOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_user_robot(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path(short): Path<String>,
) -> ApiResult<Json<RobotOut>> {
    Ok(Json(
        s.app
            .get_robot(&ctx.caller, AdminNamespace::CurrentUser, &short)
            .await?
            .into(),
    ))
}

/// Creates a robot in the signed-in user's namespace.
#[utoipa::path(put, path = "/api/v1/user/robots/{robot_shortname}", tag = "robot", operation_id = "createUserRobot",
    params(("robot_shortname" = String, Path, description = "The robot's name after the '+'")),
    request_body(content = Option<RobotIn>, description = "Optional description"),
    responses((status = 201, body = RobotOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn put_user_robot(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path(short): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<RobotOut>)> {
    let description = optional_json::<RobotIn>(&body)?
        .map(|b| b.description)
        .unwrap_or_default();
    let row = s
        .app
        .create_robot(&ctx, AdminNamespace::CurrentUser, &short, &description)
        .await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Deletes a robot of the signed-in user.
#[utoipa::path(delete, path = "/api/v1/user/robots/{robot_shortname}", tag = "robot", operation_id = "deleteUserRobot",
    params(("robot_shortname" = String, Path, description = "The robot's name after the '+'")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_user_robot(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path(short): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.delete_robot(&ctx, AdminNamespace::CurrentUser, &short).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An in-app notification as Quay shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InAppOut {
    /// Its id.
    pub id: String,
    /// The organization it reached you through, if any.
    pub organization: Option<String>,
    /// The event name.
    pub kind: String,
    /// When it was created (RFC 2822).
    pub created: String,
    /// The event data.
    pub metadata: serde_json::Value,
    /// Whether you dismissed it.
    pub dismissed: bool,
}

impl From<berth_app::model::InAppRow> for InAppOut {
    fn from(r: berth_app::model::InAppRow) -> Self {
        InAppOut {
            id: r.uuid,
            organization: r.organization,
            kind: r.kind,
            created: super::quay_date(r.created_at),
            metadata: r.metadata.0,
            dismissed: r.dismissed,
        }
    }
}

/// Quay's default page of `GET /api/v1/user/notifications`.
const IN_APP_PAGE: u32 = 5;

/// Query of `GET /api/v1/user/notifications`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct InAppQuery {
    /// Page number, from 0.
    #[serde(default)]
    pub page: u32,
    /// Page size, 1 to 100 (default 5, as Quay).
    pub limit: Option<u32>,
}

/// Answer of `GET /api/v1/user/notifications`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InAppList {
    /// Undismissed notifications, newest first.
    pub notifications: Vec<InAppOut>,
    /// Whether another page follows.
    pub additional: bool,
}

/// The signed-in user's undismissed notifications.
#[utoipa::path(get, path = "/api/v1/user/notifications", tag = "user", operation_id = "listUserNotifications",
    params(InAppQuery),
    responses((status = 200, body = InAppList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_my_notifications(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    axum::extract::Query(q): axum::extract::Query<InAppQuery>,
) -> ApiResult<Json<InAppList>> {
    let (rows, additional) = s
        .app
        .my_notifications(&ctx.caller, q.page, q.limit.unwrap_or(IN_APP_PAGE))
        .await?;
    Ok(Json(InAppList {
        notifications: rows.into_iter().map(Into::into).collect(),
        additional,
    }))
}

/// One of the signed-in user's notifications, dismissed or not.
#[utoipa::path(get, path = "/api/v1/user/notifications/{uuid}", tag = "user", operation_id = "getUserNotification",
    params(("uuid" = String, Path)),
    responses((status = 200, body = InAppOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_my_notification(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path(uuid): Path<String>,
) -> ApiResult<Json<InAppOut>> {
    Ok(Json(s.app.my_notification(&ctx.caller, &uuid).await?.into()))
}

/// Body of `PUT /api/v1/user/notifications/{uuid}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DismissIn {
    /// Dismiss (true) or restore (false). Required: Quay silently restored when it was missing.
    pub dismissed: bool,
}

/// Dismisses or restores one of the signed-in user's notifications, for this user only.
#[utoipa::path(put, path = "/api/v1/user/notifications/{uuid}", tag = "user", operation_id = "updateUserNotification",
    params(("uuid" = String, Path)),
    request_body = DismissIn,
    responses((status = 200, body = InAppOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_my_notification(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path(uuid): Path<String>,
    ApiJson(body): ApiJson<DismissIn>,
) -> ApiResult<Json<InAppOut>> {
    Ok(Json(
        s.app
            .dismiss_notification(&ctx.caller, &uuid, body.dismissed)
            .await?
            .into(),
    ))
}
