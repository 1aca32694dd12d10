//! Request extractors: the caller (from HTTP Basic or an access token) and JSON bodies whose errors
//! use Quay's error body and name the offending field.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use berth_app::{App, AppError, Caller, Ctx};
use serde::de::DeserializeOwned;

use crate::HttpState;
use crate::error::ApiError;

/// Credentials found in an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Basic base64(user:password)`.
    Basic(String, String),
    /// `Bearer token`.
    Bearer(String),
}

/// Parses the `Authorization` header; `Ok(None)` when absent, an error when present but malformed.
pub fn credentials(headers: &HeaderMap) -> Result<Option<Credentials>, AppError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || AppError::BadCredentials("Malformed Authorization header".into());
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            let (user, pass) = text.split_once(':').ok_or_else(bad)?;
            Ok(Some(Credentials::Basic(user.to_owned(), pass.to_owned())))
        }
        "bearer" => Ok(Some(Credentials::Bearer(rest.trim().to_owned()))),
        _ => Err(bad()),
    }
}

/// Authenticates API credentials: Basic (password, robot token, `$oauthtoken`) or a Bearer access
/// token. No credentials means anonymous; wrong ones are a 401.
pub async fn api_caller(app: &App, headers: &HeaderMap, client: Option<IpAddr>) -> Result<Caller, AppError> {
    Ok(match credentials(headers)? {
        None => Caller::Anonymous,
        Some(Credentials::Basic(u, p)) => Caller::Account(app.authenticate_basic(&u, &p, client).await?),
        Some(Credentials::Bearer(t)) => Caller::Account(app.authenticate_token(&t).await?),
    })
}

/// The client's address: the TCP peer (a reverse proxy's `X-Forwarded-For` is not trusted by
/// default).
pub fn client_ip(parts: &Parts) -> Option<String> {
    client_addr(parts).map(|ip| ip.to_string())
}

/// The client's address as an IP (see [`client_ip`]).
pub fn client_addr(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The client's address, when the server records it; failed password checks count against it.
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts)))
    }
}

/// The request context of an API call: the authenticated caller and its address.
pub struct ApiCtx(pub Ctx);

impl FromRequestParts<HttpState> for ApiCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Self::Rejection> {
        let caller = api_caller(&state.app, &parts.headers, client_addr(parts)).await?;
        Ok(ApiCtx(Ctx {
            caller,
            ip: client_ip(parts),
        }))
    }
}

/// The request context of an API call that only an account can make: an anonymous caller is
/// answered 401 here, before the handler's body extractor reads anything.
pub struct SignedCtx(pub Ctx);

impl FromRequestParts<HttpState> for SignedCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Self::Rejection> {
        let ApiCtx(ctx) = ApiCtx::from_request_parts(parts, state).await?;
        if ctx.caller.account().is_none() {
            return Err(AppError::Unauthenticated.into());
        }
        Ok(SignedCtx(ctx))
    }
}

/// A JSON body; malformed input is a 400 naming the problem, a non-JSON content type a 415.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::unsupported_media_type(
                "Expected a request body with Content-Type: application/json",
            )),
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::invalid(format!("Invalid request body: {}", e.body_text())))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::invalid(format!("Malformed JSON: {}", e.body_text())))
            }
            Err(other) => Err(ApiError::invalid(other.body_text())),
        }
    }
}

/// Parses an optional JSON body: empty means `None`; anything else must be valid JSON for `T`.
pub fn optional_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::invalid(format!("Invalid request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn parses_authorization_headers() {
        assert_eq!(credentials(&HeaderMap::new()).unwrap(), None);
        // "alice:pa:ss" — the password may contain ':'.
        assert_eq!(
            credentials(&with_auth("Basic YWxpY2U6cGE6c3M=")).unwrap(),
            Some(Credentials::Basic("alice".into(), "pa:ss".into()))
        );
        assert_eq!(
            credentials(&with_auth("bearer abc")).unwrap(),
            Some(Credentials::Bearer("abc".into()))
        );
        for bad in ["Basic !!!", "Basic YWxpY2U=", "Digest x", "Basic"] {
            assert!(credentials(&with_auth(bad)).is_err(), "{bad}");
        }
    }
}
