//! Quay's API error body, and the single mapping from [`AppError`] to it:
//! `{"detail","error_message","error_type","title","type","status"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_app::AppError;
use serde::Serialize;

/// An error answered by `/api/v1`.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    error_type: &'static str,
    pub(crate) detail: String,
    /// Seconds for a `Retry-After` header (429s).
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 with a message naming the problem.
    pub fn invalid(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error_type: "invalid_request",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// A 409: what the request would create exists already (where Quay answers 409; elsewhere a
    /// conflict is Quay's 400).
    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            error_type: "conflict",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// A 415 for a body that is not JSON.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error_type: "invalid_request",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// An error axum answered itself (a query or path it could not read, a route or method that
    /// does not exist), in Quay's body.
    fn of_status(status: StatusCode, detail: String) -> Self {
        let error_type = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNAUTHORIZED => "invalid_token",
            StatusCode::FORBIDDEN => "insufficient_scope",
            s if s.is_server_error() => "internal_error",
            _ => "invalid_request",
        };
        ApiError {
            status,
            error_type,
            detail,
            retry_after: None,
        }
    }
}

/// Middleware: under `/api/v1`, an error answer that is not JSON (axum's own rejection of a query
/// or a path, an unknown route, a method the route does not take) is rewritten into Quay's body
/// with the same status, so that every `/api/v1` error has the documented shape.
pub async fn envelope(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path();
    let api = path == "/api/v1" || path.starts_with("/api/v1/");
    let resp = next.run(req).await;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let error = status.is_client_error() || status.is_server_error();
    if !api || content_type.starts_with("application/json") || !error {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    // axum's rejections are one line of plain text (anything longer is cut); an HTML page (the
    // not-found page) says nothing an API client can use, so its status's reason stands in.
    let body = axum::body::to_bytes(resp.into_body(), 16 * 1024)
        .await
        .unwrap_or_default();
    let text = if content_type.starts_with("text/html") {
        String::new()
    } else {
        String::from_utf8_lossy(&body).trim().to_owned()
    };
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("Error").to_owned()
    } else {
        text
    };
    let mut out = ApiError::of_status(status, detail).into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}

#[derive(Serialize, utoipa::ToSchema)]
/// Quay's error body.
pub struct ErrorBody {
    /// What went wrong.
    pub detail: String,
    /// Same as `detail`.
    pub error_message: String,
    /// `invalid_request`, `not_found`, `invalid_token`, `insufficient_scope`, …
    pub error_type: String,
    /// Same as `error_type`.
    pub title: String,
    /// A URI naming the error type.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The HTTP status.
    pub status: u16,
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let (status, error_type) = match &e {
            AppError::Registry(r) if r.is_unknown() => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Invalid { .. } | AppError::Conflict(_) | AppError::Registry(_) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Unauthenticated | AppError::BadCredentials(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            AppError::NotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
            AppError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        };
        let retry_after = match &e {
            AppError::TooManyRequests { retry_after_secs, .. } => Some(*retry_after_secs),
            _ => None,
        };
        let detail = match &e {
            AppError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                "Internal Server Error".to_owned()
            }
            AppError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "dependency unavailable");
                "Service temporarily unavailable, please retry".to_owned()
            }
            other => other.to_string(),
        };
        ApiError {
            status,
            error_type,
            detail,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: self.detail.clone(),
            error_message: self.detail,
            error_type: self.error_type.to_owned(),
            title: self.error_type.to_owned(),
            type_uri: format!("/api/v1/error/{}", self.error_type),
            status: self.status.as_u16(),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// The result type of API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
