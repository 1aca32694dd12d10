//! The account API end to end: first-run set-up, the "done when" flow of the foundation issue,
//! Quay's error bodies, validation messages that name the field, and the audit log.

use berth_testkit::backend_test;
use reqwest::Method;
use serde_json::json;

use crate::support::{Auth, TestServer, expect};

#[backend_test]
async fn first_run_flow_builds_an_organization(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    expect(s.get("/health/instance", &Auth::None).await, 200);

    // Initialize returns a token with every scope; a second initialize is refused.
    let init =
        json!({"username": "admin", "password": "adminpassword", "email": "admin@example.com", "access_token": true});
    let body = expect(s.post("/api/v1/user/initialize", &Auth::None, init.clone()).await, 200);
    let admin = Auth::Bearer(body["access_token"].as_str().unwrap().to_owned());
    let again = expect(s.post("/api/v1/user/initialize", &Auth::None, init).await, 400);
    assert_eq!(again["detail"], "Cannot initialize user in a non-empty database");

    let me = expect(s.get("/api/v1/user/", &admin).await, 200);
    assert_eq!(
        (me["username"].as_str(), me["super_user"].as_bool()),
        (Some("admin"), Some(true))
    );

    // Organization, team, robot, private repository, a user granted admin.
    expect(
        s.post(
            "/api/v1/organization/",
            &admin,
            json!({"name": "acme", "email": "ops@acme.io"}),
        )
        .await,
        201,
    );
    let team = expect(
        s.put(
            "/api/v1/organization/acme/team/builders",
            &admin,
            json!({"role": "creator", "description": "CI"}),
        )
        .await,
        200,
    );
    assert_eq!(
        (team["role"].as_str(), team["description"].as_str()),
        (Some("creator"), Some("CI"))
    );
    let robot = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/deployer", &admin, None)
            .await,
        201,
    );
    assert_eq!(robot["name"], "acme+deployer");
    assert_eq!(robot["token"].as_str().unwrap().len(), 64);
    expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/acme/team/builders/members/acme+deployer",
            &admin,
            None,
        )
        .await,
        200,
    );
    let members = expect(
        s.get("/api/v1/organization/acme/team/builders/members", &admin).await,
        200,
    );
    assert_eq!(members["members"][0]["name"], "acme+deployer");
    assert_eq!(members["members"][0]["is_robot"], true);

    let repo = json!({"namespace": "acme", "repository": "api", "visibility": "private", "description": "the API"});
    let created = expect(s.post("/api/v1/repository", &admin, repo).await, 201);
    assert_eq!(created, json!({"namespace": "acme", "name": "api", "kind": "image"}));
    let alice = s
        .user(&Auth::Basic("admin".into(), "adminpassword".into()), "alice")
        .await;
    expect(s.get("/api/v1/repository/acme/api", &alice).await, 404);
    let granted = expect(
        s.put(
            "/api/v1/repository/acme/api/permissions/user/alice",
            &admin,
            json!({"role": "admin"}),
        )
        .await,
        200,
    );
    assert_eq!(
        (granted["role"].as_str(), granted["is_robot"].as_bool()),
        (Some("admin"), Some(false))
    );
    let seen = expect(s.get("/api/v1/repository/acme/api", &alice).await, 200);
    assert_eq!(
        (
            seen["can_admin"].as_bool(),
            seen["is_public"].as_bool(),
            seen["is_organization"].as_bool()
        ),
        (Some(true), Some(false), Some(true))
    );

    // The robot, a member of a creator team, may create repositories; it logs in with its token.
    let robot_auth = Auth::Basic("acme+deployer".into(), robot["token"].as_str().unwrap().into());
    let repo = json!({"namespace": "acme", "repository": "made-by-robot", "visibility": "public"});
    expect(s.post("/api/v1/repository", &robot_auth, repo).await, 201);

    // The audit log records each change with Quay's kind names, newest first.
    let logs = expect(s.get("/api/v1/repository/acme/api/logs", &alice).await, 200);
    let kinds: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["change_repo_permission", "create_repo"]);
    assert_eq!(logs["logs"][0]["performer"]["name"], "admin");
    assert_eq!(logs["logs"][0]["metadata"]["username"], "alice");
    assert_eq!(logs["logs"][0]["ip"], "127.0.0.1");

    // The organization's log has the namespace-level entries too, with a robot as a performer.
    let logs = expect(s.get("/api/v1/organization/acme/logs", &admin).await, 200);
    let kinds: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "create_repo",
            "change_repo_permission",
            "create_repo",
            "org_add_team_member",
            "create_robot",
            "org_create_team",
            "org_create"
        ]
    );
    assert_eq!(logs["logs"][0]["performer"]["name"], "acme+deployer");
    assert_eq!(logs["logs"][0]["performer"]["is_robot"], true);

    // The OpenAPI document is served.
    let doc = expect(s.get("/api/v1/openapi.json", &Auth::None).await, 200);
    assert!(doc["paths"]["/api/v1/organization/{orgname}/logs"].is_object());
    s.stop().await;
}

#[backend_test]
async fn errors_use_quays_body_and_name_the_field(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;

    let e = expect(s.get("/api/v1/user/", &Auth::None).await, 401);
    assert_eq!(e["error_type"], "invalid_token");
    assert_eq!(e["detail"], "Requires authentication");
    for key in ["detail", "error_message", "error_type", "title", "type", "status"] {
        assert!(e.get(key).is_some(), "missing {key} in {e}");
    }
    let e = expect(
        s.get("/api/v1/user/", &Auth::Basic("root".into(), "wrong".into()))
            .await,
        401,
    );
    assert_eq!(e["detail"], "Invalid Username or Password");
    expect(s.get("/api/v1/user/", &Auth::Bearer("not-a-token".into())).await, 401);

    // Bad fields are named.
    let e = expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "root", "repository": "Bad Name", "visibility": "private"}),
        )
        .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("invalid repository"), "{e}");
    let e = expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "root", "repository": "ok", "visibility": "secret"}),
        )
        .await,
        400,
    );
    assert_eq!(
        e["detail"],
        "invalid visibility: 'secret' is not one of: public, private"
    );
    let e = expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "root", "visibility": "private"}),
        )
        .await,
        400,
    );
    assert!(
        e["detail"].as_str().unwrap().contains("missing field `repository`"),
        "{e}"
    );
    let e = expect(
        s.put("/api/v1/organization/root/team/x1", &root, json!({"role": "member"}))
            .await,
        404,
    );
    assert_eq!(e["error_type"], "not_found");
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    let e = expect(
        s.put("/api/v1/organization/acme/team/x1", &root, json!({"role": "boss"}))
            .await,
        400,
    );
    assert_eq!(
        e["detail"],
        "invalid role: 'boss' is not one of: member, creator, admin"
    );
    let e = expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        400,
    );
    assert_eq!(e["detail"], "A user or organization with this name already exists");
    let e = expect(
        s.post("/api/v1/organization/", &root, json!({"name": "root"})).await,
        400,
    );
    assert_eq!(e["detail"], "A user or organization with this name already exists");
    let e = expect(
        s.post("/api/v1/superuser/users/", &root, json!({"username": "x"}))
            .await,
        400,
    );
    assert!(
        e["detail"].as_str().unwrap().starts_with("invalid username: 'x'"),
        "{e}"
    );
    let e = expect(
        s.post(
            "/api/v1/superuser/users/",
            &root,
            json!({"username": "dup", "email": "root@example.com"}),
        )
        .await,
        400,
    );
    assert_eq!(e["detail"], "The email address root@example.com is already used");

    // Malformed JSON and the wrong content type.
    let resp = s
        .client
        .post(format!("{}/api/v1/repository", s.base))
        .basic_auth("root", Some("rootpassword"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = s
        .client
        .post(format!("{}/api/v1/repository", s.base))
        .basic_auth("root", Some("rootpassword"))
        .body("namespace=root")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    // Nothing was stored by the bad requests.
    let list = expect(s.get("/api/v1/repository?namespace=root", &root).await, 200);
    assert_eq!(list["repositories"], json!([]));
    let e = expect(s.get("/api/v1/repository", &root).await, 400);
    assert!(e["detail"].as_str().unwrap().contains("namespace"), "{e}");
    s.stop().await;
}

#[backend_test]
async fn permissions_teams_and_robots_behave_like_quay(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    let alice = s.user(&root, "alice").await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "other"})).await,
        201,
    );
    expect(
        s.call(Method::PUT, "/api/v1/organization/other/robots/bot", &root, None)
            .await,
        201,
    );
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "acme", "repository": "app", "visibility": "private"}),
        )
        .await,
        201,
    );

    // A robot of another namespace can be granted neither a repository nor a team.
    let e = expect(
        s.put(
            "/api/v1/repository/acme/app/permissions/user/other+bot",
            &root,
            json!({"role": "read"}),
        )
        .await,
        400,
    );
    assert_eq!(e["detail"], "Cannot add robot other+bot from another namespace");
    expect(
        s.put("/api/v1/organization/acme/team/devs", &root, json!({"role": "member"}))
            .await,
        200,
    );
    let e = expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/acme/team/devs/members/other+bot",
            &root,
            None,
        )
        .await,
        400,
    );
    assert_eq!(e["detail"], "Cannot add robot other+bot from another namespace");
    // Organizations cannot be granted; unknown users are named.
    let e = expect(
        s.put(
            "/api/v1/repository/acme/app/permissions/user/other",
            &root,
            json!({"role": "read"}),
        )
        .await,
        400,
    );
    assert_eq!(e["detail"], "Invalid username: other");
    let e = expect(
        s.delete("/api/v1/repository/acme/app/permissions/user/alice", &root)
            .await,
        400,
    );
    assert_eq!(e["detail"], "User alice does not have permission for repo acme/app");

    // Team grants reach team members; removing the member removes the access.
    expect(
        s.put(
            "/api/v1/repository/acme/app/permissions/team/devs",
            &root,
            json!({"role": "write"}),
        )
        .await,
        200,
    );
    expect(s.get("/api/v1/repository/acme/app", &alice).await, 404);
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
    let repo = expect(s.get("/api/v1/repository/acme/app", &alice).await, 200);
    assert_eq!(
        (repo["can_write"].as_bool(), repo["can_admin"].as_bool()),
        (Some(true), Some(false))
    );
    let teams = expect(s.get("/api/v1/repository/acme/app/permissions/team/", &root).await, 200);
    assert_eq!(teams["permissions"]["devs"]["role"], "write");
    expect(
        s.delete("/api/v1/organization/acme/team/devs/members/alice", &root)
            .await,
        204,
    );
    expect(s.get("/api/v1/repository/acme/app", &alice).await, 404);

    // A creator who is not an org admin becomes admin of what it creates.
    expect(
        s.put(
            "/api/v1/organization/acme/team/makers",
            &root,
            json!({"role": "creator"}),
        )
        .await,
        200,
    );
    expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/acme/team/makers/members/alice",
            &root,
            None,
        )
        .await,
        200,
    );
    expect(
        s.post(
            "/api/v1/repository",
            &alice,
            json!({"namespace": "acme", "repository": "mine", "visibility": "private"}),
        )
        .await,
        201,
    );
    let perms = expect(
        s.get("/api/v1/repository/acme/mine/permissions/user/", &alice).await,
        200,
    );
    assert_eq!(perms["permissions"]["alice"]["role"], "admin");
    assert_eq!(perms["permissions"]["alice"]["is_org_member"], true);

    // The last admin team cannot be deleted; the org view shows teams to members only.
    let e = expect(s.delete("/api/v1/organization/acme/team/owners", &root).await, 400);
    assert!(e["detail"].as_str().unwrap().contains("last admin team"), "{e}");
    let org = expect(s.get("/api/v1/organization/acme", &alice).await, 200);
    assert_eq!(
        (org["is_member"].as_bool(), org["is_admin"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(org["teams"]["makers"].is_object() && org.get("email").is_none());
    let org = expect(s.get("/api/v1/organization/acme", &Auth::None).await, 200);
    assert!(org.get("teams").is_none());

    // Deleting a robot revokes its credentials; a duplicate robot is refused.
    let bot = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/ci", &root, None)
            .await,
        201,
    );
    let e = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/ci", &root, None)
            .await,
        400,
    );
    assert_eq!(e["detail"], "Existing robot with name: acme+ci");
    let bot_auth = Auth::Basic("acme+ci".into(), bot["token"].as_str().unwrap().into());
    expect(s.get("/api/v1/user/", &bot_auth).await, 200);
    expect(s.delete("/api/v1/organization/acme/robots/ci", &root).await, 204);
    expect(s.get("/api/v1/user/", &bot_auth).await, 401);

    // Visibility changes are audited and take effect for anonymous readers.
    expect(s.get("/api/v1/repository/acme/app", &Auth::None).await, 401);
    expect(
        s.post(
            "/api/v1/repository/acme/app/changevisibility",
            &root,
            json!({"visibility": "public"}),
        )
        .await,
        200,
    );
    expect(s.get("/api/v1/repository/acme/app", &Auth::None).await, 200);
    let list = expect(s.get("/api/v1/repository?namespace=acme", &Auth::None).await, 200);
    let names: Vec<&str> = list["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app"]);
    let logs = expect(s.get("/api/v1/repository/acme/app/logs", &root).await, 200);
    assert_eq!(logs["logs"][0]["kind"], "change_repo_visibility");
    s.stop().await;
}

#[backend_test]
async fn access_tokens_are_capped_by_scopes(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    let app = &s.app;
    let scoped = |scopes: &str| berth_core::ScopeSet::parse(scopes).unwrap();
    let read = Auth::Bearer(
        app.create_access_token("root", scoped("repo:read user:read"), "", None)
            .await
            .unwrap(),
    );
    let create = Auth::Bearer(
        app.create_access_token("root", scoped("repo:create"), "", None)
            .await
            .unwrap(),
    );
    let expired_at = chrono::Utc::now() - chrono::Duration::seconds(1);
    let expired = Auth::Bearer(
        app.create_access_token("root", scoped("repo:read"), "", Some(expired_at))
            .await
            .unwrap(),
    );
    let body = json!({"namespace": "root", "repository": "app", "visibility": "private"});
    expect(s.post("/api/v1/repository", &read, body.clone()).await, 403);
    expect(s.post("/api/v1/repository", &create, body).await, 201);
    expect(s.get("/api/v1/repository/root/app", &read).await, 200);
    expect(s.delete("/api/v1/repository/root/app", &read).await, 403);
    // `$oauthtoken` as the username logs in with a token, as in Quay.
    let Auth::Bearer(t) = &read else { unreachable!() };
    expect(
        s.get("/api/v1/user/", &Auth::Basic("$oauthtoken".into(), t.clone()))
            .await,
        200,
    );
    let e = expect(s.get("/api/v1/user/", &expired).await, 401);
    assert_eq!(e["detail"], "Access token expired");
    // Superuser powers through a token need super:user.
    expect(
        s.post("/api/v1/superuser/users/", &read, json!({"username": "nobody"}))
            .await,
        403,
    );
    expect(s.delete("/api/v1/repository/root/app", &root).await, 204);
    s.stop().await;
}

#[backend_test]
async fn an_organization_always_keeps_an_administrator(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    let alice = s.user(&root, "alice").await;
    s.user(&root, "bob").await;
    // Alice (no superuser) creates the organization: she is its one owner.
    expect(
        s.post("/api/v1/organization/", &alice, json!({"name": "solo"})).await,
        201,
    );
    let no_admin = |e: &serde_json::Value, change: &str| {
        let detail = e["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with(change) && detail.contains("would leave organization solo with no administrator"),
            "{e}"
        );
    };

    // Removing herself, demoting the owners team, or deleting it behind an empty admin team:
    // each is refused, and nothing changes.
    let e = expect(
        s.delete("/api/v1/organization/solo/team/owners/members/alice", &alice)
            .await,
        400,
    );
    no_admin(&e, "Removing alice from team owners");
    let e = expect(
        s.put(
            "/api/v1/organization/solo/team/owners",
            &alice,
            json!({"role": "member"}),
        )
        .await,
        400,
    );
    no_admin(&e, "Making team owners a member team");
    expect(
        s.put(
            "/api/v1/organization/solo/team/admins",
            &alice,
            json!({"role": "admin"}),
        )
        .await,
        200,
    );
    let e = expect(s.delete("/api/v1/organization/solo/team/owners", &alice).await, 400);
    no_admin(&e, "Deleting team owners");
    let org = expect(s.get("/api/v1/organization/solo", &alice).await, 200);
    assert_eq!(org["is_admin"], true);
    assert_eq!(org["teams"]["owners"]["role"], "admin");

    // A robot in an admin team does not count as an administrator.
    expect(
        s.call(Method::PUT, "/api/v1/organization/solo/robots/ci", &alice, None)
            .await,
        201,
    );
    expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/solo/team/admins/members/solo+ci",
            &alice,
            None,
        )
        .await,
        200,
    );
    let e = expect(s.delete("/api/v1/organization/solo/team/owners", &alice).await, 400);
    no_admin(&e, "Deleting team owners");

    // With Bob in the other admin team, Alice may leave, and the owners team may go.
    expect(
        s.call(
            Method::PUT,
            "/api/v1/organization/solo/team/admins/members/bob",
            &alice,
            None,
        )
        .await,
        200,
    );
    expect(
        s.delete("/api/v1/organization/solo/team/owners/members/alice", &alice)
            .await,
        204,
    );
    expect(s.delete("/api/v1/organization/solo/team/owners", &root).await, 204);
    s.stop().await;
}
