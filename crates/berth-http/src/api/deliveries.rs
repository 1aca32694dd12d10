//! The delivery engine's routes under a notification (Berth additions; admins of its holder
//! only): the delivery log (`…/deliveries`, `…/deliveries/{id}`), redelivery, recovery, and the
//! signing secret (`…/secret`, `…/secret/rotate`), under a repository's notification and, through
//! [`namespace_twins`], under a namespace-wide one.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use berth_app::AppError;
use berth_app::events::DeliveryPayload;
use berth_app::model::{AttemptRow, DeliveryRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::HttpState;
use crate::api::notification::{At, namespace_twins};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiCtx, ApiJson, SignedCtx};

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(redeliver))
        .routes(routes!(recover))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
        .routes(routes!(org_list_deliveries))
        .routes(routes!(org_get_delivery))
        .routes(routes!(org_redeliver))
        .routes(routes!(org_recover))
        .routes(routes!(org_get_secret))
        .routes(routes!(org_rotate_secret))
        .routes(routes!(user_list_deliveries))
        .routes(routes!(user_get_delivery))
        .routes(routes!(user_redeliver))
        .routes(routes!(user_recover))
        .routes(routes!(user_get_secret))
        .routes(routes!(user_rotate_secret))
}

namespace_twins! {
    /// A namespace-wide notification's deliveries, newest first (its admins).
    list_deliveries => org_list_deliveries "/api/v1/organization/{orgname}/notifications/{uuid}/deliveries",
        user_list_deliveries "/api/v1/user/namespacenotifications/{uuid}/deliveries",
        get "ListNamespaceNotificationDeliveries" (s: State<HttpState>, ctx: ApiCtx, at: At, q: Query<DeliveryQuery>) -> ApiResult<Json<DeliveryList>>,
        params(("uuid" = String, Path), DeliveryQuery), responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// One delivery of a namespace-wide notification with every attempt (its admins).
    get_delivery => org_get_delivery "/api/v1/organization/{orgname}/notifications/{uuid}/deliveries/{id}",
        user_get_delivery "/api/v1/user/namespacenotifications/{uuid}/deliveries/{id}",
        get "GetNamespaceNotificationDelivery" (s: State<HttpState>, ctx: ApiCtx, at: At) -> ApiResult<Json<DeliveryDetail>>,
        params(("uuid" = String, Path), ("id" = String, Path)), responses((status = 200, body = DeliveryDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// Sends one delivery of a namespace-wide notification again now (its admins).
    redeliver => org_redeliver "/api/v1/organization/{orgname}/notifications/{uuid}/deliveries/{id}/redeliver",
        user_redeliver "/api/v1/user/namespacenotifications/{uuid}/deliveries/{id}/redeliver",
        post "RedeliverNamespaceNotificationDelivery" (s: State<HttpState>, ctx: ApiCtx, at: At) -> ApiResult<StatusCode>,
        params(("uuid" = String, Path), ("id" = String, Path)), responses((status = 202), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// Re-queues a namespace-wide notification's failed or skipped deliveries since a time (its
    /// admins; the notification must be enabled).
    recover => org_recover "/api/v1/organization/{orgname}/notifications/{uuid}/recover",
        user_recover "/api/v1/user/namespacenotifications/{uuid}/recover",
        post "RecoverNamespaceNotificationDeliveries" (s: State<HttpState>, ctx: SignedCtx, at: At, body: ApiJson<RecoverIn>) -> ApiResult<(StatusCode, Json<RecoverOut>)>,
        params(("uuid" = String, Path)), body = RecoverIn, responses((status = 202, body = RecoverOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// A namespace-wide notification's signing secret (its admins).
    get_secret => org_get_secret "/api/v1/organization/{orgname}/notifications/{uuid}/secret",
        user_get_secret "/api/v1/user/namespacenotifications/{uuid}/secret",
        get "GetNamespaceNotificationSecret" (s: State<HttpState>, ctx: ApiCtx, at: At) -> ApiResult<Json<SecretOut>>,
        params(("uuid" = String, Path)), responses((status = 200, body = SecretOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
    /// Rotates a namespace-wide notification's signing secret (its admins).
    rotate_secret => org_rotate_secret "/api/v1/organization/{orgname}/notifications/{uuid}/secret/rotate",
        user_rotate_secret "/api/v1/user/namespacenotifications/{uuid}/secret/rotate",
        post "RotateNamespaceNotificationSecret" (s: State<HttpState>, ctx: ApiCtx, at: At) -> ApiResult<Json<SecretOut>>,
        params(("uuid" = String, Path)), responses((status = 200, body = SecretOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody));
}

/// A delivery in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    /// Its id, sent as `webhook-id` and `X-Berth-Delivery` on every attempt.
    pub id: String,
    /// The event name.
    pub event: String,
    /// `pending`, `delivered`, `failed`, `skipped` (the notification was disabled) or `filtered`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last error.
    pub last_error: Option<String>,
    /// Whether it is a test send.
    pub test: bool,
    /// When the event happened (RFC 3339).
    pub created: String,
    /// When the status last changed (RFC 3339).
    pub updated: String,
    /// When the next attempt is due (RFC 3339), while a pending delivery waits to be retried
    /// after a failed attempt.
    pub next_attempt: Option<String>,
}

impl From<DeliveryRow> for DeliveryOut {
    fn from(d: DeliveryRow) -> Self {
        let test = DeliveryPayload::of(&d).is_ok_and(|p| p.test);
        DeliveryOut {
            id: d.public_id,
            event: d.event,
            status: d.status.to_string(),
            attempts: d.attempts,
            last_error: d.last_error,
            test,
            created: d.created_at.to_rfc3339(),
            updated: d.updated_at.to_rfc3339(),
            next_attempt: d.next_attempt_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    /// Its number among the delivery's attempts, from 1, counted on across redeliveries.
    pub attempt: i32,
    /// When it started (RFC 3339).
    pub started: String,
    /// How long it took.
    pub duration_ms: i64,
    /// `delivered`, `retry` or `failed`.
    pub outcome: String,
    /// Where it went (secrets masked).
    pub request_url: String,
    /// Headers sent, as `[name, value]` pairs.
    pub request_headers: Vec<(String, String)>,
    /// Body sent.
    pub request_body: String,
    /// Status received.
    pub response_status: Option<i32>,
    /// Headers received.
    pub response_headers: Option<Vec<(String, String)>>,
    /// Body received (at most 20 KiB).
    pub response_body: Option<String>,
    /// What went wrong when no answer came.
    pub error: Option<String>,
}

impl From<AttemptRow> for AttemptOut {
    fn from(a: AttemptRow) -> Self {
        AttemptOut {
            attempt: a.attempt,
            started: a.started_at.to_rfc3339(),
            duration_ms: a.duration_ms,
            outcome: a.outcome,
            request_url: a.request_url,
            request_headers: a.request_headers.0,
            request_body: a.request_body,
            response_status: a.response_status,
            response_headers: a.response_headers.map(|h| h.0),
            response_body: a.response_body,
            error: a.error,
        }
    }
}

/// A delivery with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: DeliveryOut,
    /// The event data that was (or will be) sent.
    pub event_data: Value,
    /// Every attempt, in order.
    pub attempts_log: Vec<AttemptOut>,
}

/// Query of the delivery list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeliveryQuery {
    /// Only deliveries of this status.
    pub status: Option<String>,
    /// Page number, from 0.
    #[serde(default)]
    pub page: u32,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<DeliveryOut>,
    /// Whether another page follows.
    pub additional: bool,
}

/// Body of the recover route.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverIn {
    /// Re-queue failed and skipped deliveries created at or after this time (RFC 3339).
    pub since: String,
}

/// Answer of the recover route.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoverOut {
    /// How many deliveries were queued again.
    pub queued: usize,
}

/// A notification's signing secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretOut {
    /// The secret new deliveries are signed with (`whsec_…`).
    pub secret: String,
    /// The previous secret, while it still signs.
    pub previous_secret: Option<String>,
    /// Until when the previous secret signs (RFC 3339).
    pub previous_secret_expires: Option<String>,
}

impl From<berth_app::delivery_log::Secrets> for SecretOut {
    fn from(s: berth_app::delivery_log::Secrets) -> Self {
        SecretOut {
            secret: s.secret,
            previous_secret: s.previous,
            previous_secret_expires: s.previous_until.map(|t| t.to_rfc3339()),
        }
    }
}

/// The notification's deliveries, newest first (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}/deliveries", tag = "notification", operation_id = "listNotificationDeliveries",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path), DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    at: At,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<DeliveryList>> {
    let (rows, additional) = s
        .app
        .list_deliveries(
            &ctx.caller,
            at.place(),
            &at.uuid,
            q.status.as_deref(),
            q.page,
            q.limit.unwrap_or(20),
        )
        .await?;
    Ok(Json(DeliveryList {
        deliveries: rows.into_iter().map(Into::into).collect(),
        additional,
    }))
}

/// One delivery with every attempt (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}/deliveries/{id}", tag = "notification", operation_id = "getNotificationDelivery",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = DeliveryDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_delivery(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx, at: At) -> ApiResult<Json<DeliveryDetail>> {
    let (d, attempts) = s.app.get_delivery(&ctx.caller, at.place(), &at.uuid, &at.id).await?;
    let event_data = DeliveryPayload::of(&d)?.data()?;
    Ok(Json(DeliveryDetail {
        delivery: d.into(),
        event_data,
        attempts_log: attempts.into_iter().map(Into::into).collect(),
    }))
}

/// Sends one delivery again now, with its id and body (admin).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}/deliveries/{id}/redeliver", tag = "notification", operation_id = "redeliverNotificationDelivery",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path), ("id" = String, Path)),
    responses((status = 202), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn redeliver(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx, at: At) -> ApiResult<StatusCode> {
    s.app.redeliver(&ctx, at.place(), &at.uuid, &at.id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Re-queues every failed or skipped delivery since a time (admin; the notification must be enabled).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}/recover", tag = "notification", operation_id = "recoverNotificationDeliveries",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    request_body = RecoverIn,
    responses((status = 202, body = RecoverOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn recover(
    State(s): State<HttpState>,
    SignedCtx(ctx): SignedCtx,
    at: At,
    ApiJson(body): ApiJson<RecoverIn>,
) -> ApiResult<(StatusCode, Json<RecoverOut>)> {
    let since = chrono::DateTime::parse_from_rfc3339(&body.since)
        .map_err(|e| AppError::invalid(format!("invalid since: '{}' is not an RFC 3339 time ({e})", body.since)))?
        .with_timezone(&chrono::Utc);
    let queued = s.app.recover(&ctx, at.place(), &at.uuid, since).await?;
    Ok((StatusCode::ACCEPTED, Json(RecoverOut { queued })))
}

/// The notification's signing secret (admin).
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}/secret", tag = "notification", operation_id = "getNotificationSecret",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = SecretOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_secret(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx, at: At) -> ApiResult<Json<SecretOut>> {
    Ok(Json(
        s.app
            .notification_secret(&ctx.caller, at.place(), &at.uuid)
            .await?
            .into(),
    ))
}

/// Rotates the signing secret; the old one keeps signing for the grace period (admin).
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/notification/{uuid}/secret/rotate", tag = "notification", operation_id = "rotateNotificationSecret",
    params(("namespace" = String, Path), ("repository" = String, Path), ("uuid" = String, Path)),
    responses((status = 200, body = SecretOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn rotate_secret(State(s): State<HttpState>, ApiCtx(ctx): ApiCtx, at: At) -> ApiResult<Json<SecretOut>> {
    Ok(Json(s.app.rotate_secret(&ctx, at.place(), &at.uuid).await?.into()))
}
