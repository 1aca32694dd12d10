//! The Quay-compatible `/api/v1`: routes, request and response shapes (`In`/`Out` types per
//! resource), and OpenAPI annotations from which `/api/v1/openapi.json` is generated.

pub mod build;
pub mod deliveries;
pub mod notification;
pub mod org;
pub mod repo;
pub mod repoemail;
pub mod security;
pub mod user;

use berth_core::AccountKind;
use serde::Serialize;
use utoipa::OpenApi;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::{ApiDoc, HttpState};

/// Every `/api/v1` route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(user::router())
        .merge(org::router())
        .merge(repo::router())
        .merge(notification::router())
        .merge(deliveries::router())
        .merge(repoemail::router())
        .merge(security::router())
        .merge(build::router())
}

/// Quay's avatar object. Berth renders no images; `hash` and `color` are derived from the name so
/// that clients can draw a stable placeholder.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Avatar {
    /// The account name.
    pub name: String,
    /// A stable hex digest of the name.
    pub hash: String,
    /// A stable colour for placeholders.
    pub color: String,
    /// `user`, `org`, `robot` or `team`.
    pub kind: String,
}

const PALETTE: [&str; 8] = [
    "#969696", "#aec7e8", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf",
];

/// The avatar of an account or team.
pub fn avatar(name: &str, kind: &str) -> Avatar {
    // FNV-1a: stable across releases, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let color = PALETTE[usize::try_from(hash % 8).unwrap_or(0)];
    Avatar {
        name: name.to_owned(),
        hash: format!("{hash:016x}"),
        color: color.to_owned(),
        kind: kind.to_owned(),
    }
}

/// Quay's avatar kind of an account.
pub fn avatar_kind(kind: AccountKind) -> &'static str {
    match kind {
        AccountKind::User => "user",
        AccountKind::Organization => "org",
        AccountKind::Robot => "robot",
    }
}

/// Quay's date format (RFC 2822).
pub fn quay_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc2822()
}
