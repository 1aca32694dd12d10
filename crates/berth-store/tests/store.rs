//! Every public function of the store, on SQLite and on PostgreSQL (`backend_test!`).

#![allow(clippy::unwrap_used)]

use berth_core::{AccountKind, RepoRole, TeamRole, Visibility};
use berth_store::accounts::{self, NewAccount};
use berth_store::db::{ConnectOptions, redact_url};
use berth_store::{Backend, Store, StoreError, audit, repos, secrets, teams, tokens};
use berth_testkit::{DbKind, TestDb, backend_test};
use serde_json::json;

async fn store(db: &TestDb) -> Store {
    let s = Store::connect(&db.url, &ConnectOptions::default()).await.unwrap();
    assert!(!s.is_migrated().await.unwrap(), "fresh database has no schema");
    s.migrate().await.unwrap();
    s.migrate().await.unwrap(); // idempotent
    assert!(s.is_migrated().await.unwrap());
    s.ping().await.unwrap();
    let expected = match db.kind {
        DbKind::Sqlite => Backend::Sqlite,
        DbKind::Postgres => Backend::Postgres,
    };
    assert_eq!(s.backend(), expected, "{}", redact_url(&db.url));
    s
}

fn user(name: &str) -> NewAccount<'_> {
    NewAccount {
        name,
        kind: AccountKind::User,
        email: None,
        password_hash: Some("$argon2id$x"),
        superuser: false,
        robot_owner: None,
        robot_token: None,
        description: "",
    }
}

backend_test!(async fn accounts_round_trip_and_conflict(kind) {
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let alice = accounts::insert(&mut tx, &NewAccount { email: Some("a@x.io"), superuser: true, ..user("alice") }).await.unwrap();
    let org = accounts::insert(&mut tx, &NewAccount { kind: AccountKind::Organization, password_hash: None, ..user("acme") }).await.unwrap();
    let robot = accounts::insert(&mut tx, &NewAccount {
        kind: AccountKind::Robot,
        password_hash: None,
        robot_owner: Some(org.id),
        robot_token: Some("T0KEN"),
        description: "ci",
        ..user("acme+ci")
    }).await.unwrap();
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let found = accounts::by_name(&mut c, "alice").await.unwrap().unwrap();
    assert_eq!((found.id, found.kind, found.superuser, found.email.as_deref()), (alice.id, AccountKind::User, true, Some("a@x.io")));
    assert_eq!(accounts::by_id(&mut c, org.id).await.unwrap().unwrap().name, "acme");
    assert_eq!(accounts::by_email(&mut c, "a@x.io").await.unwrap().unwrap().id, alice.id);
    assert!(accounts::by_name(&mut c, "nobody").await.unwrap().is_none());
    assert_eq!(accounts::count_users(&mut c).await.unwrap(), 1, "orgs and robots are not users");
    let robots = accounts::robots_of(&mut c, org.id).await.unwrap();
    assert_eq!((robots.len(), robots[0].robot_token.as_deref(), robots[0].description.as_str()), (1, Some("T0KEN"), "ci"));
    drop(c);

    // Names and e-mails are unique; a failed transaction leaves nothing behind.
    let mut tx = s.begin().await.unwrap();
    let dup = accounts::insert(&mut tx, &user("alice")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    drop(tx);
    let mut tx = s.begin().await.unwrap();
    let dup = accounts::insert(&mut tx, &NewAccount { email: Some("a@x.io"), ..user("alice2") }).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    drop(tx);

    // Deleting the organization takes its robot with it.
    let mut tx = s.begin().await.unwrap();
    assert!(accounts::delete(&mut tx, org.id).await.unwrap());
    assert!(!accounts::delete(&mut tx, org.id).await.unwrap());
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    assert!(accounts::by_id(&mut c, robot.id).await.unwrap().is_none());
    drop(c); // close() waits for every connection to come back
    s.close().await;
});

backend_test!(async fn teams_members_and_grants(kind) {
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let alice = accounts::insert(&mut tx, &user("alice")).await.unwrap();
    let bob = accounts::insert(&mut tx, &user("bob")).await.unwrap();
    let org = accounts::insert(&mut tx, &NewAccount { kind: AccountKind::Organization, password_hash: None, ..user("acme") }).await.unwrap();
    let (devs, created) = teams::upsert(&mut tx, org.id, "devs", TeamRole::Member, "d").await.unwrap();
    assert!(created);
    let (again, created) = teams::upsert(&mut tx, org.id, "devs", TeamRole::Creator, "devs!").await.unwrap();
    assert!(!created && again.id == devs.id && again.role == TeamRole::Creator && again.description == "devs!");
    teams::add_member(&mut tx, devs.id, alice.id).await.unwrap();
    teams::add_member(&mut tx, devs.id, alice.id).await.unwrap(); // idempotent
    teams::add_member(&mut tx, devs.id, bob.id).await.unwrap();

    let repo = repos::insert(&mut tx, org.id, "team/app", Visibility::Private, "desc").await.unwrap();
    assert_eq!((repo.namespace.as_str(), repo.namespace_kind, repo.name.as_str()), ("acme", AccountKind::Organization, "team/app"));
    tx.commit().await.unwrap();
    // After a failed statement the transaction is over (PostgreSQL aborts it): use a fresh one.
    let mut tx = s.begin().await.unwrap();
    let dup = repos::insert(&mut tx, org.id, "team/app", Visibility::Public, "").await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    drop(tx);

    let mut tx = s.begin().await.unwrap();
    repos::set_user_role(&mut tx, repo.id, alice.id, RepoRole::Read).await.unwrap();
    repos::set_user_role(&mut tx, repo.id, alice.id, RepoRole::Admin).await.unwrap(); // replaces
    repos::set_team_role(&mut tx, repo.id, devs.id, RepoRole::Write).await.unwrap();
    repos::set_description(&mut tx, repo.id, "new").await.unwrap();
    repos::set_visibility(&mut tx, repo.id, Visibility::Public).await.unwrap();
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let t = teams::by_name(&mut c, org.id, "devs").await.unwrap().unwrap();
    assert_eq!(t.member_count, 2);
    assert_eq!(teams::of_org(&mut c, org.id).await.unwrap().len(), 1);
    assert_eq!(teams::of_member(&mut c, bob.id).await.unwrap()[0].name, "devs");
    assert_eq!(teams::of_member_in_org(&mut c, bob.id, org.id).await.unwrap().len(), 1);
    let names: Vec<String> = teams::members(&mut c, devs.id).await.unwrap().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["alice", "bob"]);
    let mut roles = repos::explicit_roles(&mut c, repo.id, alice.id).await.unwrap();
    roles.sort();
    assert_eq!(roles, [RepoRole::Write, RepoRole::Admin], "direct grant and team grant");
    assert_eq!(repos::explicit_roles(&mut c, repo.id, bob.id).await.unwrap(), [RepoRole::Write]);
    let ug = repos::user_grants(&mut c, repo.id).await.unwrap();
    assert_eq!((ug.len(), ug[0].name.as_str(), ug[0].role), (1, "alice", RepoRole::Admin));
    let tg = repos::team_grants(&mut c, repo.id).await.unwrap();
    assert_eq!((tg[0].name.as_str(), tg[0].role), ("devs", RepoRole::Write));
    let r = repos::by_path(&mut c, "acme", "team/app").await.unwrap().unwrap();
    assert_eq!((r.description.as_str(), r.visibility), ("new", Visibility::Public));
    assert_eq!(repos::by_id(&mut c, repo.id).await.unwrap().unwrap().name, "team/app");
    assert_eq!(repos::of_namespace(&mut c, org.id).await.unwrap().len(), 1);
    assert_eq!(repos::public(&mut c, 10).await.unwrap().len(), 1);
    drop(c);

    let mut tx = s.begin().await.unwrap();
    assert!(teams::remove_member(&mut tx, devs.id, bob.id).await.unwrap());
    assert!(!teams::remove_member(&mut tx, devs.id, bob.id).await.unwrap());
    assert!(repos::delete_user_role(&mut tx, repo.id, alice.id).await.unwrap());
    assert!(!repos::delete_user_role(&mut tx, repo.id, alice.id).await.unwrap());
    assert!(repos::delete_team_role(&mut tx, repo.id, devs.id).await.unwrap());
    assert!(!repos::delete_team_role(&mut tx, repo.id, devs.id).await.unwrap());
    repos::set_team_role(&mut tx, repo.id, devs.id, RepoRole::Read).await.unwrap();
    assert!(teams::delete(&mut tx, devs.id).await.unwrap());
    assert!(repos::team_grants(&mut tx, repo.id).await.unwrap().is_empty(), "grants go with the team");
    assert!(repos::delete(&mut tx, repo.id).await.unwrap());
    assert!(!repos::delete(&mut tx, repo.id).await.unwrap());
    tx.commit().await.unwrap();
    s.close().await;
});

backend_test!(async fn tokens_audit_and_secrets(kind) {
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let alice = accounts::insert(&mut tx, &user("alice")).await.unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let t = tokens::insert(&mut tx, alice.id, "hash1", "repo:read", "ci", Some(expires)).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(matches!(tokens::insert(&mut tx, alice.id, "hash1", "repo:read", "", None).await, Err(StoreError::Conflict(_))));
    drop(tx);
    let mut c = s.conn().await.unwrap();
    let found = tokens::by_hash(&mut c, "hash1").await.unwrap().unwrap();
    assert_eq!((found.id, found.account_id, found.scopes.as_str()), (t.id, alice.id, "repo:read"));
    assert_eq!(found.expires_at.map(|e| e.timestamp()), Some(expires.timestamp()));
    assert!(tokens::by_hash(&mut c, "nope").await.unwrap().is_none());
    drop(c);

    // Audit: per repository, newest first, paged by id, kept after the repository is gone.
    let mut tx = s.begin().await.unwrap();
    let repo = repos::insert(&mut tx, alice.id, "app", Visibility::Private, "").await.unwrap();
    for i in 0..5 {
        let e = audit::NewEntry {
            kind: "change_repo_permission",
            namespace: Some(alice.id),
            repository: Some(repo.id),
            performer: Some((alice.id, "alice")),
            ip: Some("127.0.0.1"),
            metadata: json!({"i": i}),
        };
        audit::insert(&mut tx, &e).await.unwrap();
    }
    repos::delete(&mut tx, repo.id).await.unwrap();
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let page = audit::of_repository(&mut c, repo.id, None, 3).await.unwrap();
    let is: Vec<i64> = page.iter().map(|e| e.metadata.0["i"].as_i64().unwrap()).collect();
    assert_eq!(is, [4, 3, 2]);
    assert_eq!((page[0].performer_name.as_deref(), page[0].performer_kind.as_deref()), (Some("alice"), Some("user")));
    let rest = audit::of_repository(&mut c, repo.id, Some(page[2].id), 10).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(audit::of_namespace(&mut c, alice.id, None, 100).await.unwrap().len(), 5);
    drop(c);

    // Secrets: first writer wins.
    let mut tx = s.begin().await.unwrap();
    assert_eq!(secrets::get_or_insert(&mut tx, "k", "first").await.unwrap(), "first");
    assert_eq!(secrets::get_or_insert(&mut tx, "k", "second").await.unwrap(), "first");
    assert!(secrets::insert_if_absent(&mut tx, "m", "1").await.unwrap());
    assert!(!secrets::insert_if_absent(&mut tx, "m", "2").await.unwrap());
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    assert_eq!(secrets::get(&mut c, "m").await.unwrap().as_deref(), Some("1"));
    assert!(secrets::get(&mut c, "absent").await.unwrap().is_none());
    drop(c);
    s.close().await;
});

backend_test!(async fn dropped_transaction_rolls_back(kind) {
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    {
        let mut tx = s.begin().await.unwrap();
        accounts::insert(&mut tx, &user("ghost")).await.unwrap();
    }
    let mut c = s.conn().await.unwrap();
    assert!(accounts::by_name(&mut c, "ghost").await.unwrap().is_none());
});

#[tokio::test]
async fn bad_urls_are_rejected_without_leaking_passwords() {
    let e = Store::connect("mysql://u:hunter2@h/db", &ConnectOptions::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("sqlite: or postgres://") && !e.contains("hunter2"), "{e}");
}
