//! E-mail authorization for repository notifications, Quay-compatible:
//! `GET`/`POST /api/v1/repository/{ns}/{repo}/authorizedemail/{email}`, plus `DELETE` to revoke.
//! Repository admins only. The link in the mail leads to [`crate::pages`]' confirmation page.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use berth_app::authorized_email::AuthorizedEmail;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::HttpState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiCtx;

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new().routes(routes!(
        get_authorized_email,
        request_authorized_email,
        revoke_authorized_email
    ))
}

/// An address's authorization, as Quay shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizedEmailView {
    /// The address.
    pub email: String,
    /// The repository's name.
    pub repository: String,
    /// The repository's namespace.
    pub namespace: String,
    /// Whether the owner of the address opened the confirmation link.
    pub confirmed: bool,
}

impl From<AuthorizedEmail> for AuthorizedEmailView {
    fn from(a: AuthorizedEmail) -> Self {
        AuthorizedEmailView {
            email: a.email,
            repository: a.repository,
            namespace: a.namespace,
            confirmed: a.confirmed,
        }
    }
}

/// Whether an address is authorized (or pending) for the repository's e-mail notifications.
#[utoipa::path(get, path = "/api/v1/repository/{namespace}/{repository}/authorizedemail/{email}", tag = "notification", operation_id = "checkRepoEmailAuthorized",
    params(("namespace" = String, Path), ("repository" = String, Path), ("email" = String, Path)),
    responses((status = 200, body = AuthorizedEmailView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_authorized_email(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, email)): Path<(String, String, String)>,
) -> ApiResult<Json<AuthorizedEmailView>> {
    Ok(Json(
        s.app.authorized_email(&ctx.caller, &ns, &name, &email).await?.into(),
    ))
}

/// Asks for an address to be authorized: mails it a confirmation link, unless it already is.
#[utoipa::path(post, path = "/api/v1/repository/{namespace}/{repository}/authorizedemail/{email}", tag = "notification", operation_id = "sendAuthorizeRepoEmail",
    params(("namespace" = String, Path), ("repository" = String, Path), ("email" = String, Path)),
    responses((status = 200, body = AuthorizedEmailView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn request_authorized_email(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, email)): Path<(String, String, String)>,
) -> ApiResult<Json<AuthorizedEmailView>> {
    Ok(Json(
        s.app.authorize_email(&ctx.caller, &ns, &name, &email).await?.into(),
    ))
}

/// Revokes an address's authorization (Berth addition); its e-mail notifications then fail.
#[utoipa::path(delete, path = "/api/v1/repository/{namespace}/{repository}/authorizedemail/{email}", tag = "notification", operation_id = "revokeRepoEmailAuthorization",
    params(("namespace" = String, Path), ("repository" = String, Path), ("email" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_authorized_email(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path((ns, name, email)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    s.app.revoke_email(&ctx.caller, &ns, &name, &email).await?;
    Ok(StatusCode::NO_CONTENT)
}
