//! Notifications, Quay-compatible: a repository's under `…/repository/{ns}/{repo}/notification/`
//! (list, create), `…/{uuid}` (get, delete, reset, and Berth's edit and pause with `PUT`) and
//! `…/{uuid}/test`; and namespace-wide ones (Berth extends Quay's namespace notification routes to
//! every repository event) under `/api/v1/organization/{orgname}/notifications` and, for the
//! caller's own namespace, `/api/v1/user/namespacenotifications`, with the same operations.
//! Admins of the holder only; uuids are scoped to it. One handler serves each operation: [`At`]
//! reads the holder from whichever route matched, and [`namespace_twins`] registers the two
//! namespace routes of a handler with their own OpenAPI entries.

use std::collections::HashMap;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::{OptionalFromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use berth_app::AppError;
use berth_app::accounts::AdminNamespace;
use berth_app::notifications::Place;
use berth_app::notifications::{NotificationChange, NotificationRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::HttpState;
use crate::error::{ApiError, ApiResult, ErrorBody};
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
        .routes(routes!(org_list_notifications, org_create_notification))
        .routes(routes!(
            org_get_notification,
            org_delete_notification,
            org_reset_notification,
            org_update_notification
        ))
        .routes(routes!(org_test_notification))
        .routes(routes!(user_list_notifications, user_create_notification))
        .routes(routes!(
            user_get_notification,
            user_delete_notification,
            user_reset_notification,
            user_update_notification
        ))
        .routes(routes!(user_test_notification))
}

/// What a notification route points at, read from whichever route matched: the holder (a
/// repository with `{namespace}/{repository}`, an organization with `{orgname}`, else the
/// caller's own namespace), and the notification's `{uuid}` and delivery `{id}` where the route
/// has them (empty otherwise).
pub(crate) struct At {
    repository: Option<(String, String)>,
    org: Option<String>,
    /// The notification.
    pub uuid: String,
    /// The delivery.
    pub id: String,
}

impl At {
    /// The holder.
    pub fn place(&self) -> Place<'_> {
        match (&self.repository, &self.org) {
            (Some((namespace, name)), _) => Place::repo(namespace, name),
            (None, Some(org)) => Place::Namespace(AdminNamespace::Org(org)),
            (None, None) => Place::Namespace(AdminNamespace::CurrentUser),
        }
    }
}

impl FromRequestParts<HttpState> for At {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Self::Rejection> {
        let params =
            <Path<HashMap<String, String>> as OptionalFromRequestParts<HttpState>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::invalid(e.to_string()))?
                .map(|Path(p)| p)
                .unwrap_or_default();
        let take = |k: &str| params.get(k).cloned();
        Ok(At {
            repository: take("namespace").zip(take("repository")),
            org: take("orgname"),
            uuid: take("uuid").unwrap_or_default(),
            id: take("id").unwrap_or_default(),
        })
    }
}

/// Declares, for each repository notification handler, its two namespace-wide twins: one under
/// `/api/v1/organization/{orgname}/notifications` and one under
/// `/api/v1/user/namespacenotifications`, each with its own OpenAPI entry, each calling the
/// handler (whose [`At`] reads the holder from the route).
macro_rules! namespace_twins {
    ($(
        $(#[doc = $doc:literal])*
        $handler:ident => $org:ident $org_path:literal, $user:ident $user_path:literal,
        $method:ident $op:literal ($($arg:ident: $ty:ty),*) -> $ret:ty,
        params($($param:tt)*), $(body = $body:ty,)? responses($($resp:tt)*);
    )*) => {$(
        $(#[doc = $doc])*
        #[utoipa::path($method, path = $org_path, tag = "namespace notification", operation_id = concat!("org", $op),
            params(("orgname" = String, Path), $($param)*), $(request_body = $body,)? responses($($resp)*))]
        async fn $org($($arg: $ty),*) -> $ret {
            $handler($($arg),*).await
        }

        $(#[doc = $doc])*
        #[utoipa::path($method, path = $user_path, tag = "namespace notification", operation_id = concat!("user", $op),
            params($($param)*), $(request_body = $body,)? responses($($resp)*))]
        async fn $user($($arg: $ty),*) -> $ret {
            $handler($($arg),*).await
        }
    )*};
}
pub(crate) use namespace_twins;

namespace_twins! {
    /// A namespace's namespace-wide notifications (its admins).
    list_notifications => org_list_notifications "/api/v1/organization/{orgname}/notifications",
        user_list_notifications "/api/v1/user/namespacenotifications",
        get "ListNamespaceNotifications" (s: State<HttpState>, ctx: ApiCtx, at: At) -> ApiResult<Json<NotificationList>>,
        params(), responses((status = 200, body = NotificationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// Creates a namespace-wide notification (its admins): every repository event of the
    /// namespace, present and future, narrowed by `eventConfig.repository-regex` (a full match on
    /// the repository's name); `repo_created` and `repo_deleted` too.
    create_notification => org_create_notification "/api/v1/organization/{orgname}/notifications",
        user_create_notification "/api/v1/user/namespacenotifications",
        post "CreateNamespaceNotification" (s: State<HttpState>, ctx: SignedCtx, at: At, body: ApiJson<NotificationIn>) -> ApiResult<(StatusCode, Json<NotificationView>)>,
        params(), body = NotificationIn, responses((status = 201, body = NotificationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// One namespace-wide notification (its admins).
    get_notification => org_get_notification "/api/v1/organization/{orgname}/notifications/{uuid}",
        user_get_notification "/api/v1/user/namespacenotifications/{uuid}",
        get "GetNamespaceNotification" (s: State<HttpState>, ctx: ApiCtx, at: At) -> ApiResult<Json<NotificationView>>,
        params(("uuid" = String, Path)), responses((status = 200, body = NotificationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// Deletes a namespace-wide notification (its admins).
    delete_notification => org_delete_notification "/api/v1/organization/{orgname}/notifications/{uuid}",
        user_delete_notification "/api/v1/user/namespacenotifications/{uuid}",
        delete "DeleteNamespaceNotification" (s: State<HttpState>, ctx: ApiCtx, at: At) -> ApiResult<StatusCode>,
        params(("uuid" = String, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// Clears a namespace-wide notification's failure count and re-enables it (its admins).
    reset_notification => org_reset_notification "/api/v1/organization/{orgname}/notifications/{uuid}",
        user_reset_notification "/api/v1/user/namespacenotifications/{uuid}",
        post "ResetNamespaceNotification" (s: State<HttpState>, ctx: ApiCtx, at: At) -> ApiResult<StatusCode>,
        params(("uuid" = String, Path)), responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// Edits, pauses or resumes a namespace-wide notification (its admins; Berth).
    update_notification => org_update_notification "/api/v1/organization/{orgname}/notifications/{uuid}",
        user_update_notification "/api/v1/user/namespacenotifications/{uuid}",
        put "UpdateNamespaceNotification" (s: State<HttpState>, ctx: SignedCtx, at: At, body: ApiJson<NotificationEdit>) -> ApiResult<Json<NotificationView>>,
        params(("uuid" = String, Path)), body = NotificationEdit, responses((status = 200, body = NotificationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// Queues a test send of a namespace-wide notification (its admins), about a repository named
    /// `sample` of the namespace.
    test_notification => org_test_notification "/api/v1/organization/{orgname}/notifications/{uuid}/test",
        user_test_notification "/api/v1/user/namespacenotifications/{uuid}/test",
        post "TestNamespaceNotification" (s: State<HttpState>, ctx: ApiCtx, at: At) -> ApiResult<Json<Value>>,
        params(("uuid" = String, Path)), responses((status = 200, body = Value), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
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
    at: At,
) -> ApiResult<Json<NotificationList>> {
    let rows = s.app.list_notifications(&ctx.caller, at.place()).await?;
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
    at: At,
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
    let row = s.app.create_notification(&ctx, at.place(), &req).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// One notification of the repository (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}", tag = "notification", operation_id = "getRepoNotification",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = NotificationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_notification(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    at: At,
) -> ApiResult<Json<NotificationView>> {
    Ok(Json(
        s.app.get_notification(&ctx.caller, at.place(), &at.uuid).await?.into(),
    ))
}

/// Deletes a notification (admin).
#[utoipa::path(delete, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}", tag = "notification", operation_id = "deleteRepoNotification",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_notification(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx, at: At) -> ApiResult<StatusCode> {
    s.app.delete_notification(&ctx, at.place(), &at.uuid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clears the failure count and re-enables the notification (admin).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}", tag = "notification", operation_id = "resetRepositoryNotificationFailures",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reset_notification(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx, at: At) -> ApiResult<StatusCode> {
    s.app.reset_notification(&ctx, at.place(), &at.uuid).await?;
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
    at: At,
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
    let row = s.app.update_notification(&ctx, at.place(), &at.uuid, &change).await?;
    Ok(Json(row.into()))
}

/// Queues a test send of the event's sample data (admin).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}/test", tag = "notification", operation_id = "testRepoNotification",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = Value), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn test_notification(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx, at: At) -> ApiResult<Json<Value>> {
    s.app.test_notification(&ctx, at.place(), &at.uuid).await?;
    Ok(Json(serde_json::json!({})))
}
