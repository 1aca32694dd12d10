//! E-mail end to end, on both backends, against a real SMTP receiver (aiosmtpd) on loopback: the
//! authorization flow (request, mail with link, confirmation page, expiry, revocation), the
//! `email` method for every event (subject, both parts, headers), and the errors when mail is not
//! configured.

use std::time::Duration;

use berth_notify::EventKind;
use berth_testkit::smtp::SmtpReceiver;
use berth_testkit::{backend_test, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestServer, expect};

const WAIT: Duration = Duration::from_secs(20);
const AUTH: &str = "/api/v1/repository/acme/web/authorizedemail";
const NOTIFY: &str = "/api/v1/repository/acme/web/notification/";

async fn server(kind: berth_testkit::DbKind, smtp: Option<&SmtpReceiver>) -> (TestServer, Auth) {
    let port = smtp.map(|m| m.port);
    let s = TestServer::start_with(kind, |c| {
        if let Some(port) = port {
            c.mail.host = "127.0.0.1".into();
            c.mail.port = port;
            c.mail.tls = "none".into();
            c.mail.from = "Berth <berth@registry.test>".into();
        }
        c.notifications.deliver = true;
        c.notifications.retry_schedule_secs = vec![0];
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    (s, root)
}

/// The confirmation code in an authorization mail's link.
fn code_in(text: &str) -> String {
    let start = text.find("/authrepoemail?code=").expect("a confirmation link") + "/authrepoemail?code=".len();
    text[start..].chars().take_while(char::is_ascii_alphanumeric).collect()
}

/// Authorizes `email` for acme/web through the mail, as its owner would.
async fn authorize(s: &TestServer, root: &Auth, smtp: &SmtpReceiver, email: &str) {
    let r = expect(s.post(&format!("{AUTH}/{email}"), root, json!(null)).await, 200);
    assert_eq!(r["confirmed"], false);
    let mail = smtp.next(WAIT).await.expect("the authorization mail");
    let code = code_in(mail.text.as_deref().unwrap());
    expect(
        s.call(Method::GET, &format!("/authrepoemail?code={code}"), &Auth::None, None)
            .await,
        200,
    );
}

#[backend_test]
async fn authorization_flow(kind: berth_testkit::DbKind) {
    let smtp = SmtpReceiver::start();
    let (s, root) = server(kind, Some(&smtp)).await;
    let addr = "dev@example.com";
    let e = expect(s.get(&format!("{AUTH}/{addr}"), &root).await, 404);
    assert_eq!(e["detail"], "dev@example.com is not authorized for acme/web");
    let bad = expect(s.post(&format!("{AUTH}/not-an-address"), &root, json!(null)).await, 400);
    assert!(
        bad["detail"].as_str().unwrap().starts_with("invalid e-mail address"),
        "{bad}"
    );

    // Request: a pending record and a mail with the link.
    let r = expect(s.post(&format!("{AUTH}/{addr}"), &root, json!(null)).await, 200);
    assert_eq!(
        r,
        json!({"email": addr, "repository": "web", "namespace": "acme", "confirmed": false})
    );
    let mail = smtp.next(WAIT).await.expect("the authorization mail");
    assert_eq!(
        mail.header("subject"),
        Some("[Berth] Please verify your e-mail address for repository acme/web")
    );
    assert_eq!(mail.header("to"), Some(addr));
    assert_eq!(mail.header("from"), Some("Berth <berth@registry.test>"));
    assert_eq!(mail.content_type, "multipart/alternative");
    let text = mail.text.clone().unwrap();
    let html = mail.html.clone().unwrap();
    let code = code_in(&text);
    assert_eq!(code.len(), 32);
    let link = format!("http://{}/authrepoemail?code={code}", s.hostname);
    assert!(text.contains(&link), "{text}");
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");

    // Not yet confirmed: an e-mail notification is refused with Quay's message.
    let body = json!({"event": "repo_push", "method": "email", "config": {"email": addr}, "eventConfig": {}});
    let e = expect(s.post(NOTIFY, &root, body.clone()).await, 400);
    assert_eq!(
        e["detail"],
        "The specified e-mail address is not authorized to receive notifications for this repository"
    );

    // A code nobody issued, a missing code, and an expired one.
    let (status, page) = s.call(Method::GET, "/authrepoemail?code=nope", &Auth::None, None).await;
    assert_eq!(status, 404);
    assert!(page.as_str().unwrap().contains("Invalid confirmation code."));
    expect(s.call(Method::GET, "/authrepoemail", &Auth::None, None).await, 400);
    let later = chrono::Utc::now() + chrono::Duration::days(8);
    assert_eq!(
        s.app.confirm_email_at(&code, later).await.unwrap(),
        berth_app::authorized_email::Confirmation::Expired
    );

    // The owner opens the link; the page names address and repository, escaped.
    let (status, page) = s
        .call(Method::GET, &format!("/authrepoemail?code={code}"), &Auth::None, None)
        .await;
    assert_eq!(status, 200);
    assert!(
        page.as_str()
            .unwrap()
            .contains("dev@example.com will now receive the notifications of repository acme/web"),
        "{page}"
    );
    let r = expect(s.get(&format!("{AUTH}/{addr}"), &root).await, 200);
    assert_eq!(r["confirmed"], true);
    // Asking again for a confirmed address sends nothing.
    expect(s.post(&format!("{AUTH}/{addr}"), &root, json!(null)).await, 200);
    assert!(smtp.next(Duration::from_millis(500)).await.is_none());

    // Now the notification can be created; revoking the address makes its deliveries fail.
    let n = expect(s.post(NOTIFY, &root, body).await, 201);
    expect(s.delete(&format!("{AUTH}/{addr}"), &root).await, 204);
    expect(s.delete(&format!("{AUTH}/{addr}"), &root).await, 404);
    let uuid = n["uuid"].as_str().unwrap();
    expect(s.post(&format!("{NOTIFY}{uuid}/test"), &root, json!(null)).await, 200);
    eventually(WAIT, || async {
        let n = expect(s.get(&format!("{NOTIFY}{uuid}"), &root).await, 200);
        if n["number_of_failures"] == 1 {
            Ok(())
        } else {
            Err(format!("the failure is recorded: {n}"))
        }
    })
    .await;
    assert!(
        smtp.next(Duration::from_millis(300)).await.is_none(),
        "nothing is mailed to a revoked address"
    );

    // Only repository admins: anonymous 401, a reader 403.
    let alice = s.user(&root, "alice").await;
    expect(
        s.put(
            "/api/v1/repository/acme/web/permissions/user/alice",
            &root,
            json!({"role": "read"}),
        )
        .await,
        200,
    );
    expect(s.get(&format!("{AUTH}/{addr}"), &Auth::None).await, 401);
    for m in [Method::GET, Method::POST, Method::DELETE] {
        expect(s.call(m, &format!("{AUTH}/{addr}"), &alice, None).await, 403);
    }
    s.stop().await;
}

#[backend_test]
async fn every_event_by_email(kind: berth_testkit::DbKind) {
    let smtp = SmtpReceiver::start();
    let (s, root) = server(kind, Some(&smtp)).await;
    let addr = "ops@example.com";
    authorize(&s, &root, &smtp, addr).await;
    for event in EventKind::all() {
        let ev_cfg = if *event == EventKind::ImageExpiry {
            json!({"days": 3})
        } else {
            json!({})
        };
        // The events only namespace-wide notifications take go to the organization's, which mail
        // an address of the organization or one of its admins (root's), about `acme/sample`.
        let (base, addr, name, manage) = if event.namespace_only() {
            let manage = format!("http://{}/organization/acme/notifications", s.hostname);
            (
                "/api/v1/organization/acme/notifications",
                "root@example.com",
                "sample",
                manage,
            )
        } else {
            let manage = format!("http://{}/repository/acme/web?tab=settings", s.hostname);
            (NOTIFY, addr, "web", manage)
        };
        let ctx = berth_notify::RepoContext {
            hostname: &s.hostname,
            scheme: "http",
            namespace: "acme",
            name,
        };
        let body = json!({"event": event.name(), "method": "email", "config": {"email": addr}, "eventConfig": ev_cfg});
        let n = expect(s.post(base, &root, body).await, 201);
        let uuid = n["uuid"].as_str().unwrap();
        let one = format!("{}/{uuid}", base.trim_end_matches('/'));
        expect(s.post(&format!("{one}/test"), &root, json!(null)).await, 200);
        let mail = smtp
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("no mail for {}", event.name()));
        let expected = event.sample(&ctx, &ev_cfg, 0.0);
        let want =
            berth_notify::mail::notification_mail(*event, &expected, Some("root"), &format!("acme/{name}"), &manage);
        assert_eq!(mail.header("subject"), Some(want.subject.as_str()), "{}", event.name());
        assert_eq!(
            mail.header("subject").map(str::to_owned),
            Some(event.summary(&expected))
        );
        assert_eq!(mail.header("to"), Some(addr));
        assert_eq!(mail.header("x-berth-event"), Some(event.name()));
        assert!(mail.header("x-berth-delivery").unwrap().ends_with(&format!(".{uuid}")));
        assert_eq!(mail.content_type, "multipart/alternative");
        assert_eq!(
            mail.text.as_deref().map(str::trim_end),
            Some(want.text.trim_end()),
            "{}",
            event.name()
        );
        assert_eq!(
            mail.html.as_deref().map(str::trim_end),
            Some(want.html.trim_end()),
            "{}",
            event.name()
        );
        let n = expect(s.get(&one, &root).await, 200);
        assert_eq!(n["number_of_failures"], 0);
    }
    // A namespace-wide notification mails only the namespace's addresses, not any authorized one.
    let body = json!({"event": "repo_push", "method": "email", "config": {"email": addr}, "eventConfig": {}});
    let e = expect(
        s.post("/api/v1/organization/acme/notifications", &root, body).await,
        400,
    );
    assert!(e["detail"].as_str().unwrap().contains("administrators"), "{e}");
    s.stop().await;
}

#[backend_test]
async fn without_mail_configuration(kind: berth_testkit::DbKind) {
    let (s, root) = server(kind, None).await;
    let e = expect(
        s.post(&format!("{AUTH}/dev@example.com"), &root, json!(null)).await,
        503,
    );
    assert_eq!(e["detail"], "e-mail is not configured on this server (set mail.host)");
    let body: Value =
        json!({"event": "repo_push", "method": "email", "config": {"email": "dev@example.com"}, "eventConfig": {}});
    let e = expect(s.post(NOTIFY, &root, body).await, 400);
    assert_eq!(
        e["detail"],
        "The specified e-mail address is not authorized to receive notifications for this repository"
    );
    s.stop().await;
}
