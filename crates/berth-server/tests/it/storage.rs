//! Blob storage on both kinds (a local directory, and an S3 bucket in a real SeaweedFS that checks
//! signatures): large chunked uploads that cross S3's part boundaries, a chunk broken off
//! mid-way, presigned redirects, the store going down or hanging, wrong credentials at start-up,
//! and two instances on one PostgreSQL database and one bucket.

use std::time::Duration;

use berth_testkit::faulty::{Fault, FaultyProxy};
use berth_testkit::registry::digest;
use berth_testkit::{DbKind, ON_S3, S3Place, TestDb, backend_test};
use reqwest::{Method, StatusCode};
use tokio::io::AsyncWriteExt as _;

use crate::binary::berth;
use crate::crash::serve_with;
use crate::support::{TestServer, s3_storage};

const MIB: usize = 1024 * 1024;

/// `len` bytes that no compression or deduplication shortens.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// Sends a PATCH that announces `announced` bytes, sends `sent` of them and hangs up: a client
/// that died mid-chunk.
async fn broken_patch(base: &str, location: &str, body: &[u8], announced: usize) {
    let addr = base.trim_start_matches("http://");
    let path = location.trim_start_matches(base);
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = base64_basic("root", "rootpassword");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Basic {auth}\r\ncontent-type: application/octet-stream\r\ncontent-length: {announced}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    conn.flush().await.unwrap();
    drop(conn);
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// The stored upload's range, as `GET` on its location reports it.
async fn upload_range(reg: &berth_testkit::registry::Reg<'_>, location: &str) -> String {
    let r = reg.send(Method::GET, location).await;
    assert_eq!(r.status(), 204);
    r.headers()["range"].to_str().unwrap().to_owned()
}

/// A 22 MiB blob in chunks of 7 MiB (S3 parts are 8 MiB, so the chunks straddle them and leave
/// staged tails), with a chunk broken off after 9 MiB in the middle: the upload carries on from
/// what was recorded, and the blob reads back whole and by ranges across part boundaries.
#[backend_test(s3)]
async fn a_large_chunked_upload_crosses_parts_and_survives_a_broken_chunk(kind: DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "big").await;
    let reg = s.reg("root", "rootpassword");
    let data = noise(22 * MIB, 1);
    let d = digest(&data);

    let r = reg.send(Method::POST, "/v2/acme/big/blobs/uploads/").await;
    assert_eq!(r.status(), 202);
    let loc = format!("{}{}", s.base, r.headers()["location"].to_str().unwrap());
    let patch = |from: usize, to: usize| {
        reg.req(Method::PATCH, &loc)
            .header("content-range", format!("{from}-{}", to - 1))
            .body(data[from..to].to_vec())
            .send()
    };
    assert_eq!(patch(0, 7 * MIB).await.unwrap().status(), 202);
    // A client dies 9 MiB into a 10 MiB chunk: more than a part was read (and perhaps sent).
    let mut junk = noise(9 * MIB, 2);
    junk[..MIB].copy_from_slice(&data[7 * MIB..8 * MIB]);
    broken_patch(&s.base, &loc, &junk, 10 * MIB).await;
    let expected = format!("0-{}", 7 * MIB - 1);
    berth_testkit::eventually(Duration::from_secs(30), || {
        let (reg, loc, expected) = (&reg, &loc, &expected);
        async move {
            let range = upload_range(reg, loc).await;
            if &range == expected {
                Ok(())
            } else {
                Err(format!("range {range}, expected {expected}"))
            }
        }
    })
    .await;
    assert_eq!(patch(7 * MIB, 14 * MIB).await.unwrap().status(), 202);
    assert_eq!(patch(14 * MIB, 21 * MIB).await.unwrap().status(), 202);
    assert_eq!(upload_range(&reg, &loc).await, format!("0-{}", 21 * MIB - 1));
    let r = reg
        .req(Method::PUT, &format!("{loc}?digest={d}"))
        .body(data[21 * MIB..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    let r = reg.send(Method::GET, &format!("/v2/acme/big/blobs/{d}")).await;
    assert_eq!(r.status(), 200);
    let got = r.bytes().await.unwrap();
    assert!(got.as_ref() == data.as_slice(), "the blob reads back whole");
    for (from, to) in [(8 * MIB - 5, 8 * MIB + 5), (0, 0), (22 * MIB - 3, 22 * MIB - 1)] {
        let r = reg
            .req(Method::GET, &format!("/v2/acme/big/blobs/{d}"))
            .header("range", format!("bytes={from}-{to}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[from..=to]);
    }
    // A second upload of the same content leaves the stored blob as it is.
    assert_eq!(reg.push_blob("acme/big", &data).await, d);
    s.stop().await;
}

/// With `redirect = true`, a blob download answers 307 to a presigned URL of the bucket that
/// works without Berth's credentials (ranges included) and stops working when tampered with;
/// `HEAD` is answered by Berth, and skopeo pulls through the redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_downloads_redirect_to_a_presigned_url() {
    let db = ON_S3.scope(true, TestDb::new(DbKind::Postgres)).await;
    let s = TestServer::start_on(db, |c| c.storage.redirect = true).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let reg = s.reg("root", "rootpassword");
    let layer = noise(300_000, 3);
    let (_, _, ld) = reg.push_image("acme/web", "v1", &layer).await;

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let blob = format!("{}/v2/acme/web/blobs/{ld}", s.base);
    let r = no_redirects
        .get(&blob)
        .basic_auth("root", Some("rootpassword"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["docker-content-digest"], ld.as_str());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(location.contains("X-Amz-Expires=300"), "{location}");
    let plain = reqwest::Client::new();
    let r = plain.get(&location).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().as_ref() == layer.as_slice());
    let r = plain.get(&location).header("range", "bytes=5-9").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &layer[5..10]);
    let tampered = location.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    assert_eq!(plain.get(&tampered).send().await.unwrap().status(), 403);
    // Without credentials Berth refuses before redirecting anywhere.
    assert_eq!(no_redirects.get(&blob).send().await.unwrap().status(), 401);
    let r = no_redirects
        .head(&blob)
        .basic_auth("root", Some("rootpassword"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status(), r.headers()["content-length"].to_str().unwrap()),
        (StatusCode::OK, "300000")
    );

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--src-creds",
            "root:rootpassword",
        ])
        .arg(format!("docker://{}/acme/web:v1", s.hostname))
        .arg(format!("oci:{}:v1", dir.path().join("pulled").display()))
        .output()
        .unwrap();
    // skopeo checks every blob it downloads against its digest.
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    s.stop().await;
}

/// The S3 service goes down, then hangs: pushes fail with a clear 503, nothing half-stored
/// becomes visible, and once it is back the same push goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_or_hangs_fails_pushes_with_503_and_shows_nothing() {
    let place = S3Place::new();
    let upstream = place.endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultyProxy::start(upstream).await;
    let s = TestServer::start_with(DbKind::Postgres, |c| {
        c.storage = s3_storage(&S3Place {
            endpoint: proxy.url(),
            ..place.clone()
        });
        c.storage.timeout_secs = 1;
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let reg = s.reg("root", "rootpassword");
    let layer = noise(100_000, 4);
    let d = digest(&layer);

    for fault in [Fault::Refuse, Fault::Stall] {
        proxy.set(fault);
        let r = reg
            .req(Method::POST, &format!("/v2/acme/web/blobs/uploads/?digest={d}"))
            .body(layer.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503, "{fault:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{fault:?}");
        assert_eq!(
            body["errors"][0]["message"], "blob storage is unavailable, please retry",
            "{fault:?}"
        );
        proxy.set(Fault::None);
        let head = reg.send(Method::HEAD, &format!("/v2/acme/web/blobs/{d}")).await;
        assert_eq!(head.status(), 404, "nothing became visible ({fault:?})");
    }
    assert_eq!(reg.push_blob("acme/web", &layer).await, d);
    let r = reg.send(Method::GET, &format!("/v2/acme/web/blobs/{d}")).await;
    assert!(r.bytes().await.unwrap().as_ref() == layer.as_slice());
    s.stop().await;
}

/// `serve` and `check-config` stop at once, naming the key, when the bucket refuses Berth: a wrong
/// secret (SeaweedFS checks signatures), or an unknown access key.
#[tokio::test]
async fn wrong_credentials_stop_serve_and_check_config_naming_the_key() {
    let place = S3Place::new();
    for (key, value, named) in [
        (
            "BERTH_STORAGE__SECRET_ACCESS_KEY",
            "not-the-secret",
            "storage.secret_access_key",
        ),
        ("BERTH_STORAGE__ACCESS_KEY_ID", "nobody", "storage.access_key_id"),
    ] {
        for command in ["serve", "check-config"] {
            let dir = tempfile::tempdir().unwrap();
            let out = berth()
                .arg(command)
                .envs(place.env())
                .env(key, value)
                .env("BERTH_DATA_DIR", dir.path())
                .env("BERTH_LISTEN", format!("127.0.0.1:{}", crate::binary::free_port()))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{command} with a wrong {named} started");
            assert!(stderr.contains(named), "{command}: {stderr}");
        }
    }
    // And the right ones pass the same check.
    let dir = tempfile::tempdir().unwrap();
    let out = berth()
        .arg("check-config")
        .envs(place.env())
        .env("BERTH_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("secret_access_key = \"***\""), "{shown}");
}

/// Two instances (separate processes and data directories, one PostgreSQL database, one
/// bucket): a push to A is pulled from B, and a chunked upload started on A is finished on B
/// after A is killed with SIGKILL in the middle of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_database_and_one_bucket() {
    let db = {
        let db = ON_S3.scope(true, TestDb::new(DbKind::Postgres)).await;
        let s = TestServer::start_on(db, |_| {}).await;
        let root = s.init_root().await;
        s.org_with_repo(&root, "acme", "web").await;
        s.stop_keeping_db().await
    };
    let key = std::fs::read_to_string(db.dir().join("secret.key")).unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let b_data = b_dir.path().to_str().unwrap();
    let (mut a, port_a) = serve_with(&db, &[]);
    let (_b, port_b) = serve_with(&db, &[("BERTH_DATA_DIR", b_data), ("BERTH_SECRET_KEY", key.trim())]);
    let client = reqwest::Client::new();
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let on = |base| berth_testkit::registry::Reg {
        base,
        client: &client,
        user: "root",
        pass: "rootpassword",
    };
    let (reg_a, reg_b) = (on(&base_a), on(&base_b));

    let layer = noise(2 * MIB, 5);
    let (manifest, md, ld) = reg_a.push_image("acme/web", "v1", &layer).await;
    let r = reg_b
        .req(Method::GET, "/v2/acme/web/manifests/v1")
        .header("accept", berth_testkit::registry::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["docker-content-digest"], md.as_str());
    assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
    let r = reg_b.send(Method::GET, &format!("/v2/acme/web/blobs/{ld}")).await;
    assert!(
        r.bytes().await.unwrap().as_ref() == layer.as_slice(),
        "B serves A's blob"
    );

    let data = noise(12 * MIB, 6);
    let d = digest(&data);
    let r = reg_a.send(Method::POST, "/v2/acme/web/blobs/uploads/").await;
    let path = r.headers()["location"].to_str().unwrap().to_owned();
    let r = reg_a
        .req(Method::PATCH, &path)
        .body(data[..9 * MIB].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    a.0.kill().unwrap(); // SIGKILL, in the middle of the push
    a.0.wait().unwrap();
    assert_eq!(upload_range(&reg_b, &path).await, format!("0-{}", 9 * MIB - 1));
    let r = reg_b
        .req(Method::PUT, &format!("{path}?digest={d}"))
        .body(data[9 * MIB..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = reg_b.send(Method::GET, &format!("/v2/acme/web/blobs/{d}")).await;
    assert!(
        r.bytes().await.unwrap().as_ref() == data.as_slice(),
        "the upload finished on B"
    );
}
