//! Registry housekeeping on both backends: garbage collection of abandoned uploads and
//! unreferenced blobs (after the grace period, never a blob a tag still needs), deletes that would
//! break another tag refused, and Quay's tag API.

use berth_app::gc::{GcPolicy, GcReport};
use berth_testkit::backend_test;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

use crate::support::{Auth, TestServer, expect};
use berth_testkit::registry::{OCI_INDEX, OCI_MANIFEST};

#[backend_test(s3)]
async fn gc_deletes_and_quay_tag_api(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    let reg = s.reg("root", "rootpassword");
    let repo = "acme/app";
    let (_, v1, layer_a) = reg.push_image(repo, "v1", b"layer a").await;
    let (_, v2, layer_b) = reg.push_image(repo, "v2", b"layer b, longer").await;
    let orphan = reg.push_blob(repo, b"never referenced").await;
    let r = reg.send(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).await;
    assert_eq!(r.status(), 202);
    let abandoned = r.headers()["location"].to_str().unwrap().to_owned();
    let r = reg
        .req(Method::PATCH, &abandoned)
        .body(b"abandoned bytes".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(s.upload_leftovers().await, 1, "the abandoned upload's bytes are stored");
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": v1, "size": 1}]}).to_string();
    assert_eq!(
        reg.push_manifest(repo, "multi", OCI_INDEX, index.as_bytes())
            .await
            .status(),
        201
    );

    // Quay's tag API: newest first, sizes, manifest lists, paging, one tag.
    let tags = expect(s.get("/api/v1/repository/acme/app/tag/", &root).await, 200);
    let names: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["multi", "v2", "v1"]);
    assert_eq!(
        (tags["page"].as_u64(), tags["has_additional"].as_bool()),
        (Some(1), Some(false))
    );
    let config_len = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.len();
    assert_eq!(tags["tags"][2]["size"], json!(config_len + b"layer a".len()));
    assert_eq!(tags["tags"][2]["manifest_digest"], v1.as_str());
    assert_eq!(
        (
            tags["tags"][0]["is_manifest_list"].as_bool(),
            tags["tags"][0]["size"].is_null()
        ),
        (Some(true), true)
    );
    let page = expect(
        s.get("/api/v1/repository/acme/app/tag/?limit=1&page=2", &root).await,
        200,
    );
    assert_eq!(
        (page["tags"][0]["name"].as_str(), page["has_additional"].as_bool()),
        (Some("v2"), Some(true))
    );
    let one = expect(
        s.get("/api/v1/repository/acme/app/tag/?specificTag=v1", &root).await,
        200,
    );
    assert_eq!(one["tags"].as_array().unwrap().len(), 1);
    let e = expect(s.get("/api/v1/repository/acme/app/tag/?limit=500", &root).await, 400);
    assert!(e["detail"].as_str().unwrap().contains("limit"), "{e}");
    expect(s.get("/api/v1/repository/acme/app/tag/", &Auth::None).await, 401);
    let repo_view = expect(s.get("/api/v1/repository/acme/app", &root).await, 200);
    assert_eq!(repo_view["tags"]["v1"]["manifest_digest"], v1.as_str());
    assert_eq!(repo_view["tags"].as_object().unwrap().len(), 3);

    // A manifest inside an index cannot be deleted: the index's tag would break.
    let r = reg.send(Method::DELETE, &format!("/v2/{repo}/manifests/{v1}")).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        reg.send(Method::DELETE, &format!("/v2/{repo}/manifests/{v2}"))
            .await
            .status(),
        202
    );

    // Within the grace period nothing goes; after it, the abandoned upload and the blobs that no
    // manifest references go, and everything v1 (and so "multi") needs stays.
    let policy = GcPolicy {
        upload_max_age: Duration::from_secs(86_400),
        blob_grace: Duration::from_secs(3600),
    };
    let now = chrono::Utc::now();
    assert_eq!(s.app.collect_garbage(policy, now).await.unwrap(), GcReport::default());
    let later = now + chrono::Duration::days(2);
    assert_eq!(
        s.app.collect_garbage(policy, later).await.unwrap(),
        GcReport {
            uploads: 1,
            blobs: 2,
            deliveries: 0,
            scan_records: 0,
            filedrops: 0
        }
    );
    assert_eq!(
        s.app.collect_garbage(policy, later).await.unwrap(),
        GcReport::default(),
        "idempotent"
    );
    for gone in [&layer_b, &orphan] {
        assert_eq!(
            reg.send(Method::HEAD, &format!("/v2/{repo}/blobs/{gone}"))
                .await
                .status(),
            404
        );
        assert!(!s.stored(gone).await, "the bytes of {gone} removed");
    }
    let r = reg.send(Method::GET, &format!("/v2/{repo}/blobs/{layer_a}")).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"layer a");
    assert_eq!(
        reg.send(Method::GET, &format!("/v2/{repo}/manifests/multi"))
            .await
            .status(),
        200
    );
    assert!(s.stored(&layer_a).await);
    assert_eq!(s.upload_leftovers().await, 0, "the abandoned upload's bytes removed");
    s.stop().await;
}

/// Garbage collection removes an old unreferenced blob while a client uploads the same bytes
/// again. The upload finds the bytes still stored; without the blob's lock it would record the
/// blob and GC would then remove the bytes under it. Here GC is held between the record and the
/// bytes while the upload runs: the upload waits for GC, stores the bytes again, and the blob
/// reads back.
#[backend_test(s3)]
async fn gc_and_an_upload_of_the_same_bytes_never_lose_them(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "app").await;
    let reg = s.reg("root", "rootpassword");
    let bytes = b"pushed, forgotten, pushed again".to_vec();
    let d = reg.push_blob("acme/app", &bytes).await;
    let policy = GcPolicy {
        upload_max_age: Duration::from_secs(86_400),
        blob_grace: Duration::from_secs(3600),
    };
    let later = chrono::Utc::now() + chrono::Duration::days(2);
    let hold = berth_app::failpoint::GC_HOLD_BEFORE_BLOB_BYTES;
    s.app.failpoints().set(hold, true);
    let app = s.app.clone();
    let gc = tokio::spawn(async move { app.collect_garbage(policy, later).await });
    berth_testkit::eventually(Duration::from_secs(30), || async {
        let mut c = s.app.store().conn().await.unwrap();
        match berth_store::registry::blob_size(&mut c, &d).await.unwrap() {
            None => Ok(()),
            Some(_) => Err("GC removed the blob's record".to_owned()),
        }
    })
    .await;
    assert!(s.stored(&d).await, "GC holds before the bytes");
    // The same bytes again, while GC holds; let the upload run as far as it can before GC goes on.
    let upload = {
        let (base, client, bytes) = (s.base.clone(), s.client.clone(), bytes.clone());
        tokio::spawn(async move {
            let reg = berth_testkit::registry::Reg {
                base: &base,
                client: &client,
                user: "root",
                pass: "rootpassword",
            };
            reg.push_blob("acme/app", &bytes).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.app.failpoints().set(hold, false);
    assert_eq!(gc.await.unwrap().unwrap().blobs, 1);
    assert_eq!(upload.await.unwrap(), d);
    let r = reg.send(Method::GET, &format!("/v2/acme/app/blobs/{d}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
    assert!(s.stored(&d).await);
    s.stop().await;
}
