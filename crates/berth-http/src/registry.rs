//! The registry's authentication surface: `GET /v2/` (version check and challenge) and
//! `GET /v2/auth` (Docker's token endpoint). Every `/v2` response carries
//! `Docker-Distribution-API-Version: registry/2.0`, and errors use the OCI error envelope.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_app::registry::RegistryError;
use berth_app::{AppError, Caller};
use serde::Serialize;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::HttpState;
use crate::extract::{ClientAddr, Credentials, credentials};

/// The `/v2` routes of this crate.
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/v2/", get(base))
        .route("/v2", get(base))
        .route("/v2/auth", get(auth))
        .route("/v2/{*rest}", axum::routing::any(crate::oci::dispatch))
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
    retry_after: Option<u64>,
}

impl OciError {
    /// An error with a status and an OCI code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OciError {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after: None,
        }
    }

    /// A 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        OciError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A 401 carrying the Bearer challenge that points clients at `/v2/auth`, for `scope` if given.
    pub fn unauthorized(state: &HttpState, message: impl Into<String>, scope: Option<String>) -> Self {
        let s = state.app.settings();
        let mut challenge = format!(
            "Bearer realm=\"{}/v2/auth\",service=\"{}\"",
            s.base_url(),
            s.server_hostname
        );
        if let Some(scope) = scope {
            challenge.push_str(&format!(",scope=\"{scope}\""));
        }
        OciError {
            challenge: Some(challenge),
            ..OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
        }
    }

    /// A registry refusal as the spec's status and code: the one place those codes are written.
    pub fn registry(e: RegistryError) -> Self {
        use RegistryError as E;
        let (status, code) = match &e {
            E::BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            E::UploadUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            E::ManifestUnknown(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            E::UploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            E::RangeInvalid(_) => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            E::DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            E::ManifestBlobUnknown(_) => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            E::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            E::NameInvalid(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            E::SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
        };
        OciError::new(status, code, e.to_string())
    }

    fn from_app(state: &HttpState, e: AppError) -> Self {
        Self::from_app_with_scope(state, e, None)
    }

    /// Maps a use-case error to the spec's status and code; 401s carry a challenge for `scope`.
    pub fn from_app_with_scope(state: &HttpState, e: AppError, scope: Option<String>) -> Self {
        match e {
            AppError::Unauthenticated | AppError::BadCredentials(_) => {
                OciError::unauthorized(state, e.to_string(), scope)
            }
            AppError::Registry(e) => OciError::registry(e),
            AppError::Invalid { message: m, .. } => OciError::new(StatusCode::BAD_REQUEST, "UNSUPPORTED", m),
            AppError::TooLarge(m) => OciError::new(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", m),
            AppError::TooManyRequests {
                message,
                retry_after_secs,
            } => OciError {
                retry_after: Some(retry_after_secs),
                ..OciError::new(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", message)
            },
            AppError::Conflict(m) => OciError::new(StatusCode::CONFLICT, "DENIED", m),
            AppError::Forbidden(m) => OciError::new(StatusCode::FORBIDDEN, "DENIED", m),
            AppError::NotFound(m) => OciError::not_found("NAME_UNKNOWN", m),
            // Our own words (such as blob storage being down): the client may show them.
            AppError::Unavailable(m) => OciError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", m),
            AppError::Internal(m) | AppError::NotConfigured(m) | AppError::Upstream(m) => {
                tracing::error!(error = %m, "registry request failed");
                OciError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "service unavailable, please retry",
                )
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
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// `GET /v2/`: 200 for a valid registry token or Basic credentials, else a 401 challenge.
async fn base(
    State(s): State<HttpState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, OciError> {
    let ok = match credentials(&headers) {
        Ok(Some(Credentials::Bearer(t))) => s.app.verify_registry_token(&t).is_ok(),
        Ok(Some(Credentials::Basic(u, p))) => match s.app.authenticate_basic(&u, &p, client).await {
            Ok(_) => true,
            Err(e @ AppError::TooManyRequests { .. }) => return Err(OciError::from_app(&s, e)),
            Err(_) => false,
        },
        Ok(None) | Err(_) => false,
    };
    if ok {
        Ok(Json(serde_json::json!({})))
    } else {
        Err(OciError::unauthorized(&s, "authentication required", None))
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
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<TokenOut>, OciError> {
    let host = &s.app.settings().server_hostname;
    if let Some((_, service)) = params.iter().find(|(k, _)| k == "service")
        && service != host
    {
        let msg = format!("unknown service '{service}': this registry is '{host}'");
        return Err(OciError::from_app(&s, AppError::invalid(msg)));
    }
    let caller = match credentials(&headers).map_err(|e| OciError::from_app(&s, e))? {
        None => Caller::Anonymous,
        Some(Credentials::Basic(u, p)) => Caller::Account(
            s.app
                .authenticate_basic(&u, &p, client)
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
