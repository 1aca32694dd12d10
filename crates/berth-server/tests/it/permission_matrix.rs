//! The permission matrix: every account route against every kind of caller — anonymous, read,
//! write and admin grantees, an organization admin, a team member, a robot, a superuser, an
//! outsider, and an admin using a token limited to `repo:read` — on SQLite and on PostgreSQL.
//!
//! Each row lists the expected status per caller in the order of `CALLERS`. Rows run in order for
//! each caller, so a row may rely on the previous one (add then remove a member).

use berth_core::ScopeSet;
use berth_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

const CALLERS: [&str; 10] = [
    "anonymous",
    "reader",
    "writer",
    "repoadmin",
    "orgadmin",
    "teammember",
    "robot",
    "superuser",
    "outsider",
    "admin-readtoken",
];

/// A private repository used by every caller, and one more per caller for the delete row.
const REPO: &str = "/api/v1/repository/acme/private";

struct Row {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    expect: &'static str,
}

fn row(method: Method, path: &'static str, body: Option<Value>, expect: &'static str) -> Row {
    Row {
        method,
        path,
        body,
        expect,
    }
}

fn rows() -> Vec<Row> {
    use Method as M;
    vec![
        // The signed-in user. The read-only token lacks user:read.
        row(M::GET, "/api/v1/user/", None, "401 200 200 200 200 200 200 200 200 403"),
        // Superuser API.
        row(
            M::POST,
            "/api/v1/superuser/users/",
            Some(json!({"username": "made{i}"})),
            "401 403 403 403 403 403 403 200 403 403",
        ),
        // Organizations: anyone may look; only admins manage.
        row(
            M::GET,
            "/api/v1/organization/acme",
            None,
            "200 200 200 200 200 200 200 200 200 200",
        ),
        row(
            M::PUT,
            "/api/v1/organization/acme/team/qa{i}",
            Some(json!({"role": "member"})),
            "401 403 403 403 200 403 403 200 403 403",
        ),
        row(
            M::GET,
            "/api/v1/organization/acme/team/devs/members",
            None,
            "401 403 403 403 200 200 403 200 403 403",
        ),
        row(
            M::PUT,
            "/api/v1/organization/acme/team/empty/members/zed",
            None,
            "401 403 403 403 200 403 403 200 403 403",
        ),
        row(
            M::DELETE,
            "/api/v1/organization/acme/team/empty/members/zed",
            None,
            "401 403 403 403 204 403 403 204 403 403",
        ),
        row(
            M::GET,
            "/api/v1/organization/acme/logs",
            None,
            "401 403 403 403 200 403 403 200 403 403",
        ),
        // Organization robots.
        row(
            M::PUT,
            "/api/v1/organization/acme/robots/bot{i}",
            None,
            "401 403 403 403 201 403 403 201 403 403",
        ),
        row(
            M::GET,
            "/api/v1/organization/acme/robots/bot{i}",
            None,
            "401 403 403 403 200 403 403 200 403 403",
        ),
        row(
            M::GET,
            "/api/v1/organization/acme/robots",
            None,
            "401 403 403 403 200 403 403 200 403 403",
        ),
        row(
            M::DELETE,
            "/api/v1/organization/acme/robots/bot{i}",
            None,
            "401 403 403 403 204 403 403 204 403 403",
        ),
        // Namespace-wide notifications: the organization's admins; the caller's own, any user.
        row(
            M::POST,
            "/api/v1/organization/acme/notifications",
            Some(
                json!({"event": "repo_push", "method": "webhook", "config": {"url": "https://hooks.example.com/org"}, "eventConfig": {}}),
            ),
            "401 403 403 403 201 403 403 201 403 403",
        ),
        row(
            M::GET,
            "/api/v1/organization/acme/notifications",
            None,
            "401 403 403 403 200 403 403 200 403 403",
        ),
        row(
            M::DELETE,
            "/api/v1/organization/acme/notifications/no-such-uuid",
            None,
            "401 403 403 403 404 403 403 404 403 403",
        ),
        row(
            M::POST,
            "/api/v1/user/namespacenotifications",
            Some(
                json!({"event": "repo_created", "method": "webhook", "config": {"url": "https://hooks.example.com/mine"}, "eventConfig": {}}),
            ),
            "401 201 201 201 201 201 403 201 201 403",
        ),
        row(
            M::GET,
            "/api/v1/user/namespacenotifications",
            None,
            "401 200 200 200 200 200 403 200 200 403",
        ),
        // The caller's own robots: any user; robots and tokens without user:admin may not.
        row(
            M::PUT,
            "/api/v1/user/robots/mine",
            None,
            "401 201 201 201 201 201 403 201 201 403",
        ),
        row(
            M::GET,
            "/api/v1/user/robots/mine",
            None,
            "401 200 200 200 200 200 403 200 200 403",
        ),
        row(
            M::DELETE,
            "/api/v1/user/robots/mine",
            None,
            "401 204 204 204 204 204 403 204 204 403",
        ),
        // Repository creation in the organization: admins (and creator teams) only.
        row(
            M::POST,
            "/api/v1/repository",
            Some(json!({"namespace": "acme", "repository": "new{i}", "visibility": "private", "description": ""})),
            "401 403 403 403 201 403 403 201 403 403",
        ),
        row(
            M::GET,
            "/api/v1/repository?namespace=acme",
            None,
            "200 200 200 200 200 200 200 200 200 200",
        ),
        // Reading a private repository: hidden from the outsider exactly like a missing one.
        row(M::GET, REPO, None, "401 200 200 200 200 200 200 200 404 200"),
        row(
            M::GET,
            "/api/v1/repository/acme/missing",
            None,
            "401 404 404 404 404 404 404 404 404 404",
        ),
        // Writing: the description.
        row(
            M::PUT,
            REPO,
            Some(json!({"description": "by {i}"})),
            "401 403 200 200 200 200 403 200 404 403",
        ),
        // A public repository is visible to all, so lacking the role is a 403, not a 404.
        row(
            M::GET,
            "/api/v1/repository/acme/public",
            None,
            "200 200 200 200 200 200 200 200 200 200",
        ),
        row(
            M::PUT,
            "/api/v1/repository/acme/public",
            Some(json!({"description": "x"})),
            "401 403 403 403 200 403 403 200 403 403",
        ),
        // Administration: permissions, visibility, logs.
        row(
            M::GET,
            "/api/v1/repository/acme/private/permissions/user/",
            None,
            "401 403 403 200 200 403 403 200 404 403",
        ),
        row(
            M::GET,
            "/api/v1/repository/acme/private/permissions/user/alice",
            None,
            "401 403 403 200 200 403 403 200 404 403",
        ),
        row(
            M::PUT,
            "/api/v1/repository/acme/private/permissions/user/zed",
            Some(json!({"role": "read"})),
            "401 403 403 200 200 403 403 200 404 403",
        ),
        row(
            M::DELETE,
            "/api/v1/repository/acme/private/permissions/user/zed",
            None,
            "401 403 403 204 204 403 403 204 404 403",
        ),
        row(
            M::GET,
            "/api/v1/repository/acme/private/permissions/team/",
            None,
            "401 403 403 200 200 403 403 200 404 403",
        ),
        row(
            M::PUT,
            "/api/v1/repository/acme/private/permissions/team/empty",
            Some(json!({"role": "read"})),
            "401 403 403 200 200 403 403 200 404 403",
        ),
        row(
            M::DELETE,
            "/api/v1/repository/acme/private/permissions/team/empty",
            None,
            "401 403 403 204 204 403 403 204 404 403",
        ),
        row(
            M::POST,
            "/api/v1/repository/acme/private/changevisibility",
            Some(json!({"visibility": "private"})),
            "401 403 403 200 200 403 403 200 404 403",
        ),
        row(
            M::GET,
            "/api/v1/repository/acme/private/logs",
            None,
            "401 403 403 200 200 403 403 200 404 403",
        ),
        // Notifications: repository admins only.
        row(
            M::GET,
            "/api/v1/repository/acme/private/notification/",
            None,
            "401 403 403 200 200 403 403 200 404 403",
        ),
        row(
            M::POST,
            "/api/v1/repository/acme/private/notification/",
            Some(
                json!({"event": "repo_push", "method": "webhook", "config": {"url": "https://hooks.example.com/{i}"}, "eventConfig": {}}),
            ),
            "401 403 403 201 201 403 403 201 404 403",
        ),
        // E-mail authorization: repository admins only (this server has no SMTP server, so an
        // admin's request answers 503 naming the missing configuration).
        row(
            M::GET,
            "/api/v1/repository/acme/private/authorizedemail/a{i}@example.com",
            None,
            "401 403 403 404 404 403 403 404 404 403",
        ),
        row(
            M::POST,
            "/api/v1/repository/acme/private/authorizedemail/a{i}@example.com",
            None,
            "401 403 403 503 503 403 403 503 404 403",
        ),
        row(
            M::DELETE,
            "/api/v1/repository/acme/private/authorizedemail/a{i}@example.com",
            None,
            "401 403 403 404 404 403 403 404 404 403",
        ),
        // Builds: readers list them, writers start them (this body fails validation after the
        // permission check, so nothing runs), admins manage triggers.
        row(
            M::GET,
            "/api/v1/repository/acme/private/build/",
            None,
            "401 200 200 200 200 200 200 200 404 200",
        ),
        row(
            M::POST,
            "/api/v1/repository/acme/private/build/",
            Some(json!({"archive_url": "ftp://example.com/context.tar"})),
            "401 403 400 400 400 400 403 400 404 403",
        ),
        row(
            M::GET,
            "/api/v1/repository/acme/private/trigger/",
            None,
            "401 403 403 200 200 403 403 200 404 403",
        ),
        row(
            M::POST,
            "/api/v1/repository/acme/private/trigger/",
            Some(json!({"service": "custom-git"})),
            "401 403 403 201 201 403 403 201 404 403",
        ),
        // Deletion, each caller on its own copy of the private repository.
        row(
            M::DELETE,
            "/api/v1/repository/acme/doomed{i}",
            None,
            "401 403 403 204 204 403 403 204 404 403",
        ),
    ]
}

/// Grants every caller its role on `acme/<name>`, as on the private repository.
async fn grant_all(s: &TestServer, root: &Auth, name: &str) {
    let body = json!({"namespace": "acme", "repository": name, "visibility": "private", "description": ""});
    expect(s.post("/api/v1/repository", root, body).await, 201);
    for (user, role) in [
        ("alice", "read"),
        ("bob", "write"),
        ("carol", "admin"),
        ("acme+ci", "read"),
    ] {
        let path = format!("/api/v1/repository/acme/{name}/permissions/user/{user}");
        expect(s.call(Method::PUT, &path, root, Some(json!({"role": role}))).await, 200);
    }
    let path = format!("/api/v1/repository/acme/{name}/permissions/team/devs");
    expect(
        s.call(Method::PUT, &path, root, Some(json!({"role": "write"}))).await,
        200,
    );
}

/// Builds the world of the matrix and returns the callers' credentials in `CALLERS` order.
async fn setup(s: &TestServer) -> Vec<Auth> {
    let root = s.init_root().await;
    let alice = s.user(&root, "alice").await;
    let bob = s.user(&root, "bob").await;
    let carol = s.user(&root, "carol").await;
    let dave = s.user(&root, "dave").await;
    let erin = s.user(&root, "erin").await;
    let oscar = s.user(&root, "oscar").await;
    s.user(&root, "zed").await;
    expect(
        s.post(
            "/api/v1/organization/",
            &root,
            json!({"name": "acme", "email": "acme@example.com"}),
        )
        .await,
        201,
    );
    expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/acme/team/owners/members/dave",
            &root,
            None,
        )
        .await,
        200,
    );
    expect(
        s.put("/api/v1/organization/acme/team/devs", &root, json!({"role": "member"}))
            .await,
        200,
    );
    expect(
        s.put("/api/v1/organization/acme/team/empty", &root, json!({"role": "member"}))
            .await,
        200,
    );
    expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/acme/team/devs/members/erin",
            &root,
            None,
        )
        .await,
        200,
    );
    let robot = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/ci", &root, None)
            .await,
        201,
    );
    let robot = Auth::Basic("acme+ci".into(), robot["token"].as_str().unwrap().into());
    grant_all(s, &root, "private").await;
    for i in 0..CALLERS.len() {
        grant_all(s, &root, &format!("doomed{i}")).await;
    }
    let body = json!({"namespace": "acme", "repository": "public", "visibility": "public", "description": ""});
    expect(s.post("/api/v1/repository", &root, body).await, 201);
    let read_token = s
        .app
        .create_access_token("carol", ScopeSet::parse("repo:read").unwrap(), "matrix", None)
        .await
        .unwrap();
    vec![
        Auth::None,
        alice,
        bob,
        carol,
        dave,
        erin,
        robot,
        root,
        oscar,
        Auth::Bearer(read_token),
    ]
}

#[backend_test]
async fn every_route_against_every_caller(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| c.builds.enabled = true).await;
    let callers = setup(&s).await;
    let rows = rows();
    let mut failures = Vec::new();
    for (i, (caller, auth)) in CALLERS.iter().zip(&callers).enumerate() {
        for r in &rows {
            let path = r.path.replace("{i}", &i.to_string());
            let body = r
                .body
                .as_ref()
                .map(|b| serde_json::from_str(&b.to_string().replace("{i}", &i.to_string())).unwrap());
            let want: u16 = r.expect.split(' ').nth(i).unwrap().parse().unwrap();
            let (got, resp) = s.call(r.method.clone(), &path, auth, body).await;
            if got.as_u16() != want {
                failures.push(format!("{caller}: {} {path} → {got} (want {want}): {resp}", r.method));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    s.stop().await;
}
