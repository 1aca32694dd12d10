//! What Quay's own clients (its React UI, the Ansible `quay_notification` module, pubtools-quay)
//! rely on beyond the routes themselves, on both backends: nested repository names sent with raw
//! slashes on every repository route, the entity search, and the discovery document.

use berth_testkit::backend_test;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

/// Every documented repository route with its methods: (method, path template).
fn repository_routes() -> Vec<(Method, String)> {
    let doc = serde_json::to_value(berth_http::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/repository/{namespace}/{repository}") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            out.push((method.to_uppercase().parse().unwrap(), path.clone()));
        }
    }
    out
}

/// Fills a route template for the repository `acme/<repository>`, with values that name nothing.
fn fill(template: &str, repository: &str) -> String {
    let mut path = template
        .replace("{namespace}", "acme")
        .replace("{repository}", repository);
    for (param, value) in [
        (
            "{manifestref}",
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ),
        ("{email}", "nobody@example.com"),
        ("{id}", "1"),
    ] {
        path = path.replace(param, value);
    }
    // The remaining parameters are uuids and names.
    while let (Some(a), Some(b)) = (path.find('{'), path.find('}')) {
        path.replace_range(a..=b, "00000000-0000-0000-0000-000000000000");
    }
    path
}

#[backend_test]
async fn nested_repository_names_work_with_raw_slashes_on_every_route(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "team/app").await;

    // Each route answers the same, whether the name's slash is sent raw or encoded; an empty JSON
    // body makes every write refuse, so the order does not matter.
    let routes = repository_routes();
    assert!(routes.len() > 30, "{routes:?}");
    for (method, template) in &routes {
        if *method == Method::DELETE && template.ends_with("{repository}") {
            continue;
        }
        let body = matches!(*method, Method::POST | Method::PUT).then(|| json!({}));
        let encoded = s
            .call(method.clone(), &fill(template, "team%2Fapp"), &root, body.clone())
            .await;
        let raw = s.call(method.clone(), &fill(template, "team/app"), &root, body).await;
        assert_eq!(raw, encoded, "{method} {template}");
    }

    // And the raw form reaches the repository: the Ansible module's calls, end to end.
    let base = "/api/v1/repository/acme/team/app";
    assert_eq!(expect(s.get(base, &root).await, 200)["name"], "team/app");
    let hook = json!({"event": "repo_push", "method": "webhook", "config": {"url": "https://ci.example.com/hook"}, "eventConfig": {}, "title": "ci"});
    let created = expect(s.post(&format!("{base}/notification/"), &root, hook).await, 201);
    let uuid = created["uuid"].as_str().unwrap();
    let listed = expect(s.get(&format!("{base}/notification/"), &root).await, 200);
    assert_eq!(listed["notifications"][0]["uuid"], uuid);
    assert_eq!(
        expect(
            s.get(
                &format!("/api/v1/repository/acme/team%2Fapp/notification/{uuid}"),
                &root
            )
            .await,
            200
        )["title"],
        "ci"
    );
    expect(
        s.post(&format!("{base}/notification/{uuid}/test"), &root, json!({}))
            .await,
        200,
    );
    expect(s.get(&format!("{base}/tag/?limit=5"), &root).await, 200);
    expect(s.get(&format!("{base}/logs"), &root).await, 200);
    expect(
        s.call(Method::DELETE, &format!("{base}/notification/{uuid}"), &root, None)
            .await,
        204,
    );
    // A route under the repository that does not exist is still a 404, not another repository.
    expect(s.get(&format!("{base}/notification/{uuid}"), &root).await, 404);
    expect(s.call(Method::DELETE, base, &root, None).await, 204);
    expect(s.get("/api/v1/repository/acme/team%2Fapp", &root).await, 404);
    s.stop().await;
}

fn names(v: &Value) -> Vec<(String, String)> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, n)| ((*k).to_owned(), (*n).to_owned())).collect()
}

#[backend_test]
async fn entity_search_in_quays_shape(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    let alice = s.user(&root, "alice").await;
    let alan = s.user(&root, "alan").await;
    expect(
        s.put("/api/v1/organization/acme/team/devs", &root, json!({"role": "member"}))
            .await,
        200,
    );
    expect(
        s.put("/api/v1/organization/acme/team/admins", &root, json!({"role": "admin"}))
            .await,
        200,
    );
    expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/acme/team/devs/members/alice",
            &root,
            None,
        )
        .await,
        200,
    );
    expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/apibot", &root, None)
            .await,
        201,
    );
    expect(s.call(Method::PUT, "/api/v1/user/robots/bot", &alice, None).await, 201);

    // An organization admin: teams first, then users and the org's robots by name, then the org.
    let all = expect(
        s.get(
            "/api/v1/entities/a?namespace=acme&includeTeams=true&includeOrgs=true",
            &root,
        )
        .await,
        200,
    );
    assert_eq!(
        names(&all),
        pairs(&[
            ("team", "admins"),
            ("user", "acme+apibot"),
            ("user", "alan"),
            ("user", "alice"),
            ("org", "acme")
        ])
    );
    let by_name = |n: &str| {
        all["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("acme+apibot")["is_robot"], true);
    assert_eq!(by_name("acme+apibot")["avatar"]["kind"], "robot");
    assert_eq!(
        (
            by_name("alice")["is_robot"].as_bool(),
            by_name("alice")["is_org_member"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(by_name("alan")["is_org_member"], false);
    assert_eq!(
        (
            by_name("admins")["is_org_member"].as_bool(),
            by_name("admins")["avatar"]["kind"].as_str()
        ),
        (Some(true), Some("team"))
    );
    assert_eq!(by_name("acme")["avatar"]["kind"], "org");
    // Without the flags: no teams, no org; Quay lowercases the prefix and drops spaces.
    let plain = expect(s.get("/api/v1/entities/A%20L?namespace=acme", &root).await, 200);
    assert_eq!(names(&plain), pairs(&[("user", "alan"), ("user", "alice")]));

    // A member sees the org's robots and teams, not the org (admins only).
    let member = expect(
        s.get("/api/v1/entities/a?namespace=acme&includeTeams=1&includeOrgs=1", &alice)
            .await,
        200,
    );
    assert_eq!(
        names(&member),
        pairs(&[
            ("team", "admins"),
            ("user", "acme+apibot"),
            ("user", "alan"),
            ("user", "alice")
        ])
    );
    // An outsider sees users only.
    let outsider = expect(
        s.get(
            "/api/v1/entities/a?namespace=acme&includeTeams=true&includeOrgs=true",
            &alan,
        )
        .await,
        200,
    );
    assert_eq!(names(&outsider), pairs(&[("user", "alan"), ("user", "alice")]));
    // One's own namespace includes one's robots (matched on the short name); nobody else's does.
    let own = expect(s.get("/api/v1/entities/b?namespace=alice", &alice).await, 200);
    assert_eq!(names(&own), pairs(&[("user", "alice+bot")]));
    assert!(
        own["results"][0].get("is_org_member").is_none(),
        "no organization, no membership"
    );
    assert_eq!(
        names(&expect(s.get("/api/v1/entities/b?namespace=alice", &alan).await, 200)),
        pairs(&[])
    );
    // LIKE's wildcards are plain characters; organizations are not users.
    for prefix in ["%25", "_", "acme"] {
        assert_eq!(
            names(&expect(s.get(&format!("/api/v1/entities/{prefix}"), &root).await, 200)),
            pairs(&[]),
            "{prefix}"
        );
    }

    // Signed-in callers only, and flags that mean something.
    expect(s.get("/api/v1/entities/a", &Auth::None).await, 401);
    let e = expect(s.get("/api/v1/entities/a?includeTeams=maybe", &root).await, 400);
    assert!(e["detail"].as_str().unwrap().contains("includeTeams"), "{e}");
    s.stop().await;
}

#[backend_test]
async fn discovery_serves_the_openapi_document(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let get = |path: &str| {
        let url = format!("{}{path}", s.base);
        let client = s.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let discovery = get("/api/v1/discovery").await;
    assert_eq!(discovery.status(), StatusCode::OK);
    assert_eq!(discovery.headers()["content-type"], "application/json");
    let discovery: Value = discovery.json().await.unwrap();
    let document: Value = get("/api/v1/openapi.json").await.json().await.unwrap();
    assert_eq!(discovery, document);
    assert!(
        discovery["paths"]["/api/v1/entities/{prefix}"]["get"].is_object(),
        "{discovery}"
    );
    s.stop().await;
}

#[backend_test]
async fn every_api_error_is_quays_body(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    // What axum answers itself (an unknown route, a query it cannot read, a wrong method, a body
    // that is not JSON) comes in Quay's error body too, with the same status.
    let no_route = s
        .client
        .get(format!("{}/api/v1/no/such/route", s.base))
        .send()
        .await
        .unwrap();
    let bad_query = s.get("/api/v1/user/notifications?page=-1", &root).await;
    let wrong_method = s.client.patch(format!("{}/api/v1/user/", s.base)).send().await.unwrap();
    let allow = wrong_method.headers().get("allow").cloned();
    // (Signed in: an anonymous caller is refused before its body is read.)
    let not_json = s
        .client
        .post(format!("{}/api/v1/organization/", s.base))
        .basic_auth("root", Some("rootpassword"))
        .body("name=acme")
        .send()
        .await
        .unwrap();
    let cases = [
        (no_route.status().as_u16(), no_route.json::<Value>().await.unwrap()),
        (bad_query.0.as_u16(), bad_query.1),
        (
            wrong_method.status().as_u16(),
            wrong_method.json::<Value>().await.unwrap(),
        ),
        (not_json.status().as_u16(), not_json.json::<Value>().await.unwrap()),
    ];
    let want = [
        (404, "not_found"),
        (400, "invalid_request"),
        (405, "method_not_allowed"),
        (415, "invalid_request"),
    ];
    for ((status, body), (want_status, want_type)) in cases.iter().zip(want) {
        assert_eq!(
            (*status, body["error_type"].as_str()),
            (want_status, Some(want_type)),
            "{body}"
        );
        assert_eq!(body["status"], *status);
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    }
    assert!(
        cases[1].1["detail"].as_str().unwrap().contains("page"),
        "the message names the parameter: {}",
        cases[1].1
    );
    assert!(
        allow.is_some_and(|a| a.to_str().unwrap().contains("GET")),
        "405 keeps its Allow header"
    );
    assert_eq!(cases[0].1["detail"], "Not Found", "not the HTML of the page below");
    // Any other unknown path gets a page that says so, in the UI's layout (`/user/{name}` is a
    // page: signing in leads to it).
    for path in ["/nonexistent", "/users/admin", "/static/nothing.css/x"] {
        let page = s.client.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(page.status(), 404, "{path}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let html = page.text().await.unwrap();
        assert!(
            html.contains("Not found") && html.contains(&format!("There is no page at {path}.")),
            "{html}"
        );
    }
    // Outside /api/v1 nothing changes: the OCI routes keep their own envelope.
    let v2 = s
        .client
        .get(format!("{}/v2/acme/none/tags/list", s.base))
        .send()
        .await
        .unwrap();
    assert!(v2.json::<Value>().await.unwrap()["errors"].is_array());
    s.stop().await;
}
