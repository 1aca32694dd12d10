//! Health checks at Quay's routes, and the Prometheus scrape endpoint.
//!
//! - `/health/instance`: this process is up and reaches its database (200, else 503);
//! - `/health/endtoend`: additionally, the schema is fully migrated;
//! - `/metrics`: the Prometheus exposition of every counter and histogram; with `metrics_token`
//!   configured, only for `Authorization: Bearer <metrics_token>` (else 401).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::HttpState;

/// The health and metrics routes.
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/health/instance", get(instance))
        .route("/health/endtoend", get(endtoend))
        .route("/metrics", get(metrics))
}

fn answer(services: serde_json::Value, notes: Vec<String>) -> (StatusCode, Json<serde_json::Value>) {
    let healthy = services
        .as_object()
        .is_some_and(|m| m.values().all(|v| v == &json!(true)));
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"data": {"services": services, "notes": notes}, "status_code": status.as_u16()})),
    )
}

async fn instance(State(s): State<HttpState>) -> impl IntoResponse {
    let mut notes = Vec::new();
    let db = s
        .app
        .store()
        .ping()
        .await
        .inspect_err(|e| notes.push(format!("database: {e}")))
        .is_ok();
    answer(json!({"database": db}), notes)
}

async fn endtoend(State(s): State<HttpState>) -> impl IntoResponse {
    let mut notes = Vec::new();
    let db = s
        .app
        .store()
        .ping()
        .await
        .inspect_err(|e| notes.push(format!("database: {e}")))
        .is_ok();
    let migrated = match s.app.store().is_migrated().await {
        Ok(true) => true,
        Ok(false) => {
            notes.push("migrations: pending; run `berth migrate`".into());
            false
        }
        Err(e) => {
            notes.push(format!("migrations: {e}"));
            false
        }
    };
    answer(json!({"database": db, "migrations": migrated}), notes)
}

async fn metrics(State(s): State<HttpState>, headers: axum::http::HeaderMap) -> axum::response::Response {
    if let Some(want) = &s.metrics_token {
        let given = match crate::extract::credentials(&headers) {
            Ok(Some(crate::extract::Credentials::Bearer(t))) => Some(t),
            _ => None,
        };
        if !given.is_some_and(|t| berth_app::secret::same_secret(&t, want)) {
            let body = "metrics need Authorization: Bearer <metrics_token>\n";
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], (s.metrics)()).into_response()
}
