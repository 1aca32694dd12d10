//! Repository mirroring, Quay's routes: `…/mirror` (read, create with `POST`, change with `PUT`),
//! `…/mirror/sync-now` and `…/mirror/sync-cancel`. Repository admins only; the upstream password
//! is never shown.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_app::AppError;
use berth_app::mirror::MirrorView;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::HttpState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiCtx, ApiJson, SignedCtx};

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(get_mirror, create_mirror, change_mirror))
        .routes(routes!(sync_now))
        .routes(routes!(sync_cancel))
}

/// A mirror's configuration and sync state, as Quay shows it (no password).
#[derive(Debug, Serialize, ToSchema)]
pub struct MirrorOut {
    /// Whether it syncs on its schedule.
    pub is_enabled: bool,
    /// Always `PULL`.
    pub mirror_type: &'static str,
    /// `host[:port]/path` of the upstream repository.
    pub external_reference: String,
    /// The upstream user, if any.
    pub external_registry_username: Option<String>,
    /// `verify_tls`, `unsigned_images`, `proxy`.
    pub external_registry_config: Value,
    /// Seconds between syncs.
    pub sync_interval: i64,
    /// When the first sync was due (`YYYY-MM-DDTHH:MM:SSZ`).
    pub sync_start_date: String,
    /// While syncing, when its time runs out.
    pub sync_expiration_date: Option<String>,
    /// Failed syncs left before the next interval.
    pub sync_retries_remaining: i32,
    /// `NEVER_RUN`, `SYNC_NOW`, `SYNCING`, `SUCCESS`, `FAIL` or `CANCEL`.
    pub sync_status: String,
    /// `{"rule_kind": "tag_glob_csv", "rule_value": [...]}`.
    pub root_rule: Value,
    /// The robot that writes the synced tags.
    pub robot_username: String,
    /// The most a sync may take, in seconds.
    pub skopeo_timeout_interval: i64,
    /// The architectures an index is narrowed to.
    pub architecture_filter: Value,
    /// Why the last sync failed (Berth).
    pub last_error: Option<String>,
    /// What the last sync did, line by line (Berth).
    pub last_log: String,
}

fn quay_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl From<MirrorView> for MirrorOut {
    fn from(v: MirrorView) -> Self {
        let m = v.row;
        MirrorOut {
            is_enabled: m.is_enabled,
            mirror_type: "PULL",
            external_reference: m.external_reference,
            external_registry_username: m.username,
            external_registry_config: m.registry_config.0,
            sync_interval: m.sync_interval,
            sync_start_date: quay_time(m.sync_start_date),
            sync_expiration_date: m.sync_expiration_date.map(quay_time),
            sync_retries_remaining: m.sync_retries_remaining,
            sync_status: m.sync_status,
            root_rule: m.root_rule.0,
            robot_username: v.robot_username,
            skopeo_timeout_interval: m.timeout_secs,
            architecture_filter: m.architecture_filter.0,
            last_error: m.last_error,
            last_log: m.last_log,
        }
    }
}

/// The repository's mirror (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/mirror", tag = "mirror", operation_id = "getRepoMirrorConfig",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    responses((status = 200, body = MirrorOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_mirror(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<MirrorOut>> {
    Ok(Json(s.app.get_mirror(&ctx.caller, &ns, &name).await?.into()))
}

/// Creates the repository's mirror (admin): 409 when it has one. Quay's body: `is_enabled`,
/// `external_reference`, `external_registry_username`, `external_registry_password`,
/// `sync_interval`, `sync_start_date`, `robot_username`, `skopeo_timeout_interval`, `root_rule`,
/// `external_registry_config`, `architecture_filter`.
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/mirror", tag = "mirror", operation_id = "createRepoMirrorConfig",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    request_body = Value,
    responses((status = 201, body = MirrorOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_mirror(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<MirrorOut>)> {
    match s.app.put_mirror(&ctx, &ns, &name, &body, true).await {
        Ok(view) => Ok((StatusCode::CREATED, Json(view.into()))),
        // Quay answers 409 here.
        Err(AppError::Conflict(detail)) => Err(ApiError::conflict(detail)),
        Err(e) => Err(e.into()),
    }
}

/// Changes the repository's mirror (admin): the fields given change, the others stay.
#[utoipa::path(put, path = "/api/v1/repository/{namespace}/{repository}/mirror", tag = "mirror", operation_id = "changeRepoMirrorConfig",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    request_body = Value,
    responses((status = 201, body = MirrorOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn change_mirror(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<MirrorOut>)> {
    let view = s.app.put_mirror(&ctx, &ns, &name, &body, false).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// Syncs the mirror now (admin).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/mirror/sync-now", tag = "mirror", operation_id = "syncNow",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn sync_now(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    match s.app.mirror_sync_now(&ctx, &ns, &name).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(AppError::Conflict(detail)) => Err(ApiError::conflict(detail)),
        Err(e) => Err(e.into()),
    }
}

/// Cancels the mirror's running or asked-for sync (admin).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/mirror/sync-cancel", tag = "mirror", operation_id = "syncCancel",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn sync_cancel(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.mirror_sync_cancel(&ctx, &ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
