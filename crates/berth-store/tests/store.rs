//! Every public function of the store, on SQLite and on PostgreSQL (`#[backend_test]`).

#![allow(clippy::unwrap_used)]

use berth_core::{AccountKind, JobQueue, RepoRole, TeamRole, Visibility};
use berth_store::accounts::{self, NewAccount};
use berth_store::db::{ConnectOptions, redact_url};
use berth_store::secrets::{Sealed, SealedColumn};
use berth_store::{Backend, Store, StoreError, audit, repos, secrets, teams, tokens};
use berth_testkit::{DbKind, TestDb, backend_test};
use serde_json::json;

/// Attempts each test job gets.
const RETRIES: i32 = 8;

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

/// The user `owner` and its private repository `web`, in `tx`.
async fn owner_and_repo(tx: &mut berth_store::Tx) -> (accounts::AccountRow, repos::RepoRow) {
    let owner = accounts::insert(tx, &user("owner")).await.unwrap();
    let repo = repos::insert(tx, owner.id, "web", Visibility::Private, "")
        .await
        .unwrap();
    (owner, repo)
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

#[backend_test]
async fn accounts_round_trip_and_conflict(kind: berth_testkit::DbKind) {
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let alice = accounts::insert(
        &mut tx,
        &NewAccount {
            email: Some("a@x.io"),
            superuser: true,
            ..user("alice")
        },
    )
    .await
    .unwrap();
    let org = accounts::insert(
        &mut tx,
        &NewAccount {
            kind: AccountKind::Organization,
            password_hash: None,
            ..user("acme")
        },
    )
    .await
    .unwrap();
    let robot = accounts::insert(
        &mut tx,
        &NewAccount {
            kind: AccountKind::Robot,
            password_hash: None,
            robot_owner: Some(org.id),
            robot_token: Some(&Sealed::from_stored("T0KEN".into())),
            description: "ci",
            ..user("acme+ci")
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let found = accounts::by_name(&mut c, "alice").await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.kind, found.superuser, found.email.as_deref()),
        (alice.id, AccountKind::User, true, Some("a@x.io"))
    );
    assert_eq!(accounts::by_id(&mut c, org.id).await.unwrap().unwrap().name, "acme");
    assert_eq!(
        accounts::by_email(&mut c, "a@x.io").await.unwrap().unwrap().id,
        alice.id
    );
    assert!(accounts::by_name(&mut c, "nobody").await.unwrap().is_none());
    assert_eq!(
        accounts::count_users(&mut c).await.unwrap(),
        1,
        "orgs and robots are not users"
    );
    let robots = accounts::robots_of(&mut c, org.id).await.unwrap();
    assert_eq!(
        (
            robots.len(),
            robots[0].robot_token.as_ref().map(Sealed::as_stored),
            robots[0].description.as_str()
        ),
        (1, Some("T0KEN"), "ci")
    );
    drop(c);

    // Names and e-mails are unique; a failed transaction leaves nothing behind.
    let mut tx = s.begin().await.unwrap();
    let dup = accounts::insert(&mut tx, &user("alice")).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    drop(tx);
    let mut tx = s.begin().await.unwrap();
    let dup = accounts::insert(
        &mut tx,
        &NewAccount {
            email: Some("a@x.io"),
            ..user("alice2")
        },
    )
    .await;
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
}

#[backend_test]
async fn teams_members_and_grants(kind: berth_testkit::DbKind) {
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let alice = accounts::insert(&mut tx, &user("alice")).await.unwrap();
    let bob = accounts::insert(&mut tx, &user("bob")).await.unwrap();
    let org = accounts::insert(
        &mut tx,
        &NewAccount {
            kind: AccountKind::Organization,
            password_hash: None,
            ..user("acme")
        },
    )
    .await
    .unwrap();
    let (devs, created) = teams::upsert(&mut tx, org.id, "devs", TeamRole::Member, "d")
        .await
        .unwrap();
    assert!(created);
    let (again, created) = teams::upsert(&mut tx, org.id, "devs", TeamRole::Creator, "devs!")
        .await
        .unwrap();
    assert!(!created && again.id == devs.id && again.role == TeamRole::Creator && again.description == "devs!");
    teams::add_member(&mut tx, devs.id, alice.id).await.unwrap();
    teams::add_member(&mut tx, devs.id, alice.id).await.unwrap(); // idempotent
    teams::add_member(&mut tx, devs.id, bob.id).await.unwrap();

    let repo = repos::insert(&mut tx, org.id, "team/app", Visibility::Private, "desc")
        .await
        .unwrap();
    assert_eq!(
        (repo.namespace.as_str(), repo.namespace_kind, repo.name.as_str()),
        ("acme", AccountKind::Organization, "team/app")
    );
    tx.commit().await.unwrap();
    // After a failed statement the transaction is over (PostgreSQL aborts it): use a fresh one.
    let mut tx = s.begin().await.unwrap();
    let dup = repos::insert(&mut tx, org.id, "team/app", Visibility::Public, "").await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    drop(tx);

    let mut tx = s.begin().await.unwrap();
    repos::set_user_role(&mut tx, repo.id, alice.id, RepoRole::Read)
        .await
        .unwrap();
    repos::set_user_role(&mut tx, repo.id, alice.id, RepoRole::Admin)
        .await
        .unwrap(); // replaces
    repos::set_team_role(&mut tx, repo.id, devs.id, RepoRole::Write)
        .await
        .unwrap();
    repos::set_description(&mut tx, repo.id, "new").await.unwrap();
    repos::set_visibility(&mut tx, repo.id, Visibility::Public)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let t = teams::by_name(&mut c, org.id, "devs").await.unwrap().unwrap();
    assert_eq!(t.member_count, 2);
    assert_eq!(teams::of_org(&mut c, org.id).await.unwrap().len(), 1);
    assert_eq!(teams::of_member(&mut c, bob.id).await.unwrap()[0].name, "devs");
    assert_eq!(teams::of_member_in_org(&mut c, bob.id, org.id).await.unwrap().len(), 1);
    let names: Vec<String> = teams::members(&mut c, devs.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let mut roles = repos::explicit_roles(&mut c, repo.id, alice.id).await.unwrap();
    roles.sort();
    assert_eq!(roles, [RepoRole::Write, RepoRole::Admin], "direct grant and team grant");
    assert_eq!(
        repos::explicit_roles(&mut c, repo.id, bob.id).await.unwrap(),
        [RepoRole::Write]
    );
    let ug = repos::user_grants(&mut c, repo.id).await.unwrap();
    assert_eq!(
        (ug.len(), ug[0].name.as_str(), ug[0].role),
        (1, "alice", RepoRole::Admin)
    );
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
    repos::set_team_role(&mut tx, repo.id, devs.id, RepoRole::Read)
        .await
        .unwrap();
    assert!(teams::delete(&mut tx, devs.id).await.unwrap());
    assert!(
        repos::team_grants(&mut tx, repo.id).await.unwrap().is_empty(),
        "grants go with the team"
    );
    assert!(repos::delete(&mut tx, repo.id).await.unwrap());
    assert!(!repos::delete(&mut tx, repo.id).await.unwrap());
    tx.commit().await.unwrap();
    s.close().await;
}

#[backend_test]
async fn tokens_audit_and_secrets(kind: berth_testkit::DbKind) {
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let alice = accounts::insert(&mut tx, &user("alice")).await.unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let t = tokens::insert(&mut tx, alice.id, "hash1", "repo:read", "ci", Some(expires))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert!(matches!(
        tokens::insert(&mut tx, alice.id, "hash1", "repo:read", "", None).await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);
    let mut c = s.conn().await.unwrap();
    let found = tokens::by_hash(&mut c, "hash1").await.unwrap().unwrap();
    assert_eq!(
        (found.id, found.account_id, found.scopes.as_str()),
        (t.id, alice.id, "repo:read")
    );
    assert_eq!(found.expires_at.map(|e| e.timestamp()), Some(expires.timestamp()));
    assert!(tokens::by_hash(&mut c, "nope").await.unwrap().is_none());
    drop(c);

    // Audit: per repository, newest first, paged by id, kept after the repository is gone.
    let mut tx = s.begin().await.unwrap();
    let repo = repos::insert(&mut tx, alice.id, "app", Visibility::Private, "")
        .await
        .unwrap();
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
    assert_eq!(
        (page[0].performer_name.as_deref(), page[0].performer_kind.as_deref()),
        (Some("alice"), Some("user"))
    );
    let rest = audit::of_repository(&mut c, repo.id, Some(page[2].id), 10)
        .await
        .unwrap();
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

    // Sealed columns: every stored secret is listed by the key of its row and can be replaced;
    // markers and unset values are not secrets.
    let mut tx = s.begin().await.unwrap();
    secrets::get_or_insert(&mut tx, secrets::REGISTRY_TOKEN_KEY, "plain-key")
        .await
        .unwrap();
    let bot = accounts::insert(
        &mut tx,
        &NewAccount {
            name: "alice+bot",
            kind: AccountKind::Robot,
            email: None,
            password_hash: None,
            superuser: false,
            robot_owner: Some(alice.id),
            robot_token: Some(&Sealed::from_stored("tok".into())),
            description: "",
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let robots = secrets::sealed_values(&mut c, SealedColumn::RobotToken).await.unwrap();
    assert_eq!(robots, [(bot.id.0.to_string(), Sealed::from_stored("tok".into()))]);
    let instance = secrets::sealed_values(&mut c, SealedColumn::InstanceSecret)
        .await
        .unwrap();
    assert_eq!(
        instance,
        [(
            secrets::REGISTRY_TOKEN_KEY.to_owned(),
            Sealed::from_stored("plain-key".into())
        )]
    );
    assert!(
        secrets::sealed_values(&mut c, SealedColumn::TriggerSecret)
            .await
            .unwrap()
            .is_empty()
    );
    drop(c);
    let mut tx = s.begin().await.unwrap();
    secrets::replace_sealed(
        &mut tx,
        SealedColumn::RobotToken,
        &bot.id.0.to_string(),
        &Sealed::from_stored("sealed:v1:x".into()),
    )
    .await
    .unwrap();
    secrets::replace_sealed(
        &mut tx,
        SealedColumn::InstanceSecret,
        secrets::REGISTRY_TOKEN_KEY,
        &Sealed::from_stored("sealed:v1:y".into()),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let bot = accounts::by_id(&mut c, bot.id).await.unwrap().unwrap();
    assert_eq!(bot.robot_token.as_ref().map(Sealed::as_stored), Some("sealed:v1:x"));
    assert_eq!(
        secrets::get(&mut c, secrets::REGISTRY_TOKEN_KEY)
            .await
            .unwrap()
            .as_deref(),
        Some("sealed:v1:y")
    );
    drop(c);
    s.close().await;
}

#[backend_test]
async fn dropped_transaction_rolls_back(kind: berth_testkit::DbKind) {
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    {
        let mut tx = s.begin().await.unwrap();
        accounts::insert(&mut tx, &user("ghost")).await.unwrap();
    }
    let mut c = s.conn().await.unwrap();
    assert!(accounts::by_name(&mut c, "ghost").await.unwrap().is_none());
}

#[tokio::test]
async fn bad_urls_are_rejected_without_leaking_passwords() {
    let e = Store::connect("mysql://u:hunter2@h/db", &ConnectOptions::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("sqlite: or postgres://") && !e.contains("hunter2"), "{e}");
}

#[test]
fn sqlite_urls_name_their_file() {
    use berth_store::db::sqlite_file;
    assert_eq!(
        sqlite_file("sqlite://./data/berth.db"),
        Some(std::path::PathBuf::from("./data/berth.db"))
    );
    assert_eq!(
        sqlite_file("sqlite:///var/lib/berth/berth.db?mode=rwc"),
        Some(std::path::PathBuf::from("/var/lib/berth/berth.db"))
    );
    assert_eq!(sqlite_file("sqlite::memory:"), None);
    assert_eq!(sqlite_file("postgres://u@h/db"), None);
}

#[backend_test]
async fn queue_claims_are_disjoint_leased_and_announced(kind: berth_testkit::DbKind) {
    use berth_store::queue::{self, NewJob, PutBack, PutBackKind};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let lease = chrono::Duration::seconds(30);
    {
        let mut tx = s.begin().await.unwrap();
        for i in 0..10 {
            queue::enqueue(
                &mut tx,
                JobQueue::Notification,
                &format!("job{i}"),
                &json!({"i": i}),
                RETRIES,
            )
            .await
            .unwrap();
        }
        let batch: Vec<NewJob> = (10..14)
            .map(|i| NewJob {
                name: format!("job{i}"),
                body: json!({"i": i}).to_string(),
            })
            .collect();
        queue::enqueue_many(&mut tx, JobQueue::Notification, &batch, RETRIES)
            .await
            .unwrap();
        queue::enqueue_many(&mut tx, JobQueue::Notification, &[], RETRIES)
            .await
            .unwrap();
        queue::enqueue(&mut tx, JobQueue::Secscan, "x", &json!({}), RETRIES)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let mut c = s.conn().await.unwrap();
    let listed = queue::list(&mut c, JobQueue::Notification).await.unwrap();
    assert_eq!(listed.len(), 14);
    assert_eq!(
        (listed[12].name.as_str(), &listed[12].body.0),
        ("job12", &json!({"i": 12})),
        "a batch keeps its bodies"
    );
    drop(c);
    // The worker's own connection reads the same queue.
    let mut w = s.conn_relaxed().await.unwrap();
    assert_eq!(queue::list(&mut w, JobQueue::Notification).await.unwrap().len(), 14);
    drop(w);
    let now = chrono::Utc::now();
    // Two workers claiming at once take disjoint jobs (SKIP LOCKED on PostgreSQL, the single
    // writer on SQLite); together with a third claim they take each job once.
    let claim = |worker: &'static str, at: chrono::DateTime<chrono::Utc>, limit: i64, skip: Vec<String>| {
        let s = s.clone();
        async move {
            let mut tx = s.begin_relaxed().await.unwrap();
            let c = queue::claim(&mut tx, JobQueue::Notification, at, at + lease, limit, worker, &skip)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            c
        }
    };
    let (a, b) = tokio::join!(claim("a", now, 6, vec![]), claim("b", now, 6, vec![]));
    let rest = claim("c", now, 10, vec![]).await;
    let claimed: Vec<_> = a.iter().chain(b.iter()).chain(rest.iter()).cloned().collect();
    let mut ids: Vec<i64> = claimed.iter().map(|j| j.id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!((before, ids.len()), (14, 14), "every job claimed once");
    assert!(
        claimed
            .iter()
            .all(|j| j.attempt == 1 && j.retries_remaining == RETRIES - 1)
    );
    assert!(
        a.iter().all(|j| j.state_id.starts_with("a-")),
        "the token names its worker"
    );

    // Leased: nothing more to claim until the lease ends; a renewal extends the leases it still
    // holds, and says which.
    assert!(claim("c", now, 10, vec![]).await.is_empty());
    let (j0, j1) = (&claimed[0], &claimed[1]);
    let mut tx = s.begin_relaxed().await.unwrap();
    let kept = queue::renew(
        &mut tx,
        &[j0.key(), (j1.id, "stale-token".into())],
        now + chrono::Duration::minutes(5),
    )
    .await
    .unwrap();
    assert_eq!(kept, [j0.id], "a lost claim is not renewed");
    assert!(queue::renew(&mut tx, &[], now).await.unwrap().is_empty());
    assert!(
        queue::heartbeat(&mut tx, j0.id, &j0.state_id, now + chrono::Duration::minutes(5))
            .await
            .unwrap()
    );
    assert!(!queue::heartbeat(&mut tx, j1.id, "stale-token", now).await.unwrap());
    tx.commit().await.unwrap();
    let later = now + chrono::Duration::minutes(1);
    let again = claim("c", later, 20, vec![]).await;
    assert_eq!(again.len(), 13, "expired leases come back; the renewal kept one");
    assert!(again.iter().all(|j| j.attempt == 2 && j.id != j0.id));

    // Moves check the token and say which jobs were still held.
    let (k0, k1, k2, k3, k4) = (
        again[0].key(),
        again[1].key(),
        again[2].key(),
        again[3].key(),
        again[4].key(),
    );
    let mut tx = s.begin_relaxed().await.unwrap();
    assert!(!queue::complete(&mut tx, k0.0, "stale-token").await.unwrap());
    assert_eq!(
        queue::complete_many(&mut tx, &[k0.clone(), (k1.0, "stale".into())])
            .await
            .unwrap(),
        [k0.0]
    );
    let back = |k: &(i64, String), at| PutBack {
        id: k.0,
        state_id: k.1.clone(),
        at,
        note: "busy".into(),
    };
    let t = later + chrono::Duration::minutes(10);
    assert_eq!(
        queue::put_back_many(&mut tx, &[back(&k1, t)], PutBackKind::Retry)
            .await
            .unwrap(),
        [k1.0]
    );
    assert_eq!(
        queue::put_back_many(&mut tx, &[back(&k2, t)], PutBackKind::Release)
            .await
            .unwrap(),
        [k2.0]
    );
    assert_eq!(
        queue::bury_many(&mut tx, &[(k3.0, k3.1.clone(), "dead".into())])
            .await
            .unwrap(),
        [k3.0]
    );
    assert!(queue::defer(&mut tx, k4.0, &k4.1, t, "later").await.unwrap());
    assert!(
        !queue::retry_at(&mut tx, k4.0, &k4.1, t, "x").await.unwrap(),
        "deferred: the claim is over"
    );
    assert!(
        !queue::complete(&mut tx, k3.0, &k3.1).await.unwrap(),
        "buried: the claim is over"
    );
    assert!(!queue::bury(&mut tx, k4.0, &k4.1, "x").await.unwrap());
    assert!(
        queue::put_back_many(&mut tx, &[], PutBackKind::Retry)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(queue::bury_many(&mut tx, &[]).await.unwrap().is_empty());
    assert!(queue::complete_many(&mut tx, &[]).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let stats = queue::stats(&mut c, later).await.unwrap();
    let q: Vec<(&str, i64)> = stats.iter().map(|s| (s.queue.as_str(), s.depth)).collect();
    assert_eq!(
        q,
        [("notification", 12), ("secscan", 1)],
        "of 14, one completed and one dead"
    );
    assert!(
        stats[0].oldest_due.is_none() && stats[1].oldest_due.is_some(),
        "the notification queue's live jobs are leased or later"
    );
    drop(c);
    // The retried job counts its attempt, the released and deferred ones give it back; the dead
    // one never comes back.
    let due = claim("c", t, 20, vec![]).await;
    let attempt_of = |id: i64| due.iter().find(|j| j.id == id).map(|j| j.attempt);
    assert_eq!(
        (attempt_of(k1.0), attempt_of(k2.0), attempt_of(k4.0), attempt_of(k3.0)),
        (Some(3), Some(2), Some(2), None)
    );

    // Claims can look past busy names.
    {
        let mut tx = s.begin().await.unwrap();
        let jobs: Vec<NewJob> = ["flood", "flood", "flood", "quiet"]
            .iter()
            .map(|n| NewJob {
                name: (*n).into(),
                body: "{}".into(),
            })
            .collect();
        queue::enqueue_many(&mut tx, JobQueue::Notification, &jobs, RETRIES)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let fair = claim("d", t, 10, vec!["flood".into()]).await;
    assert_eq!(fair.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["quiet"]);
    assert_eq!(claim("d", t, 10, vec![]).await.len(), 3, "then the flood, in order");

    // On PostgreSQL, a committed job is announced to listeners.
    if kind == DbKind::Postgres {
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let listener = {
            let (s, wake) = (s.clone(), wake.clone());
            tokio::spawn(async move { s.listen_queue(&wake).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await; // let LISTEN start
        let mut tx = s.begin().await.unwrap();
        queue::enqueue(&mut tx, JobQueue::Notification, "late", &json!({}), RETRIES)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), wake.notified())
            .await
            .expect("the enqueue is announced");
        listener.abort();
    }
    s.close().await;
}

#[backend_test]
async fn delivery_log_and_authorized_emails(kind: berth_testkit::DbKind) {
    use berth_core::DeliveryStatus;
    use berth_store::deliveries::{self, NewAttempt, NewDelivery, StatusChange};
    use berth_store::{authorized_email, notifications};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let now = chrono::Utc::now();
    let mut tx = s.begin().await.unwrap();
    let (_, repo) = owner_and_repo(&mut tx).await;
    let empty = json!({});
    let sealed = |v: &str| Sealed::from_stored(v.to_owned());
    let whsec = sealed("whsec_AAAA");
    let new = |uuid| notifications::NewNotification {
        uuid,
        scope: berth_store::notifications::NotificationScope::Repository(repo.id),
        event: "repo_push",
        method: "webhook",
        title: None,
        config: &empty,
        event_config: &empty,
        secret: &whsec,
    };
    let n = notifications::insert(&mut tx, &new("n1")).await.unwrap();
    let n2 = notifications::insert(&mut tx, &new("n2")).await.unwrap();
    assert_eq!((n.secret.as_ref(), n.previous_secret.as_ref()), (Some(&whsec), None));
    let until = now + chrono::Duration::hours(1);
    notifications::set_secret(&mut tx, n.id, &sealed("whsec_BBBB"), Some(&whsec), Some(until))
        .await
        .unwrap();
    let row = |public_id, status, body| NewDelivery {
        public_id,
        notification_id: n.id,
        event: "repo_push",
        status,
        body,
    };
    let ids = deliveries::insert_many(
        &mut tx,
        &[
            row("e1.n1", DeliveryStatus::Pending, r#"{"test":true}"#),
            row("e2.n1", DeliveryStatus::Skipped, "{}"),
        ],
        now,
    )
    .await
    .unwrap();
    let id_of = |p: &str| ids.iter().find(|(_, x)| x == p).unwrap().0;
    let (e1, e2) = (id_of("e1.n1"), id_of("e2.n1"));
    // An edit keeps the configuration before it for the pending deliveries, and only for those.
    let revision = notifications::keep_revision(&mut tx, &n).await.unwrap();
    assert_eq!(
        deliveries::stamp_revision(&mut tx, n.id, revision).await.unwrap(),
        1,
        "e1 is pending; e2 was skipped"
    );
    assert_eq!(
        deliveries::stamp_revision(&mut tx, n.id, revision).await.unwrap(),
        0,
        "stamped once"
    );
    let edited = notifications::update(
        &mut tx,
        n.id,
        Some("CI"),
        &json!({"url": "https://new.example/"}),
        &json!({"tag-regex": "v.*"}),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            edited.title.as_deref(),
            edited.config.0["url"].as_str(),
            edited.event_config.0["tag-regex"].as_str()
        ),
        (Some("CI"), Some("https://new.example/"), Some("v.*")),
    );
    assert_eq!(
        (
            edited.uuid.as_str(),
            edited.event.as_str(),
            edited.method.as_str(),
            edited.enabled
        ),
        (n.uuid.as_str(), n.event.as_str(), n.method.as_str(), n.enabled),
        "an edit changes the title and configurations, nothing else"
    );
    let revisions = notifications::revisions(&mut tx, &[revision, -1]).await.unwrap();
    assert_eq!(revisions.len(), 1);
    assert_eq!(
        (
            revisions[0].notification_id,
            &revisions[0].config.0,
            &revisions[0].event_config.0
        ),
        (n.id, &empty, &empty)
    );
    assert!(notifications::revisions(&mut tx, &[]).await.unwrap().is_empty());
    let again = deliveries::insert_many(&mut tx, &[row("e2.n1", DeliveryStatus::Skipped, "{}")], now)
        .await
        .unwrap();
    assert_eq!(
        again,
        [(e2, "e2.n1".to_owned())],
        "a public id seen before keeps its row"
    );
    assert!(deliveries::insert_many(&mut tx, &[], now).await.unwrap().is_empty());
    let headers = vec![("webhook-id".to_owned(), "e1.n1".to_owned())];
    let retry_at = now + chrono::Duration::seconds(5);
    let attempt = |i: i32, outcome: &'static str, status| NewAttempt {
        next_attempt_at: (status == DeliveryStatus::Pending).then_some(retry_at),
        delivery: e1,
        attempt: i,
        started_at: now,
        duration_ms: 3,
        request_url: "https://h.example/x?token=***",
        request_headers: &headers,
        request_body: "{}",
        response_status: Some(503),
        response_headers: Some(&headers),
        response_body: Some("busy"),
        error: Some("503 response for webhook"),
        outcome,
        status,
    };
    deliveries::record_attempts(&mut tx, &[attempt(1, "retry", DeliveryStatus::Pending)], now)
        .await
        .unwrap();
    let waiting = deliveries::get(&mut tx, n.id, "e1.n1").await.unwrap().unwrap();
    assert_eq!(
        (waiting.status, waiting.next_attempt_at.map(|t| t.timestamp_micros())),
        (DeliveryStatus::Pending, Some(retry_at.timestamp_micros())),
        "a retried delivery says when its next attempt is due"
    );
    deliveries::record_attempts(&mut tx, &[attempt(2, "failed", DeliveryStatus::Failed)], now)
        .await
        .unwrap();
    let done = deliveries::get(&mut tx, n.id, "e1.n1").await.unwrap().unwrap();
    assert_eq!(done.next_attempt_at, None, "nothing is due after the last attempt");
    deliveries::record_attempts(&mut tx, &[], now).await.unwrap();
    let note = StatusChange {
        delivery: e2,
        status: DeliveryStatus::Skipped,
        note: Some("the notification was disabled"),
        attempts: 0,
        next_attempt_at: None,
    };
    deliveries::set_statuses(&mut tx, &[note], now).await.unwrap();
    deliveries::set_statuses(&mut tx, &[], now).await.unwrap();

    // Failure counting: added, or counted afresh after a success; cleared only where set.
    let failed = notifications::add_failures(&mut tx, n.id, 2, now, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((failed.number_of_failures, failed.failing_since.is_some()), (2, true));
    let failed = notifications::add_failures(&mut tx, n.id, 1, now, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.number_of_failures, 3);
    let later = now + chrono::Duration::minutes(1);
    let after = notifications::add_failures(&mut tx, n.id, 1, later, true)
        .await
        .unwrap()
        .unwrap();
    let micros = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_micros());
    assert_eq!(
        (after.number_of_failures, micros(after.failing_since)),
        (1, micros(Some(later))),
        "a success came first"
    );
    notifications::add_failures(&mut tx, n2.id, 4, now, false)
        .await
        .unwrap();
    assert!(
        notifications::add_failures(&mut tx, 999_999, 1, now, false)
            .await
            .unwrap()
            .is_none()
    );
    notifications::clear_failures(&mut tx, &[n2.id]).await.unwrap();
    notifications::clear_failures(&mut tx, &[]).await.unwrap();
    assert!(notifications::disable(&mut tx, n.id, "gone", now).await.unwrap());
    assert!(
        !notifications::disable(&mut tx, n.id, "gone again", now).await.unwrap(),
        "once"
    );
    notifications::set_enabled(&mut tx, n2.id, true, None).await.unwrap();

    let row = authorized_email::request(
        &mut tx,
        repo.id,
        "a@example.com",
        "hash1",
        now + chrono::Duration::days(7),
    )
    .await
    .unwrap();
    assert!(!row.confirmed);
    let again = authorized_email::request(
        &mut tx,
        repo.id,
        "a@example.com",
        "hash2",
        now + chrono::Duration::days(7),
    )
    .await
    .unwrap();
    assert_eq!(again.id, row.id, "a new code for the same pending address");
    assert!(
        authorized_email::by_code(&mut tx, "hash1").await.unwrap().is_none(),
        "the old code is replaced"
    );
    authorized_email::confirm(&mut tx, row.id, now).await.unwrap();
    authorized_email::request(&mut tx, repo.id, "a@example.com", "hash3", now)
        .await
        .unwrap();
    assert!(
        authorized_email::by_code(&mut tx, "hash2").await.unwrap().is_some(),
        "a confirmed address keeps its record"
    );
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let n = notifications::by_uuid_any(&mut c, "n1").await.unwrap().unwrap();
    assert_eq!(
        (
            n.enabled,
            n.disabled_reason.as_deref(),
            n.disabled_at.is_some(),
            n.number_of_failures
        ),
        (false, Some("gone"), true, 1)
    );
    assert_eq!(
        (n.secret, n.previous_secret),
        (Some(sealed("whsec_BBBB")), Some(whsec.clone()))
    );
    assert_eq!(n.previous_secret_until.map(|t| t.timestamp()), Some(until.timestamp()));
    let mut both = notifications::by_uuids(&mut c, &["n2".into(), "n1".into(), "none".into()])
        .await
        .unwrap();
    both.sort_by_key(|r| r.id);
    assert_eq!(
        both.iter()
            .map(|r| (r.uuid.as_str(), r.number_of_failures))
            .collect::<Vec<_>>(),
        [("n1", 1), ("n2", 0)]
    );
    assert!(notifications::by_uuids(&mut c, &[]).await.unwrap().is_empty());
    assert_eq!(notifications::count_disabled(&mut c).await.unwrap(), 1);
    let all = deliveries::list(&mut c, n.id, None, 10, 0).await.unwrap();
    assert_eq!(
        all.iter().map(|d| d.public_id.as_str()).collect::<Vec<_>>(),
        ["e2.n1", "e1.n1"],
        "newest first"
    );
    assert_eq!(
        (all[0].status.as_str(), all[0].attempts, all[0].last_error.as_deref()),
        ("skipped", 0, Some("the notification was disabled"))
    );
    let failed = deliveries::list(&mut c, n.id, Some(DeliveryStatus::Failed), 10, 0)
        .await
        .unwrap();
    assert_eq!(
        (failed.len(), failed[0].attempts, failed[0].last_error.as_deref()),
        (1, 2, Some("503 response for webhook"))
    );
    assert_eq!(failed[0].body, r#"{"test":true}"#, "the payload is kept byte for byte");
    let attempts = deliveries::attempts(&mut c, failed[0].id).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(),
        ["retry", "failed"]
    );
    assert_eq!(attempts[0].response_headers.as_ref().unwrap().0, headers);
    assert_eq!(attempts[0].request_headers.0, headers);
    let unsent = deliveries::unsent_since(&mut c, n.id, now - chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(unsent.len(), 2);
    assert!(deliveries::get(&mut c, n.id, "e1.n1").await.unwrap().is_some());
    // The bodies of a batch, by row id; rows that are gone are left out.
    let bodies = deliveries::bodies(&mut c, &[e1, e2, -1]).await.unwrap();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies
            .iter()
            .any(|(id, b, rev)| *id == e1 && b == r#"{"test":true}"# && *rev == Some(revision)),
        "{bodies:?}"
    );
    assert!(deliveries::bodies(&mut c, &[]).await.unwrap().is_empty());
    assert!(
        authorized_email::get(&mut c, repo.id, "a@example.com")
            .await
            .unwrap()
            .unwrap()
            .confirmed
    );
    drop(c);

    // A status set without an attempt keeps the last error unless a note replaces it.
    let mut tx = s.begin().await.unwrap();
    deliveries::set_status(&mut tx, "e2.n1", DeliveryStatus::Filtered, Some("filtered out"), now)
        .await
        .unwrap();
    deliveries::set_status(&mut tx, "e2.n1", DeliveryStatus::Filtered, None, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let e2_row = deliveries::get(&mut s.conn().await.unwrap(), n.id, "e2.n1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e2_row.status, e2_row.last_error.as_deref()),
        (DeliveryStatus::Filtered, Some("filtered out"))
    );

    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        deliveries::delete_before(&mut tx, now + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        2
    );
    assert!(
        authorized_email::delete(&mut tx, repo.id, "a@example.com")
            .await
            .unwrap()
    );
    assert!(
        !authorized_email::delete(&mut tx, repo.id, "a@example.com")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    s.close().await;
}

#[backend_test]
async fn scanner_records(kind: berth_testkit::DbKind) {
    use berth_store::secscan::{self, status};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let now = chrono::Utc::now();
    let mut tx = s.begin().await.unwrap();
    // Layers: stored once, the first copy kept.
    secscan::put_layer(&mut tx, "sha256:l1", &json!({"files": {}}), now)
        .await
        .unwrap();
    secscan::put_layer(&mut tx, "sha256:l1", &json!({"files": {"x": 1}}), now)
        .await
        .unwrap();
    // Manifests: replaced on re-index, paged by digest.
    secscan::put_manifest(&mut tx, "sha256:m1", status::FAILED, Some("bad layer"), None, now)
        .await
        .unwrap();
    secscan::put_manifest(
        &mut tx,
        "sha256:m1",
        status::SCANNED,
        None,
        Some(&json!({"packages": []})),
        now,
    )
    .await
    .unwrap();
    secscan::put_manifest(
        &mut tx,
        "sha256:m2",
        status::SCANNED,
        None,
        Some(&json!({"packages": []})),
        now,
    )
    .await
    .unwrap();
    secscan::put_manifest(&mut tx, "sha256:m3", status::UNSUPPORTED, Some("an index"), None, now)
        .await
        .unwrap();
    // Advisories: unchanged ones are skipped; changed ones replace their package keys.
    let keys = vec![("Debian".to_owned(), "openssl".to_owned())];
    assert!(
        secscan::put_advisory(&mut tx, "A-1", "t1", &json!({"id": "A-1"}), &keys, now)
            .await
            .unwrap()
    );
    assert!(
        !secscan::put_advisory(&mut tx, "A-1", "t1", &json!({"id": "A-1"}), &keys, now)
            .await
            .unwrap()
    );
    let moved = vec![("Debian".to_owned(), "curl".to_owned())];
    assert!(
        secscan::put_advisory(&mut tx, "A-1", "t2", &json!({"id": "A-1", "v": 2}), &moved, now)
            .await
            .unwrap()
    );
    assert!(secscan::add_finding(&mut tx, "sha256:m1", "A-1", now).await.unwrap());
    assert!(!secscan::add_finding(&mut tx, "sha256:m1", "A-1", now).await.unwrap());
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    assert_eq!(
        secscan::layer(&mut c, "sha256:l1").await.unwrap(),
        Some(json!({"files": {}}))
    );
    assert_eq!(secscan::layer(&mut c, "sha256:none").await.unwrap(), None);
    let m1 = secscan::manifest(&mut c, "sha256:m1").await.unwrap().unwrap();
    assert_eq!((m1.status.as_str(), m1.reason), ("scanned", None));
    let page: Vec<String> = secscan::scanned_after(&mut c, "", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.digest)
        .collect();
    assert_eq!(page, ["sha256:m1", "sha256:m2"]);
    assert_eq!(secscan::scanned_after(&mut c, "sha256:m1", 10).await.unwrap().len(), 1);
    assert_eq!(
        secscan::advisories_for(&mut c, "Debian", "openssl").await.unwrap(),
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(
        secscan::advisories_for(&mut c, "Debian", "curl").await.unwrap(),
        [json!({"id": "A-1", "v": 2})]
    );
    assert_eq!(secscan::advisory_count(&mut c).await.unwrap(), 1);
    assert!(secscan::tags_of(&mut c, "sha256:m1").await.unwrap().is_empty());
    drop(c);
    // Nothing references these digests: collection removes them all.
    let mut tx = s.begin().await.unwrap();
    assert_eq!(secscan::purge_orphans(&mut tx).await.unwrap(), 5);
    tx.commit().await.unwrap();
}

#[backend_test]
async fn builds_logs_filedrops_and_triggers(kind: berth_testkit::DbKind) {
    use berth_core::BuildPhase;
    use berth_store::builds::{self, NewBuild};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let now = chrono::Utc::now();
    let mut tx = s.begin().await.unwrap();
    let (owner, repo) = owner_and_repo(&mut tx).await;
    let t = builds::insert_trigger(
        &mut tx,
        "t-1",
        repo.id,
        "github",
        &Sealed::from_stored("sekrit".into()),
        owner.id.0,
    )
    .await
    .unwrap();
    assert!(!t.activated);
    builds::activate_trigger(&mut tx, t.id, &json!({"build_source": "file:///src"}))
        .await
        .unwrap();
    let meta = json!({"commit": "abc"});
    let tags = vec!["v1".to_owned()];
    let source = berth_core::BuildSource::Git {
        url: "file:///src".into(),
        commit: "abc".into(),
    };
    let b = builds::insert(
        &mut tx,
        &NewBuild {
            uuid: "b-1",
            repo: repo.id,
            display_name: "abc1234",
            docker_tags: &tags,
            source: &source,
            dockerfile_path: "Dockerfile",
            context: "",
            trigger_id: Some(t.id),
            trigger_metadata: &meta,
            manual_user: None,
            performer_id: Some(owner.id.0),
        },
    )
    .await
    .unwrap();
    assert_eq!(b.phase, BuildPhase::Waiting);
    assert_eq!(b.source.0, source);
    assert!(
        builds::set_phase(&mut tx, b.id, BuildPhase::Building, None, now)
            .await
            .unwrap()
    );
    assert!(builds::request_cancel(&mut tx, b.id).await.unwrap());
    builds::set_credential(&mut tx, b.id, Some("hash"), Some(now + chrono::Duration::minutes(5)))
        .await
        .unwrap();
    assert_eq!(
        builds::append_log(&mut tx, b.id, &[("phase", "building"), ("output", "STEP 1")], now)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        builds::append_log(&mut tx, b.id, &[("output", "done")], now)
            .await
            .unwrap(),
        3
    );
    builds::set_result(&mut tx, b.id, "sha256:c", &["sha256:m".to_owned()])
        .await
        .unwrap();
    assert!(
        builds::set_phase(&mut tx, b.id, BuildPhase::Complete, None, now)
            .await
            .unwrap()
    );
    assert!(
        !builds::set_phase(&mut tx, b.id, BuildPhase::Error, Some("late"), now)
            .await
            .unwrap(),
        "final phases stay"
    );
    assert!(!builds::request_cancel(&mut tx, b.id).await.unwrap());
    builds::create_filedrop(&mut tx, "f-1", owner.id.0, "tokenhash", "text/plain")
        .await
        .unwrap();
    let (t0, stale) = (now, now - chrono::Duration::minutes(10));
    assert!(
        !builds::begin_filedrop_upload(&mut tx, "f-1", "wrong", t0, stale)
            .await
            .unwrap()
    );
    assert!(
        builds::begin_filedrop_upload(&mut tx, "f-1", "tokenhash", t0, stale)
            .await
            .unwrap()
    );
    assert!(
        !builds::begin_filedrop_upload(&mut tx, "f-1", "tokenhash", t0, stale)
            .await
            .unwrap(),
        "one upload at a time"
    );
    builds::add_filedrop_chunk(&mut tx, "f-1", 0, b"half").await.unwrap();
    builds::abort_filedrop_upload(&mut tx, "f-1", t0).await.unwrap();
    let t1 = t0 + chrono::Duration::seconds(1);
    assert!(
        builds::begin_filedrop_upload(&mut tx, "f-1", "tokenhash", t1, stale)
            .await
            .unwrap(),
        "again after a failure"
    );
    builds::add_filedrop_chunk(&mut tx, "f-1", 0, b"FROM ").await.unwrap();
    builds::add_filedrop_chunk(&mut tx, "f-1", 1, b"scratch").await.unwrap();
    assert!(
        !builds::finish_filedrop_upload(&mut tx, "f-1", t0, 12, "sha256:x")
            .await
            .unwrap(),
        "not the aborted upload's"
    );
    assert!(
        builds::finish_filedrop_upload(&mut tx, "f-1", t1, 12, "sha256:x")
            .await
            .unwrap()
    );
    let later = t1 + chrono::Duration::hours(1);
    assert!(
        !builds::begin_filedrop_upload(&mut tx, "f-1", "tokenhash", later, later)
            .await
            .unwrap(),
        "filled once"
    );
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let got = builds::by_uuid(&mut c, repo.id, "b-1").await.unwrap().unwrap();
    assert_eq!(
        (
            got.phase.as_str(),
            got.image_id.as_deref(),
            got.manifest_digests.0.clone()
        ),
        ("complete", Some("sha256:c"), vec!["sha256:m".to_owned()])
    );
    assert!(got.started_at.is_some() && got.completed_at.is_some() && got.cancel_requested);
    assert_eq!(builds::by_id(&mut c, b.id).await.unwrap().unwrap().uuid, "b-1");
    assert!(builds::by_uuid_any(&mut c, "b-1").await.unwrap().is_some());
    assert!(builds::cancel_requested(&mut c, b.id).await.unwrap());
    assert_eq!(builds::list(&mut c, repo.id, 10).await.unwrap().len(), 1);
    assert!(builds::by_credential(&mut c, "hash", now).await.unwrap().is_some());
    assert!(
        builds::by_credential(&mut c, "hash", now + chrono::Duration::minutes(10))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    let (lines, total) = builds::logs(&mut c, b.id, 1, 10).await.unwrap();
    assert_eq!(
        (lines.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), total),
        (vec!["STEP 1", "done"], 3)
    );
    let filled = builds::filedrop(&mut c, "f-1").await.unwrap().unwrap();
    assert_eq!(
        (filled.owner_id, filled.size, filled.digest.as_deref()),
        (owner.id.0, Some(12), Some("sha256:x"))
    );
    assert_eq!(
        builds::filedrop_content(&mut c, "f-1").await.unwrap(),
        Some(b"FROM scratch".to_vec())
    );
    assert_eq!(
        builds::trigger(&mut c, repo.id, "t-1").await.unwrap().unwrap().config.0["build_source"],
        "file:///src"
    );
    assert!(builds::trigger_any(&mut c, "t-1").await.unwrap().unwrap().activated);
    assert_eq!(builds::trigger_by_id(&mut c, t.id).await.unwrap().unwrap().uuid, "t-1");
    assert_eq!(builds::triggers(&mut c, repo.id).await.unwrap().len(), 1);
    drop(c);
    let mut tx = s.begin().await.unwrap();
    assert!(builds::delete_trigger(&mut tx, t.id).await.unwrap());
    assert_eq!(
        builds::delete_filedrops_before(&mut tx, now + chrono::Duration::hours(1))
            .await
            .unwrap(),
        1
    );
    builds::set_credential(&mut tx, b.id, None, None).await.unwrap();
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let kept = builds::by_uuid(&mut c, repo.id, "b-1").await.unwrap().unwrap();
    assert_eq!(kept.trigger_id, None, "builds outlive their trigger");
    assert!(
        builds::by_credential(&mut c, "hash", now).await.unwrap().is_none(),
        "revoked"
    );
}

#[backend_test]
async fn sessions_and_the_bell_count(kind: berth_testkit::DbKind) {
    use berth_store::{inapp, sessions};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let now = chrono::Utc::now();
    let mut tx = s.begin().await.unwrap();
    let alice = accounts::insert(&mut tx, &user("alice")).await.unwrap();
    sessions::insert(&mut tx, "live", alice.id.0, "csrf-1", now + chrono::Duration::hours(1))
        .await
        .unwrap();
    sessions::insert(&mut tx, "old", alice.id.0, "csrf-2", now - chrono::Duration::hours(1))
        .await
        .unwrap();
    inapp::insert(&mut tx, "i-1", "repo_push", alice.id, None, &json!({}))
        .await
        .unwrap();
    inapp::insert(&mut tx, "i-2", "repo_push", alice.id, None, &json!({}))
        .await
        .unwrap();
    inapp::set_dismissed(&mut tx, alice.id, "i-1", true).await.unwrap();
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let live = sessions::live(&mut c, "live", now).await.unwrap().unwrap();
    assert_eq!((live.account_id, live.csrf.as_str()), (alice.id.0, "csrf-1"));
    assert!(sessions::live(&mut c, "old", now).await.unwrap().is_none(), "expired");
    assert_eq!(inapp::count_active(&mut c, alice.id).await.unwrap(), 1);
    let active: Vec<String> = inapp::active_for(&mut c, alice.id, 10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uuid)
        .collect();
    assert_eq!(active, ["i-2"], "dismissed ones are not active");
    assert!(
        inapp::get(&mut c, alice.id, "i-1")
            .await
            .unwrap()
            .is_some_and(|r| r.dismissed),
        "but can still be read"
    );
    assert!(inapp::get(&mut c, alice.id, "nope").await.unwrap().is_none());
    drop(c);
    let mut tx = s.begin().await.unwrap();
    assert_eq!(sessions::delete_expired(&mut tx, now).await.unwrap(), 1);
    sessions::delete(&mut tx, "live").await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        sessions::live(&mut s.conn().await.unwrap(), "live", now)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn rpm_databases_are_read_without_writing() {
    use sqlx::ConnectOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpmdb.sqlite");
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
        .execute(&mut c)
        .await
        .unwrap();
    for blob in [b"one".as_slice(), b"two".as_slice()] {
        sqlx::query("INSERT INTO Packages (blob) VALUES ($1)")
            .bind(blob)
            .execute(&mut c)
            .await
            .unwrap();
    }
    drop(c);
    let before = std::fs::read(&path).unwrap();
    let blobs = berth_store::secscan::rpm_headers(&path).await.unwrap();
    assert_eq!(blobs, [b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(std::fs::read(&path).unwrap(), before, "the database is untouched");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "no journal or WAL files beside it"
    );
    std::fs::write(&path, b"not sqlite").unwrap();
    assert!(berth_store::secscan::rpm_headers(&path).await.is_err());
}

#[backend_test]
async fn queued_notification_jobs_of_the_old_shape_are_upgraded(kind: berth_testkit::DbKind) {
    use berth_store::{notifications, queue};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let (_, repo) = owner_and_repo(&mut tx).await;
    let empty = json!({});
    let whsec = Sealed::from_stored("whsec_AAAA".into());
    let n = notifications::NewNotification {
        uuid: "n1",
        scope: berth_store::notifications::NotificationScope::Repository(repo.id),
        event: "repo_push",
        method: "webhook",
        title: None,
        config: &empty,
        event_config: &empty,
        secret: &whsec,
    };
    let n = notifications::insert(&mut tx, &n).await.unwrap();
    // A job and its log row as versions before 0011 wrote them.
    let old = json!({"notification_uuid": "n1", "delivery_id": "e1.n1", "event": "repo_push", "event_id": "e1",
        "occurred_at": "2026-11-01T10:00:00+00:00", "event_data": {"updated_tags": ["v1"]},
        "performer_data": {"entity_name": "alice"}, "test": true});
    let log = berth_store::deliveries::insert_many(
        &mut tx,
        &[berth_store::deliveries::NewDelivery {
            public_id: "e1.n1",
            notification_id: n.id,
            event: "repo_push",
            status: berth_core::DeliveryStatus::Pending,
            body: &old.to_string(),
        }],
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    queue::enqueue(
        &mut tx,
        JobQueue::Notification,
        "notification/owner/web/repo_push/",
        &old,
        RETRIES,
    )
    .await
    .unwrap();
    queue::enqueue(
        &mut tx,
        JobQueue::Notification,
        "notification/owner/web/repo_push/",
        &json!({"notification_uuid": "n1",
        "delivery_id": "e0.n1", "event": "repo_push", "event_id": "e0", "occurred_at": "2026-11-01T10:00:00+00:00",
        "event_data": {}, "performer_data": {}, "test": false}),
        RETRIES,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // Run the upgrade statement of migration 0011 again, on them.
    let dir = if kind == DbKind::Sqlite { "sqlite" } else { "postgres" };
    let file = std::fs::read_to_string(format!(
        "{}/migrations/{dir}/0011_dispatch.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let upgrade = &file[file.find("UPDATE queue_item").unwrap()..];
    match kind {
        DbKind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(upgrade))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        DbKind::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(upgrade))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
    let mut c = s.conn().await.unwrap();
    let jobs = queue::list(&mut c, JobQueue::Notification).await.unwrap();
    assert_eq!(
        jobs[0].body.0,
        json!({"log_id": log[0].0, "delivery_id": "e1.n1", "notification_uuid": "n1", "event": "repo_push",
            "payload": {"event_id": "e1", "occurred_at": "2026-11-01T10:00:00+00:00", "event_data": {"updated_tags": ["v1"]},
                "performer_data": {"entity_name": "alice"}, "test": true}})
    );
    assert_eq!(
        jobs[1].body.0["log_id"],
        json!(null),
        "a job without a log row keeps none"
    );
    assert_eq!(jobs[1].body.0["payload"]["test"], json!(false));
    drop(c);
    s.close().await;
}

#[backend_test]
async fn registry_blobs_uploads_manifests_and_tags(kind: berth_testkit::DbKind) {
    use berth_store::registry::{self as reg, NewManifest};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let mut tx = s.begin().await.unwrap();
    let (owner, repo) = owner_and_repo(&mut tx).await;
    let other = repos::insert(&mut tx, owner.id, "other", Visibility::Private, "")
        .await
        .unwrap();

    // Blobs: stored once, linked per repository, sized, unlinked.
    reg::insert_blob(&mut tx, &d('a'), 10).await.unwrap();
    reg::insert_blob(&mut tx, &d('a'), 10).await.unwrap();
    reg::insert_blob(&mut tx, &d('b'), 20).await.unwrap();
    reg::link_blob(&mut tx, repo.id, &d('a')).await.unwrap();
    reg::link_blob(&mut tx, repo.id, &d('a')).await.unwrap();
    reg::link_blob(&mut tx, repo.id, &d('b')).await.unwrap();
    // A blob that an uploaded build context holds, in no repository.
    reg::insert_blob(&mut tx, &d('c'), 5).await.unwrap();
    berth_store::builds::create_filedrop(&mut tx, "fd-1", owner.id.0, "h", "text/plain")
        .await
        .unwrap();
    let t = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
    assert!(
        berth_store::builds::begin_filedrop_upload(&mut tx, "fd-1", "h", t, t)
            .await
            .unwrap()
    );
    assert!(
        berth_store::builds::finish_filedrop_upload(&mut tx, "fd-1", t, 5, &d('c'))
            .await
            .unwrap()
    );
    assert_eq!(reg::blob_size(&mut tx, &d('a')).await.unwrap(), Some(10));
    assert_eq!(reg::repo_blob_size(&mut tx, repo.id, &d('b')).await.unwrap(), Some(20));
    assert_eq!(
        reg::repo_blob_size(&mut tx, other.id, &d('b')).await.unwrap(),
        None,
        "linked to web only"
    );
    assert!(reg::unlink_blob(&mut tx, repo.id, &d('b')).await.unwrap());
    assert!(!reg::unlink_blob(&mut tx, repo.id, &d('b')).await.unwrap());
    assert_eq!(
        reg::blob_size(&mut tx, &d('b')).await.unwrap(),
        Some(20),
        "the blob stays until GC"
    );

    // Uploads: the size only advances from where it is.
    reg::create_upload(&mut tx, "u1", repo.id, b"state0").await.unwrap();
    assert_eq!(reg::upload(&mut tx, repo.id, "u1").await.unwrap().unwrap().parts, "");
    assert!(
        reg::advance_upload(&mut tx, "u1", 0, 5, b"state5", "parts5")
            .await
            .unwrap()
    );
    assert!(
        !reg::advance_upload(&mut tx, "u1", 0, 9, b"stale", "stale")
            .await
            .unwrap(),
        "a chunk from an old offset"
    );
    let up = reg::upload(&mut tx, repo.id, "u1").await.unwrap().unwrap();
    assert_eq!(
        (up.size, up.hash_state.as_slice(), up.parts.as_str()),
        (5, &b"state5"[..], "parts5")
    );
    assert!(
        reg::upload(&mut tx, other.id, "u1").await.unwrap().is_none(),
        "scoped to its repository"
    );

    // Manifests: an image, an index listing it, a referrer; tags on them.
    let blobs = vec![d('a')];
    let image = NewManifest {
        repo: repo.id,
        digest: &d('1'),
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type: None,
        subject: None,
        content: b"{\"image\":1}",
        blobs: &blobs,
        children: &[],
    };
    let image_id = reg::insert_manifest(&mut tx, &image).await.unwrap();
    assert_eq!(
        reg::insert_manifest(&mut tx, &image).await.unwrap(),
        image_id,
        "an identical push keeps the row"
    );
    let children = vec![d('1')];
    let index_id = reg::insert_manifest(
        &mut tx,
        &NewManifest {
            digest: &d('2'),
            media_type: "application/vnd.oci.image.index.v1+json",
            content: b"{\"index\":1}",
            blobs: &[],
            children: &children,
            ..image.clone()
        },
    )
    .await
    .unwrap();
    reg::insert_manifest(
        &mut tx,
        &NewManifest {
            digest: &d('3'),
            artifact_type: Some("application/vnd.example.sig"),
            subject: Some(&d('1')),
            content: b"{\"sig\":1}",
            ..image.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        reg::set_tag(&mut tx, repo.id, "v1", image_id, None).await.unwrap(),
        None
    );
    assert_eq!(
        reg::set_tag(&mut tx, repo.id, "multi", index_id, None).await.unwrap(),
        None
    );
    assert_eq!(
        reg::set_tag(&mut tx, repo.id, "latest", index_id, None).await.unwrap(),
        None
    );
    assert_eq!(
        reg::set_tag(&mut tx, repo.id, "latest", image_id, None).await.unwrap(),
        Some(d('2')),
        "moved from the index"
    );
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let by_tag = reg::manifest_by_tag(&mut c, repo.id, "v1").await.unwrap().unwrap();
    assert_eq!(
        (by_tag.digest.as_str(), by_tag.content.as_slice()),
        (d('1').as_str(), &b"{\"image\":1}"[..])
    );
    let sig = reg::manifest_by_digest(&mut c, repo.id, &d('3'))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sig.subject_digest, Some(d('1')));
    assert!(
        reg::manifest_by_digest(&mut c, other.id, &d('1'))
            .await
            .unwrap()
            .is_none()
    );
    let refs = reg::referrers(&mut c, repo.id, &d('1')).await.unwrap();
    assert_eq!(
        (refs.len(), refs[0].artifact_type.as_deref()),
        (1, Some("application/vnd.example.sig"))
    );
    assert_eq!(reg::parents(&mut c, repo.id, &d('1')).await.unwrap(), [d('2')]);
    assert_eq!(
        reg::tags(&mut c, repo.id, None, 10).await.unwrap(),
        ["latest", "multi", "v1"]
    );
    assert_eq!(reg::tags(&mut c, repo.id, Some("latest"), 1).await.unwrap(), ["multi"]);
    let details = reg::tag_details(&mut c, repo.id, Some("v1"), 10, 0).await.unwrap();
    assert_eq!(
        (details.len(), details[0].size, details[0].digest.as_str()),
        (1, 10, d('1').as_str())
    );
    assert_eq!(
        reg::tag_details(&mut c, repo.id, None, 2, 1).await.unwrap().len(),
        2,
        "paged"
    );
    // Garbage: the unlinked, unreferenced blob (not the one a build context holds), and the
    // upload nobody touched since.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(reg::unreferenced_blobs(&mut c, later).await.unwrap(), [d('b')]);
    assert_eq!(
        reg::stale_uploads(&mut c, later).await.unwrap(),
        [("u1".to_owned(), "parts5".to_owned())]
    );
    assert!(
        reg::stale_uploads(&mut c, chrono::Utc::now() - chrono::Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    drop(c);

    let mut tx = s.begin().await.unwrap();
    assert!(
        !reg::delete_blob_if_unreferenced(&mut tx, &d('a'), later).await.unwrap(),
        "the image references it"
    );
    assert!(
        !reg::delete_blob_if_unreferenced(&mut tx, &d('c'), later).await.unwrap(),
        "a build context holds it"
    );
    assert!(reg::delete_blob_if_unreferenced(&mut tx, &d('b'), later).await.unwrap());
    assert!(reg::delete_upload(&mut tx, "u1").await.unwrap());
    assert!(!reg::delete_upload(&mut tx, "u1").await.unwrap());
    assert!(reg::delete_tag(&mut tx, repo.id, "multi").await.unwrap());
    assert!(!reg::delete_tag(&mut tx, repo.id, "multi").await.unwrap());
    assert!(reg::delete_manifest(&mut tx, repo.id, &d('1')).await.unwrap());
    assert!(!reg::delete_manifest(&mut tx, repo.id, &d('1')).await.unwrap());
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    assert_eq!(
        reg::tags(&mut c, repo.id, None, 10).await.unwrap(),
        Vec::<String>::new(),
        "the image's tags went with it"
    );
    assert_eq!(reg::blob_size(&mut c, &d('b')).await.unwrap(), None);
    drop(c);
    s.close().await;
}

#[backend_test]
async fn notifications_by_repository_and_event_and_name_search(kind: berth_testkit::DbKind) {
    use berth_store::notifications::{self, NewNotification, NotificationScope};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let (owner, repo) = owner_and_repo(&mut tx).await;
    let empty = json!({});
    let secret = Sealed::from_stored("sealed:v1:x:y".into());
    let new = |uuid, event| NewNotification {
        uuid,
        scope: berth_store::notifications::NotificationScope::Repository(repo.id),
        event,
        method: "webhook",
        title: None,
        config: &empty,
        event_config: &empty,
        secret: &secret,
    };
    let push = notifications::insert(&mut tx, &new("n-push", "repo_push"))
        .await
        .unwrap();
    let build = notifications::insert(&mut tx, &new("n-build", "build_success"))
        .await
        .unwrap();
    notifications::set_enabled(&mut tx, push.id, false, Some("test"))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let for_push = notifications::for_event(&mut c, repo.id, owner.id, "repo_push")
        .await
        .unwrap();
    assert_eq!((for_push.len(), for_push[0].enabled), (1, false), "disabled ones too");
    // The same by the repository's path, in one statement; nothing for another path or event.
    let at_path = |ns: &'static str, name: &'static str, event: &'static str| {
        let s = s.clone();
        async move {
            let mut c = s.conn().await.unwrap();
            notifications::for_event_at(&mut c, ns, name, event)
                .await
                .unwrap()
                .into_iter()
                .map(|n| n.uuid)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(at_path("owner", "web", "repo_push").await, ["n-push"]);
    assert_eq!(at_path("owner", "web", "build_success").await, ["n-build"]);
    assert!(at_path("owner", "web", "build_failure").await.is_empty());
    assert!(at_path("owner", "other", "repo_push").await.is_empty());
    assert!(at_path("web", "owner", "repo_push").await.is_empty());
    let in_repo = NotificationScope::Repository(repo.id);
    let all: Vec<String> = notifications::of_scope(&mut c, in_repo)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.uuid)
        .collect();
    assert_eq!(all, ["n-push", "n-build"]);
    assert_eq!(notifications::count_in(&mut c, in_repo).await.unwrap(), 2);
    assert!(
        notifications::by_uuid(&mut c, in_repo, "n-build")
            .await
            .unwrap()
            .is_some()
    );
    assert!(notifications::by_uuid(&mut c, in_repo, "nope").await.unwrap().is_none());
    drop(c);

    // A namespace-wide notification: found with the repository's own for each of its
    // repositories (by id and by path, only when the repository exists), and held by the
    // namespace alone.
    let mut tx = s.begin().await.unwrap();
    let in_ns = NotificationScope::Namespace(owner.id);
    let wide = notifications::insert(
        &mut tx,
        &NewNotification {
            scope: in_ns,
            ..new("n-wide", "repo_push")
        },
    )
    .await
    .unwrap();
    assert_eq!((wide.scope, wide.scope.repository()), (in_ns, None));
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let uuids = |rows: Vec<notifications::NotificationRow>| rows.into_iter().map(|n| n.uuid).collect::<Vec<_>>();
    assert_eq!(
        uuids(
            notifications::for_event(&mut c, repo.id, owner.id, "repo_push")
                .await
                .unwrap()
        ),
        ["n-push", "n-wide"]
    );
    assert_eq!(
        uuids(
            notifications::for_event(&mut c, repo.id, owner.id, "build_success")
                .await
                .unwrap()
        ),
        ["n-build"]
    );
    assert_eq!(at_path("owner", "web", "repo_push").await, ["n-push", "n-wide"]);
    assert!(at_path("owner", "missing", "repo_push").await.is_empty());
    assert_eq!(uuids(notifications::of_scope(&mut c, in_ns).await.unwrap()), ["n-wide"]);
    assert_eq!(notifications::count_in(&mut c, in_ns).await.unwrap(), 1);
    assert_eq!(notifications::count_in(&mut c, in_repo).await.unwrap(), 2);
    assert!(notifications::by_uuid(&mut c, in_ns, "n-wide").await.unwrap().is_some());
    assert!(
        notifications::by_uuid(&mut c, in_repo, "n-wide")
            .await
            .unwrap()
            .is_none()
    );
    assert!(notifications::by_uuid(&mut c, in_ns, "n-push").await.unwrap().is_none());
    assert_eq!(
        uuids(
            notifications::for_namespace_event(&mut c, owner.id, "repo_push")
                .await
                .unwrap()
        ),
        ["n-wide"]
    );
    assert!(
        notifications::for_namespace_event(&mut c, owner.id, "build_success")
            .await
            .unwrap()
            .is_empty()
    );
    drop(c);
    let mut tx = s.begin().await.unwrap();
    notifications::reset(&mut tx, push.id).await.unwrap();
    assert!(notifications::delete(&mut tx, build.id).await.unwrap());
    assert!(!notifications::delete(&mut tx, build.id).await.unwrap());
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let n = notifications::by_uuid(&mut c, in_repo, "n-push")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n.enabled, n.disabled_reason, n.number_of_failures), (true, None, 0));
    assert_eq!(notifications::count_in(&mut c, in_repo).await.unwrap(), 1);
    drop(c);

    // Names by prefix: users, and the robots of one namespace by their short name.
    let mut tx = s.begin().await.unwrap();
    let org = accounts::insert(
        &mut tx,
        &NewAccount {
            kind: AccountKind::Organization,
            password_hash: None,
            ..user("acme")
        },
    )
    .await
    .unwrap();
    let robot = |name| NewAccount {
        kind: AccountKind::Robot,
        password_hash: None,
        robot_owner: Some(org.id),
        ..user(name)
    };
    accounts::insert(&mut tx, &robot("acme+ops")).await.unwrap();
    accounts::insert(&mut tx, &user("opal")).await.unwrap();
    accounts::insert(&mut tx, &user("o_o")).await.unwrap();
    let (admins, _) = teams::upsert(&mut tx, org.id, "owners", TeamRole::Admin, "")
        .await
        .unwrap();
    teams::add_member(&mut tx, admins.id, owner.id).await.unwrap();
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let names = |rows: Vec<berth_store::accounts::AccountRow>| rows.into_iter().map(|a| a.name).collect::<Vec<_>>();
    assert_eq!(
        names(accounts::matching(&mut c, "o", None, 10).await.unwrap()),
        ["o_o", "opal", "owner"]
    );
    assert_eq!(
        names(
            accounts::matching(&mut c, "op", Some((org.id, "acme")), 10)
                .await
                .unwrap()
        ),
        ["acme+ops", "opal"]
    );
    assert_eq!(
        names(accounts::matching(&mut c, "o", None, 2).await.unwrap()),
        ["o_o", "opal"],
        "limited"
    );
    assert_eq!(
        names(accounts::matching(&mut c, "o_", None, 10).await.unwrap()),
        ["o_o"],
        "_ is a plain character"
    );
    assert!(
        accounts::matching(&mut c, "acme", None, 10).await.unwrap().is_empty(),
        "organizations are not users"
    );
    assert_eq!(names(teams::org_admins(&mut c, org.id).await.unwrap()), ["owner"]);
    drop(c);
    s.close().await;
}

#[backend_test]
async fn queue_jobs_enqueued_claimed_retried_deferred_and_buried(kind: berth_testkit::DbKind) {
    use berth_store::queue::{self, NewJob};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::seconds(30);
    let mut tx = s.begin().await.unwrap();
    let few = queue::enqueue(&mut tx, JobQueue::Build, "few", &json!({"n": 1}), 2)
        .await
        .unwrap();
    // Jobs handed to this process already claimed: leased, first attempt counted, tokens in order.
    let jobs: Vec<NewJob> = (0..3)
        .map(|i| NewJob {
            name: format!("mine{i}"),
            body: json!({"i": i}).to_string(),
        })
        .collect();
    let mine = queue::enqueue_claimed(&mut tx, JobQueue::Build, &jobs, "tok", until, RETRIES)
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|c| c.state_id.as_str()).collect::<Vec<_>>(),
        ["tok-0", "tok-1", "tok-2"]
    );
    assert!(
        mine.iter()
            .all(|c| c.attempt == 1 && c.retries_remaining == RETRIES - 1)
    );
    assert!(
        queue::enqueue_claimed(&mut tx, JobQueue::Build, &[], "tok", until, RETRIES)
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit().await.unwrap();
    // Only the free job is due; the pre-claimed ones are leased to us.
    let now = chrono::Utc::now() + chrono::Duration::seconds(1);
    let mut tx = s.begin().await.unwrap();
    let claimed = queue::claim(&mut tx, JobQueue::Build, now, until, 10, "other", &[])
        .await
        .unwrap();
    assert_eq!(
        (claimed.len(), claimed[0].id, claimed[0].retries_remaining),
        (1, few, 1)
    );
    let job = &claimed[0];
    // A retry with a stale token does nothing; with the claim's token it moves the job.
    assert!(!queue::retry_at(&mut tx, job.id, "stale", now, "no").await.unwrap());
    assert!(
        queue::retry_at(
            &mut tx,
            job.id,
            &job.state_id,
            now - chrono::Duration::seconds(1),
            "503"
        )
        .await
        .unwrap()
    );
    assert!(
        !queue::retry_at(&mut tx, job.id, &job.state_id, now, "again")
            .await
            .unwrap(),
        "the claim ended"
    );
    // Deferred (a pause, not an attempt) and buried (dead).
    assert!(
        queue::defer(
            &mut tx,
            mine[0].id,
            &mine[0].state_id,
            now + chrono::Duration::hours(1),
            "paused"
        )
        .await
        .unwrap()
    );
    assert!(
        queue::bury(&mut tx, mine[1].id, &mine[1].state_id, "gone")
            .await
            .unwrap()
    );
    assert!(
        !queue::bury(&mut tx, mine[1].id, &mine[1].state_id, "gone")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    let listed = queue::list(&mut c, JobQueue::Build).await.unwrap();
    let item = |id: i64| listed.iter().find(|j| j.id == id).unwrap().clone();
    assert_eq!(item(few).retries_remaining, 1, "one try left after a retry");
    assert!(
        item(mine[0].id).available_after > now + chrono::Duration::minutes(59),
        "deferred for the hour"
    );
    drop(c);
    // The retried job is due again; the deferred one is not.
    let mut tx = s.begin().await.unwrap();
    let again = queue::claim(&mut tx, JobQueue::Build, now, until, 10, "other", &[])
        .await
        .unwrap();
    assert_eq!(again.iter().map(|j| j.id).collect::<Vec<_>>(), [few]);
    tx.commit().await.unwrap();
    s.close().await;
}

#[tokio::test]
async fn sqlite_commits_reach_the_database_file_without_waiting_for_the_log_to_fill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let s = Store::connect(&format!("sqlite://{}", path.display()), &ConnectOptions::default())
        .await
        .unwrap();
    s.migrate().await.unwrap();
    let marker = "checkpoint-marker-5d1e";
    let mut tx = s.begin().await.unwrap();
    accounts::insert(&mut tx, &user(marker)).await.unwrap();
    tx.commit().await.unwrap();
    // The commit went to the write-ahead log; the checkpointer, woken by it, copies it into the
    // database file (a few pages: far below the writer's own backstop).
    let found = |bytes: &[u8]| bytes.windows(marker.len()).any(|w| w == marker.as_bytes());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !found(&std::fs::read(&path).unwrap()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the commit was never checkpointed into {}",
            path.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.close().await;
}

#[backend_test]
async fn visible_paths_follow_each_way_of_seeing_a_repository(kind: berth_testkit::DbKind) {
    use berth_store::repos::Viewer;
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let alice = accounts::insert(&mut tx, &user("alice")).await.unwrap();
    let bob = accounts::insert(&mut tx, &user("bob")).await.unwrap();
    let carol = accounts::insert(&mut tx, &user("carol")).await.unwrap();
    let org = |name| NewAccount {
        kind: AccountKind::Organization,
        password_hash: None,
        ..user(name)
    };
    let acme = accounts::insert(&mut tx, &org("acme")).await.unwrap();
    let zeta = accounts::insert(&mut tx, &org("zeta")).await.unwrap();
    let mut repo = async |ns: &accounts::AccountRow, name: &str, v: Visibility| {
        repos::insert(&mut tx, ns.id, name, v, "").await.unwrap()
    };
    let _open = repo(&acme, "open", Visibility::Public).await;
    let shut = repo(&acme, "shut", Visibility::Private).await;
    let nested = repo(&acme, "team/only", Visibility::Private).await;
    let own = repo(&alice, "mine", Visibility::Private).await;
    let _zeta = repo(&zeta, "z", Visibility::Private).await;
    let (admins, _) = teams::upsert(&mut tx, acme.id, "owners", TeamRole::Admin, "")
        .await
        .unwrap();
    let (devs, _) = teams::upsert(&mut tx, acme.id, "devs", TeamRole::Member, "")
        .await
        .unwrap();
    teams::add_member(&mut tx, admins.id, bob.id).await.unwrap();
    teams::add_member(&mut tx, devs.id, carol.id).await.unwrap();
    repos::set_team_role(&mut tx, nested.id, devs.id, RepoRole::Read)
        .await
        .unwrap();
    repos::set_user_role(&mut tx, own.id, carol.id, RepoRole::Write)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let mut seen = async |viewer: Viewer, after: Option<(&str, &str)>, limit: i64| {
        repos::visible_paths(&mut c, viewer, after, limit).await.unwrap()
    };
    assert_eq!(seen(Viewer::Public, None, 10).await, ["acme/open"]);
    assert_eq!(
        seen(Viewer::Everything, None, 10).await,
        ["acme/open", "acme/shut", "acme/team/only", "alice/mine", "zeta/z"]
    );
    // Her own namespace.
    assert_eq!(
        seen(Viewer::Account(alice.id), None, 10).await,
        ["acme/open", "alice/mine"]
    );
    // An admin team sees all of its organization, not another's.
    assert_eq!(
        seen(Viewer::Account(bob.id), None, 10).await,
        ["acme/open", "acme/shut", "acme/team/only"]
    );
    // A member team sees what is granted to it; a direct grant to the user counts too.
    assert_eq!(
        seen(Viewer::Account(carol.id), None, 10).await,
        ["acme/open", "acme/team/only", "alice/mine"]
    );
    assert_eq!(
        seen(Viewer::Repository(shut.id), None, 10).await,
        ["acme/open", "acme/shut"]
    );
    // Pages go on after (namespace, name), names with '/' included.
    assert_eq!(
        seen(Viewer::Everything, Some(("acme", "shut")), 2).await,
        ["acme/team/only", "alice/mine"]
    );
    assert_eq!(
        seen(Viewer::Everything, Some(("alice", "")), 10).await,
        ["alice/mine", "zeta/z"]
    );
    assert!(seen(Viewer::Everything, Some(("zeta", "z")), 10).await.is_empty());
    // The same view as rows.
    let rows = |v: Vec<repos::RepoRow>| {
        v.into_iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rows(repos::visible(&mut c, Viewer::Account(carol.id)).await.unwrap()),
        ["acme/open", "acme/team/only", "alice/mine"]
    );
    assert_eq!(
        rows(repos::visible(&mut c, Viewer::Public).await.unwrap()),
        ["acme/open"]
    );
    assert_eq!(repos::visible(&mut c, Viewer::Everything).await.unwrap().len(), 5);
}

/// SQLite's 0016 rebuilds `repository_notification` (to drop a NOT NULL) with foreign keys off:
/// every row, the delivery log and revisions pointing at it, and the id sequence survive, the
/// references still cascade, and the new check holds.
#[tokio::test]
async fn the_sqlite_notification_rebuild_keeps_rows_references_and_ids() {
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("old.db"))
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let every = sqlx::migrate!("./migrations/sqlite");
    let mut before = sqlx::migrate!("./migrations/sqlite");
    let older: Vec<_> = every.migrations.iter().filter(|m| m.version < 16).cloned().collect();
    assert_eq!(older.len(), 15, "migrations 0001 to 0015 come before the rebuild");
    before.migrations = std::borrow::Cow::Owned(older);
    before.run(&pool).await.unwrap();
    for sql in [
        "INSERT INTO account (id, name, kind, created_at) VALUES (1, 'acme', 'org', 'x')",
        "INSERT INTO repository (id, namespace_id, name, visibility, created_at) VALUES (1, 1, 'web', 'public', 'x')",
        "INSERT INTO repository_notification (id, uuid, repository_id, event, method, config, event_config, created_at, secret) \
         VALUES (1, 'kept', 1, 'repo_push', 'webhook', '{\"url\":\"u\"}', '{}', 'x', 'sealed')",
        "INSERT INTO repository_notification (id, uuid, repository_id, event, method, config, event_config, created_at) \
         VALUES (7, 'gone', 1, 'repo_push', 'webhook', '{}', '{}', 'x')",
        "DELETE FROM repository_notification WHERE id = 7",
        "INSERT INTO delivery (public_id, notification_id, event, status, body, attempts, created_at, updated_at) \
         VALUES ('d1', 1, 'repo_push', 'delivered', '{}', 1, 'x', 'x')",
        "INSERT INTO notification_revision (notification_id, config, event_config, created_at) VALUES (1, '{}', '{}', 'x')",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    every.run(&pool).await.unwrap();

    let one = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).fetch_one(&pool).await.unwrap().get::<i64, _>(0) }
    };
    assert_eq!(one("PRAGMA foreign_keys").await, 1, "foreign keys are back on");
    assert!(
        sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&pool)
            .await
            .unwrap()
            .is_empty()
    );
    let kept = sqlx::query("SELECT uuid, secret, repository_id, namespace_id FROM repository_notification")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].get::<String, _>(0), "kept");
    assert_eq!(kept[0].get::<String, _>(1), "sealed");
    assert_eq!(kept[0].get::<Option<i64>, _>(3), None);
    // A namespace-wide row goes in, with an id past every id ever used; one with neither or both
    // holders is refused.
    sqlx::query(
        "INSERT INTO repository_notification (uuid, namespace_id, event, method, config, event_config, created_at) \
         VALUES ('wide', 1, 'repo_push', 'webhook', '{}', '{}', 'x')",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        one("SELECT id FROM repository_notification WHERE uuid = 'wide'").await,
        8
    );
    for (repository, namespace) in [("NULL", "NULL"), ("1", "1")] {
        let sql = format!(
            "INSERT INTO repository_notification (uuid, repository_id, namespace_id, event, method, config, event_config, created_at) \
             VALUES ('bad', {repository}, {namespace}, 'repo_push', 'webhook', '{{}}', '{{}}', 'x')"
        );
        assert!(sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await.is_err());
    }
    // The delivery log and the revision still belong to it: deleting it deletes them.
    assert_eq!(one("SELECT COUNT(*) FROM delivery").await, 1);
    sqlx::query("DELETE FROM repository_notification WHERE uuid = 'kept'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(one("SELECT COUNT(*) FROM delivery").await, 0);
    assert_eq!(one("SELECT COUNT(*) FROM notification_revision").await, 0);
    pool.close().await;
}

#[backend_test]
async fn tag_expiries_their_notices_and_exclusive_jobs(kind: berth_testkit::DbKind) {
    use berth_store::expiry;
    use berth_store::notifications::{self, NewNotification, NotificationScope};
    use berth_store::registry::{self as reg, NewManifest};
    use chrono::{Duration, Utc};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let (owner, repo) = owner_and_repo(&mut tx).await;
    let digest = format!("sha256:{}", "e".repeat(64));
    let manifest = reg::insert_manifest(
        &mut tx,
        &NewManifest {
            repo: repo.id,
            digest: &digest,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            artifact_type: None,
            subject: None,
            content: b"{}",
            blobs: &[],
            children: &[],
        },
    )
    .await
    .unwrap();
    let now = Utc::now();
    let (soon, later) = (now + Duration::hours(20), now + Duration::days(5));
    reg::set_tag(&mut tx, repo.id, "soon", manifest, Some(soon))
        .await
        .unwrap();
    reg::set_tag(&mut tx, repo.id, "later", manifest, None).await.unwrap();
    reg::set_tag(&mut tx, repo.id, "never", manifest, None).await.unwrap();
    assert!(
        reg::set_tag_expiry(&mut tx, repo.id, "later", Some(later))
            .await
            .unwrap()
    );
    assert!(
        !reg::set_tag_expiry(&mut tx, repo.id, "missing", Some(later))
            .await
            .unwrap()
    );
    let empty = json!({});
    let secret = Sealed::from_stored("sealed:v1:x:y".into());
    let new = |uuid, scope| NewNotification {
        uuid,
        scope,
        event: "repo_image_expiry",
        method: "webhook",
        title: None,
        config: &empty,
        event_config: &empty,
        secret: &secret,
    };
    let own = notifications::insert(&mut tx, &new("own", NotificationScope::Repository(repo.id)))
        .await
        .unwrap();
    let wide = notifications::insert(&mut tx, &new("wide", NotificationScope::Namespace(owner.id)))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut c = s.conn().await.unwrap();
    let listeners: Vec<String> = notifications::of_event(&mut c, "repo_image_expiry")
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.uuid)
        .collect();
    assert_eq!(listeners, ["own", "wide"]);
    assert!(notifications::of_event(&mut c, "repo_push").await.unwrap().is_empty());
    let details = reg::tag_details(&mut c, repo.id, Some("soon"), 10, 0).await.unwrap();
    assert_eq!(details[0].expires_at.map(|t| t.timestamp()), Some(soon.timestamp()));
    // Within two days: `soon`, for both the repository's and the namespace's notification.
    let window = now + Duration::days(2);
    for n in [&own, &wide] {
        let due = expiry::unannounced(&mut c, n.id, n.scope, now, window).await.unwrap();
        let names: Vec<&str> = due.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(names, ["soon"], "{}", n.uuid);
    }
    let due = expiry::unannounced(&mut c, own.id, own.scope, now, window)
        .await
        .unwrap();
    drop(c);
    let mut tx = s.begin().await.unwrap();
    expiry::record_notices(&mut tx, own.id, &due).await.unwrap();
    expiry::record_notices(&mut tx, own.id, &due).await.unwrap();
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    assert!(
        expiry::unannounced(&mut c, own.id, own.scope, now, window)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        expiry::unannounced(&mut c, wide.id, wide.scope, now, window)
            .await
            .unwrap()
            .len(),
        1
    );
    drop(c);
    // A moved expiry is due again.
    let mut tx = s.begin().await.unwrap();
    reg::set_tag_expiry(&mut tx, repo.id, "soon", Some(soon + Duration::hours(1)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut c = s.conn().await.unwrap();
    assert_eq!(
        expiry::unannounced(&mut c, own.id, own.scope, now, window)
            .await
            .unwrap()
            .len(),
        1
    );

    // Expired by six days on: `soon` and `later`, soonest first; each deleted once.
    let then = now + Duration::days(6);
    let gone: Vec<String> = reg::expired_tags(&mut c, then, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(gone, ["soon", "later"]);
    assert_eq!(reg::expired_tags(&mut c, then, 1).await.unwrap().len(), 1);
    assert!(reg::expired_tags(&mut c, now, 10).await.unwrap().is_empty());
    drop(c);
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        reg::delete_expired_tag(&mut tx, repo.id, "soon", now).await.unwrap(),
        None,
        "not yet"
    );
    assert_eq!(
        reg::delete_expired_tag(&mut tx, repo.id, "soon", then).await.unwrap(),
        Some(digest.clone())
    );
    assert_eq!(
        reg::delete_expired_tag(&mut tx, repo.id, "soon", then).await.unwrap(),
        None
    );
    assert_eq!(
        reg::delete_expired_tag(&mut tx, repo.id, "never", then).await.unwrap(),
        None
    );
    tx.commit().await.unwrap();

    // A periodic job runs alone: in this process, and on PostgreSQL across processes too.
    let held = s.try_exclusive(7).await.unwrap().expect("free");
    assert!(s.try_exclusive(7).await.unwrap().is_none());
    assert!(s.try_exclusive(8).await.unwrap().is_some(), "another job");
    let other = Store::connect(&db.url, &ConnectOptions::default()).await.unwrap();
    assert_eq!(
        other.try_exclusive(7).await.unwrap().is_none(),
        s.is_postgres(),
        "another process sharing PostgreSQL waits; SQLite has one process"
    );
    held.release().await;
    let mine = s.try_exclusive(7).await.unwrap().expect("given back when released");
    mine.release().await;
    let theirs = other.try_exclusive(7).await.unwrap();
    theirs.expect("and free for the other process").release().await;
    other.close().await;
    s.close().await;
}

#[backend_test]
async fn repository_states_mirrors_and_scheduled_jobs(kind: berth_testkit::DbKind) {
    use berth_core::RepoState;
    use berth_store::mirrors::{self, MirrorConfig};
    use berth_store::queue;
    use chrono::{Duration, Utc};
    let db = TestDb::new(kind).await;
    let s = store(&db).await;
    let mut tx = s.begin().await.unwrap();
    let (owner, repo) = owner_and_repo(&mut tx).await;
    assert_eq!(repo.state, RepoState::Normal);
    repos::set_state(&mut tx, repo.id, RepoState::Mirror).await.unwrap();
    assert_eq!(
        repos::by_id(&mut tx, repo.id).await.unwrap().unwrap().state,
        RepoState::Mirror
    );
    assert!(mirrors::get(&mut tx, repo.id).await.unwrap().is_none());
    let start = Utc::now() + Duration::hours(1);
    let (rule, registry, arches) = (
        json!({"rule_kind": "tag_glob_csv", "rule_value": ["v*"]}),
        json!({"verify_tls": true}),
        json!([]),
    );
    let sealed = Sealed::from_stored("sealed:v1:p:q".into());
    let mut config = MirrorConfig {
        is_enabled: true,
        external_reference: "registry.example.com/library/app",
        username: Some("puller"),
        password: Some(&sealed),
        sync_interval: 3600,
        sync_start_date: start,
        robot_id: owner.id,
        timeout_secs: 300,
        root_rule: &rule,
        registry_config: &registry,
        architecture_filter: &arches,
    };
    mirrors::upsert(&mut tx, repo.id, &config).await.unwrap();
    let m = mirrors::get(&mut tx, repo.id).await.unwrap().unwrap();
    assert_eq!(
        (m.sync_status.as_str(), m.sync_retries_remaining, m.username.as_deref()),
        ("NEVER_RUN", 3, Some("puller"))
    );
    assert_eq!(m.sync_start_date.timestamp(), start.timestamp());
    assert_eq!(
        m.password.map(|p| p.as_stored().to_owned()).as_deref(),
        Some("sealed:v1:p:q")
    );
    let sealed_passwords = secrets::sealed_values(&mut tx, SealedColumn::MirrorPassword)
        .await
        .unwrap();
    assert_eq!(
        sealed_passwords,
        [(repo.id.0.to_string(), sealed.clone())],
        "re-sealed with the others"
    );
    // A sync's state, then a replaced configuration that keeps it.
    let until = Utc::now() + Duration::minutes(5);
    mirrors::set_status(&mut tx, repo.id, "SYNCING", Some(until), None, None)
        .await
        .unwrap();
    mirrors::set_status(&mut tx, repo.id, "FAIL", None, Some(2), Some((Some("401"), "tried")))
        .await
        .unwrap();
    config.username = None;
    config.password = None;
    config.is_enabled = false;
    mirrors::upsert(&mut tx, repo.id, &config).await.unwrap();
    let m = mirrors::get(&mut tx, repo.id).await.unwrap().unwrap();
    assert_eq!(
        (
            m.sync_status.as_str(),
            m.sync_retries_remaining,
            m.last_error.as_deref(),
            m.last_log.as_str()
        ),
        ("FAIL", 2, Some("401"), "tried")
    );
    assert_eq!(
        (m.is_enabled, m.username, m.password.is_none(), m.sync_expiration_date),
        (false, None, true, None)
    );
    mirrors::set_status(&mut tx, repo.id, "SYNC_NOW", None, None, None)
        .await
        .unwrap();
    let m = mirrors::get(&mut tx, repo.id).await.unwrap().unwrap();
    assert_eq!(
        (m.sync_status.as_str(), m.last_error.as_deref()),
        ("SYNC_NOW", Some("401")),
        "the last sync's record stays"
    );
    // A job scheduled for later waits until then.
    let body = json!({"repository_id": repo.id.0});
    queue::enqueue_at(&mut tx, JobQueue::Mirror, "mirror/1", &body, 1, start)
        .await
        .unwrap();
    let listed = queue::list(&mut tx, JobQueue::Mirror).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].available_after.timestamp(), start.timestamp());
    tx.commit().await.unwrap();
    // Deleting the repository deletes its mirror.
    let mut tx = s.begin().await.unwrap();
    assert!(repos::delete(&mut tx, repo.id).await.unwrap());
    assert!(mirrors::get(&mut tx, repo.id).await.unwrap().is_none());
    tx.commit().await.unwrap();
    s.close().await;
}

/// A blob's lock: a second taker waits (another process's store on PostgreSQL, this process's on
/// SQLite) until the first commits, and what the lock's transaction recorded is kept on commit
/// and dropped on release.
#[backend_test]
async fn a_blob_lock_waits_for_its_holder_and_records_with_it(kind: berth_testkit::DbKind) {
    use berth_store::registry as reg;
    let db = TestDb::new(kind).await;
    let a = store(&db).await;
    let b = match kind {
        DbKind::Postgres => Store::connect(&db.url, &ConnectOptions::default()).await.unwrap(),
        DbKind::Sqlite => a.clone(),
    };
    let d = format!("sha256:{}", "e".repeat(64));
    let mut held = a.lock_blob(&d).await.unwrap();
    reg::insert_blob(held.tx(&a).await.unwrap(), &d, 3).await.unwrap();
    let waiting = tokio::spawn({
        let (b, d) = (b.clone(), d.clone());
        async move { b.lock_blob(&d).await.unwrap().release().await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "a second lock of the digest waits for the first"
    );
    held.commit().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
        .await
        .expect("the second lock is granted once the first is committed")
        .unwrap();
    let mut c = b.conn().await.unwrap();
    assert_eq!(reg::blob_size(&mut c, &d).await.unwrap(), Some(3));
    drop(c);
    let gone = format!("sha256:{}", "f".repeat(64));
    let mut l = a.lock_blob(&gone).await.unwrap();
    reg::insert_blob(l.tx(&a).await.unwrap(), &gone, 1).await.unwrap();
    l.release().await;
    let mut c = b.conn().await.unwrap();
    assert_eq!(
        reg::blob_size(&mut c, &gone).await.unwrap(),
        None,
        "released: nothing kept"
    );
    drop(c);
    if kind == DbKind::Postgres {
        b.close().await;
    }
    a.close().await;
}
