//! The Quay-compatible `/api/v1`: routes, request and response shapes (`In`/`Out` types per
//! resource), and OpenAPI annotations from which `/api/v1/openapi.json` is generated.

pub mod build;
pub mod deliveries;
pub mod entities;
pub mod mirror;
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
        .merge(mirror::router())
        .merge(repoemail::router())
        .merge(security::router())
        .merge(build::router())
        .merge(entities::router())
}

/// The `/api/v1` routes and their OpenAPI document, with the errors every operation can answer
/// added to it: 400 where there is a parameter or a body to get wrong, 415 where a JSON body is
/// expected.
pub fn split() -> (axum::Router<HttpState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = router().split_for_parts();
    standard_errors(&mut doc);
    (routes, doc)
}

fn standard_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        let shared = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
        ];
        for op in ops.into_iter().flatten() {
            let has_body = op.request_body.is_some();
            let has_params = shared || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let responses = &mut op.responses.responses;
            if has_body || has_params {
                responses
                    .entry("400".into())
                    .or_insert_with(|| error("A parameter or the body is not valid"));
            }
            if has_body {
                responses
                    .entry("415".into())
                    .or_insert_with(|| error("The body is not JSON (Content-Type: application/json)"));
            }
        }
    }
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

/// Quay's date format: RFC 2822 exactly as Python's `email.utils.formatdate` writes it, with a
/// two-digit day and `-0000` for UTC (`Sun, 01 Nov 2026 09:05:00 -0000`).
pub fn quay_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S -0000").to_string()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[test]
    fn dates_are_written_as_pythons_formatdate_writes_them() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 9, 5, 0).unwrap();
        assert_eq!(super::quay_date(t), "Sun, 01 Nov 2026 09:05:00 -0000");
        let t = chrono::Utc.with_ymd_and_hms(2027, 2, 28, 23, 59, 59).unwrap();
        assert_eq!(super::quay_date(t), "Sun, 28 Feb 2027 23:59:59 -0000");
    }
}
