//! Namespace-wide notifications on both backends, end to end with real sources: an
//! organization's notification hears every repository of the organization, present and future,
//! narrowed by `repository-regex`; `repo_created` and `repo_deleted` come from the API; the user
//! routes hold the caller's own namespace; uuids are scoped to their namespace; deliveries are
//! signed and logged as a repository's are.

use std::time::Duration;

use berth_testkit::backend_test;
use berth_testkit::receiver::Receiver;
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

const WAIT: Duration = Duration::from_secs(20);
const ORG: &str = "/api/v1/organization/acme/notifications";
const MINE: &str = "/api/v1/user/namespacenotifications";

async fn create(s: &TestServer, auth: &Auth, base: &str, event: &str, url: &str, event_config: Value) -> String {
    let body = json!({"event": event, "method": "webhook", "config": {"url": url}, "eventConfig": event_config});
    expect(s.post(base, auth, body).await, 201)["uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn repository(s: &TestServer, auth: &Auth, namespace: &str, name: &str) {
    let body = json!({"namespace": namespace, "repository": name, "visibility": "public"});
    expect(s.post("/api/v1/repository", auth, body).await, 201);
}

#[backend_test]
async fn an_organization_hears_every_repository_present_and_future(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| {
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
        c.notifications.deliver = true;
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let (all, some, created, deleted) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    let every = create(&s, &root, ORG, "repo_push", &all.url, json!({})).await;
    let narrow = json!({"repository-regex": "team/.+|api"});
    let filtered = create(&s, &root, ORG, "repo_push", &some.url, narrow).await;
    create(&s, &root, ORG, "repo_created", &created.url, json!({})).await;
    create(&s, &root, ORG, "repo_deleted", &deleted.url, json!({})).await;
    let list = expect(s.get(ORG, &root).await, 200);
    assert_eq!(list["notifications"].as_array().unwrap().len(), 4);
    assert_eq!(
        list["notifications"][1]["event_config"]["repository-regex"],
        "team/.+|api"
    );

    // A repository that existed before: the whole-namespace hook hears its push.
    let reg = s.reg("root", "rootpassword");
    reg.push_image("acme/web", "v1", b"web layer").await;
    let got = all.next(WAIT).await.expect("a push to acme/web");
    assert_eq!(got.json()["repository"], "acme/web");
    assert!(got.headers["webhook-id"].ends_with(&format!(".{every}")));
    let secret = expect(s.get(&format!("{ORG}/{every}/secret"), &root).await, 200);
    assert!(secret["secret"].as_str().unwrap().starts_with("whsec_"));
    assert!(got.headers["webhook-signature"].starts_with("v1,"));

    // A repository created afterwards, through the API: `repo_created`, then its pushes.
    repository(&s, &root, "acme", "api").await;
    let got = created.next(WAIT).await.expect("repo_created").json();
    assert_eq!(
        (&got["repository"], &got["namespace"], &got["name"]),
        (&json!("acme/api"), &json!("acme"), &json!("api"))
    );
    assert_eq!(
        (&got["visibility"], &got["performer"]),
        (&json!("public"), &json!("root"))
    );
    reg.push_image("acme/api", "v2", b"api layer").await;
    assert_eq!(all.next(WAIT).await.unwrap().json()["repository"], "acme/api");
    // The narrowed hook skipped acme/web (its first delivery is acme/api's) and logged why.
    assert_eq!(some.next(WAIT).await.unwrap().json()["repository"], "acme/api");
    let settled = crate::support::settled_deliveries(&s, &filtered).await;
    let statuses: Vec<&str> = settled.iter().map(|d| d.1.as_str()).collect();
    assert_eq!(statuses, ["filtered", "delivered"]);
    let log = expect(s.get(&format!("{ORG}/{filtered}/deliveries"), &root).await, 200);
    assert_eq!(
        log["deliveries"][0]["status"], "delivered",
        "the log, newest first: {log}"
    );

    // Another namespace's repositories are not the organization's.
    repository(&s, &root, "root", "own").await;
    reg.push_image("root/own", "v3", b"own layer").await;
    reg.push_image("acme/web", "v4", b"web again").await;
    let got = all.next(WAIT).await.unwrap().json();
    assert_eq!(
        (&got["repository"], &got["updated_tags"]),
        (&json!("acme/web"), &json!(["v4"]))
    );

    // Deleting a repository: `repo_deleted`, delivered though the repository is gone.
    expect(s.delete("/api/v1/repository/acme/api", &root).await, 204);
    let got = deleted.next(WAIT).await.expect("repo_deleted").json();
    assert_eq!(
        (&got["repository"], &got["performer"]),
        (&json!("acme/api"), &json!("root"))
    );

    // A test send, about a sample repository of the namespace; redelivery from the log.
    expect(s.post(&format!("{ORG}/{every}/test"), &root, json!(null)).await, 200);
    let got = all.next(WAIT).await.unwrap().json();
    assert_eq!(got["repository"], "acme/sample");
    let log = expect(s.get(&format!("{ORG}/{every}/deliveries"), &root).await, 200);
    let first = log["deliveries"].as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect(
        s.post(
            &format!("{ORG}/{every}/deliveries/{first}/redeliver"),
            &root,
            json!(null),
        )
        .await,
        202,
    );
    let again = all.next(WAIT).await.unwrap();
    assert_eq!(again.headers["webhook-id"], first, "the same delivery id");
    assert_eq!(again.json()["repository"], "acme/web");

    // Only namespace-wide notifications take repository events and `repository-regex`.
    let repo_route = "/api/v1/repository/acme/web/notification/";
    let e = expect(
        s.post(
            repo_route,
            &root,
            json!({"event": "repo_created", "method": "webhook", "config": {"url": all.url}, "eventConfig": {}}),
        )
        .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("namespace-wide"), "{e}");
    let e = expect(
        s.post(repo_route, &root, json!({"event": "repo_push", "method": "webhook", "config": {"url": all.url}, "eventConfig": {"repository-regex": "x"}}))
            .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("repository-regex"), "{e}");
    let e = expect(
        s.post(ORG, &root, json!({"event": "repo_push", "method": "webhook", "config": {"url": all.url}, "eventConfig": {"repository-regex": "("}}))
            .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("repository-regex"), "{e}");

    // Uuids are scoped to their namespace: another organization, the user's own namespace and a
    // repository of the organization find nothing.
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "other"})).await,
        201,
    );
    let e = expect(
        s.get(&format!("/api/v1/organization/other/notifications/{every}"), &root)
            .await,
        404,
    );
    assert_eq!(
        e["detail"],
        format!("No namespace notification found for: other, {every}")
    );
    expect(s.get(&format!("{MINE}/{every}"), &root).await, 404);
    expect(s.get(&format!("{repo_route}{every}"), &root).await, 404);

    // Pause, reset and delete go through the namespace's routes, audited under Quay's kinds. A
    // pause raises `notification_disabled` for the namespace, with its block, not a repository's;
    // a repository's notification paused reaches the namespace's hook too.
    let ops = Receiver::start().await;
    create(&s, &root, ORG, "notification_disabled", &ops.url, json!({})).await;
    let paused = expect(
        s.put(&format!("{ORG}/{every}"), &root, json!({"enabled": false})).await,
        200,
    );
    assert_eq!(paused["disabled_reason"], "Paused by root");
    let got = ops.next(WAIT).await.expect("notification_disabled").json();
    assert_eq!((&got["uuid"], &got["namespace"]), (&json!(every), &json!("acme")));
    assert_eq!(
        (got.get("repository"), &got["reason"]),
        (None, &json!("Paused by root"))
    );
    let own = create(&s, &root, repo_route, "repo_push", &all.url, json!({})).await;
    expect(
        s.put(&format!("{repo_route}{own}"), &root, json!({"enabled": false}))
            .await,
        200,
    );
    let got = ops.next(WAIT).await.expect("notification_disabled").json();
    assert_eq!((&got["uuid"], &got["repository"]), (&json!(own), &json!("acme/web")));
    expect(s.post(&format!("{ORG}/{every}"), &root, json!(null)).await, 204);
    expect(s.delete(&format!("{ORG}/{every}"), &root).await, 204);
    expect(s.get(&format!("{ORG}/{every}"), &root).await, 404);
    let logs = expect(s.get("/api/v1/organization/acme/logs", &root).await, 200);
    let kinds: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["kind"].as_str())
        .collect();
    for kind in [
        "create_namespace_notification",
        "change_namespace_notification",
        "reset_namespace_notification",
        "delete_namespace_notification",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    s.stop().await;
}

#[backend_test]
async fn a_user_holds_notifications_for_their_own_namespace(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| {
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
        c.notifications.deliver = true;
    })
    .await;
    let root = s.init_root().await;
    let rx = Receiver::start().await;
    let uuid = create(&s, &root, MINE, "repo_push", &rx.url, json!({})).await;
    let list = expect(s.get(MINE, &root).await, 200);
    assert_eq!(list["notifications"][0]["uuid"], uuid.as_str());
    // A repository made by the first push, after the notification.
    s.reg("root", "rootpassword")
        .push_image("root/app", "v1", b"a layer")
        .await;
    let got = rx.next(WAIT).await.expect("a push to root/app").json();
    assert_eq!(
        (&got["repository"], &got["updated_tags"]),
        (&json!("root/app"), &json!(["v1"]))
    );
    // Another user's namespace-wide notifications are theirs alone.
    let bob = s.user(&root, "bob").await;
    assert_eq!(expect(s.get(MINE, &bob).await, 200)["notifications"], json!([]));
    expect(s.get(&format!("{MINE}/{uuid}"), &bob).await, 404);
    expect(s.delete(&format!("{MINE}/{uuid}"), &bob).await, 404);
    expect(s.delete(&format!("{MINE}/{uuid}"), &root).await, 204);
    s.stop().await;
}
