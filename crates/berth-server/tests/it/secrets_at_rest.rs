//! Secrets at rest, on both backends: robot tokens, notification signing secrets, trigger secrets
//! and the registry token key are stored sealed and still work; secrets stored plain by earlier
//! versions are sealed at the next start; `berth admin rotate-secret-key` re-seals everything with
//! a new key that a restarted server uses; and an instance with the wrong key refuses to start.

use berth_store::secrets::{self, Sealed, SealedColumn};
use berth_testkit::backend_test;
use reqwest::Method;
use serde_json::json;

use crate::support::{Auth, TestServer, expect};

/// Every stored secret: (column, row key, value).
async fn stored(s: &TestServer) -> Vec<(SealedColumn, String, String)> {
    let mut c = s.app.store().conn().await.unwrap();
    let mut out = Vec::new();
    for column in SealedColumn::ALL {
        for (key, value) in secrets::sealed_values(&mut c, column).await.unwrap() {
            out.push((column, key, value.as_stored().to_owned()));
        }
    }
    out
}

/// The key id every stored secret is sealed with, checking that they all share one.
fn key_of(values: &[(SealedColumn, String, String)]) -> String {
    let ids: Vec<&str> = values
        .iter()
        .map(|(c, _, v)| {
            v.strip_prefix("sealed:v1:")
                .unwrap_or_else(|| panic!("{c:?} is not sealed: {v}"))
                .split(':')
                .next()
                .unwrap()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    ids[0].to_owned()
}

/// Whether the robot's token still gets it a registry token.
async fn robot_signs_in(s: &TestServer, token: &str) -> bool {
    let path = format!("/v2/auth?service={}&scope=repository:acme/web:pull", s.hostname);
    s.get(&path, &Auth::Basic("acme+ci".into(), token.into())).await.0 == 200
}

#[backend_test]
async fn stored_secrets_are_sealed_survive_restarts_and_rotate(kind: berth_testkit::DbKind) {
    let enable = |c: &mut berth_server::config::Config| c.builds.enabled = true;
    let s = TestServer::start_with(kind, enable).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let robot = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/ci", &root, None)
            .await,
        201,
    );
    let token = robot["token"].as_str().unwrap().to_owned();
    expect(
        s.put(
            "/api/v1/repository/acme/web/permissions/user/acme+ci",
            &root,
            json!({"role": "read"}),
        )
        .await,
        200,
    );
    let hook = json!({"event": "repo_push", "method": "webhook", "config": {"url": "https://ci.example.com/hook"}, "eventConfig": {}});
    let uuid = expect(
        s.post("/api/v1/repository/acme/web/notification/", &root, hook).await,
        201,
    )["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_path = format!("/api/v1/repository/acme/web/notification/{uuid}/secret");
    let signing = expect(s.get(&secret_path, &root).await, 200)["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let trigger = expect(
        s.post(
            "/api/v1/repository/acme/web/trigger/",
            &root,
            json!({"service": "github"}),
        )
        .await,
        201,
    );
    let trigger_path = format!(
        "/api/v1/repository/acme/web/trigger/{}",
        trigger["id"].as_str().unwrap()
    );
    let trigger_secret = trigger["secret"].as_str().unwrap().to_owned();

    // In the database: one of each, all sealed with one key, none holding its plain value.
    let values = stored(&s).await;
    let columns: Vec<SealedColumn> = values.iter().map(|(c, _, _)| *c).collect();
    assert_eq!(
        columns,
        [
            SealedColumn::RobotToken,
            SealedColumn::NotificationSecret,
            SealedColumn::TriggerSecret,
            SealedColumn::InstanceSecret
        ]
    );
    let first_key = key_of(&values);
    for plain in [&token, &signing, &trigger_secret] {
        assert!(
            values.iter().all(|(_, _, v)| !v.contains(plain.as_str())),
            "{plain} is stored in the clear"
        );
    }
    assert!(robot_signs_in(&s, &token).await);
    assert!(!robot_signs_in(&s, "wrong").await);
    let robot_path = "/api/v1/organization/acme/robots/ci";
    assert_eq!(expect(s.get(robot_path, &root).await, 200)["token"], token.as_str());

    // A secret stored plain, as versions before sealing stored them, works and is sealed at the
    // next start.
    let (robot_key, _) = values
        .iter()
        .find(|(c, ..)| *c == SealedColumn::RobotToken)
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .unwrap();
    let mut tx = s.app.store().begin().await.unwrap();
    secrets::replace_sealed(
        &mut tx,
        SealedColumn::RobotToken,
        &robot_key,
        &Sealed::from_stored("LEGACYTOKEN".into()),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(robot_signs_in(&s, "LEGACYTOKEN").await);
    let db = s.stop_keeping_db().await;
    let s = TestServer::start_on(db, enable).await;
    assert_eq!(key_of(&stored(&s).await), first_key);
    assert!(robot_signs_in(&s, "LEGACYTOKEN").await);
    let db = s.stop_keeping_db().await;

    // Rotation, with the server stopped: everything is re-sealed with a new key, kept in
    // secret.key, the old one in secret.key.previous.
    let rotate = crate::binary::berth()
        .args(["admin", "rotate-secret-key"])
        .env("BERTH_DATABASE_URL", &db.url)
        .env("BERTH_DATA_DIR", db.dir())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&rotate.stdout).into_owned();
    assert!(
        rotate.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert!(
        out.contains("re-sealed 4 stored secrets with key") && out.contains("restart running servers"),
        "{out}"
    );
    assert!(db.dir().join("secret.key.previous").exists() && !db.dir().join("secret.key.next").exists());
    let s = TestServer::start_on(db, enable).await;
    let second_key = key_of(&stored(&s).await);
    assert_ne!(second_key, first_key);
    assert!(out.contains(&second_key), "{out}");
    assert!(robot_signs_in(&s, "LEGACYTOKEN").await);
    assert_eq!(
        expect(s.get(&secret_path, &root).await, 200)["secret"],
        signing.as_str()
    );
    assert_eq!(
        expect(s.get(&trigger_path, &root).await, 200)["secret"],
        trigger_secret.as_str()
    );
    let db = s.stop_keeping_db().await;

    // An instance given another key refuses to start, and says why.
    let (_, other) = berth_app::sealing::SecretKey::generate().unwrap();
    let wrong = crate::binary::berth()
        .args(["admin", "create-token", "root", "--scope", "repo:read"])
        .env("BERTH_DATABASE_URL", &db.url)
        .env("BERTH_DATA_DIR", db.dir())
        .env("BERTH_SECRET_KEY", other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success(), "{err}");
    assert!(
        err.contains(&format!("sealed with key {second_key}")) && err.contains("secret_key"),
        "{err}"
    );
    // With secret_key in the configuration, rotation needs the new key in a file.
    let rotate = crate::binary::berth()
        .args(["admin", "rotate-secret-key"])
        .env("BERTH_DATABASE_URL", &db.url)
        .env("BERTH_DATA_DIR", db.dir())
        .env(
            "BERTH_SECRET_KEY",
            std::fs::read_to_string(db.dir().join("secret.key")).unwrap().trim(),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&rotate.stderr);
    assert!(!rotate.status.success() && err.contains("--new-key-file"), "{err}");
}
