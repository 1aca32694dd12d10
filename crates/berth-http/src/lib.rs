//! Berth's HTTP surfaces, on axum: the Quay-compatible `/api/v1`, Docker registry token auth under
//! `/v2`, health checks and Prometheus metrics.
//!
//! Architecture invariants:
//! - only this crate knows the inbound wire shapes (Quay's JSON field names, the OCI error envelope);
//!   the application layer returns plain structs;
//! - handlers decide nothing about permissions: they extract the caller and call one use case;
//! - errors are mapped to each surface's format in one place per surface (`error.rs`, `registry.rs`);
//!   internal errors are logged there once, and the client gets a generic body.

pub mod api;
pub mod error;
pub mod extract;
pub mod health;
pub mod middleware;
pub mod oci;
pub mod pages;
pub mod registry;
pub mod repo_path;
pub mod ui;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use berth_app::App;
use utoipa::OpenApi;

/// Renders the Prometheus exposition text (supplied by the binary, which owns the recorder).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// What every handler can reach.
#[derive(Clone)]
pub struct HttpState {
    /// The application.
    pub app: App,
    /// The metrics renderer.
    pub metrics: MetricsRender,
    /// When set, `/metrics` answers only `Authorization: Bearer <this>`.
    pub metrics_token: Option<Arc<str>>,
}

/// The largest JSON body `/api/v1` reads (a notification with its templates is far below it).
/// The other routes set their own limits: `/v2` manifests `MAX_MANIFEST_BYTES`, blobs stream to
/// storage, filedrops `builds.max_context_bytes`, trigger webhooks 25 MiB, UI forms 64 KiB.
pub const API_BODY_LIMIT: usize = 1 << 20;

/// The whole HTTP application.
pub fn router(state: HttpState) -> Router {
    let (api, openapi) = api::split();
    let repo_paths = [repo_path::RepoSuffixes::from_openapi(&openapi), ui::repo_suffixes()];
    // The OpenAPI document, rendered once; also at Quay's discovery route, where Quay's clients
    // look for it.
    let document = axum::body::Bytes::from(openapi.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not render");
        String::from("{}")
    }));
    let serve_document = move || {
        let document = document.clone();
        async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], document) }
    };
    let router = Router::new()
        .merge(api.layer(axum::extract::DefaultBodyLimit::max(API_BODY_LIMIT)))
        .route("/api/v1/openapi.json", axum::routing::get(serve_document.clone()))
        .route("/api/v1/discovery", axum::routing::get(serve_document))
        .merge(registry::router())
        .merge(health::router())
        .merge(pages::router())
        .merge(webhooks::router())
        .merge(ui::router())
        .fallback(ui::not_found)
        .with_state(state);
    // Raw slashes in nested repository names are re-encoded before routing (a layer on the router
    // itself would run after it), so an outer router hands every request to the inner one.
    let rewrite = move |req: axum::extract::Request| {
        let repo_paths = repo_paths.clone();
        async move { repo_paths.iter().fold(req, |req, paths| paths.rewrite(req)) }
    };
    Router::new()
        .fallback_service(middleware::apply(router))
        .layer(axum::middleware::from_fn(error::envelope))
        .layer(axum::middleware::map_request(rewrite))
}

/// The routes of an instance that only runs workers (`role = "worker"`): the health checks and
/// `/metrics`; everything else is a 404.
pub fn worker_router(state: HttpState) -> Router {
    let router = Router::new().merge(health::router()).with_state(state);
    middleware::apply(router)
}

/// The OpenAPI document of `/api/v1`, as served at `/api/v1/openapi.json` and `/api/v1/discovery`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::split().1
}

/// The document's top-level information.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Berth API",
        description = "Quay-compatible REST API of the Berth container registry.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "user", description = "The signed-in user and first-run set-up"),
        (name = "superuser", description = "Instance administration"),
        (name = "organization", description = "Organizations, teams and members"),
        (name = "robot", description = "Robot accounts"),
        (name = "repository", description = "Repositories"),
        (name = "permission", description = "Repository permissions"),
        (name = "logs", description = "Audit logs"),
        (name = "notification", description = "Repository notifications"),
        (name = "secscan", description = "Vulnerability reports of manifests"),
        (name = "build", description = "Dockerfile builds and build triggers"),
    )
)]
pub struct ApiDoc;
