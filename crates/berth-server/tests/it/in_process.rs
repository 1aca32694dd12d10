//! Pure HTTP behaviour, checked in process: the router is called with `tower::ServiceExt::oneshot`,
//! without a socket, for status codes, headers and error envelopes. Behaviour that needs a real
//! connection (clients, limits on connections, streaming) stays in the real-server tests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use berth_testkit::backend_test;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::TestServer;

/// The router over `s`'s application, as `berth serve` builds it.
fn router(s: &TestServer) -> axum::Router {
    berth_http::router(berth_http::HttpState {
        app: s.app.clone(),
        metrics: Arc::new(String::new),
        metrics_token: None,
    })
}

/// Sends `req` through the router, as if from 127.0.0.1; the status, headers and body as JSON
/// (`Null` when it is not JSON).
async fn call(s: &TestServer, mut req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = router(s).oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[backend_test]
async fn registry_errors_use_the_oci_envelope(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    // Anonymous on /v2/: a challenge naming the token endpoint, the API version, the envelope.
    let (status, headers, body) = call(&s, get("/v2/")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");
    let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer realm=") && challenge.contains("/v2/auth"),
        "{challenge}"
    );
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{body}");
    // A name that cannot be a repository is refused before anyone is asked who they are.
    let (status, _, body) = call(&s, get("/v2/acme/Bad_Name/tags/list")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], "NAME_INVALID", "{body}");
    // A path that is no endpoint.
    let (status, _, body) = call(&s, get("/v2/acme/web/nothing/here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errors"][0]["code"], "NAME_UNKNOWN", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("/v2/acme/web/nothing/here"),
        "{body}"
    );
    s.stop().await;
}

#[backend_test]
async fn api_errors_use_quays_envelope(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    // Anonymous: 401 in Quay's envelope.
    let req = Request::post("/api/v1/repository")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"namespace": "acme", "repository": "web", "visibility": "private"}"#,
        ))
        .unwrap();
    let (status, _, body) = call(&s, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["status"], 401, "{body}");
    assert!(
        body["error_message"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    // Who is asking comes before the body: an anonymous caller is refused before malformed
    // JSON is read.
    let req = Request::post("/api/v1/repository")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, _, body) = call(&s, req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A body that is not JSON names the problem.
    let req = Request::post("/api/v1/user/initialize")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, _, body) = call(&s, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with("Malformed JSON"), "{body}");
    // An unknown API route answers Quay's JSON, not the UI's page.
    let (status, headers, body) = call(&s, get("/api/v1/no/such/route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers[header::CONTENT_TYPE].to_str().unwrap().contains("json"),
        "{headers:?}"
    );
    assert!(body.is_object(), "{body}");
    // The discovery document is the OpenAPI document.
    let (status, headers, body) = call(&s, get("/api/v1/discovery")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(body["paths"]["/api/v1/repository"].is_object(), "{body}");
    s.stop().await;
}
