//! Routes that outside services call without an account: the one-time upload URL of a filedrop
//! (`PUT /filedrop/{id}?token=…`) and build triggers' webhooks
//! (`POST /webhooks/push/trigger/{uuid}`, authenticated by the trigger's secret as each service
//! signs). Errors use the API's error body.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use berth_app::AppError;
use berth_app::triggers::{WebhookOutcome, WebhookRequest};
use serde::Deserialize;
use serde_json::json;

use crate::HttpState;
use crate::error::ApiError;
use crate::extract::{Credentials, credentials};

/// Webhook bodies larger than this are refused (GitHub's own cap is 25 MB).
const MAX_WEBHOOK_BODY: usize = 25 << 20;

/// The routes.
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/filedrop/{id}", put(upload))
        .route("/webhooks/push/trigger/{uuid}", post(trigger_webhook))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: Option<String>,
}

/// The `Content-Length` a client declared, if any.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads a body of at most `limit` bytes; a larger one is a 413 (refused before reading when its
/// `Content-Length` says so).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let too_large = || ApiError::from(AppError::TooLarge(format!("the body is larger than {limit} bytes")));
    if declared_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|_| too_large())
}

/// `PUT /filedrop/{id}?token=…`: the id, the token and whether builds are on are checked before
/// the body is read; then it is stored piece by piece as it arrives.
async fn upload(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let token = q
        .token
        .ok_or_else(|| AppError::invalid("the upload URL needs its token parameter"))?;
    let mut reader = crate::oci::body_reader(body);
    let size = s
        .app
        .fill_filedrop(&id, &token, declared_length(&headers), &mut reader)
        .await?;
    Ok((StatusCode::OK, axum::Json(json!({"file_id": id, "size": size}))).into_response())
}

/// `POST /webhooks/push/trigger/{uuid}`: the trigger, whether builds are on and (where the
/// service sends one) the token are checked before the body is read.
async fn trigger_webhook(
    State(s): State<HttpState>,
    Path(uuid): Path<String>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let basic = match credentials(&headers) {
        Ok(Some(Credentials::Basic(_, password))) => Some(password),
        _ => None,
    };
    let mut req = WebhookRequest {
        github_event: header("x-github-event"),
        github_signature: header("x-hub-signature-256"),
        gitlab_event: header("x-gitlab-event"),
        gitlab_token: header("x-gitlab-token"),
        custom_secret: basic.as_deref().or(q.token.as_deref()),
        body: &[],
    };
    let target = s.app.webhook_target(&uuid, &req).await?;
    let bytes = read_body(&headers, body, MAX_WEBHOOK_BODY).await?;
    req.body = &bytes;
    let outcome = s.app.trigger_webhook(target, &req).await?;
    let (status, body) = match outcome {
        WebhookOutcome::Queued(build) => (StatusCode::CREATED, json!({"build_id": build})),
        WebhookOutcome::Ignored(why) => (StatusCode::OK, json!({"skipped": why})),
    };
    Ok((status, axum::Json(body)).into_response())
}
