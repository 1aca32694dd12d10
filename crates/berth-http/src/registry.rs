//! The registry's authentication surface: `GET /v2/` (version check and challenge) and
//! `GET /v2/auth` (Docker's token endpoint). Every `/v2` response carries
//! `Docker-Distribution-API-Version: registry/2.0`, and errors use the OCI error envelope.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_app::{AppError, Caller};
use serde::Serialize;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::HttpState;
use crate::extract::{Credentials, credentials};

/// The `/v2` routes of this crate.
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v2/", get(base))
        .route("/v2", get(base))
        .route("/v2/auth", get(auth))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("docker-distribution-api-version"),
            HeaderValue::from_static("registry/2.0"),
        ))
}

/// An error in the OCI distribution envelope `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug)]
pub struct OciError {
    status: StatusCode,
    code: &'static str,
    message: String,
    challenge: Option<String>,
}

impl OciError {
    /// A 401 carrying the Bearer challenge that points clients at `/v2/auth`.
    pub fn unauthorized(state: &HttpState, message: impl Into<String>) -> Self {
        let s = state.app.settings();
        let challenge = format!(
            "Bearer realm=\"{}/v2/auth\",service=\"{}\"",
            s.base_url(),
            s.server_hostname
        );
        OciError {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHORIZED",
            message: message.into(),
            challenge: Some(challenge),
        }
    }

    fn from_app(state: &HttpState, e: AppError) -> Self {
        match e {
            AppError::Unauthenticated | AppError::BadCredentials(_) => OciError::unauthorized(state, e.to_string()),
            AppError::Invalid(m) | AppError::Conflict(m) => OciError {
                status: StatusCode::BAD_REQUEST,
                code: "UNSUPPORTED",
                message: m,
                challenge: None,
            },
            AppError::Forbidden(m) => OciError {
                status: StatusCode::FORBIDDEN,
                code: "DENIED",
                message: m,
                challenge: None,
            },
            AppError::NotFound(m) => OciError {
                status: StatusCode::NOT_FOUND,
                code: "NAME_UNKNOWN",
                message: m,
                challenge: None,
            },
            AppError::Unavailable(m) | AppError::Internal(m) => {
                tracing::error!(error = %m, "registry auth failed");
                OciError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "UNAVAILABLE",
                    message: "service unavailable, please retry".into(),
                    challenge: None,
                }
            }
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"errors": [{"code": self.code, "message": self.message, "detail": null}]});
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        resp
    }
}

/// `GET /v2/`: 200 for a valid registry token or Basic credentials, else a 401 challenge.
async fn base(State(s): State<HttpState>, headers: HeaderMap) -> Result<Json<serde_json::Value>, OciError> {
    let ok = match credentials(&headers) {
        Ok(Some(Credentials::Bearer(t))) => s.app.verify_registry_token(&t).is_ok(),
        Ok(Some(Credentials::Basic(u, p))) => s.app.authenticate_basic(&u, &p).await.is_ok(),
        Ok(None) | Err(_) => false,
    };
    if ok {
        Ok(Json(serde_json::json!({})))
    } else {
        Err(OciError::unauthorized(&s, "authentication required"))
    }
}

#[derive(Serialize)]
struct TokenOut {
    token: String,
    access_token: String,
    expires_in: i64,
    issued_at: String,
}

/// `GET /v2/auth?service=…&scope=…`: a short-lived token granting what the caller may do.
async fn auth(
    State(s): State<HttpState>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<TokenOut>, OciError> {
    let host = &s.app.settings().server_hostname;
    if let Some((_, service)) = params.iter().find(|(k, _)| k == "service")
        && service != host
    {
        let msg = format!("unknown service '{service}': this registry is '{host}'");
        return Err(OciError::from_app(&s, AppError::Invalid(msg)));
    }
    let caller = match credentials(&headers).map_err(|e| OciError::from_app(&s, e))? {
        None => Caller::Anonymous,
        Some(Credentials::Basic(u, p)) => Caller::Account(
            s.app
                .authenticate_basic(&u, &p)
                .await
                .map_err(|e| OciError::from_app(&s, e))?,
        ),
        Some(Credentials::Bearer(t)) => Caller::Account(
            s.app
                .authenticate_token(&t)
                .await
                .map_err(|e| OciError::from_app(&s, e))?,
        ),
    };
    let scopes: Vec<String> = params
        .into_iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v)
        .collect();
    let issued = s
        .app
        .issue_registry_token(&caller, host, &scopes)
        .await
        .map_err(|e| OciError::from_app(&s, e))?;
    Ok(Json(TokenOut {
        access_token: issued.token.clone(),
        token: issued.token,
        expires_in: issued.expires_in,
        issued_at: issued.issued_at.to_rfc3339(),
    }))
}
