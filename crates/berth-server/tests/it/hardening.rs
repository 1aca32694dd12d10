//! Hostile input: what an anonymous caller can make the server spend before anything is checked.
//! Password floods are bounded and limited without locking out tokens or recently verified
//! credentials; the unauthenticated upload routes check first and read after.

use std::time::Duration;

use berth_testkit::backend_test;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Auth, TestServer, expect};

/// Bounds a wait for an answer that a server which reads the body first would never give.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// Sends a request head announcing a 256 MiB body, then only 1 KiB of it, and returns the status
/// and body of the answer. A server that reads the body before its checks never answers, and
/// the test fails at [`ANSWER_WITHIN`].
async fn half_sent(s: &TestServer, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut conn = tokio::net::TcpStream::connect(&s.hostname).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n",
        s.hostname,
        256u64 << 20
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&[b'x'; 1024]).await.unwrap();
    read_answer(&mut conn, &format!("{method} {path}")).await
}

/// Reads one answer: its status and body. A server that never answers fails the test at
/// [`ANSWER_WITHIN`].
async fn read_answer(conn: &mut tokio::net::TcpStream, what: &str) -> (u16, String) {
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.unwrap_or(0);
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if n == 0 || len.is_some_and(|len| body.len() >= len) {
                    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                    return (status, body.to_owned());
                }
            } else if n == 0 {
                return (0, text);
            }
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, read)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer while the body was still arriving"))
}

/// PUTs `total` bytes to `path` with chunked transfer encoding (no declared length) and returns
/// the status. Writes after the server has answered may fail; the answer is what counts.
async fn chunked(s: &TestServer, path: &str, total: usize) -> u16 {
    let mut conn = tokio::net::TcpStream::connect(&s.hostname).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.hostname
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b'x'; 64 << 10];
    let mut sent = 0;
    while sent < total {
        let n = piece.len().min(total - sent);
        let frame = [format!("{n:x}\r\n").as_bytes(), &piece[..n], b"\r\n"].concat();
        if conn.write_all(&frame).await.is_err() {
            break;
        }
        sent += n;
    }
    let _ = conn.write_all(b"0\r\n\r\n").await;
    read_answer(&mut conn, &format!("PUT {path} (chunked)")).await.0
}

#[backend_test]
async fn unauthenticated_bodies_are_read_only_after_the_checks(kind: berth_testkit::DbKind) {
    // Builds off: 503 before a byte of the body is read.
    let s = TestServer::start(kind).await;
    for (method, path) in [
        ("PUT", "/filedrop/made-up?token=x"),
        ("POST", "/webhooks/push/trigger/made-up"),
    ] {
        let (status, body) = half_sent(&s, method, path, &[]).await;
        assert_eq!(status, 503, "{method} {path}: {body}");
        assert!(body.contains("builds.enabled"), "{body}");
    }
    s.stop().await;

    let s = TestServer::start_with(kind, |c| {
        c.builds.enabled = true;
        c.builds.max_context_bytes = 3 << 20;
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    // Unknown ids and wrong tokens: 404 at once.
    assert_eq!(half_sent(&s, "PUT", "/filedrop/made-up?token=x", &[]).await.0, 404);
    let drop = expect(
        s.post("/api/v1/filedrop/", &root, json!({"mimeType": "application/x-tar"}))
            .await,
        200,
    );
    let (id, url) = (drop["file_id"].as_str().unwrap(), drop["url"].as_str().unwrap());
    let path = &url[url.find("/filedrop/").unwrap()..];
    assert_eq!(
        half_sent(&s, "PUT", &path.replace("token=", "token=x"), &[]).await.0,
        404
    );
    // The right token, but a Content-Length over builds.max_context_bytes: 413 before reading.
    let (status, body) = half_sent(&s, "PUT", path, &[]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("builds.max_context_bytes"), "{body}");
    // No Content-Length: read up to the limit, then 413; nothing is kept.
    assert_eq!(chunked(&s, path, (3 << 20) + 1).await, 413);
    assert_eq!(s.upload_leftovers().await, 0, "nothing of it is kept");
    // The slot is still empty: a context within the limit fills it.
    let context = (0..(5u32 << 17)).flat_map(u32::to_le_bytes).collect::<Vec<u8>>();
    assert_eq!(context.len(), 5 << 19, "2.5 MiB");
    let r = s.client.put(url).body(context.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["size"], context.len());
    let digest = berth_testkit::registry::digest(&context);
    let row = berth_store::builds::filedrop(&mut s.app.store().conn().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.size, row.digest.as_deref()),
        (Some(context.len() as i64), Some(digest.as_str()))
    );
    assert!(s.stored(&digest).await, "what was sent is in the blob store");
    assert_eq!(
        s.client.put(url).body("again").send().await.unwrap().status(),
        404,
        "filled once"
    );

    // Trigger webhooks: an unknown trigger is 404 and a wrong GitLab token 403, before reading.
    assert_eq!(
        half_sent(&s, "POST", "/webhooks/push/trigger/made-up", &[]).await.0,
        404
    );
    let t = expect(
        s.post(
            "/api/v1/repository/acme/web/trigger/",
            &root,
            json!({"service": "gitlab"}),
        )
        .await,
        201,
    );
    let hook = t["webhook_url"].as_str().unwrap();
    let hook_path = &hook[hook.find("/webhooks/").unwrap()..];
    let (status, body) = half_sent(&s, "POST", hook_path, &[("x-gitlab-token", "wrong")]).await;
    assert_eq!(status, 403, "{body}");
    // With the right token, a body over the webhook limit is 413 before reading.
    let secret = t["secret"].as_str().unwrap();
    assert_eq!(
        half_sent(&s, "POST", hook_path, &[("x-gitlab-token", secret)]).await.0,
        413
    );
    s.stop().await;
}

#[backend_test]
async fn a_password_flood_is_bounded_and_limited_and_spares_tokens(kind: berth_testkit::DbKind) {
    let s = TestServer::start(kind).await;
    let root = s.init_root().await;
    // root's password is verified once before the flood (and so remembered); a token needs no hash.
    expect(s.get("/api/v1/user/", &root).await, 200);
    let token = s
        .app
        .create_access_token("root", berth_core::ScopeSet::parse("user:read").unwrap(), "", None)
        .await
        .unwrap();
    let bearer = Auth::Bearer(token.clone());

    // Unknown user names cost a hash like real ones (the dummy hash runs; timing shows nothing).
    let mismatches = "berth_password_checks_total{result=\"mismatch\"}";
    let before = s.metric(mismatches).await.unwrap_or(0.0);
    expect(
        s.get("/api/v1/user/", &Auth::Basic("nobody-here".into(), "whatever".into()))
            .await,
        401,
    );
    let after = s.metric(mismatches).await.unwrap_or(0.0);
    assert_eq!(after - before, 1.0, "an unknown user is checked against the dummy hash");

    // 40 wrong passwords at once: each is a 401 or a 429 with Retry-After, never anything else.
    let wrong = Auth::Basic("root".into(), "wrong-password".into());
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (client, url, wrong) = (s.client.clone(), format!("{}/api/v1/user/", s.base), wrong.clone());
        flood.spawn(async move {
            let Auth::Basic(u, p) = wrong else { unreachable!() };
            let r = client.get(url).basic_auth(u, Some(p)).send().await.unwrap();
            (r.status().as_u16(), r.headers().get("retry-after").is_some())
        });
    }
    for (status, retry_after) in flood.join_all().await {
        assert!(status == 401 || (status == 429 && retry_after), "{status}");
    }
    // Past the allowance for the name (however many of the flood were checked), a check is
    // refused before hashing, with Retry-After.
    let again = || {
        s.client
            .get(format!("{}/api/v1/user/", s.base))
            .basic_auth("root", Some("wrong-again"))
            .send()
    };
    let mut r = again().await.unwrap();
    for _ in 0..10 {
        if r.status() == 429 {
            break;
        }
        assert_eq!(r.status(), 401);
        r = again().await.unwrap();
    }
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error_type"], "too_many_requests", "{body}");
    // The registry's token endpoint answers the same in the OCI shape.
    let r = s
        .client
        .get(format!("{}/v2/auth?service={}", s.base, s.hostname))
        .basic_auth("root", Some("wrong-again"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["errors"][0]["code"],
        "TOOMANYREQUESTS"
    );
    // Meanwhile tokens and the credential verified before the flood still work.
    expect(s.get("/api/v1/user/", &bearer).await, 200);
    expect(
        s.get("/api/v1/user/", &Auth::Basic("$oauthtoken".into(), token)).await,
        200,
    );
    expect(s.get("/api/v1/user/", &root).await, 200);
    s.stop().await;
}

#[backend_test]
async fn stalled_clients_are_cut_off_and_cannot_keep_others_out(kind: berth_testkit::DbKind) {
    let s = TestServer::start_with(kind, |c| {
        c.header_read_timeout_secs = 2;
        c.max_connections = 16;
    })
    .await;
    // 40 connections send half a request head and stall (slowloris), more than the limit.
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let mut c = tokio::net::TcpStream::connect(&s.hostname).await.unwrap();
        c.write_all(b"GET /health/instance HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        stalled.push(c);
    }
    // Health checks still answer: each new connection takes the place of the oldest stalled one.
    for _ in 0..5 {
        expect(s.get("/health/instance", &Auth::None).await, 200);
    }
    // Every stalled connection is closed: the oldest to make room, the rest when their headers
    // have not arrived within header_read_timeout_secs.
    for (i, mut c) in stalled.into_iter().enumerate() {
        let mut buf = [0u8; 512];
        let closed = tokio::time::timeout(ANSWER_WITHIN, async {
            loop {
                match c.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "stalled connection {i} is still open");
    }
    s.stop().await;
}
