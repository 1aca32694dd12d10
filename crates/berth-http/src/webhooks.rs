//! Routes that outside services call without an account: the one-time upload URL of a filedrop
//! (`PUT /filedrop/{id}?token=…`) and build triggers' webhooks
//! (`POST /webhooks/push/trigger/{uuid}`, authenticated by the trigger's secret as each service
//! signs). Errors use the API's error body.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
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

async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| AppError::Invalid(format!("the body is larger than {limit} bytes")).into())
}

async fn upload(
    State(s): State<HttpState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let token = q
        .token
        .ok_or_else(|| AppError::Invalid("the upload URL needs its token parameter".into()))?;
    let limit = usize::try_from(s.app.settings().builds.max_context_bytes).unwrap_or(usize::MAX);
    let bytes = read_body(body, limit.saturating_add(1)).await?;
    s.app.fill_filedrop(&id, &token, &bytes).await?;
    Ok((StatusCode::OK, axum::Json(json!({"file_id": id, "size": bytes.len()}))).into_response())
}

async fn trigger_webhook(
    State(s): State<HttpState>,
    Path(uuid): Path<String>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, MAX_WEBHOOK_BODY).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let basic = match credentials(&headers) {
        Ok(Some(Credentials::Basic(_, password))) => Some(password),
        _ => None,
    };
    let req = WebhookRequest {
        github_event: header("x-github-event"),
        github_signature: header("x-hub-signature-256"),
        gitlab_event: header("x-gitlab-event"),
        gitlab_token: header("x-gitlab-token"),
        custom_secret: basic.as_deref().or(q.token.as_deref()),
        body: &bytes,
    };
    let outcome = s.app.trigger_webhook(&uuid, &req).await?;
    let (status, body) = match outcome {
        WebhookOutcome::Queued(build) => (StatusCode::CREATED, json!({"build_id": build})),
        WebhookOutcome::Ignored(why) => (StatusCode::OK, json!({"skipped": why})),
    };
    Ok((status, axum::Json(body)).into_response())
}
