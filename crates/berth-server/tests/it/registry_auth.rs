//! Docker registry token auth: the `/v2/` challenge and `/v2/auth` tokens that grant only what the
//! caller may do, per caller and repository, on both backends.

use base64::Engine;
use berth_testkit::backend_test;
use reqwest::Method;
use serde_json::json;

use crate::support::{Auth, TestServer, expect};

/// The actions granted to `auth` for `scope`, read back from the token's claims.
async fn granted(s: &TestServer, auth: &Auth, scope: &str) -> Vec<String> {
    let path = format!("/v2/auth?service={}&scope={scope}", s.hostname);
    let body = expect(s.get(&path, auth).await, 200);
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"]);
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    // The token is valid on /v2/ of this registry.
    expect(s.get("/v2/", &Auth::Bearer(token.to_owned())).await, 200);
    let claims = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
    claims["access"][0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[backend_test]
async fn tokens_grant_only_what_the_caller_may_do(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    let reader = s.user(&root, "reader").await;
    let writer = s.user(&root, "writer").await;
    let outsider = s.user(&root, "outsider").await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    let robot = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/ci", &root, None)
            .await,
        201,
    );
    let robot = Auth::Basic("acme+ci".into(), robot["token"].as_str().unwrap().into());
    for (name, vis) in [("private", "private"), ("public", "public")] {
        expect(
            s.post(
                "/api/v1/repository",
                &root,
                json!({"namespace": "acme", "repository": name, "visibility": vis}),
            )
            .await,
            201,
        );
    }
    for (user, role) in [("reader", "read"), ("writer", "write"), ("acme+ci", "write")] {
        let path = format!("/api/v1/repository/acme/private/permissions/user/{user}");
        expect(s.put(&path, &root, json!({"role": role})).await, 200);
    }
    let all = "repository:acme/private:pull,push,delete";
    let cases: [(&Auth, &str, &[&str]); 10] = [
        (&Auth::None, all, &[]),
        (&reader, all, &["pull"]),
        (&writer, all, &["pull", "push"]),
        (&robot, all, &["pull", "push"]),
        (&outsider, all, &[]),
        (&root, all, &["pull", "push", "delete"]),
        (&Auth::None, "repository:acme/public:pull,push", &["pull"]),
        (&outsider, "repository:acme/public:pull,push", &["pull"]),
        // A repository that does not exist yet: pushing creates it, where the caller may create.
        (&root, "repository:acme/brand-new:pull,push", &["pull", "push"]),
        (&writer, "repository:acme/brand-new:pull,push", &[]),
    ];
    for (auth, scope, want) in cases {
        assert_eq!(granted(&s, auth, scope).await, want, "{auth:?} {scope}");
    }
    // A user's own namespace.
    assert_eq!(granted(&s, &writer, "repository:writer/anything:push").await, ["push"]);
    s.stop().await;
}

#[backend_test]
async fn challenge_and_bad_credentials(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    s.init_root().await;
    let resp = s.client.get(format!("{}/v2/", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["docker-distribution-api-version"], "registry/2.0");
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(
        challenge,
        format!("Bearer realm=\"http://{0}/v2/auth\",service=\"{0}\"", s.hostname)
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    // Basic credentials work on /v2/ directly; wrong ones and forged tokens do not.
    expect(
        s.get("/v2/", &Auth::Basic("root".into(), "rootpassword".into())).await,
        200,
    );
    expect(s.get("/v2/", &Auth::Basic("root".into(), "nope".into())).await, 401);
    expect(
        s.get("/v2/", &Auth::Bearer("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl".into()))
            .await,
        401,
    );
    let path = format!("/v2/auth?service={}&scope=repository:root/x:pull", s.hostname);
    let e = expect(s.get(&path, &Auth::Basic("root".into(), "nope".into())).await, 401);
    assert_eq!(e["errors"][0]["code"], "UNAUTHORIZED");
    let e = expect(
        s.get("/v2/auth?service=elsewhere&scope=repository:root/x:pull", &Auth::None)
            .await,
        400,
    );
    assert!(
        e["errors"][0]["message"].as_str().unwrap().contains("unknown service"),
        "{e}"
    );
    let e = expect(
        s.get(
            &format!("/v2/auth?service={}&scope=repository", s.hostname),
            &Auth::None,
        )
        .await,
        400,
    );
    assert!(
        e["errors"][0]["message"].as_str().unwrap().contains("invalid scope"),
        "{e}"
    );
    s.stop().await;
}

#[backend_test]
async fn an_expired_registry_token_is_refused_within_seconds(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| c.registry_token_ttl_secs = 1).await;
    let root = s.init_root().await;
    let body = expect(s.get(&format!("/v2/auth?service={}", s.hostname), &root).await, 200);
    let token = Auth::Bearer(body["token"].as_str().unwrap().to_owned());
    expect(s.get("/v2/", &token).await, 200);
    // One second of life and a few of leeway for clocks; the library's default was a minute.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let (status, body) = s.get("/v2/", &token).await;
    assert_eq!(status, 401, "{body}");
    s.stop().await;
}
