//! The web UI in a real browser: headless Debian Chromium driven through Debian's chromedriver
//! (W3C WebDriver, `thirtyfour`), against a real server on loopback, on both backends. The flows
//! of the UI issue, each leaving a screenshot in `target/test-artifacts/` for a person to look at:
//! sign in; create a repository; create a webhook notification for "Push to Repository" in
//! Settings; Test it and see the receiver's 200 in the deliveries view; push with skopeo and see
//! the delivery; break the receiver until the notification is disabled; re-enable it; an in-app
//! notification for a team seen in a member's bell; validation errors next to their fields.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_testkit::backend_test;
use berth_testkit::receiver::Receiver;
use serde_json::json;
use thirtyfour::ChromiumLikeCapabilities;
use thirtyfour::prelude::*;

use crate::support::{Auth, TestServer, expect};

/// chromedriver on a free loopback port, killed on drop.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromedriver() -> Chromedriver {
    let port = crate::binary::free_port();
    let child = Command::new("chromedriver")
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("chromedriver is required (./scripts/test installs chromium-driver): {e}"));
    let driver = Chromedriver { child, port };
    berth_testkit::eventually(Duration::from_secs(30), || async move {
        reqwest::get(format!("http://127.0.0.1:{port}/status"))
            .await
            .map_err(|e| format!("chromedriver did not start: {e}"))
    })
    .await;
    driver
}

async fn browser(cd: &Chromedriver, profile: &Path) -> WebDriver {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary("/usr/bin/chromium").unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.display())).unwrap();
    WebDriver::new(format!("http://127.0.0.1:{}", cd.port), caps)
        .await
        .unwrap()
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(d: &WebDriver, kind: berth_testkit::DbKind, name: &str) {
    let path = artifacts().join(format!("{name}-{kind:?}.png").to_lowercase());
    d.screenshot(&path).await.unwrap();
}

/// Waits until the element's text satisfies `ok`; with `reload`, reloads the page between looks
/// (for pages that do not update themselves), else only waits (a page still loading).
async fn wait_for(d: &WebDriver, by: By, ok: impl Fn(&str) -> bool, reload: bool, what: &str) -> String {
    let (by, ok) = (&by, &ok);
    berth_testkit::eventually(Duration::from_secs(60), || async move {
        let text = match d.find(by.clone()).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&text) {
            return Ok(text);
        }
        if reload {
            d.refresh().await.unwrap();
        }
        Err(format!("{what}: the page shows {text:?}"))
    })
    .await
}

async fn wait_text(d: &WebDriver, by: By, ok: impl Fn(&str) -> bool, what: &str) -> String {
    wait_for(d, by, ok, true, what).await
}

async fn until_text(d: &WebDriver, by: By, ok: impl Fn(&str) -> bool, what: &str) -> String {
    wait_for(d, by, ok, false, what).await
}

/// Waits until a form post has landed on the page that confirms it (its notice).
async fn landed(d: &WebDriver, notice: &str) {
    until_text(d, By::Css("p.notice"), |t| t.contains(notice), notice).await;
}

async fn fill(d: &WebDriver, id: &str, text: &str) {
    let el = d.find(By::Id(id)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn choose(d: &WebDriver, id: &str, value: &str) {
    let el = d.query(By::Id(id)).first().await.unwrap();
    el.find(By::Css(format!("option[value='{value}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The settings table's row of the notification titled `title`, once it is there.
async fn row(d: &WebDriver, title: &str) -> WebElement {
    d.query(By::XPath(format!("//tr[td[normalize-space(.)='{title}']]")))
        .first()
        .await
        .unwrap()
}

/// Presses the button labelled `label` in the row of the notification titled `title`.
async fn press(d: &WebDriver, title: &str, label: &str) {
    row(d, title)
        .await
        .find(By::XPath(format!(".//button[normalize-space(.)='{label}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn submit(d: &WebDriver, label: &str) {
    d.find(By::XPath(format!("//button[normalize-space(.)='{label}']")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn sign_in(d: &WebDriver, base: &str, user: &str, password: &str) {
    d.goto(format!("{base}/signin")).await.unwrap();
    fill(d, "username", user).await;
    fill(d, "password", password).await;
    submit(d, "Sign in").await;
    d.query(By::LinkText("Repositories")).first().await.unwrap();
}

/// Opens the Create Notification form and picks an event and a method (the form redraws
/// itself with htmx to show their fields).
async fn new_notification(d: &WebDriver, base: &str, event: &str, method: &str) {
    d.goto(format!("{base}/repository/acme/web?tab=settings"))
        .await
        .unwrap();
    d.find(By::LinkText("Create Notification"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(d, By::Tag("h1"), |t| t == "Create Notification", "the form").await;
    // One change at a time: each redraws the form (htmx), so the next waits for the redraw.
    if event != "repo_push" {
        choose(d, "event", event).await;
        let want = format!("option[value='{event}']");
        until_text(d, By::Css("#event option:checked"), |_| true, "the event").await;
        d.query(By::Css(format!("#event {want}[selected]")))
            .first()
            .await
            .unwrap();
    }
    choose(d, "method", method).await;
    // The method's own field appears once the form is redrawn.
    let field = match method {
        "webhook" | "slack" => "url",
        "quay_notification" => "target",
        "email" => "email",
        _ => "title",
    };
    d.query(By::Id(field)).first().await.unwrap();
}

#[backend_test]
async fn the_notification_flows_in_a_browser(kind: berth_testkit::DbKind) {
    let rx = Receiver::start().await;
    let s = TestServer::start_with(kind, |c| {
        c.notifications.blocked_hosts = Vec::new();
        c.notifications.deliver = true;
        c.notifications.retry_schedule_secs = vec![0];
        c.notifications.failure_threshold = 3;
        c.notifications.allowed_networks = vec!["127.0.0.0/8".into()];
    })
    .await;
    let root = s.init_root().await;
    expect(
        s.post("/api/v1/organization/", &root, json!({"name": "acme"})).await,
        201,
    );
    let bob = s.user(&root, "bob").await;
    expect(
        s.put("/api/v1/organization/acme/team/devs", &root, json!({"role": "member"}))
            .await,
        200,
    );
    expect(
        s.put("/api/v1/organization/acme/team/devs/members/bob", &root, json!({}))
            .await,
        200,
    );
    let cd = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let d = browser(&cd, profile.path()).await;
    let base = s.base.clone();

    // 1. Sign in.
    sign_in(&d, &base, "root", "rootpassword").await;
    shot(&d, kind, "1-signed-in").await;
    // The page works under a CSP without inline styles: htmx adds no <style> of its own, and its
    // request indicator is hidden by berth.css instead.
    let styles = d
        .execute("return document.querySelectorAll('style').length;", Vec::new())
        .await
        .unwrap();
    assert_eq!(styles.json(), &json!(0), "no inline <style> element");

    // 2. Create a repository.
    fill(&d, "namespace", "acme").await;
    fill(&d, "name", "web").await;
    submit(&d, "Create repository").await;
    until_text(&d, By::Tag("h1"), |t| t == "acme/web", "the repository page").await;
    shot(&d, kind, "2-repository").await;

    // 9. Validation errors appear next to their fields, and nothing typed is lost.
    new_notification(&d, &base, "repo_push", "webhook").await;
    fill(&d, "url", "not a url").await;
    fill(&d, "title", "kept title").await;
    submit(&d, "Create Notification").await;
    let err = d
        .query(By::XPath(
            "//input[@id='url']/following-sibling::p[@class='field-error']",
        ))
        .first()
        .await
        .unwrap();
    assert_eq!(err.text().await.unwrap(), "Invalid webhook URL");
    assert_eq!(
        d.find(By::Id("title")).await.unwrap().value().await.unwrap().as_deref(),
        Some("kept title")
    );
    choose(&d, "event", "build_success").await;
    d.query(By::Id("ref_regex")).first().await.unwrap();
    fill(&d, "ref_regex", "((").await;
    fill(&d, "url", &format!("{}/hook", rx.url)).await;
    submit(&d, "Create Notification").await;
    let err = d
        .query(By::XPath(
            "//input[@id='ref_regex']/following-sibling::p[@class='field-error']",
        ))
        .first()
        .await
        .unwrap();
    assert!(
        err.text().await.unwrap().starts_with("invalid ref-regex"),
        "{}",
        err.text().await.unwrap()
    );
    assert_eq!(
        d.find(By::Id("url")).await.unwrap().value().await.unwrap(),
        Some(format!("{}/hook", rx.url))
    );
    shot(&d, kind, "9-validation-errors").await;

    // 3. A webhook notification for "Push to Repository", pointing at the local receiver.
    new_notification(&d, &base, "repo_push", "webhook").await;
    fill(&d, "url", &format!("{}/hook", rx.url)).await;
    fill(&d, "title", "CI hook").await;
    submit(&d, "Create Notification").await;
    assert!(
        row(&d, "CI hook")
            .await
            .text()
            .await
            .unwrap()
            .contains("Push to Repository")
    );
    shot(&d, kind, "3-settings-notifications").await;

    // 4. Test: the deliveries view shows the receiver's 200.
    press(&d, "CI hook", "Test").await;
    landed(&d, "A test event was sent").await;
    let attempt = wait_text(
        &d,
        By::Css(".delivery details summary"),
        |t| t.contains("HTTP 200"),
        "the test delivery's 200",
    )
    .await;
    assert!(attempt.contains("delivered"), "{attempt}");
    assert_eq!(
        rx.next(Duration::from_secs(30)).await.expect("the test send").path,
        "/hook"
    );
    shot(&d, kind, "4-test-delivered").await;

    // 5. A real push with skopeo appears in the deliveries.
    let dir = tempfile::tempdir().unwrap();
    for args in [vec!["init", "--layout", "L"], vec!["new", "--image", "L:v1"]] {
        assert!(
            Command::new("umoci")
                .args(&args)
                .current_dir(dir.path())
                .status()
                .unwrap()
                .success()
        );
    }
    let img = format!("docker://{}/acme/web:v1", s.hostname);
    let pushed = Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "root:rootpassword",
            "oci:L:v1",
            &img,
        ])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(pushed.success());
    let pushes = |t: &str| {
        t.lines()
            .filter(|l| l.contains("Push to Repository") && l.contains("delivered"))
            .count()
    };
    let text = wait_text(&d, By::Id("deliveries"), |t| pushes(t) >= 2, "the push's delivery").await;
    assert!(
        text.lines()
            .any(|l| l.contains("Push to Repository") && !l.contains("(test)")),
        "{text}"
    );
    shot(&d, kind, "5-push-delivered").await;

    // 6. Break the receiver: failures grow until the notification is disabled (threshold 3).
    rx.respond_with(&[400; 10]);
    for i in 0..3 {
        d.goto(format!("{base}/repository/acme/web?tab=settings"))
            .await
            .unwrap();
        row(&d, "CI hook").await;
        if i == 2 {
            shot(&d, kind, "6a-failures-growing").await;
        }
        press(&d, "CI hook", "Test").await;
        landed(&d, "A test event was sent").await;
        wait_text(&d, By::Css(".delivery .badge"), |t| t == "failed", "a failed delivery").await;
    }
    d.goto(format!("{base}/repository/acme/web?tab=settings"))
        .await
        .unwrap();
    let disabled = wait_text(
        &d,
        By::XPath("//tr[td[normalize-space(.)='CI hook']]"),
        |t| t.contains("disabled"),
        "the notification disabled",
    )
    .await;
    assert!(disabled.contains("disabled") && disabled.contains('3'), "{disabled}");
    shot(&d, kind, "6-disabled").await;

    // 7. Re-enable it.
    rx.respond_with(&[200; 10]);
    press(&d, "CI hook", "Re-enable").await;
    landed(&d, "Re-enabled").await;
    d.goto(format!("{base}/repository/acme/web?tab=settings"))
        .await
        .unwrap();
    let text = row(&d, "CI hook").await.text().await.unwrap();
    assert!(text.contains("enabled") && !text.contains("disabled"), "{text}");
    shot(&d, kind, "7-re-enabled").await;

    // Narrow screens (375 px): the pages fit; wide tables scroll inside their card.
    d.set_window_rect(0, 0, 375, 800).await.unwrap();
    for page in ["/", "/repository/acme/web?tab=settings", "/notifications"] {
        d.goto(format!("{base}{page}")).await.unwrap();
        let ret = d
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                Vec::new(),
            )
            .await
            .unwrap();
        let widths: Vec<i64> = ret.convert().unwrap();
        assert!(widths[0] <= widths[1], "{page} overflows at 375 px: {widths:?}");
    }
    // The notifications are cards there: the failure count and every button in view, no
    // sideways scrolling inside the table.
    d.goto(format!("{base}/repository/acme/web?tab=settings"))
        .await
        .unwrap();
    let ret = d
        .execute(
            "const row = [...document.querySelectorAll('tr')].find(r => r.textContent.includes('CI hook'));
             const inView = e => { const b = e.getBoundingClientRect(); return b.width > 0 && b.left >= 0 && b.right <= window.innerWidth; };
             return [...row.querySelectorAll('button, a.button, td[data-label=Failures]')].map(inView);",
            Vec::new(),
        )
        .await
        .unwrap();
    let in_view: Vec<bool> = ret.convert().unwrap();
    assert!(
        in_view.len() >= 4 && in_view.iter().all(|v| *v),
        "at 375 px: {in_view:?}"
    );
    shot(&d, kind, "10-narrow").await;
    d.set_window_rect(0, 0, 1280, 1000).await.unwrap();

    // Deleting asks first (Berth's own script; the page allows no inline script): dismissed, the
    // notification stays; accepted, it goes.
    d.goto(format!("{base}/repository/acme/web?tab=settings"))
        .await
        .unwrap();
    press(&d, "CI hook", "Delete").await;
    assert_eq!(d.get_alert_text().await.unwrap(), "Delete this notification?");
    d.dismiss_alert().await.unwrap();
    row(&d, "CI hook").await;
    press(&d, "CI hook", "Delete").await;
    d.accept_alert().await.unwrap();
    wait_for(
        &d,
        By::Tag("main"),
        |t| !t.contains("CI hook"),
        true,
        "the deleted notification gone",
    )
    .await;

    // 8. An in-app notification for team devs: bob's bell counts it.
    new_notification(&d, &base, "repo_push", "quay_notification").await;
    choose(&d, "target", "team:devs").await;
    fill(&d, "title", "Team bell").await;
    submit(&d, "Create Notification").await;
    press(&d, "Team bell", "Test").await;
    landed(&d, "A test event was sent").await;
    wait_text(
        &d,
        By::Css(".delivery .badge"),
        |t| t == "delivered",
        "the in-app delivery",
    )
    .await;
    submit(&d, "Sign out").await;
    let Auth::Basic(_, bob_password) = &bob else {
        panic!("basic")
    };
    sign_in(&d, &base, "bob", bob_password).await;
    let count = wait_text(&d, By::Id("bell-count"), |t| t == "1", "bob's bell count").await;
    assert_eq!(count, "1");
    d.find(By::Css("a[href='/notifications']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let item = d
        .query(By::Css("main table tbody tr"))
        .first()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(item.contains("acme/web"), "{item}");
    shot(&d, kind, "8-team-bell").await;

    d.quit().await.unwrap();
    s.stop().await;
}
