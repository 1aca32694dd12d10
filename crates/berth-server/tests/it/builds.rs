//! Dockerfile builds end to end with the real executor (buildah), on both backends: a signed
//! GitHub push on a trigger's webhook builds a `FROM scratch` + `COPY` image from a local git
//! repository and notifications receive `build_queued`, `build_start`, `build_success` and
//! `repo_push` in that order with the spec's payloads, while a `ref-regex` that does not match
//! delivers nothing; an uploaded Dockerfile with a `RUN` step builds on an offline busybox base; a
//! broken Dockerfile fails with its error; a running build is cancelled and its builder killed.

use std::path::Path;
use std::time::Duration;

use berth_testkit::receiver::Receiver;
use berth_testkit::{backend_test, eventually};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

/// Bounds every wait on a build (buildah on two cores takes seconds, not minutes).
const WAIT: Duration = Duration::from_secs(240);

async fn build_server(kind: berth_testkit::DbKind) -> (TestServer, Auth) {
    let s = TestServer::start_with(kind, |c| {
        c.builds.enabled = true;
        c.notifications.blocked_hosts = Vec::new();
        c.notifications.deliver = true;
        c.notifications.retry_schedule_secs = vec![0];
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    (s, root)
}

async fn run(program: &str, args: &[&str], dir: &Path) -> String {
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("STORAGE_DRIVER", "vfs")
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program} is required (./scripts/test installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn notify(s: &TestServer, root: &Auth, event: &str, url: String, event_config: Value) -> String {
    let body = json!({"event": event, "method": "webhook", "config": {"url": url}, "eventConfig": event_config});
    let n = expect(
        s.post("/api/v1/repository/acme/web/notification/", root, body).await,
        201,
    );
    n["uuid"].as_str().unwrap().to_owned()
}

/// Polls a build until it reaches a final phase.
async fn finished(s: &TestServer, root: &Auth, uuid: &str) -> Value {
    eventually(WAIT, || async {
        let b = expect(
            s.get(&format!("/api/v1/repository/acme/web/build/{uuid}/status"), root)
                .await,
            200,
        );
        let phase = b["phase"].as_str().unwrap().to_owned();
        if ["complete", "error", "cancelled", "internalerror", "expired"].contains(&phase.as_str()) {
            Ok(b)
        } else {
            Err(format!("build {uuid} still {phase}"))
        }
    })
    .await
}

use crate::support::settled_deliveries as deliveries;

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2_resumable::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[backend_test]
async fn a_github_push_builds_and_notifies_in_order(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = build_server(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("src");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("Dockerfile"), "FROM scratch\nCOPY hello.txt /hello.txt\n").unwrap();
    std::fs::write(repo.join("hello.txt"), "built by berth\n").unwrap();
    run("git", &["init", "-q", "-b", "master"], &repo).await;
    run("git", &["add", "."], &repo).await;
    run(
        "git",
        &[
            "-c",
            "user.name=Alice",
            "-c",
            "user.email=a@example.com",
            "commit",
            "-qm",
            "First image",
        ],
        &repo,
    )
    .await;
    let sha = run("git", &["rev-parse", "HEAD"], &repo).await.trim().to_owned();

    let n_queued = notify(&s, &root, "build_queued", format!("{}/queued", rx.url), json!({})).await;
    let n_start = notify(&s, &root, "build_start", format!("{}/start", rx.url), json!({})).await;
    let n_success = notify(
        &s,
        &root,
        "build_success",
        format!("{}/success", rx.url),
        json!({"ref-regex": "refs/heads/.+"}),
    )
    .await;
    let n_push = notify(&s, &root, "repo_push", format!("{}/push", rx.url), json!({})).await;
    let n_release = notify(
        &s,
        &root,
        "build_success",
        format!("{}/release", rx.url),
        json!({"ref-regex": "refs/heads/release-.*"}),
    )
    .await;

    // A GitHub trigger on the local repository.
    let t = expect(
        s.post(
            "/api/v1/repository/acme/web/trigger/",
            &root,
            json!({"service": "github"}),
        )
        .await,
        201,
    );
    let trigger = t["id"].as_str().unwrap().to_owned();
    assert_eq!(t["is_active"], false);
    let source = format!("file://{}", repo.display());
    let t = expect(
        s.post(
            &format!("/api/v1/repository/acme/web/trigger/{trigger}/activate"),
            &root,
            json!({"config": {"build_source": source}}),
        )
        .await,
        200,
    );
    assert_eq!(t["is_active"], true);
    let secret = t["secret"].as_str().unwrap().to_owned();
    let hook = t["webhook_url"].as_str().unwrap().to_owned();
    assert_eq!(hook, format!("{}/webhooks/push/trigger/{trigger}", s.base));

    let push = json!({
        "ref": "refs/heads/master", "after": sha, "deleted": false,
        "repository": {"default_branch": "master", "clone_url": source, "ssh_url": "git@github.com:acme/web.git"},
        "head_commit": {"id": sha, "url": format!("https://github.com/acme/web/commit/{sha}"), "message": "First image",
                        "timestamp": "2026-11-27T01:00:00Z", "author": {"name": "Alice", "email": "a@example.com", "username": "alice"}},
        "sender": {"login": "alice", "avatar_url": "https://avatars.example/alice"}
    }).to_string();
    // A wrong signature builds nothing.
    let r = s
        .client
        .post(&hook)
        .header("x-github-event", "push")
        .header("x-hub-signature-256", sign("wrong", push.as_bytes()))
        .body(push.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s
        .client
        .post(&hook)
        .header("x-github-event", "push")
        .header("x-hub-signature-256", sign(&secret, push.as_bytes()))
        .body(push.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let build_id = r.json::<Value>().await.unwrap()["build_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let b = finished(&s, &root, &build_id).await;
    assert_eq!(b["phase"], "complete", "{b:#}");
    assert_eq!(b["tags"], json!(["master", "latest"]));
    assert_eq!(b["display_name"], &sha[..7]);
    assert_eq!(b["trigger"]["service"], "github");
    assert!(b["image_id"].as_str().unwrap().starts_with("sha256:"));
    let digests = b["manifest_digests"].as_array().unwrap().clone();
    assert_eq!(digests.len(), 2);

    // The image is in the registry under both tags.
    assert_eq!(
        s.reg("root", "rootpassword").tags("acme/web").await,
        ["latest", "master"] as [&str; 2]
    );

    // The four events, raised in order, with the spec's payloads.
    let queued = deliveries(&s, &n_queued).await;
    let start = deliveries(&s, &n_start).await;
    let success = deliveries(&s, &n_success).await;
    let pushed = deliveries(&s, &n_push).await;
    assert_eq!([queued.len(), start.len(), success.len(), pushed.len()], [1, 1, 1, 1]);
    assert!(
        queued[0].0 < start[0].0 && start[0].0 < success[0].0 && success[0].0 < pushed[0].0,
        "raised out of order"
    );
    for d in [&queued[0], &start[0], &success[0], &pushed[0]] {
        assert_eq!(d.1, "delivered");
    }
    let q = &queued[0].2;
    assert_eq!(q["build_id"], build_id.as_str());
    assert_eq!(
        q["homepage"],
        format!("http://{}/repository/acme/web/build/{build_id}", s.hostname)
    );
    assert_eq!(q["docker_tags"], json!(["master", "latest"]));
    assert_eq!(q["trigger_kind"], "github");
    assert_eq!(q["trigger_id"], trigger.as_str());
    assert_eq!(q["is_manual"], false);
    let meta = &q["trigger_metadata"];
    assert_eq!(meta["commit"], sha.as_str());
    assert_eq!(meta["ref"], "refs/heads/master");
    assert_eq!(meta["default_branch"], "master");
    assert_eq!(meta["commit_info"]["short_sha"], &sha[..7]);
    assert_eq!(meta["commit_info"]["author"]["username"], "alice");
    let ok = &success[0].2;
    assert_eq!(ok["build_name"], &sha[..7]);
    assert_eq!(ok["image_id"], b["image_id"]);
    assert_eq!(ok["manifest_digests"], json!(digests));
    assert!(ok.get("error_message").is_none());
    assert_eq!(pushed[0].2["updated_tags"], json!(["master", "latest"]));
    // The ref-regex that does not match: the event was filtered, nothing sent.
    let release = deliveries(&s, &n_release).await;
    assert_eq!(release.iter().map(|d| d.1.as_str()).collect::<Vec<_>>(), ["filtered"]);
    let mut paths = Vec::new();
    for _ in 0..4 {
        paths.push(rx.next(WAIT).await.expect("a delivery").path);
    }
    paths.sort();
    assert_eq!(paths, ["/push", "/queued", "/start", "/success"]);

    // The log, fetched incrementally.
    let logs = expect(
        s.get(&format!("/api/v1/repository/acme/web/build/{build_id}/logs"), &root)
            .await,
        200,
    );
    let total = logs["total"].as_i64().unwrap();
    let phases: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["type"] == "phase")
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["pulling", "building", "pushing", "complete"]);
    assert!(
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["type"] == "command" && l["message"].as_str().unwrap().starts_with("buildah bud"))
    );
    let rest = expect(
        s.get(
            &format!("/api/v1/repository/acme/web/build/{build_id}/logs?start={total}"),
            &root,
        )
        .await,
        200,
    );
    assert_eq!(rest["logs"], json!([]));
    assert_eq!(rest["total"], total);

    // Started by hand: the branch's head, resolved with git ls-remote.
    let manual = expect(
        s.post(
            &format!("/api/v1/repository/acme/web/trigger/{trigger}/start"),
            &root,
            json!({"refs": {"kind": "branch", "name": "master"}}),
        )
        .await,
        201,
    );
    assert_eq!(manual["manual_user"], "root");
    assert_eq!(manual["trigger_metadata"]["commit"], sha.as_str());
    let manual = finished(&s, &root, manual["id"].as_str().unwrap()).await;
    assert_eq!(manual["phase"], "complete", "{manual:#}");
    let e = expect(
        s.post(
            &format!("/api/v1/repository/acme/web/trigger/{trigger}/start"),
            &root,
            json!({"branch_name": "nope"}),
        )
        .await,
        400,
    );
    assert!(
        e["detail"].as_str().unwrap().contains("refs/heads/nope does not exist"),
        "{e}"
    );

    // A branch that the trigger's branchtag_regex excludes builds nothing.
    expect(
        s.post(
            &format!("/api/v1/repository/acme/web/trigger/{trigger}/activate"),
            &root,
            json!({"config": {"build_source": source, "branchtag_regex": "tags/.+"}}),
        )
        .await,
        200,
    );
    let r = s
        .client
        .post(&hook)
        .header("x-github-event", "push")
        .header("x-hub-signature-256", sign(&secret, push.as_bytes()))
        .body(push)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.json::<Value>().await.unwrap()["skipped"]
            .as_str()
            .unwrap()
            .contains("branchtag_regex")
    );
    let list = expect(s.get("/api/v1/repository/acme/web/build/?limit=10", &root).await, 200);
    let ids: Vec<&str> = list["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [manual["id"].as_str().unwrap(), build_id.as_str()], "newest first");
    s.stop().await;
}

/// Makes `base/busybox:1` (public) in the server: busybox-static copied into a scratch image,
/// its applets installed by running it, as real-peers.md describes.
async fn busybox_base(s: &TestServer, root: &Auth, dir: &Path) {
    expect(
        s.post("/api/v1/organization/", root, json!({"name": "base"})).await,
        201,
    );
    expect(
        s.post(
            "/api/v1/repository",
            root,
            json!({"namespace": "base", "repository": "busybox", "visibility": "public"}),
        )
        .await,
        201,
    );
    let store = ["--root", "store/root", "--runroot", "store/run"];
    let with = |args: &[&str]| -> Vec<String> { store.iter().chain(args).map(|a| (*a).to_owned()).collect() };
    let c = run(
        "buildah",
        &with(&["from", "scratch"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        dir,
    )
    .await;
    let c = c.trim();
    for args in [
        vec!["copy", c, "/bin/busybox", "/bin/busybox"],
        vec![
            "run",
            "--isolation",
            "chroot",
            c,
            "/bin/busybox",
            "--install",
            "-s",
            "/bin",
        ],
        vec!["commit", "-q", c, "localhost/busybox:1"],
    ] {
        run(
            "buildah",
            &with(&args).iter().map(String::as_str).collect::<Vec<_>>(),
            dir,
        )
        .await;
    }
    let dest = format!("docker://{}/base/busybox:1", s.hostname);
    run(
        "buildah",
        &with(&[
            "push",
            "--tls-verify=false",
            "--creds",
            "root:rootpassword",
            "localhost/busybox:1",
            &dest,
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
        dir,
    )
    .await;
}

/// Uploads a Dockerfile through the filedrop and starts a build of it.
async fn upload_build(s: &TestServer, root: &Auth, dockerfile: &str, tags: Value) -> String {
    let drop = expect(
        s.post("/api/v1/filedrop/", root, json!({"mimeType": "text/plain"}))
            .await,
        200,
    );
    let url = drop["url"].as_str().unwrap();
    let r = s.client.put(url).body(dockerfile.to_owned()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let context = berth_testkit::registry::digest(dockerfile.as_bytes());
    assert!(s.stored(&context).await, "the context is in the blob store");
    let b = expect(
        s.post(
            "/api/v1/repository/acme/web/build/",
            root,
            json!({"file_id": drop["file_id"], "docker_tags": tags}),
        )
        .await,
        201,
    );
    assert_eq!(b["manual_user"], "root");
    b["id"].as_str().unwrap().to_owned()
}

#[backend_test(s3)]
async fn uploads_run_steps_failures_and_cancels(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let (s, root) = build_server(kind).await;
    let n_failure = notify(&s, &root, "build_failure", format!("{}/failure", rx.url), json!({})).await;
    let n_cancelled = notify(&s, &root, "build_cancelled", format!("{}/cancelled", rx.url), json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    busybox_base(&s, &root, dir.path()).await;
    let host = s.hostname.clone();

    // A RUN step on the offline busybox base.
    let id = upload_build(
        &s,
        &root,
        &format!("FROM {host}/base/busybox:1\nRUN echo built > /built.txt\n"),
        json!(["run"]),
    )
    .await;
    let b = finished(&s, &root, &id).await;
    assert_eq!(b["phase"], "complete", "{b:#}");
    assert_eq!(b["tags"], json!(["run"]));

    // A broken Dockerfile: a build error with the builder's message, not retried.
    let id = upload_build(&s, &root, "FROM scratch\nCOPY missing.txt /missing.txt\n", json!([])).await;
    let b = finished(&s, &root, &id).await;
    assert_eq!(b["phase"], "error", "{b:#}");
    let error = b["error"].as_str().unwrap().to_owned();
    assert!(error.contains("buildah exited with status"), "{error}");
    let failure = deliveries(&s, &n_failure).await;
    assert_eq!(failure.len(), 1);
    assert_eq!(failure[0].2["error_message"], error.as_str());
    assert_eq!(failure[0].2["docker_tags"], json!(["latest"]));
    let logs = expect(
        s.get(&format!("/api/v1/repository/acme/web/build/{id}/logs"), &root)
            .await,
        200,
    );
    assert!(
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["type"] == "error" && l["message"] == error.as_str())
    );

    // A running build is cancelled: its builder and the RUN process are killed.
    // A sleep no other test runs (tests run side by side), so pgrep finds only ours.
    let nap = format!("sleep {}", 100_000 + std::process::id());
    let id = upload_build(
        &s,
        &root,
        &format!("FROM {host}/base/busybox:1\nRUN {nap}\n"),
        json!(["slow"]),
    )
    .await;
    eventually(WAIT, || async {
        let logs = expect(
            s.get(&format!("/api/v1/repository/acme/web/build/{id}/logs"), &root)
                .await,
            200,
        );
        let started = logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"].as_str().unwrap_or("").contains(&nap));
        if started {
            Ok(())
        } else {
            Err("the RUN step started".to_owned())
        }
    })
    .await;
    let c = expect(
        s.delete(&format!("/api/v1/repository/acme/web/build/{id}"), &root)
            .await,
        201,
    );
    assert!(["building", "cancelled"].contains(&c["phase"].as_str().unwrap()), "{c}");
    let b = finished(&s, &root, &id).await;
    assert_eq!(b["phase"], "cancelled");
    let cancelled = deliveries(&s, &n_cancelled).await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].2["build_id"], id.as_str());
    let left = tokio::process::Command::new("pgrep")
        .args(["-f", &nap])
        .output()
        .await
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "the RUN process survived: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    // A finished build cannot be cancelled.
    let e = expect(
        s.delete(&format!("/api/v1/repository/acme/web/build/{id}"), &root)
            .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("cannot be cancelled"), "{e}");
    s.stop().await;
}

#[backend_test]
async fn build_requests_are_checked(kind: berth_testkit::DbKind) {
    let (s, root) = build_server(kind).await;
    let reader = s.user(&root, "reader").await;
    expect(
        s.put(
            "/api/v1/repository/acme/web/permissions/user/reader",
            &root,
            json!({"role": "read"}),
        )
        .await,
        200,
    );
    let start = |body: Value| s.post("/api/v1/repository/acme/web/build/", &root, body);
    for (body, why) in [
        (json!({}), "file_id or an archive_url"),
        (json!({"file_id": "nope"}), "unknown file_id"),
        (json!({"file_id": "a", "archive_url": "http://x/y.tar"}), "not both"),
        (json!({"archive_url": "ftp://example.com/c.tar"}), "http or https"),
        (json!({"archive_url": "http://10.0.0.1/c.tar"}), "not a public address"),
        (
            json!({"archive_url": "https://example.com/c.tar", "docker_tags": ["bad tag"]}),
            "docker_tags",
        ),
        (
            json!({"archive_url": "https://example.com/c.tar", "dockerfile_path": "../../etc/passwd"}),
            "leaves the build context",
        ),
        (
            json!({"archive_url": "https://example.com/c.tar", "pull_robot": "acme+bot"}),
            "pull_robot",
        ),
    ] {
        let e = expect(start(body.clone()).await, 400);
        assert!(e["detail"].as_str().unwrap().contains(why), "{body}: {e}");
    }
    let (status, _) = s
        .post(
            "/api/v1/repository/acme/web/build/",
            &reader,
            json!({"archive_url": "https://example.com/c.tar"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = s.get("/api/v1/repository/acme/web/build/", &reader).await;
    assert_eq!(status, 200);
    let (status, _) = s.get("/api/v1/repository/acme/web/trigger/", &reader).await;
    assert_eq!(status, 403);
    let e = expect(
        s.post(
            "/api/v1/repository/acme/web/trigger/",
            &root,
            json!({"service": "bitbucket"}),
        )
        .await,
        400,
    );
    assert!(
        e["detail"].as_str().unwrap().contains("custom-git, github, gitlab"),
        "{e}"
    );
    let t = expect(
        s.post(
            "/api/v1/repository/acme/web/trigger/",
            &root,
            json!({"service": "custom-git"}),
        )
        .await,
        201,
    );
    let uuid = t["id"].as_str().unwrap();
    let e = expect(
        s.post(
            &format!("/api/v1/repository/acme/web/trigger/{uuid}/activate"),
            &root,
            json!({"config": {"branchtag_regex": "(("}}),
        )
        .await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("build_source"), "{e}");
    // The custom trigger's webhook: its secret as the Basic password or ?token=.
    let hook = t["webhook_url"].as_str().unwrap();
    let r = s.client.post(hook).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let secret = t["secret"].as_str().unwrap();
    let r = s
        .client
        .post(format!("{hook}?token={secret}"))
        .body(r#"{"commit": "xyz"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .client
        .post(format!("{hook}?token={secret}"))
        .body(r#"{"commit": "abcdef1", "ref": "refs/heads/x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "an inactive trigger acknowledges and builds nothing");
    expect(
        s.delete(&format!("/api/v1/repository/acme/web/trigger/{uuid}"), &root)
            .await,
        204,
    );
    // GitLab: the X-Gitlab-Token must be the secret. A source that cannot be cloned is a build
    // error with git's message.
    let t = expect(
        s.post(
            "/api/v1/repository/acme/web/trigger/",
            &root,
            json!({"service": "gitlab"}),
        )
        .await,
        201,
    );
    let uuid = t["id"].as_str().unwrap();
    expect(
        s.post(
            &format!("/api/v1/repository/acme/web/trigger/{uuid}/activate"),
            &root,
            json!({"config": {"build_source": "file:///nonexistent/berth-repo"}}),
        )
        .await,
        200,
    );
    let hook = t["webhook_url"].as_str().unwrap();
    let push = json!({"object_kind": "push", "ref": "refs/heads/main", "checkout_sha": "0123456789abcdef0123456789abcdef01234567",
                      "project": {"default_branch": "main", "web_url": "https://gitlab.example/acme/web"}, "commits": []}).to_string();
    let r = s
        .client
        .post(hook)
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", "wrong")
        .body(push.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .client
        .post(hook)
        .header("x-gitlab-event", "Push Hook")
        .header("x-gitlab-token", t["secret"].as_str().unwrap())
        .body(push)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["build_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = finished(&s, &root, &id).await;
    assert_eq!(b["phase"], "error");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("git clone of file:///nonexistent/berth-repo failed"),
        "{b}"
    );
    assert_eq!(b["tags"], json!(["main", "latest"]));
    // An upload URL works once, with its token.
    let drop = expect(
        s.post("/api/v1/filedrop/", &root, json!({"mimeType": "text/plain"}))
            .await,
        200,
    );
    let url = drop["url"].as_str().unwrap();
    let wrong = url.replace("token=", "token=x");
    assert_eq!(
        s.client.put(&wrong).body("FROM scratch").send().await.unwrap().status(),
        404
    );
    assert_eq!(
        s.client.put(url).body("FROM scratch").send().await.unwrap().status(),
        200
    );
    assert_eq!(
        s.client.put(url).body("FROM scratch").send().await.unwrap().status(),
        404
    );
    s.stop().await;

    // Builds off: the API says so.
    let off = TestServer::start(kind).await;
    let root = off.init_root().await;
    off.org_with_repo(&root, "acme", "web").await;
    let e = expect(
        off.post(
            "/api/v1/repository/acme/web/build/",
            &root,
            json!({"archive_url": "https://example.com/c.tar"}),
        )
        .await,
        503,
    );
    assert!(e["detail"].as_str().unwrap().contains("builds.enabled"), "{e}");
    off.stop().await;
}

#[tokio::test]
async fn enabling_builds_without_a_builder_stops_start_up() {
    let db = berth_testkit::TestDb::new(berth_testkit::DbKind::Sqlite).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = berth_server::config::Config {
        data_dir: db.dir().to_path_buf(),
        database_url: Some(db.url.clone()),
        ..berth_server::config::Config::default()
    };
    config.builds.enabled = true;
    config.builds.build_command[0] = "no-such-builder-berth".into();
    let Err(e) = berth_server::startup::Application::build_on(&config, listener).await else {
        panic!("start-up should fail");
    };
    let e = format!("{e:#}");
    assert!(
        e.contains("'no-such-builder-berth'") && e.contains("builds.enabled = false"),
        "{e}"
    );
}

/// A tar context (Dockerfile and a file), gzipped, as a client uploads it.
fn context_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in [
        ("Dockerfile", "FROM scratch\nCOPY greeting.txt /greeting.txt\n"),
        ("greeting.txt", "hello\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[backend_test]
async fn podman_builds_and_infrastructure_failures_are_retried(kind: berth_testkit::DbKind) {
    // The builder is configurable: podman instead of buildah.
    let s = TestServer::start_with(kind, |c| {
        c.builds.enabled = true;
        for list in [&mut c.builds.build_command, &mut c.builds.push_command] {
            list[0] = "podman".into();
        }
        c.builds.build_command[1] = "build".into();
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let drop = expect(
        s.post("/api/v1/filedrop/", &root, json!({"mimeType": "application/x-tar"}))
            .await,
        200,
    );
    let r = s
        .client
        .put(drop["url"].as_str().unwrap())
        .body(context_tar())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b = expect(
        s.post(
            "/api/v1/repository/acme/web/build/",
            &root,
            json!({"file_id": drop["file_id"], "docker_tags": ["podman"]}),
        )
        .await,
        201,
    );
    let b = finished(&s, &root, b["id"].as_str().unwrap()).await;
    assert_eq!(b["phase"], "complete", "{b:#}");
    let logs = expect(
        s.get(
            &format!("/api/v1/repository/acme/web/build/{}/logs", b["id"].as_str().unwrap()),
            &root,
        )
        .await,
        200,
    );
    assert!(
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"].as_str().unwrap().starts_with("podman build"))
    );
    s.stop().await;

    // The same context from an archive URL (on loopback, which this server allows).
    let s = TestServer::start_with(kind, |c| {
        c.builds.enabled = true;
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let url = crate::support::serve_bytes(context_tar(), "/context.tar.gz").await;
    let b = expect(
        s.post(
            "/api/v1/repository/acme/web/build/",
            &root,
            json!({"archive_url": url, "docker_tags": ["archived"]}),
        )
        .await,
        201,
    );
    assert_eq!(b["archive_url"], url.as_str());
    let b = finished(&s, &root, b["id"].as_str().unwrap()).await;
    assert_eq!(b["phase"], "complete", "{b:#}");
    s.stop().await;

    // A builder that outlives builds.timeout_secs is killed and the build expires.
    let s = TestServer::start_with(kind, |c| {
        c.builds.enabled = true;
        c.builds.timeout_secs = 1;
        c.builds.build_command = vec!["sleep".into(), "30".into()];
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let id = upload_build(&s, &root, "FROM scratch\n", json!([])).await;
    let b = finished(&s, &root, &id).await;
    assert_eq!(b["phase"], "expired", "{b:#}");
    assert!(b["error"].as_str().unwrap().contains("builds.timeout_secs"), "{b}");
    s.stop().await;

    // A push that keeps failing is infrastructure trouble: tried `tries` times, then internalerror.
    let rx = Receiver::start().await;
    let s = TestServer::start_with(kind, |c| {
        c.builds.enabled = true;
        c.builds.tries = 2;
        c.builds.retry_delay_secs = 0;
        c.builds.push_command = vec!["sh".into(), "-c".into(), "echo registry unavailable >&2; exit 3".into()];
        c.notifications.blocked_hosts = Vec::new();
        c.notifications.deliver = true;
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let n_failure = notify(&s, &root, "build_failure", format!("{}/failure", rx.url), json!({})).await;
    let id = upload_build(&s, &root, "FROM scratch\n", json!([])).await;
    let b = finished(&s, &root, &id).await;
    assert_eq!(b["phase"], "internalerror", "{b:#}");
    assert!(b["error"].as_str().unwrap().contains("registry unavailable"), "{b}");
    let logs = expect(
        s.get(&format!("/api/v1/repository/acme/web/build/{id}/logs"), &root)
            .await,
        200,
    );
    let starts = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["type"] == "phase" && l["message"] == "building")
        .count();
    assert_eq!(starts, 2, "two tries");
    let failures = deliveries(&s, &n_failure).await;
    assert_eq!(failures.len(), 1, "build_failure only when no try is left");
    assert!(
        failures[0].2["error_message"]
            .as_str()
            .unwrap()
            .starts_with("internal error")
    );
    s.stop().await;
}

#[backend_test]
async fn a_build_credential_writes_only_its_repository_while_it_runs(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| c.builds.enabled = true).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "acme", "repository": "other", "visibility": "private"}),
        )
        .await,
        201,
    );
    // A build row with a credential, as the executor gives one while the build runs.
    let repo = {
        let mut c = s.app.store().conn().await.unwrap();
        berth_store::repos::by_path(&mut c, "acme", "web")
            .await
            .unwrap()
            .unwrap()
    };
    let token = "build-credential-for-this-test";
    let mut tx = s.app.store().begin().await.unwrap();
    let empty = json!({});
    let build = berth_store::builds::insert(
        &mut tx,
        &berth_store::builds::NewBuild {
            uuid: "b-cred",
            repo: repo.id,
            display_name: "x",
            docker_tags: &["v1".to_owned()],
            source: &berth_core::BuildSource::Upload {
                file_id: "never-uploaded".into(),
            },
            dockerfile_path: "Dockerfile",
            context: "",
            trigger_id: None,
            trigger_metadata: &empty,
            manual_user: None,
            performer_id: Some(1),
        },
    )
    .await
    .unwrap();
    let hash = berth_app::secret::token_hash(token);
    berth_store::builds::set_credential(
        &mut tx,
        build.id,
        Some(&hash),
        Some(chrono::Utc::now() + chrono::Duration::minutes(5)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let cred = Auth::Basic("$build".into(), token.into());
    // The registry grants push on the build's repository only; other private repositories are
    // hidden, as from an outsider.
    let grant = |scope: &str| {
        let url = format!("{}/v2/auth?service={}&scope={scope}", s.base, s.hostname);
        let req = s.client.get(url).basic_auth("$build", Some(token));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let own = grant("repository:acme/web:pull,push").await;
    let other = grant("repository:acme/other:pull,push").await;
    let decode = |t: &Value| -> Value {
        let payload = t["token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
        serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode(&own)["access"][0]["actions"], json!(["pull", "push"]));
    assert_eq!(decode(&other)["access"][0]["actions"], json!([]));
    let (status, _) = s.get("/api/v1/repository/acme/other", &cred).await;
    assert_eq!(status, 404);
    let (status, _) = s.get("/api/v1/user/", &cred).await;
    assert_eq!(status, 403, "no user scope");
    let (status, _) = s
        .post(
            "/api/v1/repository",
            &cred,
            json!({"namespace": "acme", "repository": "new", "visibility": "private"}),
        )
        .await;
    assert_eq!(status, 403, "cannot create repositories");
    // Revoked when the build ends.
    let mut tx = s.app.store().begin().await.unwrap();
    berth_store::builds::set_credential(&mut tx, build.id, None, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (status, _) = s.get("/api/v1/repository/acme/web", &cred).await;
    assert_eq!(status, 401);
    s.stop().await;
}
