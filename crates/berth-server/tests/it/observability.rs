//! Health endpoints, Prometheus metrics labelled by route template, and request ids.

use berth_testkit::backend_test;

use crate::support::{Auth, TestServer, expect};

#[backend_test]
async fn health_metrics_and_request_ids(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let h = expect(s.get("/health/instance", &Auth::None).await, 200);
    assert_eq!(h["data"]["services"]["database"], true);
    let h = expect(s.get("/health/endtoend", &Auth::None).await, 200);
    assert_eq!(h["data"]["services"]["migrations"], true);

    // A request id is generated, or the client's own is echoed back.
    let resp = s
        .client
        .get(format!("{}/health/instance", s.base))
        .send()
        .await
        .unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let resp = s
        .client
        .get(format!("{}/health/instance", s.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");

    expect(s.get("/api/v1/repository/ns/one", &Auth::None).await, 401);
    let resp = s.client.get(format!("{}/metrics", s.base)).send().await.unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    // Labels use the route template, never the raw path (bounded cardinality).
    assert!(
        text.lines().any(|l| l.starts_with("berth_http_requests_total")
            && l.contains("route=\"/api/v1/repository/{namespace}/{repository}\"")
            && l.contains("status=\"401\"")),
        "{text}"
    );
    assert!(!text.contains("/api/v1/repository/ns/one"));
    assert!(text.contains("berth_http_request_duration_seconds"));
    s.stop().await;
}

#[backend_test]
async fn metrics_can_require_a_token(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| c.metrics_token = Some("m-secret-token".into())).await;
    let url = format!("{}/metrics", s.base);
    let r = s.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        s.client.get(&url).bearer_auth("wrong").send().await.unwrap().status(),
        401
    );
    let r = s.client.get(&url).bearer_auth("m-secret-token").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("berth_http_requests_total"));
    // Health checks stay open.
    assert_eq!(
        s.client
            .get(format!("{}/health/instance", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.stop().await;
}
