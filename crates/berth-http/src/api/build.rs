//! Dockerfile builds and build triggers, Quay-compatible: `…/build/` (start, list, get, status,
//! logs, cancel), `/api/v1/filedrop/` (an upload slot for a build context), and `…/trigger/`
//! (list, get, activate, delete, start by hand; creating one is a Berth addition, since Quay
//! creates triggers through OAuth flows). Reading builds needs `read`, starting and cancelling
//! `write`, triggers `admin`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use berth_app::builds::{BuildView, StartBuild};
use berth_app::model::TriggerRow;
use berth_app::triggers::ManualRun;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::HttpState;
use crate::api::quay_date;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiCtx, ApiJson, SignedCtx};

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(list_builds, start_build))
        .routes(routes!(get_build, cancel_build))
        .routes(routes!(build_status))
        .routes(routes!(build_logs))
        .routes(routes!(request_filedrop))
        .routes(routes!(list_triggers, create_trigger))
        .routes(routes!(get_trigger, delete_trigger))
        .routes(routes!(activate_trigger))
        .routes(routes!(start_trigger))
}

/// A build, as Quay shows it (plus `image_id`, `manifest_digests` and `completed`).
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildOut {
    /// The build's uuid.
    pub id: String,
    /// `waiting`, `pulling`, `building`, `pushing`, `complete`, `error`, `cancelled`,
    /// `internalerror` or `expired`.
    pub phase: String,
    /// When it was queued (RFC 2822).
    pub started: String,
    /// When it finished (RFC 2822), if it did.
    pub completed: Option<String>,
    /// Short commit SHA or short hash of the upload.
    pub display_name: String,
    /// Quay's status object.
    #[schema(value_type = Object)]
    pub status: Value,
    /// The context directory (Quay's legacy name).
    pub subdirectory: String,
    /// The Dockerfile, relative to the source root.
    pub dockerfile_path: String,
    /// The context directory, relative to the source root.
    pub context: String,
    /// Tags it pushes.
    pub tags: Vec<String>,
    /// Who started it by hand.
    pub manual_user: Option<String>,
    /// Whether the caller may start and cancel builds here.
    pub is_writer: bool,
    /// Its trigger: `{id, service, build_source}`, or null.
    #[schema(value_type = Object)]
    pub trigger: Value,
    /// Quay's `trigger_metadata`.
    #[schema(value_type = Object)]
    pub trigger_metadata: Value,
    /// The uploaded context's file id.
    pub resource_key: Option<String>,
    /// The downloaded context's URL.
    pub archive_url: Option<String>,
    /// Always null (robot credentials for base images are not used).
    #[schema(value_type = Object)]
    pub pull_robot: Value,
    /// `{namespace, name}`.
    #[schema(value_type = Object)]
    pub repository: Value,
    /// Why it failed.
    pub error: Option<String>,
    /// The pushed image's config digest.
    pub image_id: Option<String>,
    /// The pushed manifests.
    pub manifest_digests: Vec<String>,
}

impl From<BuildView> for BuildOut {
    fn from(v: BuildView) -> Self {
        let b = v.build;
        let source = &b.source.0;
        BuildOut {
            id: b.uuid,
            phase: b.phase.to_string(),
            started: quay_date(b.created_at),
            completed: b.completed_at.map(quay_date),
            display_name: b.display_name,
            status: json!({"phase": b.phase.as_str()}),
            subdirectory: b.context.clone(),
            dockerfile_path: b.dockerfile_path,
            context: b.context,
            tags: b.docker_tags.0,
            manual_user: b.manual_user,
            is_writer: v.can_write,
            trigger: v
                .trigger
                .map(|t| json!({"id": t.uuid, "service": t.service, "build_source": t.config.0["build_source"]}))
                .unwrap_or(Value::Null),
            trigger_metadata: b.trigger_metadata.0,
            resource_key: source.file_id().map(str::to_owned),
            archive_url: source.archive_url().map(str::to_owned),
            pull_robot: Value::Null,
            repository: json!({"namespace": v.repo.namespace, "name": v.repo.name}),
            error: b.error,
            image_id: b.image_id,
            manifest_digests: b.manifest_digests.0,
        }
    }
}

/// Body of the start route (Quay's `RepositoryBuildRequest`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct StartBuildIn {
    /// An uploaded context from `/api/v1/filedrop/`.
    pub file_id: Option<String>,
    /// A context to download (tar, tar.gz or a Dockerfile).
    pub archive_url: Option<String>,
    /// Legacy: the directory holding the Dockerfile (also the context).
    pub subdirectory: Option<String>,
    /// The Dockerfile, relative to the source root.
    pub dockerfile_path: Option<String>,
    /// The context directory, relative to the source root.
    pub context: Option<String>,
    /// Tags to push; `latest` when empty.
    #[serde(default)]
    pub docker_tags: Vec<String>,
    /// Not supported: base images are pulled with the build's own credential.
    pub pull_robot: Option<String>,
}

/// Answer of the list route.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuildList {
    /// Newest first.
    pub builds: Vec<BuildOut>,
}

/// Query of the list route.
#[derive(Debug, Deserialize, IntoParams)]
pub struct BuildListQuery {
    /// At most this many (1–100, default 5 as in Quay).
    pub limit: Option<i64>,
}

/// Query of the logs route.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogsQuery {
    /// The first line to return (0-based).
    #[serde(default)]
    pub start: i64,
}

/// A build's log lines from `start`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsOut {
    /// The first line's number.
    pub start: i64,
    /// Lines stored so far.
    pub total: i64,
    /// `{message, type?, data}`; `type` is `phase`, `command` or `error` (plain output has none).
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<Value>,
}

#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/build/", tag = "build", operation_id = "getRepoBuilds",
    params(("namespace" = String, Path), ("repository" = String, Path), BuildListQuery),
    responses((status = 200, body = BuildList), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_builds(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<BuildListQuery>,
) -> ApiResult<Json<BuildList>> {
    let builds = s.app.list_builds(&ctx, &ns, &name, q.limit.unwrap_or(5)).await?;
    Ok(Json(BuildList {
        builds: builds.into_iter().map(Into::into).collect(),
    }))
}

/// Starts a build from an uploaded context or an archive URL (`write`).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/build/", tag = "build", operation_id = "requestRepoBuild",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    request_body = StartBuildIn,
    responses((status = 201, body = BuildOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn start_build(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<StartBuildIn>,
) -> ApiResult<(StatusCode, Json<BuildOut>)> {
    if body.pull_robot.is_some() {
        return Err(berth_app::AppError::invalid(
            "pull_robot is not supported: builds pull this registry's images with their own credential",
        )
        .into());
    }
    let req = StartBuild {
        file_id: body.file_id,
        archive_url: body.archive_url,
        subdirectory: body.subdirectory,
        dockerfile_path: body.dockerfile_path,
        context: body.context,
        docker_tags: body.docker_tags,
    };
    let build = s.app.start_build(&ctx, &ns, &name, &req).await?;
    let view = s.app.get_build(&ctx, &ns, &name, &build.uuid).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/build/{build_uuid}", tag = "build", operation_id = "getRepoBuild",
    params(("namespace" = String, Path), ("repository" = String, Path), ("build_uuid" = String, Path)),
    responses((status = 200, body = BuildOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_build(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
) -> ApiResult<Json<BuildOut>> {
    Ok(Json(s.app.get_build(&ctx, &ns, &name, &uuid).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/build/{build_uuid}/status", tag = "build", operation_id = "getRepoBuildStatus",
    params(("namespace" = String, Path), ("repository" = String, Path), ("build_uuid" = String, Path)),
    responses((status = 200, body = BuildOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn build_status(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
) -> ApiResult<Json<BuildOut>> {
    Ok(Json(s.app.get_build(&ctx, &ns, &name, &uuid).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/build/{build_uuid}/logs", tag = "build", operation_id = "getRepoBuildLogs",
    params(("namespace" = String, Path), ("repository" = String, Path), ("build_uuid" = String, Path), LogsQuery),
    responses((status = 200, body = LogsOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn build_logs(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<LogsOut>> {
    let (lines, total) = s.app.build_logs(&ctx, &ns, &name, &uuid, q.start).await?;
    let logs = lines
        .into_iter()
        .map(|l| {
            let mut entry = json!({"message": l.message, "data": {"datetime": l.created_at.to_rfc3339()}});
            if l.kind != "output" {
                entry["type"] = json!(l.kind);
            }
            entry
        })
        .collect();
    Ok(Json(LogsOut {
        start: q.start.max(0),
        total,
        logs,
    }))
}

/// Cancels a build (`write`): a waiting one at once, a running one within a second.
#[utoipa::path(delete, path = "/api/v1/repository/{namespace}/{repository}/build/{build_uuid}", tag = "build", operation_id = "cancelRepoBuild",
    params(("namespace" = String, Path), ("repository" = String, Path), ("build_uuid" = String, Path)),
    responses((status = 201, body = BuildOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn cancel_build(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<BuildOut>)> {
    s.app.cancel_build(&ctx, &ns, &name, &uuid).await?;
    let view = s.app.get_build(&ctx, &ns, &name, &uuid).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// Body of the filedrop route.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FiledropIn {
    /// The upload's media type, e.g. `application/x-tar`.
    #[serde(rename = "mimeType")]
    pub mime_type: String,
}

/// Where to PUT the upload, and the id to build it with.
#[derive(Debug, Serialize, ToSchema)]
pub struct FiledropOut {
    /// A one-time upload URL (PUT the bytes, no other credentials needed).
    pub url: String,
    /// The `file_id` to start a build with.
    pub file_id: String,
}

/// Creates an upload slot for a build context (signed-in users).
#[utoipa::path(post, path = "/api/v1/filedrop/", tag = "build", operation_id = "getFiledropUrl",
    request_body = FiledropIn,
    responses((status = 200, body = FiledropOut), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn request_filedrop(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    ApiJson(body): ApiJson<FiledropIn>,
) -> ApiResult<Json<FiledropOut>> {
    let (file_id, token) = s.app.request_filedrop(&ctx, &body.mime_type).await?;
    let url = format!("{}/filedrop/{file_id}?token={token}", s.app.settings().base_url());
    Ok(Json(FiledropOut { url, file_id }))
}

/// A build trigger (Quay's view, plus `webhook_url` and `secret`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerOut {
    /// The trigger's uuid.
    pub id: String,
    /// `custom-git`, `github` or `gitlab`.
    pub service: String,
    /// Whether it is activated.
    pub is_active: bool,
    /// The git URL it builds.
    pub build_source: Option<String>,
    /// Its configuration.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Whether it can be started by hand.
    pub can_invoke: bool,
    /// Always true (triggers are not disabled automatically).
    pub enabled: bool,
    /// Where the service posts pushes.
    pub webhook_url: String,
    /// The webhook secret: GitHub's signing secret, GitLab's token, or the custom trigger's
    /// password (`$token:<secret>` in Basic auth, or `?token=`).
    pub secret: String,
}

fn trigger_out(s: &HttpState, t: TriggerRow) -> Result<TriggerOut, berth_app::AppError> {
    Ok(TriggerOut {
        secret: s.app.trigger_secret(&t)?,
        webhook_url: s.app.trigger_webhook_url(&t.uuid),
        build_source: t.config.0["build_source"].as_str().map(str::to_owned),
        id: t.uuid,
        service: t.service,
        is_active: t.activated,
        config: t.config.0,
        can_invoke: t.activated,
        enabled: true,
    })
}

/// Answer of the trigger list route.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerList {
    /// Oldest first.
    pub triggers: Vec<TriggerOut>,
}

/// Body of the trigger creation route.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TriggerIn {
    /// `custom-git`, `github` or `gitlab`.
    pub service: String,
}

/// Body of the activation route.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ActivateIn {
    /// `build_source` (required), `dockerfile_path`, `context`, `branchtag_regex`,
    /// `default_tag_from_ref`, `latest_for_default_branch`, `tag_templates`.
    #[schema(value_type = Object)]
    pub config: Value,
}

/// Body of the manual start route.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct StartTriggerIn {
    /// A branch to build at its head.
    pub branch_name: Option<String>,
    /// A commit to build.
    pub commit_sha: Option<String>,
    /// Quay's `{kind: branch|tag, name}`.
    #[schema(value_type = Object)]
    pub refs: Option<Value>,
}

#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/trigger/", tag = "build", operation_id = "listBuildTriggers",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    responses((status = 200, body = TriggerList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_triggers(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<TriggerList>> {
    let rows = s.app.list_triggers(&ctx, &ns, &name).await?;
    Ok(Json(TriggerList {
        triggers: rows.into_iter().map(|t| trigger_out(&s, t)).collect::<Result<_, _>>()?,
    }))
}

/// Creates an inactive trigger (Berth addition; `admin`).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/trigger/", tag = "build", operation_id = "createBuildTrigger",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    request_body = TriggerIn,
    responses((status = 201, body = TriggerOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_trigger(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<TriggerIn>,
) -> ApiResult<(StatusCode, Json<TriggerOut>)> {
    let t = s.app.create_trigger(&ctx, &ns, &name, &body.service).await?;
    Ok((StatusCode::CREATED, Json(trigger_out(&s, t)?)))
}

#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/trigger/{trigger_uuid}", tag = "build", operation_id = "getBuildTrigger",
    params(("namespace" = String, Path), ("repository" = String, Path), ("trigger_uuid" = String, Path)),
    responses((status = 200, body = TriggerOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_trigger(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
) -> ApiResult<Json<TriggerOut>> {
    Ok(Json(trigger_out(
        &s,
        s.app.get_trigger(&ctx, &ns, &name, &uuid).await?,
    )?))
}

#[utoipa::path(delete, path = "/api/v1/repository/{namespace}/{repository}/trigger/{trigger_uuid}", tag = "build", operation_id = "deleteBuildTrigger",
    params(("namespace" = String, Path), ("repository" = String, Path), ("trigger_uuid" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_trigger(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_trigger(&ctx, &ns, &name, &uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Activates a trigger with its configuration (`admin`).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/trigger/{trigger_uuid}/activate", tag = "build", operation_id = "activateBuildTrigger",
    params(("namespace" = String, Path), ("repository" = String, Path), ("trigger_uuid" = String, Path)),
    request_body = ActivateIn,
    responses((status = 200, body = TriggerOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn activate_trigger(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<ActivateIn>,
) -> ApiResult<Json<TriggerOut>> {
    Ok(Json(trigger_out(
        &s,
        s.app.activate_trigger(&ctx, &ns, &name, &uuid, &body.config).await?,
    )?))
}

/// Starts a trigger's build by hand (`admin`): a branch or tag at its head, or a commit.
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/trigger/{trigger_uuid}/start", tag = "build", operation_id = "manuallyStartBuildTrigger",
    params(("namespace" = String, Path), ("repository" = String, Path), ("trigger_uuid" = String, Path)),
    request_body = StartTriggerIn,
    responses((status = 201, body = BuildOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn start_trigger(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<StartTriggerIn>,
) -> ApiResult<(StatusCode, Json<BuildOut>)> {
    let mut run = ManualRun {
        branch_name: body.branch_name,
        commit_sha: body.commit_sha,
        tag_name: None,
    };
    if let Some(refs) = &body.refs {
        let name_of = refs["name"].as_str().map(str::to_owned);
        match refs["kind"].as_str() {
            Some("branch") => run.branch_name = name_of,
            Some("tag") => run.tag_name = name_of,
            other => {
                return Err(berth_app::AppError::invalid(format!(
                    "refs.kind must be 'branch' or 'tag', not {}",
                    other.unwrap_or("missing")
                ))
                .into());
            }
        }
    }
    let build = s.app.start_trigger(&ctx, &ns, &name, &uuid, &run).await?;
    let view = s.app.get_build(&ctx, &ns, &name, &build.uuid).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}
