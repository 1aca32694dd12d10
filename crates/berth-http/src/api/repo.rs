//! Repositories, their permissions and their audit log.
//!
//! Repository names may contain `/`; in these routes such a name is sent with the slash encoded
//! (`team%2Fapp`), since the name is a single path segment.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_app::AppError;
use berth_app::repos::{NewRepo, TeamPermission, UserPermission};
use berth_core::{RepoRole, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Avatar, avatar, quay_date};
use crate::HttpState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiCtx, ApiJson, SignedCtx};

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(create_repo, list_repos))
        .routes(routes!(get_repo, update_repo, delete_repo))
        .routes(routes!(change_visibility))
        .routes(routes!(change_state))
        .routes(routes!(list_user_permissions))
        .routes(routes!(
            get_user_permission,
            put_user_permission,
            delete_user_permission
        ))
        .routes(routes!(list_team_permissions))
        .routes(routes!(put_team_permission, delete_team_permission))
        .routes(routes!(repo_logs))
        .routes(routes!(list_tags))
        .routes(routes!(change_tag, delete_tag))
}

fn parse_role(role: &str) -> Result<RepoRole, AppError> {
    Ok(RepoRole::parse(role)?)
}

fn parse_visibility(v: &str) -> Result<Visibility, AppError> {
    Ok(Visibility::parse(v)?)
}

/// Body of `POST /api/v1/repository`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateRepoIn {
    /// The owning user or organization.
    pub namespace: String,
    /// The name inside the namespace.
    pub repository: String,
    /// `public` or `private`.
    pub visibility: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Only `image` is supported.
    #[serde(default)]
    pub repo_kind: Option<String>,
}

/// Answer of `POST /api/v1/repository`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateRepoOut {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// Always `image`.
    pub kind: String,
}

/// Creates a repository (scope `repo:create`).
#[utoipa::path(post, path = "/api/v1/repository", tag = "repository", operation_id = "createRepo",
    request_body = CreateRepoIn,
    responses((status = 201, body = CreateRepoOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_repo(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    ApiJson(body): ApiJson<CreateRepoIn>,
) -> ApiResult<(StatusCode, Json<CreateRepoOut>)> {
    if let Some(kind) = body.repo_kind.as_deref().filter(|k| *k != "image") {
        return Err(AppError::invalid(format!("invalid repo_kind: '{kind}' is not supported; use 'image'")).into());
    }
    let new = NewRepo {
        namespace: body.namespace,
        name: body.repository,
        visibility: parse_visibility(&body.visibility)?,
        description: body.description,
    };
    let repo = s.app.create_repo(&ctx, &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreateRepoOut {
            namespace: repo.namespace,
            name: repo.name,
            kind: "image".into(),
        }),
    ))
}

/// Query of `GET /api/v1/repository`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListReposQuery {
    /// List this namespace's repositories.
    pub namespace: Option<String>,
    /// List every public repository.
    #[serde(default)]
    pub public: bool,
}

/// One repository in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoSummary {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Whether anonymous callers may pull.
    pub is_public: bool,
    /// Always `image`.
    pub kind: String,
    /// Always `NORMAL`.
    pub state: String,
    /// Always false: stars are not supported.
    pub is_starred: bool,
}

/// Answer of `GET /api/v1/repository`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoList {
    /// The repositories the caller can see.
    pub repositories: Vec<RepoSummary>,
}

fn summary(r: berth_app::model::RepoRow) -> RepoSummary {
    RepoSummary {
        is_public: r.visibility == Visibility::Public,
        namespace: r.namespace,
        name: r.name,
        description: r.description,
        kind: "image".into(),
        state: r.state.as_str().into(),
        is_starred: false,
    }
}

/// The repositories of a namespace, or every public one, that the caller can see.
#[utoipa::path(get, path = "/api/v1/repository", tag = "repository", operation_id = "listRepos",
    params(ListReposQuery),
    responses((status = 200, body = RepoList), (status = 400, body = ErrorBody)))]
async fn list_repos(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Query(q): Query<ListReposQuery>,
) -> ApiResult<Json<RepoList>> {
    let repos = s.app.list_repos(&ctx.caller, q.namespace.as_deref(), q.public).await?;
    Ok(Json(RepoList {
        repositories: repos.into_iter().map(|r| summary(r.repo)).collect(),
    }))
}

/// Answer of `GET /api/v1/repository/{namespace}/{repository}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepoOut {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// Always `image`.
    pub kind: String,
    /// Free text.
    pub description: String,
    /// Whether anonymous callers may pull.
    pub is_public: bool,
    /// Whether the namespace is an organization.
    pub is_organization: bool,
    /// Always false.
    pub is_starred: bool,
    /// Whether the caller may push.
    pub can_write: bool,
    /// Whether the caller administers it.
    pub can_admin: bool,
    /// Always `NORMAL`.
    pub state: String,
    /// The most recently moved tags (up to 100), by name: `name`, `manifest_digest`, `size`,
    /// `last_modified`.
    pub tags: BTreeMap<String, serde_json::Value>,
    /// When it was created (RFC 2822).
    pub created: String,
}

/// A repository the caller can read.
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}", tag = "repository", operation_id = "getRepo",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    responses((status = 200, body = RepoOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_repo(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<RepoOut>> {
    let (repo, role) = s.app.repo_access(&ctx.caller, &ns, &name, RepoRole::Read).await?;
    let (recent, _) = s
        .app
        .repo_tags(&ctx.caller, &ns, &name, None, berth_app::paging::Paging::newest())
        .await?;
    let tags = recent
        .into_iter()
        .map(|t| {
            let v = serde_json::json!({
                "name": t.name,
                "manifest_digest": t.manifest_digest,
                "size": t.size,
                "last_modified": quay_date(t.last_modified),
            });
            (t.name, v)
        })
        .collect();
    let is_organization = repo.namespace_kind == berth_core::AccountKind::Organization;
    Ok(Json(RepoOut {
        is_public: repo.visibility == Visibility::Public,
        created: quay_date(repo.created_at),
        namespace: repo.namespace,
        name: repo.name,
        kind: "image".into(),
        description: repo.description,
        is_organization,
        is_starred: false,
        can_write: role >= RepoRole::Write,
        can_admin: role >= RepoRole::Admin,
        state: repo.state.as_str().into(),
        tags,
    }))
}

/// Body of `PUT /api/v1/repository/{namespace}/{repository}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateRepoIn {
    /// The new description.
    pub description: String,
}

/// Changes a repository's description (write).
#[utoipa::path(put, path = "/api/v1/repository/{namespace}/{repository}", tag = "repository", operation_id = "updateRepo",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    request_body = UpdateRepoIn,
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_repo(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateRepoIn>,
) -> ApiResult<Json<serde_json::Value>> {
    s.app.set_repo_description(&ctx, &ns, &name, &body.description).await?;
    Ok(Json(serde_json::json!({"success": true})))
}

/// Deletes a repository (admin).
#[utoipa::path(delete, path = "/api/v1/repository/{namespace}/{repository}", tag = "repository", operation_id = "deleteRepository",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_repo(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_repo(&ctx, &ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST …/changevisibility`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VisibilityIn {
    /// `public` or `private`.
    pub visibility: String,
}

/// Makes a repository public or private (admin).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/changevisibility", tag = "repository", operation_id = "changeRepoVisibility",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    request_body = VisibilityIn,
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn change_visibility(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<VisibilityIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let v = parse_visibility(&body.visibility)?;
    s.app.set_repo_visibility(&ctx, &ns, &name, v).await?;
    Ok(Json(serde_json::json!({"success": true})))
}

/// Body of `PUT …/changestate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StateIn {
    /// `NORMAL`, `READ_ONLY` or `MIRROR`.
    pub state: String,
}

/// Changes who may write to a repository (admin): `NORMAL`, `READ_ONLY` (nobody) or `MIRROR`
/// (only its mirror's sync).
#[utoipa::path(put, path = "/api/v1/repository/{namespace}/{repository}/changestate", tag = "repository", operation_id = "changeRepoState",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    request_body = StateIn,
    responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn change_state(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<StateIn>,
) -> ApiResult<Json<serde_json::Value>> {
    let repo = s.app.set_repo_state(&ctx, &ns, &name, &body.state).await?;
    Ok(Json(serde_json::json!({"success": true, "state": repo.state.as_str()})))
}

/// A user's or robot's permission as Quay shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPermissionOut {
    /// `read`, `write` or `admin`.
    pub role: String,
    /// The account's name.
    pub name: String,
    /// Whether it is a robot.
    pub is_robot: bool,
    /// Its avatar.
    pub avatar: Avatar,
    /// Whether it belongs to a team of the repository's organization.
    pub is_org_member: bool,
}

impl From<UserPermission> for UserPermissionOut {
    fn from(p: UserPermission) -> Self {
        UserPermissionOut {
            avatar: avatar(&p.name, if p.is_robot { "robot" } else { "user" }),
            role: p.role.as_str().into(),
            name: p.name,
            is_robot: p.is_robot,
            is_org_member: p.is_org_member,
        }
    }
}

/// A team's permission as Quay shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamPermissionOut {
    /// `read`, `write` or `admin`.
    pub role: String,
    /// The team's name.
    pub name: String,
    /// Its avatar.
    pub avatar: Avatar,
}

impl From<TeamPermission> for TeamPermissionOut {
    fn from(p: TeamPermission) -> Self {
        TeamPermissionOut {
            avatar: avatar(&p.name, "team"),
            role: p.role.as_str().into(),
            name: p.name,
        }
    }
}

/// Permissions keyed by user or team name.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionsOut<T> {
    /// By name.
    pub permissions: BTreeMap<String, T>,
}

/// Body of the permission `PUT`s.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleIn {
    /// `read`, `write` or `admin`.
    pub role: String,
}

/// Explicit permissions of users and robots (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/permissions/user/", tag = "permission", operation_id = "listRepoUserPermissions",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    responses((status = 200, body = PermissionsOut<UserPermissionOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_user_permissions(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<PermissionsOut<UserPermissionOut>>> {
    let perms = s.app.user_permissions(&ctx.caller, &ns, &name).await?;
    Ok(Json(PermissionsOut {
        permissions: perms.into_iter().map(|p| (p.name.clone(), p.into())).collect(),
    }))
}

/// One user's or robot's explicit permission (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/permissions/user/{username}", tag = "permission", operation_id = "getUserPermissions",
    params(("namespace" = String, Path), ("repository" = String, Path), ("username" = String, Path)),
    responses((status = 200, body = UserPermissionOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_user_permission(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, user)): Path<(String, String, String)>,
) -> ApiResult<Json<UserPermissionOut>> {
    Ok(Json(
        s.app.user_permission(&ctx.caller, &ns, &name, &user).await?.into(),
    ))
}

/// Grants a user or robot a role (admin).
#[utoipa::path(put, path = "/api/v1/repository/{namespace}/{repository}/permissions/user/{username}", tag = "permission", operation_id = "changeUserPermissions",
    params(("namespace" = String, Path), ("repository" = String, Path), ("username" = String, Path)),
    request_body = RoleIn,
    responses((status = 200, body = UserPermissionOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_user_permission(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name, user)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<RoleIn>,
) -> ApiResult<Json<UserPermissionOut>> {
    let role = parse_role(&body.role)?;
    Ok(Json(
        s.app.set_user_permission(&ctx, &ns, &name, &user, role).await?.into(),
    ))
}

/// Removes a user's or robot's permission (admin).
#[utoipa::path(delete, path = "/api/v1/repository/{namespace}/{repository}/permissions/user/{username}", tag = "permission", operation_id = "deleteUserPermissions",
    params(("namespace" = String, Path), ("repository" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_user_permission(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, user)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_user_permission(&ctx, &ns, &name, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Explicit permissions of teams (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/permissions/team/", tag = "permission", operation_id = "listRepoTeamPermissions",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    responses((status = 200, body = PermissionsOut<TeamPermissionOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_team_permissions(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<PermissionsOut<TeamPermissionOut>>> {
    let perms = s.app.team_permissions(&ctx.caller, &ns, &name).await?;
    Ok(Json(PermissionsOut {
        permissions: perms.into_iter().map(|p| (p.name.clone(), p.into())).collect(),
    }))
}

/// Grants a team of the repository's organization a role (admin).
#[utoipa::path(put, path = "/api/v1/repository/{namespace}/{repository}/permissions/team/{teamname}", tag = "permission", operation_id = "updateTeamPermissions",
    params(("namespace" = String, Path), ("repository" = String, Path), ("teamname" = String, Path)),
    request_body = RoleIn,
    responses((status = 200, body = TeamPermissionOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_team_permission(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name, team)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<RoleIn>,
) -> ApiResult<Json<TeamPermissionOut>> {
    let role = parse_role(&body.role)?;
    Ok(Json(
        s.app.set_team_permission(&ctx, &ns, &name, &team, role).await?.into(),
    ))
}

/// Removes a team's permission (admin).
#[utoipa::path(delete, path = "/api/v1/repository/{namespace}/{repository}/permissions/team/{teamname}", tag = "permission", operation_id = "deleteTeamPermissions",
    params(("namespace" = String, Path), ("repository" = String, Path), ("teamname" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_team_permission(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, team)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_team_permission(&ctx, &ns, &name, &team).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of the logs route.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogsQuery {
    /// The cursor returned as `next_page` by the previous page.
    pub next_page: Option<String>,
}

/// Who performed a logged action.
#[derive(Debug, Serialize, ToSchema)]
pub struct Performer {
    /// Always `user`.
    pub kind: String,
    /// The account's name.
    pub name: String,
    /// Whether it is a robot.
    pub is_robot: bool,
    /// Its avatar.
    pub avatar: Avatar,
}

/// One audit entry as Quay shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogOut {
    /// Quay's kind name, e.g. `create_repo`.
    pub kind: String,
    /// Kind-specific details.
    pub metadata: serde_json::Value,
    /// The caller's address.
    pub ip: Option<String>,
    /// When it happened (RFC 2822).
    pub datetime: String,
    /// Who did it; absent for the system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performer: Option<Performer>,
}

/// Answer of the logs route.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsOut {
    /// Entries, newest first.
    pub logs: Vec<LogOut>,
    /// Pass back as `next_page` for older entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// The repository's audit log, newest first (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/logs", tag = "logs", operation_id = "listRepoLogs",
    params(("namespace" = String, Path), ("repository" = String, Path), LogsQuery),
    responses((status = 200, body = LogsOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn repo_logs(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<LogsOut>> {
    let page = s.app.repo_logs(&ctx, &ns, &name, q.next_page.as_deref()).await?;
    Ok(Json(LogsOut::from(page)))
}

impl From<berth_app::audit::LogPage> for LogsOut {
    fn from(page: berth_app::audit::LogPage) -> Self {
        let logs = page
            .entries
            .into_iter()
            .map(|e| LogOut {
                kind: e.kind,
                metadata: e.metadata,
                ip: e.ip,
                datetime: quay_date(e.datetime),
                performer: e.performer.map(|(name, is_robot)| Performer {
                    avatar: avatar(&name, if is_robot { "robot" } else { "user" }),
                    kind: "user".into(),
                    name,
                    is_robot,
                }),
            })
            .collect();
        LogsOut {
            logs,
            next_page: page.next_page,
        }
    }
}

/// Query of `GET …/tag/`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct TagsQuery {
    /// Tags per page (1 to 100, default 50).
    pub limit: Option<u32>,
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Only this tag.
    pub specific_tag: Option<String>,
    /// Accepted for compatibility; Berth keeps no tag history, so every tag is active.
    pub only_active_tags: Option<bool>,
}

/// One tag as Quay shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagOut {
    /// Tag name.
    pub name: String,
    /// Its manifest's digest.
    pub manifest_digest: String,
    /// Same as `manifest_digest` (Quay field).
    pub reference: String,
    /// Whether the manifest is an index or manifest list.
    pub is_manifest_list: bool,
    /// Sum of the layer and config sizes; null for indexes.
    pub size: Option<i64>,
    /// When the tag last moved (RFC 2822).
    pub last_modified: String,
    /// The same, as a Unix timestamp.
    pub start_ts: i64,
    /// When the tag expires (RFC 2822), if it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// The same, as a Unix timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_ts: Option<i64>,
}

/// Answer of `GET …/tag/`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagsOut {
    /// Tags, most recently moved first.
    pub tags: Vec<TagOut>,
    /// This page's number.
    pub page: u32,
    /// Whether another page follows.
    pub has_additional: bool,
}

/// The repository's tags (read), in Quay's shape.
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/tag/", tag = "repository", operation_id = "listRepoTags",
    params(("namespace" = String, Path), ("repository" = String, Path), TagsQuery),
    responses((status = 200, body = TagsOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_tags(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<TagsQuery>,
) -> ApiResult<Json<TagsOut>> {
    // Quay numbers tag pages from 1.
    let page = q.page.unwrap_or(1).max(1);
    let paging = berth_app::paging::Paging::new(page - 1, q.limit.unwrap_or(50))?;
    let (tags, more) = s
        .app
        .repo_tags(&ctx.caller, &ns, &name, q.specific_tag.as_deref(), paging)
        .await?;
    let tags = tags
        .into_iter()
        .map(|t| TagOut {
            reference: t.manifest_digest.clone(),
            name: t.name,
            manifest_digest: t.manifest_digest,
            is_manifest_list: t.is_manifest_list,
            size: t.size,
            last_modified: quay_date(t.last_modified),
            start_ts: t.last_modified.timestamp(),
            expiration: t.expires_at.map(quay_date),
            end_ts: t.expires_at.map(|e| e.timestamp()),
        })
        .collect();
    Ok(Json(TagsOut {
        tags,
        page,
        has_additional: more,
    }))
}

/// Body of `PUT …/tag/{tag}` (Quay's): `expiration` sets (a Unix time in the future) or clears
/// (`null`) the tag's expiry; `manifest_digest` points the tag at a manifest of the repository.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TagChange {
    /// When the tag expires, as a Unix time; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub expiration: Option<serde_json::Value>,
    /// The manifest the tag should point at.
    pub manifest_digest: Option<String>,
}

/// Keeps an explicit `null` as `Some(Value::Null)`, so that it can be told from an absent field.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// Changes a tag (write): its expiry, or the manifest it points at (Quay's route).
#[utoipa::path(put, path = "/api/v1/repository/{namespace}/{repository}/tag/{tag}", tag = "repository", operation_id = "changeTag",
    params(("namespace" = String, Path), ("repository" = String, Path), ("tag" = String, Path)),
    request_body = TagChange,
    responses((status = 201, body = String), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn change_tag(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name, tag)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<TagChange>,
) -> ApiResult<(StatusCode, Json<&'static str>)> {
    if body.expiration.is_none() && body.manifest_digest.is_none() {
        return Err(AppError::invalid("give expiration or manifest_digest").into());
    }
    if let Some(digest) = &body.manifest_digest {
        s.app.move_tag(&ctx, &ns, &name, &tag, digest).await?;
    }
    match body.expiration {
        None => {}
        Some(serde_json::Value::Null) => s.app.set_tag_expiration(&ctx, &ns, &name, &tag, None).await?,
        Some(v) => {
            let ts = v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).ok_or_else(|| {
                AppError::invalid_field("expiration", format!("invalid expiration: {v} is not a Unix time"))
            })?;
            s.app.set_tag_expiration(&ctx, &ns, &name, &tag, Some(ts)).await?;
        }
    }
    Ok((StatusCode::CREATED, Json("Updated")))
}

/// Deletes a tag (write); the manifest stays. Raises `tag_deleted`.
#[utoipa::path(delete, path = "/api/v1/repository/{namespace}/{repository}/tag/{tag}", tag = "repository", operation_id = "deleteFullTag",
    params(("namespace" = String, Path), ("repository" = String, Path), ("tag" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_tag(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, tag)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_tag(&ctx, &ns, &name, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}
