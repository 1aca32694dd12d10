//! The scenarios of the OCI distribution spec's conformance suite, driven over HTTP against a real
//! server on both backends: pull, push (monolithic and chunked), content discovery (tag paging,
//! referrers, catalog), content management (deletes) and the error paths, checking that malformed
//! input stores nothing.

use berth_blob::UploadHasher;
use berth_core::DigestAlgorithm;
use berth_testkit::backend_test;
use berth_testkit::registry::{OCI_INDEX, OCI_MANIFEST, digest};
use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use crate::support::{Auth, TestServer, expect};

fn sha512(bytes: &[u8]) -> String {
    let mut h = UploadHasher::new(DigestAlgorithm::Sha512);
    h.update(bytes);
    h.finish().to_string()
}

async fn error_code(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    (status, body["errors"][0]["code"].as_str().unwrap_or("").to_owned())
}

async fn setup(s: &TestServer) -> Auth {
    let root = s.init_root().await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    root
}

#[backend_test(s3)]
async fn push_and_pull_monolithic_and_chunked(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    setup(&s).await;
    let reg = s.reg("root", "rootpassword");
    let repo = "acme/team/app";

    // Chunked: POST, two PATCHes, status, PUT with a final chunk.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let d = digest(&data);
    let r = reg.send(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).await;
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(r.headers().contains_key("docker-upload-uuid"));
    let r = reg
        .req(Method::PATCH, &loc)
        .header("content-range", "0-99999")
        .body(data[..100_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status(), r.headers()["range"].to_str().unwrap()),
        (StatusCode::ACCEPTED, "0-99999")
    );
    // Out of order: 416 with the current range; nothing changes.
    let r = reg
        .req(Method::PATCH, &loc)
        .header("content-range", "5-10")
        .body(vec![0u8; 6])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status(), r.headers()["range"].to_str().unwrap()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "0-99999")
    );
    let r = reg
        .req(Method::PATCH, &loc)
        .header("content-range", "100000-199999")
        .body(data[100_000..200_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = reg.send(Method::GET, &loc).await;
    assert_eq!(
        (r.status(), r.headers()["range"].to_str().unwrap()),
        (StatusCode::NO_CONTENT, "0-199999")
    );
    let r = reg
        .req(Method::PUT, &format!("{loc}?digest={d}"))
        .body(data[200_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // Pull it back, whole and by range.
    let r = reg.send(Method::HEAD, &format!("/v2/{repo}/blobs/{d}")).await;
    assert_eq!(
        (r.status(), r.headers()["content-length"].to_str().unwrap()),
        (StatusCode::OK, "300000")
    );
    let r = reg.send(Method::GET, &format!("/v2/{repo}/blobs/{d}")).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/300000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[10..20]);

    // POST then PUT with the whole body (monolithic in two steps), with a sha512 digest.
    let small = b"sha512 content".to_vec();
    let d512 = sha512(&small);
    let r = reg.send(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).await;
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let r = reg
        .req(Method::PUT, &format!("{loc}?digest={d512}"))
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = reg.send(Method::GET, &format!("/v2/{repo}/blobs/{d512}")).await;
    assert_eq!(r.bytes().await.unwrap().as_ref(), small.as_slice());

    // Cancelling an upload: its session is gone and nothing became visible.
    let r = reg.send(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).await;
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let partial = b"cancelled bytes".to_vec();
    assert_eq!(
        reg.req(Method::PATCH, &loc)
            .body(partial.clone())
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(reg.send(Method::DELETE, &loc).await.status(), 204);
    assert_eq!(
        error_code(reg.send(Method::GET, &loc).await).await,
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN".into())
    );
    let r = reg
        .req(Method::PUT, &format!("{loc}?digest={}", digest(&partial)))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN".into())
    );
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/{repo}/blobs/{}", digest(&partial)))
            .await
            .status(),
        404
    );

    // A manifest by tag, pulled back byte for byte, by tag and by digest.
    let (bytes, md, _) = reg.push_image(repo, "v1", b"layer one").await;
    for reference in ["v1", md.as_str()] {
        let r = reg
            .req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["docker-content-digest"], md.as_str());
        assert_eq!(r.headers()["content-type"], OCI_MANIFEST);
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
    let r = reg.send(Method::HEAD, &format!("/v2/{repo}/manifests/v1")).await;
    assert_eq!(
        (r.status(), r.headers()["content-length"].to_str().unwrap()),
        (StatusCode::OK, bytes.len().to_string().as_str())
    );
    assert_eq!(r.headers()["docker-distribution-api-version"], "registry/2.0");
    // Content negotiation: a client that accepts only another type is told the manifest is unknown.
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/manifests/v1"))
        .header("accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into()));

    // The first push created the repository (private) and was audited.
    let repo_api = expect(
        s.get(
            "/api/v1/repository/acme/team%2Fapp",
            &Auth::Basic("root".into(), "rootpassword".into()),
        )
        .await,
        200,
    );
    assert_eq!(repo_api["is_public"], false);
    s.stop().await;
}

#[backend_test(s3)]
async fn malformed_input_gets_the_spec_error_and_stores_nothing(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    setup(&s).await;
    let reg = s.reg("root", "rootpassword");
    let repo = "acme/app";
    let good = reg.push_blob(repo, b"good").await;

    // Wrong digest: DIGEST_INVALID, and the blob is not there.
    let wrong = digest(b"something else");
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={wrong}"))
        .body(b"content".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/{repo}/blobs/{wrong}"))
            .await
            .status(),
        404
    );
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/{repo}/blobs/{}", digest(b"content")))
            .await
            .status(),
        404
    );
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest=sha256:xyz"))
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));

    // Unknown upload, unknown blob, invalid name.
    let r = reg
        .send(
            Method::GET,
            &format!("/v2/{repo}/blobs/uploads/00000000-0000-0000-0000-000000000000"),
        )
        .await;
    assert_eq!(
        error_code(r).await,
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN".into())
    );
    let r = reg
        .send(Method::GET, &format!("/v2/{repo}/blobs/{}", digest(b"nope")))
        .await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into()));
    let r = reg.send(Method::GET, "/v2/acme/Bad_Name/tags/list").await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "NAME_INVALID".into()));
    let r = reg
        .req(Method::PATCH, &format!("/v2/{repo}/blobs/uploads/x"))
        .header("content-range", "banana")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);

    // A method an area does not serve: 405, naming the method and the area.
    for (method, path, area) in [
        (Method::PUT, format!("/v2/{repo}/blobs/{good}"), "blobs"),
        (Method::POST, format!("/v2/{repo}/tags/list"), "tags"),
        (Method::PATCH, format!("/v2/{repo}/manifests/latest"), "manifests"),
        (Method::GET, format!("/v2/{repo}/blobs/uploads/"), "uploads"),
        (Method::POST, format!("/v2/{repo}/referrers/{good}"), "referrers"),
    ] {
        let r = reg.send(method.clone(), &path).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNSUPPORTED", "{body}");
        assert_eq!(
            body["errors"][0]["message"],
            format!("{method} is not supported on {area}"),
            "{body}"
        );
    }

    // Manifests: invalid JSON, wrong schema, unknown media type, missing blob, digest mismatch, too big.
    for (body, ct, code) in [
        (b"{not json".to_vec(), OCI_MANIFEST, "MANIFEST_INVALID"),
        (br#"{"schemaVersion":1}"#.to_vec(), OCI_MANIFEST, "MANIFEST_INVALID"),
        (br#"{"schemaVersion":2,"mediaType":"text/plain"}"#.to_vec(), "text/plain", "MANIFEST_INVALID"),
        (
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                   "config": {"mediaType": "x", "digest": good, "size": 4},
                   "layers": [{"mediaType": "x", "digest": digest(b"missing"), "size": 7}]}).to_string().into_bytes(),
            OCI_MANIFEST,
            "MANIFEST_BLOB_UNKNOWN",
        ),
        (json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest(b"m"), "size": 1}]}).to_string().into_bytes(), OCI_INDEX, "MANIFEST_BLOB_UNKNOWN"),
        (json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).to_string().into_bytes(), OCI_MANIFEST, "MANIFEST_INVALID"),
    ] {
        let r = reg.push_manifest(repo, "bad", ct, &body).await;
        assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, code.into()), "{}", String::from_utf8_lossy(&body));
    }
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = reg.push_manifest(repo, "bad", OCI_MANIFEST, &big).await;
    assert_eq!(error_code(r).await.1, "SIZE_INVALID");
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).to_string();
    let r = reg
        .push_manifest(repo, &digest(b"not the index"), OCI_INDEX, index.as_bytes())
        .await;
    assert_eq!(error_code(r).await, (StatusCode::BAD_REQUEST, "DIGEST_INVALID".into()));
    // None of that created a tag.
    let tags: serde_json::Value = reg
        .send(Method::GET, &format!("/v2/{repo}/tags/list"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!([]));
    let r = reg.send(Method::GET, &format!("/v2/{repo}/manifests/bad")).await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into()));
    s.stop().await;
}

#[backend_test(s3)]
async fn discovery_management_and_access(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = setup(&s).await;
    let reg = s.reg("root", "rootpassword");
    let repo = "acme/app";
    let (_, md, layer) = reg.push_image(repo, "v1", b"layer").await;
    for t in ["b", "a", "c", "latest"] {
        assert_eq!(
            reg.push_manifest(
                repo,
                t,
                OCI_MANIFEST,
                &reg.send(Method::GET, &format!("/v2/{repo}/manifests/v1"))
                    .await
                    .bytes()
                    .await
                    .unwrap()
            )
            .await
            .status(),
            201
        );
    }

    // Tag paging with a Link header.
    let r = reg.send(Method::GET, &format!("/v2/{repo}/tags/list?n=2")).await;
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    assert_eq!(link, format!("</v2/{repo}/tags/list?n=2&last=b>; rel=\"next\""));
    let page: serde_json::Value = r.json().await.unwrap();
    assert_eq!(page, json!({"name": repo, "tags": ["a", "b"]}));
    let page: serde_json::Value = reg
        .send(Method::GET, &format!("/v2/{repo}/tags/list?n=2&last=b"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["tags"], json!(["c", "latest"]));

    // An index of the image, and an artifact whose subject is the image (referrers).
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": 1, "platform": {"architecture": "amd64", "os": "linux"}}]}).to_string();
    assert_eq!(
        reg.push_manifest(repo, "multi", OCI_INDEX, index.as_bytes())
            .await
            .status(),
        201
    );
    // A Docker manifest list is stored and served with its own media type.
    let docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
    let list = json!({"schemaVersion": 2, "mediaType": docker_list, "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": 1, "platform": {"architecture": "arm64", "os": "linux"}}]}).to_string();
    assert_eq!(
        reg.push_manifest(repo, "dlist", docker_list, list.as_bytes())
            .await
            .status(),
        201
    );
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/manifests/dlist"))
        .header("accept", docker_list)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], docker_list);
    assert_eq!(r.bytes().await.unwrap().as_ref(), list.as_bytes());
    assert_eq!(
        reg.send(Method::DELETE, &format!("/v2/{repo}/manifests/dlist"))
            .await
            .status(),
        202
    );
    let empty = reg.push_blob(repo, b"{}").await;
    let sig = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": 5}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": md, "size": 1}})
    .to_string();
    let sig_digest = digest(sig.as_bytes());
    let r = reg.push_manifest(repo, &sig_digest, OCI_MANIFEST, sig.as_bytes()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["oci-subject"], md.as_str());
    let refs: serde_json::Value = reg
        .send(Method::GET, &format!("/v2/{repo}/referrers/{md}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refs["manifests"][0]["digest"], sig_digest.as_str());
    assert_eq!(refs["manifests"][0]["artifactType"], "application/vnd.example.sig");
    let r = reg
        .send(Method::GET, &format!("/v2/{repo}/referrers/{md}?artifactType=other"))
        .await;
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let refs: serde_json::Value = r.json().await.unwrap();
    assert_eq!(refs["manifests"], json!([]));

    // Cross-repository mount, only from a repository the caller can read.
    let r = reg
        .send(
            Method::POST,
            &format!("/v2/acme/other/blobs/uploads/?mount={layer}&from={repo}"),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/acme/other/blobs/{layer}"))
            .await
            .status(),
        200
    );
    let bob = s.user(&root, "bob").await;
    let Auth::Basic(_, bob_pass) = &bob else { unreachable!() };
    let bob_reg = s.reg("bob", bob_pass);
    let r = bob_reg
        .send(
            Method::POST,
            &format!("/v2/bob/mine/blobs/uploads/?mount={layer}&from={repo}"),
        )
        .await;
    assert_eq!(
        r.status(),
        202,
        "no access to the source: an ordinary upload starts instead"
    );
    assert_eq!(
        bob_reg
            .send(Method::HEAD, &format!("/v2/bob/mine/blobs/{layer}"))
            .await
            .status(),
        404
    );

    // Access: bob cannot see acme/app at all; anonymous callers are challenged with the scope.
    let r = bob_reg.send(Method::GET, &format!("/v2/{repo}/tags/list")).await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into()));
    let r = s
        .client
        .get(format!("{}/v2/{repo}/manifests/v1", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with(&format!("scope=\"repository:{repo}:pull\""))
    );
    // Once public, anonymous pulls work and pushes do not.
    expect(
        s.post(
            "/api/v1/repository/acme/app/changevisibility",
            &root,
            json!({"visibility": "public"}),
        )
        .await,
        200,
    );
    assert_eq!(
        s.client
            .get(format!("{}/v2/{repo}/manifests/v1", s.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = s
        .client
        .post(format!("{}/v2/{repo}/blobs/uploads/", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = bob_reg.send(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "DENIED".into()));

    // Catalog lists what the caller can see.
    let cat: serde_json::Value = reg.send(Method::GET, "/v2/_catalog").await.json().await.unwrap();
    assert_eq!(cat["repositories"], json!(["acme/app", "acme/other", "bob/mine"]));
    let cat: serde_json::Value = bob_reg
        .send(Method::GET, "/v2/_catalog?n=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cat["repositories"], json!(["acme/app"]));

    // Deletes: a tag, then the manifest by digest (its other tags go with it), then a blob.
    assert_eq!(
        reg.send(Method::DELETE, &format!("/v2/{repo}/manifests/a"))
            .await
            .status(),
        202
    );
    assert_eq!(
        reg.send(Method::GET, &format!("/v2/{repo}/manifests/a")).await.status(),
        404
    );
    assert_eq!(
        reg.send(Method::GET, &format!("/v2/{repo}/manifests/b")).await.status(),
        200,
        "deleting a tag leaves the others"
    );
    assert_eq!(
        reg.send(Method::DELETE, &format!("/v2/{repo}/manifests/{sig_digest}"))
            .await
            .status(),
        202
    );
    let refs: serde_json::Value = reg
        .send(Method::GET, &format!("/v2/{repo}/referrers/{md}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refs["manifests"], json!([]));
    assert_eq!(
        reg.send(Method::DELETE, &format!("/v2/{repo}/blobs/{empty}"))
            .await
            .status(),
        202
    );
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/{repo}/blobs/{empty}"))
            .await
            .status(),
        404
    );
    // Deletion needs admin: bob may pull the public repository but not delete from it.
    let r = bob_reg.send(Method::DELETE, &format!("/v2/{repo}/manifests/b")).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "DENIED".into()));
    let logs = expect(s.get("/api/v1/repository/acme/app/logs", &root).await, 200);
    let kinds: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"push_repo") && kinds.contains(&"delete_tag") && kinds.contains(&"delete_manifest"),
        "{kinds:?}"
    );
    s.stop().await;
}

#[backend_test(s3)]
async fn token_flow_push_and_pull(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = setup(&s).await;
    let robot = expect(
        s.call(Method::PUT, "/api/v1/organization/acme/robots/ci", &root, None)
            .await,
        201,
    );
    let token_pass = robot["token"].as_str().unwrap().to_owned();
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "acme", "repository": "app", "visibility": "private"}),
        )
        .await,
        201,
    );
    expect(
        s.put(
            "/api/v1/repository/acme/app/permissions/user/acme+ci",
            &root,
            json!({"role": "write"}),
        )
        .await,
        200,
    );
    let path = format!("/v2/auth?service={}&scope=repository:acme/app:pull,push", s.hostname);
    let body = expect(s.get(&path, &Auth::Basic("acme+ci".into(), token_pass)).await, 200);
    let token = body["token"].as_str().unwrap();
    let d = digest(b"via token");
    let r = s
        .client
        .post(format!("{}/v2/acme/app/blobs/uploads/?digest={d}", s.base))
        .bearer_auth(token)
        .body("via token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s
        .client
        .get(format!("{}/v2/acme/app/blobs/{d}", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "via token");
    // The token does not reach another repository.
    let r = s
        .client
        .get(format!("{}/v2/acme/other/tags/list", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[backend_test(s3)]
async fn referrers_pushed_before_their_subject_are_listed(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    setup(&s).await;
    let reg = s.reg("root", "rootpassword");
    let repo = "acme/signed";
    // The subject's bytes are known (its digest is what the artifacts point at), but it is pushed last.
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = reg.push_blob(repo, config).await;
    let ld = reg.push_blob(repo, b"subject layer").await;
    let subject = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": 13}]
    }))
    .unwrap();
    let sd = digest(&subject);
    let empty = reg.push_blob(repo, b"{}").await;
    let subject_desc = json!({"mediaType": OCI_MANIFEST, "digest": sd, "size": subject.len()});
    // A signature (artifactType in the manifest, with annotations), an SBOM whose type comes from its
    // config, and an index-shaped artifact: all accepted while the subject does not exist.
    let sig = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": subject_desc, "annotations": {"org.example.signer": "ci"}})
    .to_string();
    let sbom = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.sbom", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": subject_desc})
    .to_string();
    let bundle = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/vnd.example.bundle",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest(sbom.as_bytes()), "size": sbom.len()}],
        "subject": subject_desc})
    .to_string();
    for (body, ct) in [(&sig, OCI_MANIFEST), (&sbom, OCI_MANIFEST), (&bundle, OCI_INDEX)] {
        let r = reg
            .push_manifest(repo, &digest(body.as_bytes()), ct, body.as_bytes())
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        assert_eq!(r.headers()["oci-subject"], sd.as_str());
    }
    let listed = |v: &serde_json::Value| {
        let mut d: Vec<String> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_owned())
            .collect();
        d.sort();
        d
    };
    let mut all = vec![
        digest(sig.as_bytes()),
        digest(sbom.as_bytes()),
        digest(bundle.as_bytes()),
    ];
    all.sort();
    // Asked before the subject exists: the list, never a 404.
    let r = reg.send(Method::GET, &format!("/v2/{repo}/referrers/{sd}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(listed(&r.json().await.unwrap()), all);

    // The subject arrives; every referrer is listed, with its artifactType and annotations.
    assert_eq!(
        reg.push_manifest(repo, "v1", OCI_MANIFEST, &subject).await.status(),
        201
    );
    let r = reg.send(Method::GET, &format!("/v2/{repo}/referrers/{sd}")).await;
    assert_eq!(r.headers()["content-type"], OCI_INDEX);
    assert!(r.headers().get("oci-filters-applied").is_none());
    let index: serde_json::Value = r.json().await.unwrap();
    assert_eq!(listed(&index), all);
    let entry = |d: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["digest"] == d)
            .unwrap()
            .clone()
    };
    let s_entry = entry(&digest(sig.as_bytes()));
    assert_eq!(s_entry["artifactType"], "application/vnd.example.sig");
    assert_eq!(s_entry["annotations"], json!({"org.example.signer": "ci"}));
    assert_eq!(s_entry["size"], sig.len());
    assert_eq!(
        entry(&digest(sbom.as_bytes()))["artifactType"],
        "application/vnd.example.sbom"
    );
    let b_entry = entry(&digest(bundle.as_bytes()));
    assert_eq!(
        (b_entry["mediaType"].as_str(), b_entry["artifactType"].as_str()),
        (Some(OCI_INDEX), Some("application/vnd.example.bundle"))
    );

    // The artifactType filter, and the header saying it was applied.
    let r = reg
        .send(
            Method::GET,
            &format!("/v2/{repo}/referrers/{sd}?artifactType=application/vnd.example.sbom"),
        )
        .await;
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    assert_eq!(listed(&r.json().await.unwrap()), vec![digest(sbom.as_bytes())]);

    // A reference that is neither a tag nor a digest: 404 MANIFEST_UNKNOWN to GET and HEAD, 400 to PUT.
    let r = reg
        .send(Method::GET, &format!("/v2/{repo}/manifests/.INVALID_MANIFEST_NAME"))
        .await;
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into()));
    assert_eq!(
        reg.send(Method::HEAD, &format!("/v2/{repo}/manifests/.INVALID_MANIFEST_NAME"))
            .await
            .status(),
        404
    );
    let r = reg
        .push_manifest(repo, ".INVALID_MANIFEST_NAME", OCI_MANIFEST, &subject)
        .await;
    assert_eq!(r.status(), 400);
    // A malformed digest in the referrers route is the caller's mistake: 400.
    assert_eq!(
        reg.send(Method::GET, &format!("/v2/{repo}/referrers/sha256:nothex"))
            .await
            .status(),
        400
    );
    s.stop().await;
}
