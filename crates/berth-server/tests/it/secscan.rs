//! The vulnerability scanner end to end, on both backends: a real skopeo push of a umoci-built
//! image whose dpkg database lists a vulnerable version is indexed, the Security API lists the
//! findings, a `level` High notification receives `vulnerability_found` for the High advisory and
//! filters the Low one, an advisory imported later raises the event for the already-pushed image,
//! and nothing is announced twice. Also: multi-platform indexes, bursts summarised, failed and
//! unsupported scans, the `berth secscan import` command and the periodic feed.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use berth_scan::Advisory;
use berth_testkit::receiver::Receiver;
use berth_testkit::{backend_test, eventually};
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};
use berth_testkit::registry::{OCI_INDEX, OCI_MANIFEST, digest};

const WAIT: Duration = Duration::from_secs(60);

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
const DPKG_STATUS: &str = "Package: libssl3\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u1\nSource: openssl\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.2.15-2+b2\nSource: bash (5.2.15-2)\n";

/// An OSV advisory for a Debian 12 source package, fixed in `fixed`, scored by `vector`.
fn advisory(id: &str, package: &str, fixed: &str, vector: &str) -> Advisory {
    let doc = json!({
        "id": id, "modified": "2026-11-01T00:00:00Z", "summary": format!("{id} in {package}"),
        "severity": [{"type": "CVSS_V3", "score": vector}],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": package},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}],
        "references": [{"type": "ADVISORY", "url": format!("https://security-tracker.debian.org/tracker/{id}")}]
    });
    Advisory::parse(doc.to_string().as_bytes()).unwrap()
}

const HIGH: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"; // 7.5
const LOW: &str = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"; // 3.3
const CRITICAL: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"; // 9.8
const MEDIUM: &str = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:N"; // 5.4

async fn scanning_server(
    kind: berth_testkit::DbKind,
    configure: impl FnOnce(&mut berth_server::config::Config),
) -> (TestServer, Auth) {
    let s = TestServer::start_with(kind, |c| {
        c.secscan.enabled = true;
        c.notifications.blocked_hosts = Vec::new();
        c.notifications.deliver = true;
        c.notifications.retry_schedule_secs = vec![0];
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
        configure(c);
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    (s, root)
}

async fn webhook(s: &TestServer, root: &Auth, url: String, event_config: Value) -> String {
    let body = json!({"event": "vulnerability_found", "method": "webhook", "config": {"url": url}, "eventConfig": event_config});
    let n = expect(
        s.post("/api/v1/repository/acme/web/notification/", root, body).await,
        201,
    );
    n["uuid"].as_str().unwrap().to_owned()
}

/// Polls the Security API until the manifest is no longer queued.
async fn report(s: &TestServer, root: &Auth, repo: &str, digest: &str) -> Value {
    eventually(WAIT, || async {
        let r = expect(
            s.get(
                &format!("/api/v1/repository/{repo}/manifest/{digest}/security?vulnerabilities=true"),
                root,
            )
            .await,
            200,
        );
        if r["status"] != "queued" {
            Ok(r)
        } else {
            Err(format!("{digest} is scanned: {r}"))
        }
    })
    .await
}

/// Waits until the scan queue is empty (every job done).
async fn scans_settled(s: &TestServer) {
    eventually(WAIT, || async {
        let left = berth_store::queue::list(&mut s.app.store().conn().await.unwrap(), berth_core::JobQueue::Secscan)
            .await
            .unwrap();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("scan jobs left: {left:?}"))
        }
    })
    .await
}

/// The deliveries of a notification once none is pending: `(vulnerability id(s), status)`,
/// sorted.
async fn settled_deliveries(s: &TestServer, _root: &Auth, uuid: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = crate::support::settled_deliveries(s, uuid)
        .await
        .into_iter()
        .map(|(_, status, data)| {
            let what = match data["vulnerabilities"].as_array() {
                Some(list) => list
                    .iter()
                    .map(|v| v["id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
                    .join("+"),
                None => data["vulnerability"]["id"].as_str().unwrap_or("?").to_owned(),
            };
            (what, status)
        })
        .collect();
    out.sort();
    out
}

async fn tool(program: &str, args: &[&str], dir: &Path) {
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} is required (./scripts/test installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[backend_test]
async fn skopeo_push_is_scanned_and_high_findings_are_announced(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = scanning_server(kind, |_| {}).await;
    let high_only = webhook(&s, &root, format!("{}/high", rx.url), json!({"level": 1})).await;
    let stored = s
        .app
        .import_advisories(&[
            advisory("BERTH-TEST-HIGH", "openssl", "3.0.13-1~deb12u1", HIGH),
            advisory("BERTH-TEST-LOW", "openssl", "3.0.12-1~deb12u1", LOW),
            advisory("BERTH-TEST-FIXED", "openssl", "3.0.9-1", CRITICAL),
        ])
        .await
        .unwrap();
    assert_eq!(stored.stored, 3);

    // A Debian image built offline by umoci, pushed by skopeo.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tool("umoci", &["init", "--layout", "L"], d).await;
    tool("umoci", &["new", "--image", "L:v1"], d).await;
    tool("umoci", &["unpack", "--rootless", "--image", "L:v1", "bundle"], d).await;
    let rootfs = d.join("bundle/rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::create_dir_all(rootfs.join("var/lib/dpkg")).unwrap();
    std::fs::write(rootfs.join("etc/os-release"), OS_RELEASE).unwrap();
    std::fs::write(rootfs.join("var/lib/dpkg/status"), DPKG_STATUS).unwrap();
    tool("umoci", &["repack", "--image", "L:v1", "bundle"], d).await;
    let img = format!("docker://{}/acme/web:v1", s.hostname);
    tool(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "root:rootpassword",
            "oci:L:v1",
            &img,
        ],
        d,
    )
    .await;
    let index: Value = serde_json::from_slice(&std::fs::read(d.join("L/index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();

    // The Security API: Quay's shape, with both findings on the binary package.
    let r = report(&s, &root, "acme/web", &manifest).await;
    assert_eq!(r["status"], "scanned", "{r:#}");
    let layer = &r["data"]["Layer"];
    assert_eq!(layer["Name"], manifest.as_str());
    assert_eq!(layer["NamespaceName"], "debian:12");
    let features = layer["Features"].as_array().unwrap();
    let ssl = features.iter().find(|f| f["Name"] == "libssl3").unwrap();
    assert_eq!(ssl["Version"], "3.0.11-1~deb12u1");
    assert_eq!(ssl["VersionFormat"], "dpkg");
    assert!(ssl["AddedBy"].as_str().unwrap().starts_with("sha256:"));
    let vulns: Vec<(&str, &str, &str)> = ssl["Vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["Name"].as_str().unwrap(),
                v["Severity"].as_str().unwrap(),
                v["FixedBy"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        vulns,
        [
            ("BERTH-TEST-HIGH", "High", "3.0.13-1~deb12u1"),
            ("BERTH-TEST-LOW", "Low", "3.0.12-1~deb12u1")
        ]
    );
    let high = &ssl["Vulnerabilities"][0];
    assert_eq!(
        high["Link"],
        "https://security-tracker.debian.org/tracker/BERTH-TEST-HIGH"
    );
    assert_eq!(high["Metadata"]["NVD"]["CVSSv3"]["Score"], 7.5);
    let bash = features.iter().find(|f| f["Name"] == "bash").unwrap();
    assert_eq!(bash["Vulnerabilities"], json!([]));
    // Without ?vulnerabilities=true, features only.
    let plain = expect(
        s.get(
            &format!("/api/v1/repository/acme/web/manifest/{manifest}/security"),
            &root,
        )
        .await,
        200,
    );
    assert!(plain["data"]["Layer"]["Features"][0].get("Vulnerabilities").is_none());

    // The High notification receives the High finding, with the spec's payload.
    let got = rx.next(WAIT).await.expect("vulnerability_found");
    assert_eq!(got.path, "/high");
    let body = got.json();
    assert_eq!(body["tags"], json!(["v1"]));
    assert_eq!(body["repository"], "acme/web");
    assert_eq!(
        body["vulnerability"],
        json!({
            "id": "BERTH-TEST-HIGH", "description": "BERTH-TEST-HIGH in openssl",
            "link": "https://security-tracker.debian.org/tracker/BERTH-TEST-HIGH", "priority": "High", "has_fix": true
        })
    );
    // …and the Low one is filtered by the level, never sent.
    assert_eq!(
        settled_deliveries(&s, &root, &high_only).await,
        [
            ("BERTH-TEST-HIGH".to_owned(), "delivered".to_owned()),
            ("BERTH-TEST-LOW".to_owned(), "filtered".to_owned()),
        ]
    );

    // New data a month later: the already-pushed image gains a Critical vulnerability in bash.
    let later = s
        .app
        .import_advisories(&[advisory("BERTH-TEST-CRIT", "bash", "5.2.15-3", CRITICAL)])
        .await
        .unwrap();
    assert_eq!(later.stored, 1);
    let got = rx.next(WAIT).await.expect("vulnerability_found from new data");
    assert_eq!(got.json()["vulnerability"]["id"], "BERTH-TEST-CRIT");
    assert_eq!(got.json()["vulnerability"]["priority"], "Critical");

    // Never twice: the same data again, and the same image under another tag.
    let again = s
        .app
        .import_advisories(&[advisory("BERTH-TEST-CRIT", "bash", "5.2.15-3", CRITICAL)])
        .await
        .unwrap();
    assert_eq!((again.stored, again.unchanged), (0, 1));
    let img2 = format!("docker://{}/acme/web:v2", s.hostname);
    tool(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "root:rootpassword",
            "oci:L:v1",
            &img2,
        ],
        d,
    )
    .await;
    scans_settled(&s).await;
    assert_eq!(s.app.rematch(None).await.unwrap(), 0);
    assert_eq!(settled_deliveries(&s, &root, &high_only).await.len(), 3);

    // Read access is needed, and the digest must be a manifest of this repository.
    let (status, _) = s
        .get(
            &format!("/api/v1/repository/acme/web/manifest/{manifest}/security"),
            &Auth::None,
        )
        .await;
    assert_eq!(status, 401);
    let e = expect(s.get("/api/v1/repository/acme/web/manifest/sha256:0000000000000000000000000000000000000000000000000000000000000000/security", &root).await, 404);
    assert!(e["detail"].as_str().unwrap().contains("not found"), "{e}");
    let e = expect(
        s.get("/api/v1/repository/acme/web/manifest/latest/security", &root)
            .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("digest"), "{e}");
    s.stop().await;
}

/// A gzipped tar layer with the given files.
fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, *content).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[backend_test]
async fn index_children_bursts_and_failures(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = scanning_server(kind, |c| c.secscan.max_events_per_scan = 3).await;
    let all = webhook(&s, &root, format!("{}/all", rx.url), json!({})).await;
    let names = ["A", "B", "C", "D", "E"];
    let batch: Vec<Advisory> = names
        .iter()
        .map(|n| advisory(&format!("BERTH-{n}"), "openssl", "3.0.13-1~deb12u1", MEDIUM))
        .collect();
    s.app.import_advisories(&batch).await.unwrap();
    s.app
        .import_advisories(&[advisory("BERTH-HIGH", "openssl", "3.0.13-1~deb12u1", HIGH)])
        .await
        .unwrap();

    // Two platform images pushed by digest, then the index by tag: the children are scanned and
    // announced with the index's tag.
    let reg = s.reg("root", "rootpassword");
    let files: [(&str, &[u8]); 2] = [
        ("etc/os-release", OS_RELEASE.as_bytes()),
        ("var/lib/dpkg/status", DPKG_STATUS.as_bytes()),
    ];
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let config = format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#);
        let cd = reg.push_blob("acme/web", config.as_bytes()).await;
        let bytes = layer(&files);
        let ld = reg.push_blob("acme/web", &bytes).await;
        let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": bytes.len()}]}).to_string();
        let md = digest(manifest.as_bytes());
        assert_eq!(
            reg.push_manifest("acme/web", &md, OCI_MANIFEST, manifest.as_bytes())
                .await
                .status(),
            201
        );
        children.push((md, manifest.len(), arch));
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children.iter().map(|(d, size, arch)| json!({
        "mediaType": OCI_MANIFEST, "digest": d, "size": size, "platform": {"architecture": arch, "os": "linux"}})).collect::<Vec<_>>()}).to_string();
    let index_digest = digest(index.as_bytes());
    assert_eq!(
        reg.push_manifest("acme/web", "multi", OCI_INDEX, index.as_bytes())
            .await
            .status(),
        201
    );
    scans_settled(&s).await;
    let r = report(&s, &root, "acme/web", &index_digest).await;
    assert_eq!(r["status"], "unsupported");
    assert!(r["reason"].as_str().unwrap().contains("each platform"), "{r}");
    for (child, _, _) in &children {
        let r = report(&s, &root, "acme/web", child).await;
        assert_eq!(r["status"], "scanned");
    }

    // Six findings per child, at most three events per scan: the High and the first Medium one
    // by one, the other four Mediums in one summary headed by the most severe.
    let deliveries = settled_deliveries(&s, &root, &all).await;
    let mut expected = Vec::new();
    for _ in &children {
        expected.push(("BERTH-A".to_owned(), "delivered".to_owned()));
        expected.push(("BERTH-B+BERTH-C+BERTH-D+BERTH-E".to_owned(), "delivered".to_owned()));
        expected.push(("BERTH-HIGH".to_owned(), "delivered".to_owned()));
    }
    expected.sort();
    assert_eq!(deliveries, expected);
    let mut summaries = Vec::new();
    for _ in 0..6 {
        let got = rx.next(WAIT).await.expect("delivery");
        let body = got.json();
        assert_eq!(body["tags"], json!(["multi"]));
        if body.get("vulnerabilities").is_some() {
            summaries.push(body);
        }
    }
    assert_eq!(summaries.len(), 2);
    assert_eq!(summaries[0]["vulnerability"]["id"], "BERTH-B");
    assert_eq!(summaries[0]["vulnerabilities"].as_array().unwrap().len(), 4);

    // A layer already indexed is not read again: with its file damaged on disk, another image
    // that shares it still scans.
    let shared = children_layer(&s, &children[0].0).await;
    let hex = shared.trim_start_matches("sha256:");
    let path = s.db.dir().join("blobs/sha256").join(&hex[..2]).join(hex);
    let original = std::fs::read(&path).unwrap();
    std::fs::write(&path, b"damaged").unwrap();
    let config = br#"{"architecture":"s390x","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = reg.push_blob("acme/web", config).await;
    let third = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": shared, "size": original.len()}]}).to_string();
    assert_eq!(
        reg.push_manifest("acme/web", "s390x", OCI_MANIFEST, third.as_bytes())
            .await
            .status(),
        201
    );
    assert_eq!(
        report(&s, &root, "acme/web", &digest(third.as_bytes())).await["status"],
        "scanned"
    );
    std::fs::write(&path, original).unwrap();

    // A layer that is not a tar fails the scan with a reason; an artifact is unsupported.
    let (_, broken, _) = reg.push_image("acme/web", "broken", b"\x1f\x8bnot really gzip").await;
    let r = report(&s, &root, "acme/web", &broken).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("layer sha256:"), "{r}");
    let blob = reg.push_blob("acme/web", b"{}").await;
    let artifact = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": blob, "size": 2}, "layers": []})
    .to_string();
    assert_eq!(
        reg.push_manifest("acme/web", "artifact", OCI_MANIFEST, artifact.as_bytes())
            .await
            .status(),
        201
    );
    let r = report(&s, &root, "acme/web", &digest(artifact.as_bytes())).await;
    assert_eq!(r["status"], "unsupported");
    assert!(r["reason"].as_str().unwrap().contains("not a container image"), "{r}");

    // Deleting a manifest leaves scanner records that garbage collection removes.
    let deleted = reg
        .send(reqwest::Method::DELETE, &format!("/v2/acme/web/manifests/{broken}"))
        .await;
    assert_eq!(deleted.status(), 202);
    let policy = berth_app::gc::GcPolicy {
        upload_max_age: Duration::from_secs(3600),
        blob_grace: Duration::from_secs(3600),
    };
    let gc = s.app.collect_garbage(policy, chrono::Utc::now()).await.unwrap();
    assert_eq!(gc.scan_records, 1, "{gc:?}");
    s.stop().await;
}

/// The digest of the only layer of a manifest of acme/web.
async fn children_layer(s: &TestServer, manifest: &str) -> String {
    let reg = s.reg("root", "rootpassword");
    let m: Value = reg
        .send(reqwest::Method::GET, &format!("/v2/acme/web/manifests/{manifest}"))
        .await
        .json()
        .await
        .unwrap();
    m["layers"][0]["digest"].as_str().unwrap().to_owned()
}

/// Builds an `rpmdb.sqlite` as RPM 4.16+ writes it (a `Packages` table of header blobs), with
/// Python's sqlite3: one package, `openssl-libs-1:3.0.7-24.el9` from the `openssl` source RPM.
const RPMDB_SCRIPT: &str = r#"
import sqlite3, struct, sys
def header(name, version, release, epoch, srpm):
    data, entries = b"", []
    for tag, s in [(1000, name), (1001, version), (1002, release), (1044, srpm)]:
        entries.append((tag, 6, len(data), 1))
        data += s.encode() + b"\0"
    while len(data) % 4:
        data += b"\0"
    entries.append((1003, 4, len(data), 1))
    data += struct.pack(">I", epoch)
    out = struct.pack(">II", len(entries), len(data))
    for e in entries:
        out += struct.pack(">IIII", *e)
    return out + data
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
db.execute("INSERT INTO Packages (blob) VALUES (?)", (header("openssl-libs", "3.0.7", "24.el9", 1, "openssl-3.0.7-24.el9.src.rpm"),))
db.commit()
"#;

#[backend_test]
async fn rpm_databases_are_read(kind: berth_testkit::DbKind) {
    let (s, root) = scanning_server(kind, |_| {}).await;
    let rocky = Advisory::parse(json!({
        "id": "RLSA-TEST", "modified": "2026-11-01T00:00:00Z", "database_specific": {"severity": "Important"},
        "affected": [{"package": {"ecosystem": "Rocky Linux:9", "name": "openssl"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1:3.0.7-27.el9"}]}]}]
    }).to_string().as_bytes()).unwrap();
    s.app.import_advisories(&[rocky]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rpmdb.sqlite");
    let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    tool(&python, &["-c", RPMDB_SCRIPT, db.to_str().unwrap()], dir.path()).await;
    let rpmdb = std::fs::read(&db).unwrap();
    let os = b"ID=\"rocky\"\nVERSION_ID=\"9.3\"\n";
    let bytes = layer(&[("etc/os-release", os), ("var/lib/rpm/rpmdb.sqlite", &rpmdb)]);
    let reg = s.reg("root", "rootpassword");
    let (_, manifest, _) = reg.push_image("acme/web", "rocky", &bytes).await;
    let r = report(&s, &root, "acme/web", &manifest).await;
    assert_eq!(r["status"], "scanned", "{r}");
    let layer = &r["data"]["Layer"];
    assert_eq!(layer["NamespaceName"], "rocky:9.3");
    let f = &layer["Features"][0];
    assert_eq!(
        (f["Name"].as_str(), f["Version"].as_str(), f["VersionFormat"].as_str()),
        (Some("openssl-libs"), Some("1:3.0.7-24.el9"), Some("rpm"))
    );
    assert_eq!(f["Vulnerabilities"][0]["Name"], "RLSA-TEST");
    assert_eq!(f["Vulnerabilities"][0]["Severity"], "High");
    assert_eq!(f["Vulnerabilities"][0]["FixedBy"], "1:3.0.7-27.el9");
    s.stop().await;
}

#[backend_test]
async fn the_feed_and_the_import_command(kind: berth_testkit::DbKind) {
    // A zip export, as OSV publishes per ecosystem.
    let mut zip = Vec::new();
    {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(&mut zip));
        for id in ["FEED-1", "FEED-2"] {
            w.start_file(format!("{id}.json"), zip::write::SimpleFileOptions::default())
                .unwrap();
            let a = advisory(id, "openssl", "3.0.13-1~deb12u1", HIGH);
            w.write_all(serde_json::to_string(&a).unwrap().as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }
    let url = crate::support::serve_bytes(zip, "/osv/all.zip").await;
    let (s, _root) = scanning_server(kind, |c| c.secscan.feed_url = url.clone()).await;
    eventually(WAIT, || async {
        let n = s.app.advisory_count().await.unwrap();
        if n >= 2 {
            Ok(())
        } else {
            Err(format!("the feed is imported: {n} advisories"))
        }
    })
    .await;
    let again = s.app.fetch_feed().await.unwrap();
    assert_eq!((again.stored, again.unchanged), (0, 2));
    let db = s.stop_keeping_db().await;

    // `berth secscan import` on the same database: a directory with one good and one bad file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.json"),
        serde_json::to_string(&advisory("CLI-1", "bash", "5.3", LOW)).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.json"), "{\"summary\": \"no id\"}").unwrap();
    let run = |path: &Path| {
        let out = crate::binary::berth()
            .args(["secscan", "import"])
            .arg(path)
            .env("BERTH_DATABASE_URL", &db.url)
            .env("BERTH_DATA_DIR", db.dir())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(dir.path());
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("1 stored, 0 unchanged, 1 unreadable, 3 advisories in the database"),
        "{out}"
    );
    assert!(err.contains("bad.json") && err.contains("missing field `id`"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, err) = run(empty.path());
    assert!(!ok && err.contains("no OSV documents"), "{err}");
    let (ok, _, err) = run(&dir.path().join("missing"));
    assert!(!ok && err.contains("missing"), "{err}");
}
