//! Repository notifications, Quay-compatible: `…/notification/` (list, create), `…/{uuid}` (get,
//! delete, reset, and Berth's edit and pause with `PUT`) and `…/{uuid}/test`. Repository admins
//! only; uuids are scoped to the repository in the path.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_app::AppError;
use berth_app::notifications::{NotificationChange, NotificationRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::HttpState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiCtx, ApiJson, SignedCtx};

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications, create_notification))
        .routes(routes!(
            get_notification,
            delete_notification,
            reset_notification,
            update_notification
        ))
        .routes(routes!(test_notification))
}

/// A notification as Quay shows it, plus `enabled`, `disabled_reason`, `disabled_at` and `created`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// Its id.
    pub uuid: String,
    /// Optional title.
    pub title: Option<String>,
    /// Event name.
    pub event: String,
    /// Method name.
    pub method: String,
    /// Method configuration.
    pub config: Value,
    /// Event configuration.
    pub event_config: Value,
    /// Consecutive failed deliveries.
    pub number_of_failures: i32,
    /// Whether deliveries happen.
    pub enabled: bool,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// When it was disabled (RFC 3339).
    pub disabled_at: Option<String>,
    /// When it was created (RFC 3339).
    pub created: String,
}

impl From<berth_app::model::NotificationRow> for NotificationView {
    fn from(n: berth_app::model::NotificationRow) -> Self {
        NotificationView {
            uuid: n.uuid,
            title: n.title,
            event: n.event,
            method: n.method,
            config: n.config.0,
            event_config: n.event_config.0,
            number_of_failures: n.number_of_failures,
            enabled: n.enabled,
            disabled_reason: n.disabled_reason,
            disabled_at: n.disabled_at.map(|t| t.to_rfc3339()),
            created: n.created_at.to_rfc3339(),
        }
    }
}

/// Answer of the list route.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    /// Oldest first.
    pub notifications: Vec<NotificationView>,
}

/// Body of the create route (Quay's schema).
#[derive(Debug, Deserialize, ToSchema)]
pub struct NotificationIn {
    /// Event name, e.g. `repo_push`.
    pub event: String,
    /// Method name, e.g. `webhook`.
    pub method: String,
    /// Method configuration, e.g. `{"url": …}`.
    pub config: Value,
    /// Event configuration (filters), e.g. `{"ref-regex": …}`.
    #[serde(rename = "eventConfig")]
    pub event_config: Value,
    /// Optional title (a string; `null` is rejected, as in Quay).
    #[serde(default, deserialize_with = "present")]
    pub title: Option<Value>,
}

/// Body of the edit route (Berth): creation's fields, each optional (left out: unchanged), and
/// `enabled` to pause (`false`) or resume (`true`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct NotificationEdit {
    /// The event, which cannot change (repeating it is allowed).
    pub event: Option<String>,
    /// The method, which cannot change (repeating it is allowed).
    pub method: Option<String>,
    /// The new method configuration, validated as at creation.
    pub config: Option<Value>,
    /// The new event configuration, validated as at creation.
    #[serde(rename = "eventConfig")]
    pub event_config: Option<Value>,
    /// The new title; an empty one removes it.
    pub title: Option<String>,
    /// `false` pauses the notification (its events are logged as `skipped`), `true` resumes it.
    pub enabled: Option<bool>,
}

/// Keeps an explicit `null` as `Some(Value::Null)`, so that it can be told from an absent field.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The repository's notifications (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/notification/", tag = "notification", operation_id = "listRepoNotifications",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    responses((status = 200, body = NotificationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_notifications(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<NotificationList>> {
    let rows = s.app.list_notifications(&ctx.caller, &ns, &name).await?;
    Ok(Json(NotificationList {
        notifications: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Creates a notification (admin); every field is validated, and errors name the problem.
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/notification/", tag = "notification", operation_id = "createRepoNotification",
    params(("namespace" = String, Path), ("repository" = String, Path)),
    request_body = NotificationIn,
    responses((status = 201, body = NotificationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_notification(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<NotificationIn>,
) -> ApiResult<(StatusCode, Json<NotificationView>)> {
    let title = match body.title {
        None => None,
        Some(Value::String(t)) => Some(t),
        Some(other) => return Err(AppError::invalid(format!("invalid title: {other} is not a string")).into()),
    };
    let req = NotificationRequest {
        event: body.event,
        method: body.method,
        config: body.config,
        event_config: body.event_config,
        title,
    };
    let row = s.app.create_notification(&ctx, &ns, &name, &req).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One notification of the repository (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}", tag = "notification", operation_id = "getRepoNotification",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = NotificationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_notification(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
) -> ApiResult<Json<NotificationView>> {
    Ok(Json(
        s.app.get_notification(&ctx.caller, &ns, &name, &uuid).await?.into(),
    ))
}

/// Deletes a notification (admin).
#[utoipa::path(delete, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}", tag = "notification", operation_id = "deleteRepoNotification",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_notification(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    s.app.delete_notification(&ctx, &ns, &name, &uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clears the failure count and re-enables the notification (admin).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}", tag = "notification", operation_id = "resetRepositoryNotificationFailures",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_notification(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    s.app.reset_notification(&ctx, &ns, &name, &uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Edits, pauses or resumes a notification (admin; Berth). Fields left out stay; the event and
/// the method cannot change. Deliveries already queued keep the configuration they were made
/// under.
#[utoipa::path(put, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}", tag = "notification", operation_id = "updateRepoNotification",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    request_body = NotificationEdit,
    responses((status = 200, body = NotificationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_notification(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<NotificationEdit>,
) -> ApiResult<Json<NotificationView>> {
    let change = NotificationChange {
        event: body.event,
        method: body.method,
        config: body.config,
        event_config: body.event_config,
        title: body.title,
        enabled: body.enabled,
    };
    let row = s.app.update_notification(&ctx, &ns, &name, &uuid, &change).await?;
    Ok(Json(row.into()))
}

/// Queues a test send of the event's sample data (admin).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}/test", tag = "notification", operation_id = "testRepoNotification",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = Value), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn test_notification(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, uuid)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    s.app.test_notification(&ctx, &ns, &name, &uuid).await?;
    Ok(Json(serde_json::json!({})))
}
