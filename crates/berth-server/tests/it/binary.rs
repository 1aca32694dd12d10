//! The `berth` binary itself: zero-configuration start-up, graceful shutdown on SIGTERM, the admin
//! commands on both backends, and configuration errors that name the key and its source.

use std::io::Write;

use base64::Engine;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_testkit::{TestDb, backend_test};

pub(crate) fn berth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    // Start from a clean slate: no configuration inherited from the environment.
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BERTH_") || k == "RUST_LOG") {
        c.env_remove(k);
    }
    c
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_with_no_configuration_then_sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = berth()
        .arg("serve")
        .current_dir(dir.path())
        .env("BERTH_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Poll until it answers (bounded: 60 s).
    let healthy = berth_testkit::eventually_blocking(Duration::from_secs(60), || {
        let answer = std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|mut s| {
                s.write_all(b"GET /health/instance HTTP/1.0\r\n\r\n").ok()?;
                let mut buf = String::new();
                std::io::Read::read_to_string(&mut s, &mut buf).ok()?;
                Some(buf)
            });
        answer
            .filter(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
            .ok_or_else(|| "berth serve did not become healthy".to_owned())
    });
    assert!(healthy.contains("\"database\":true"), "{healthy}");
    assert!(
        dir.path().join("berth-data/berth.db").exists(),
        "default SQLite file under ./berth-data"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = berth_testkit::eventually_blocking(Duration::from_secs(30), || {
        child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "berth serve did not stop after SIGTERM".to_owned())
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(exit.code(), Some(0), "{stderr}");
    assert!(stderr.contains("shutdown signal received"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colours when stderr is not a terminal: {stderr}"
    );
    // It says where to go, and on a fresh database where to create the administrator.
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        stdout.contains(&format!("Berth is running: open {base}/ in a browser."))
            && stdout.contains(&format!("create the administrator at {base}/setup")),
        "{stdout}"
    );
}

#[backend_test]
async fn admin_commands_create_users_and_tokens(kind: berth_testkit::DbKind) {
    let db = TestDb::new(kind).await;
    let run = |args: &[&str], stdin: &str| {
        let mut child = berth()
            .args(args)
            .env("BERTH_DATABASE_URL", &db.url)
            .env("BERTH_DATA_DIR", db.dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["migrate"], "");
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(
        &[
            "admin",
            "create-user",
            "root",
            "--email",
            "root@example.com",
            "--superuser",
            "--password-stdin",
        ],
        "longpassword\n",
    );
    assert!(ok && out.contains("created user root (superuser)"), "{out}{err}");
    let (ok, _, err) = run(
        &[
            "admin",
            "create-user",
            "root",
            "--email",
            "x@example.com",
            "--password-stdin",
        ],
        "longpassword\n",
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = run(
        &[
            "admin",
            "create-user",
            "short",
            "--email",
            "s@example.com",
            "--password-stdin",
        ],
        "2short\n",
    );
    assert!(!ok && err.contains("invalid password"), "{err}");
    let (ok, token, err) = run(&["admin", "create-token", "root", "--scope", "repo:read,user:read"], "");
    assert!(ok && token.trim().len() == 40, "{token}{err}");
    let (ok, _, err) = run(&["admin", "create-token", "root", "--scope", "repo:everything"], "");
    assert!(!ok && err.contains("invalid scope: 'repo:everything'"), "{err}");
    let (ok, _, err) = run(&["admin", "create-user", "nopass", "--email", "n@example.com"], "");
    assert!(!ok && err.contains("--password-stdin"), "{err}");
}

#[test]
fn bad_configuration_names_the_key_and_its_source() {
    let out = berth()
        .args(["check-config"])
        .env("BERTH_PREFERRED_URL_SCHEME", "gopher")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("preferred_url_scheme") && err.contains("BERTH_PREFERRED_URL_SCHEME") && err.contains("gopher"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.toml");
    std::fs::write(&file, "listen = \"not an address\"\n").unwrap();
    let out = berth()
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("listen") && err.contains(file.to_str().unwrap()), "{err}");
    // A misspelt key: named with its file and the key it was probably meant to be.
    std::fs::write(&file, "[notifications]\nmax_in_fligt = 3\n").unwrap();
    let out = berth()
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "unknown key `notifications.max_in_fligt` in TOML file {}; did you mean `max_in_flight`?",
        file.display()
    );
    assert!(!out.status.success() && err.contains(&want), "{err}");

    let out = berth().args(["check-config"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("listen = \"127.0.0.1:8080\""));

    // The effective configuration is printed without the database password.
    let out = berth()
        .args(["check-config"])
        .env("BERTH_DATABASE_URL", "postgres://u:hunter2@127.0.0.1/db")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && shown.contains("postgres://u:***@127.0.0.1/db") && !shown.contains("hunter2"),
        "{shown}"
    );
    // So are the SMTP password, given directly or read from a file, and the metrics token.
    let secret = dir.path().join("smtp-password");
    std::fs::write(&secret, "smtp-hunter3\n").unwrap();
    for (key, value) in [
        ("BERTH_MAIL__PASSWORD", "smtp-hunter3".to_owned()),
        ("BERTH_MAIL__PASSWORD_FILE", secret.to_str().unwrap().to_owned()),
        ("BERTH_METRICS_TOKEN", "smtp-hunter3".to_owned()),
    ] {
        let out = berth().args(["check-config"]).env(key, &value).output().unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{key}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(
            shown.contains(" = \"***\"") && !shown.contains("hunter3"),
            "{key}: {shown}"
        );
    }
    // And the secret key that seals stored secrets.
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let out = berth()
        .args(["check-config"])
        .env("BERTH_SECRET_KEY", &key)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && shown.contains("secret_key = \"***\"") && !shown.contains(&key),
        "{shown}"
    );
}

#[test]
fn help_lists_every_command() {
    let out = berth().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "migrate", "check-config", "admin", "secscan"] {
        assert!(help.contains(cmd), "{help}");
    }
    // It opens with what Berth is, for its users, not with how the crate is built.
    let short = berth().arg("-h").output().unwrap();
    let short = String::from_utf8_lossy(&short.stdout);
    assert!(short.starts_with("Berth: a container registry"), "{short}");
    let out = berth().args(["admin", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("create-user") && help.contains("create-token") && help.contains("rotate-secret-key"),
        "{help}"
    );
}

#[test]
fn commands_say_when_they_create_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = berth()
            .arg("migrate")
            .env("BERTH_DATA_DIR", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run();
    assert!(
        first.contains("there is no database at") && first.contains("creating a new, empty one"),
        "{first}"
    );
    let again = run();
    assert!(!again.contains("there is no database"), "{again}");
}
