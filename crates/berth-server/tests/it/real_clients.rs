//! Real registry clients against a real server, on both backends: skopeo (OCI and Docker schema 2,
//! both directions, cross-repository copies, tags, deletes), umoci to build the image, buildah for a
//! multi-arch index and a plain push, and podman with robot credentials. `scripts/test` installs the
//! tools from Debian; a missing tool fails the test rather than skipping it.

use std::path::Path;

use berth_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, expect};

/// Runs a tool; returns (success, stdout, stderr).
async fn run(program: &str, args: &[&str], dir: &Path) -> (bool, String, String) {
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        // Isolated container storage per test, on the driver that works everywhere.
        .env("STORAGE_DRIVER", "vfs")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} is required (./scripts/test installs it): {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) async fn ok(program: &str, args: &[&str], dir: &Path) -> String {
    let (success, out, err) = run(program, args, dir).await;
    assert!(success, "{program} {args:?} failed:\n{out}\n{err}");
    out
}

/// Runs buildah or podman on the test's own container storage.
async fn ok_stored(program: &str, args: &[&str], dir: &Path) -> String {
    let mut all = vec!["--root", "store/root", "--runroot", "store/run"];
    all.extend_from_slice(args);
    ok(program, &all, dir).await
}

/// Like [`ok_stored`], but only reports whether it succeeded.
async fn succeeds_stored(program: &str, args: &[&str], dir: &Path) -> bool {
    let mut all = vec!["--root", "store/root", "--runroot", "store/run"];
    all.extend_from_slice(args);
    run(program, &all, dir).await.0
}

/// The digest of the manifest a local OCI layout tags `v1`.
fn layout_digest(layout: &Path) -> String {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

#[backend_test(s3)]
async fn skopeo_umoci_buildah_and_podman(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let host = s.hostname.clone();
    let creds = "root:rootpassword";
    let tls = "--tls-verify=false";
    let (dest_tls, src_tls) = ("--dest-tls-verify=false", "--src-tls-verify=false");

    // An OCI image with one file, built offline by umoci.
    ok("umoci", &["init", "--layout", "L"], d).await;
    ok("umoci", &["new", "--image", "L:v1"], d).await;
    ok("umoci", &["unpack", "--rootless", "--image", "L:v1", "bundle"], d).await;
    std::fs::write(d.join("bundle/rootfs/hello.txt"), "hello from berth\n").unwrap();
    ok("umoci", &["repack", "--image", "L:v1", "bundle"], d).await;
    let original = layout_digest(&d.join("L"));

    // Push and pull back: the same manifest digest, so the same bytes.
    let img = format!("docker://{host}/acme/img:v1");
    ok(
        "skopeo",
        &["copy", dest_tls, "--dest-creds", creds, "oci:L:v1", &img],
        d,
    )
    .await;
    ok("skopeo", &["copy", src_tls, "--src-creds", creds, &img, "oci:P:v1"], d).await;
    assert_eq!(layout_digest(&d.join("P")), original);

    // Docker schema 2.
    let v2 = format!("docker://{host}/acme/v2s2:v1");
    ok(
        "skopeo",
        &[
            "copy",
            "--format",
            "v2s2",
            dest_tls,
            "--dest-creds",
            creds,
            "oci:L:v1",
            &v2,
        ],
        d,
    )
    .await;
    let raw: Value =
        serde_json::from_str(&ok("skopeo", &["inspect", "--raw", tls, "--creds", creds, &v2], d).await).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    ok("skopeo", &["copy", src_tls, "--src-creds", creds, &v2, "oci:P2:v1"], d).await;

    // Registry to registry (blob mounts), tags, delete.
    let copy = format!("docker://{host}/acme/copy:v2");
    ok(
        "skopeo",
        &[
            "copy",
            src_tls,
            dest_tls,
            "--src-creds",
            creds,
            "--dest-creds",
            creds,
            &img,
            &copy,
        ],
        d,
    )
    .await;
    let a: Value = serde_json::from_str(&ok("skopeo", &["inspect", tls, "--creds", creds, &img], d).await).unwrap();
    let b: Value = serde_json::from_str(&ok("skopeo", &["inspect", tls, "--creds", creds, &copy], d).await).unwrap();
    assert_eq!(a["Digest"], b["Digest"]);
    let tags: Value = serde_json::from_str(
        &ok(
            "skopeo",
            &[
                "list-tags",
                tls,
                "--creds",
                creds,
                &format!("docker://{host}/acme/copy"),
            ],
            d,
        )
        .await,
    )
    .unwrap();
    assert_eq!(tags["Tags"], json!(["v2"]));
    ok("skopeo", &["delete", tls, "--creds", creds, &copy], d).await;
    assert!(!run("skopeo", &["inspect", tls, "--creds", creds, &copy], d).await.0);

    // Anonymous: refused on the private repository, allowed once it is public.
    assert!(!run("skopeo", &["inspect", tls, &img], d).await.0);
    expect(
        s.post(
            "/api/v1/repository/acme/img/changevisibility",
            &root,
            json!({"visibility": "public"}),
        )
        .await,
        200,
    );
    ok("skopeo", &["inspect", tls, &img], d).await;

    // buildah: a multi-arch index, and a plain push.
    for arch in ["amd64", "arm64"] {
        std::fs::write(d.join(format!("f-{arch}")), arch).unwrap();
        let c = ok_stored("buildah", &["from", "scratch"], d).await;
        let c = c.trim();
        ok_stored("buildah", &["copy", c, &format!("f-{arch}"), "/arch"], d).await;
        ok_stored("buildah", &["config", "--arch", arch, c], d).await;
        let name = format!("localhost/img-{arch}:v1");
        ok_stored("buildah", &["commit", "-q", c, &name], d).await;
    }
    ok_stored("buildah", &["manifest", "create", "localhost/multi:v1"], d).await;
    for arch in ["amd64", "arm64"] {
        let src = format!("containers-storage:localhost/img-{arch}:v1");
        ok_stored(
            "buildah",
            &["manifest", "add", "--arch", arch, "localhost/multi:v1", &src],
            d,
        )
        .await;
    }
    let multi = format!("docker://{host}/acme/multi:v1");
    ok_stored(
        "buildah",
        &[
            "manifest",
            "push",
            "--all",
            tls,
            "--creds",
            creds,
            "localhost/multi:v1",
            &multi,
        ],
        d,
    )
    .await;
    let index: Value =
        serde_json::from_str(&ok("skopeo", &["inspect", "--raw", tls, "--creds", creds, &multi], d).await).unwrap();
    let arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);
    ok(
        "skopeo",
        &[
            "copy",
            "--override-arch",
            "arm64",
            src_tls,
            "--src-creds",
            creds,
            &multi,
            "oci:A:v1",
        ],
        d,
    )
    .await;
    ok_stored(
        "buildah",
        &[
            "push",
            tls,
            "--creds",
            creds,
            "localhost/img-amd64:v1",
            &format!("docker://{host}/acme/bp:v1"),
        ],
        d,
    )
    .await;

    // podman with robot credentials: write pushes, read cannot.
    let rw = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/rw", &root, None)
            .await,
        201,
    );
    let ro = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/ro", &root, None)
            .await,
        201,
    );
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "acme", "repository": "robots", "visibility": "private"}),
        )
        .await,
        201,
    );
    expect(
        s.put(
            "/api/v1/repository/acme/robots/permissions/user/acme+rw",
            &root,
            json!({"role": "write"}),
        )
        .await,
        200,
    );
    expect(
        s.put(
            "/api/v1/repository/acme/robots/permissions/user/acme+ro",
            &root,
            json!({"role": "read"}),
        )
        .await,
        200,
    );
    let target = format!("{host}/acme/robots:v1");
    ok_stored("podman", &["tag", "localhost/img-amd64:v1", &target], d).await;
    let rw_creds = format!("acme+rw:{}", rw["token"].as_str().unwrap());
    let ro_creds = format!("acme+ro:{}", ro["token"].as_str().unwrap());
    assert!(
        !succeeds_stored("podman", &["push", tls, "--creds", &ro_creds, &target], d).await,
        "a read-only robot cannot push"
    );
    ok_stored("podman", &["push", tls, "--creds", &rw_creds, &target], d).await;
    ok_stored("podman", &["pull", tls, "--creds", &ro_creds, &target], d).await;
    s.stop().await;
}
