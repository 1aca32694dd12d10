//! The web UI over HTTP, on both backends: first-run set-up, sign-in and sign-out with the
//! session cookie's flags, CSRF refusal, the repository list with search and creation, the
//! repository tabs (information with escaping, tags with platforms, builds with an upload and its
//! log, security with counts and fixes, settings for admins only, triggers).

use std::io::Write;
use std::time::Duration;

use berth_testkit::{backend_test, eventually};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Auth, TestServer, expect};

/// A browser without JavaScript: no redirects followed, the session cookie carried by hand.
struct Browser<'a> {
    s: &'a TestServer,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(s: &'a TestServer) -> Browser<'a> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            s,
            client,
            cookie: None,
        }
    }

    fn with_cookie(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(c) => r.header("cookie", c),
            None => r,
        }
    }

    /// GET: status, `Location` and body.
    async fn get(&self, path: &str) -> (StatusCode, String, String) {
        let r = self
            .with_cookie(self.client.get(format!("{}{path}", self.s.base)))
            .send()
            .await
            .unwrap();
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status(), loc, r.text().await.unwrap())
    }

    /// POSTs a form; keeps a session cookie that is set. The sign-in form is opened first, as a
    /// browser does, for its token and cookie.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, String) {
        let mut form = form.to_vec();
        let mut cookies: Vec<String> = self.cookie.iter().cloned().collect();
        let signin = if path == "/signin" {
            Some(signin_form(self.s).await)
        } else {
            None
        };
        if let Some((cookie, token)) = &signin {
            form.push(("form_token", token));
            cookies.push(cookie.clone());
        }
        let body = serde_urlencoded::to_string(&form).unwrap();
        let mut req = self
            .client
            .post(format!("{}{path}", self.s.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        let r = req.send().await.unwrap();
        self.keep_cookie(&r);
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status(), loc, r.text().await.unwrap())
    }

    fn keep_cookie(&mut self, r: &reqwest::Response) {
        if let Some(set) = r.headers().get("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = if pair.ends_with('=') { None } else { Some(pair) };
        }
    }

    /// The form token of the page at `path`.
    async fn csrf(&self, path: &str) -> String {
        let (_, _, html) = self.get(path).await;
        let at = html.find("name=\"csrf\" value=\"").expect("a form with a token") + 19;
        html[at..at + html[at..].find('"').unwrap()].to_owned()
    }
}

async fn ui_server(
    kind: berth_testkit::DbKind,
    configure: impl FnOnce(&mut berth_server::config::Config),
) -> TestServer {
    TestServer::start_with(kind, |c| {
        c.secscan.enabled = true;
        c.builds.enabled = true;
        configure(c);
    })
    .await
}

#[backend_test]
async fn setup_sign_in_and_sessions(kind: berth_testkit::DbKind) {
    let s = ui_server(kind, |_| {}).await;
    let mut b = Browser::new(&s);
    // First run: everything leads to set-up, which creates the administrator and signs in.
    assert_eq!(b.get("/").await.1, "/setup");
    assert_eq!(b.get("/signin").await.1, "/setup");
    let (status, _, html) = b
        .post(
            "/setup",
            &[
                ("username", "root"),
                ("email", "root@example.com"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("role=\"alert\"") && html.contains("value=\"root\""),
        "the form is shown again with the error and the input kept"
    );
    let (status, loc, _) = b
        .post(
            "/setup",
            &[
                ("username", "root"),
                ("email", "root@example.com"),
                ("password", "rootpassword"),
            ],
        )
        .await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/"));
    assert!(b.cookie.is_some());
    let (status, _, html) = b.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("You have no repositories yet")
            && html.contains(&format!("podman push --tls-verify=false {}/root/app:v1", s.hostname)),
        "{html}"
    );
    assert_eq!(b.get("/setup").await.1, "/signin", "set-up happens once");

    // Sign-out needs the form token.
    let (status, _, _) = b.post("/signout", &[("csrf", "forged")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let token = b.csrf("/").await;
    let (status, loc, _) = b.post("/signout", &[("csrf", &token)]).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/signin"));
    assert!(b.cookie.is_none());
    assert_eq!(b.get("/repository/root/x").await.1, "/signin?next=/repository/root/x");
    // The query goes along, so signing in lands on the same tab.
    let next = b.get("/repository/root/x?tab=tags").await.1;
    assert_eq!(next, "/signin?next=/repository/root/x%3Ftab%3Dtags");
    assert_eq!(
        b.get("/organization/acme?flash=team_created").await.1,
        "/signin?next=/organization/acme%3Fflash%3Dteam_created"
    );

    // Sign-in: a wrong password says so; the right one sets an HttpOnly, SameSite=Lax cookie and
    // goes where it was asked, but never off-site.
    let (status, _, html) = b
        .post("/signin", &[("username", "root"), ("password", "nope"), ("next", "/")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("Invalid Username or Password"), "{html}");
    let r = raw_signin(&s, "username=root&password=rootpassword&next=%2F%2Fevil.example%2F").await;
    assert_eq!(r.headers()["location"], "/");
    let r = raw_signin(
        &s,
        "username=root&password=rootpassword&next=%2Frepository%2Froot%2Fx%3Ftab%3Dtags",
    )
    .await;
    assert_eq!(r.headers()["location"], "/repository/root/x?tab=tags");
    // Paths that browsers read as another host, raw or encoded, go to `/` as well; a control
    // character is a malformed form (400, no session).
    let sign_in_with =
        async |next: &str| raw_signin(&s, &format!("username=root&password=rootpassword&next={next}")).await;
    for next in [
        "%2F%2Fevil.example",
        "%2F%255C%255Cevil.example",
        "%2F%252F%252Fevil.example",
        "%2F%5Cevil.example",
    ] {
        let r = sign_in_with(next).await;
        assert_eq!(
            (r.status(), r.headers()["location"].to_str().unwrap()),
            (StatusCode::SEE_OTHER, "/"),
            "{next}"
        );
    }
    for next in [
        "%2F%09%2Fevil.example",
        "%2F%0A%2Fevil.example",
        "%2F%2509%2Fevil.example",
        "%2F%2500",
    ] {
        let r = sign_in_with(next).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{next}");
        assert!(r.headers().get("set-cookie").is_none(), "{next}");
    }
    // Login CSRF: a sign-in posted without the form's token, without its cookie, or with another
    // visitor's token is refused, and signs nobody in.
    let (cookie, token) = signin_form(&s).await;
    let (other_cookie, _) = signin_form(&s).await;
    let post = |cookie: Option<&str>, token: Option<&str>| {
        let mut body = "username=root&password=rootpassword".to_owned();
        if let Some(t) = token {
            body.push_str(&format!("&form_token={t}"));
        }
        let mut r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/signin", s.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = cookie {
            r = r.header("cookie", c.to_owned());
        }
        r.send()
    };
    for (c, t) in [
        (None, None),
        (Some(cookie.as_str()), None),
        (None, Some(token.as_str())),
        (Some(other_cookie.as_str()), Some(token.as_str())),
    ] {
        let r = post(c, t).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{c:?} {t:?}");
        assert!(r.headers().get("set-cookie").is_none());
    }
    let r = sign_in_with("%2Frepository%2Froot%2Fx").await;
    assert_eq!(r.headers()["location"], "/repository/root/x");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && !cookie.contains("Secure"),
        "{cookie}"
    );
    // The cookie does not authenticate the API.
    let pair = cookie.split(';').next().unwrap();
    let api = s
        .client
        .get(format!("{}/api/v1/user/", s.base))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    s.stop().await;

    // Over https the cookie is Secure.
    let s = ui_server(kind, |c| c.preferred_url_scheme = "https".into()).await;
    s.init_root().await;
    let r = raw_signin(&s, "username=root&password=rootpassword").await;
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
    s.stop().await;
}

/// Opens the sign-in form: its cookie (`name=value`) and the form token that must match it.
async fn signin_form(s: &TestServer) -> (String, String) {
    let r = s.client.get(format!("{}/signin", s.base)).send().await.unwrap();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("berth_signin="))
        .expect("the sign-in form sets its cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let html = r.text().await.unwrap();
    let at = html.find("name=\"form_token\" value=\"").expect("a form token") + 25;
    let token = html[at..at + html[at..].find('"').unwrap()].to_owned();
    (cookie, token)
}

/// POSTs `body` (URL-encoded) to `/signin` as a browser that opened the form, following no
/// redirect.
async fn raw_signin(s: &TestServer, body: &str) -> reqwest::Response {
    let (cookie, token) = signin_form(s).await;
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/signin", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(format!("{body}&form_token={token}"))
        .send()
        .await
        .unwrap()
}

/// A multipart body with one file field and text fields.
fn multipart(boundary: &str, fields: &[(&str, &str)], file: (&str, &[u8])) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        write!(
            out,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        )
        .unwrap();
    }
    write!(out, "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"Dockerfile\"\r\nContent-Type: application/octet-stream\r\n\r\n", file.0).unwrap();
    out.extend_from_slice(file.1);
    write!(out, "\r\n--{boundary}--\r\n").unwrap();
    out
}

fn layer() -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (path, content) in [
        ("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
        (
            "var/lib/dpkg/status",
            "Package: libssl3\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u1\nSource: openssl\n",
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        t.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&t.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[backend_test]
async fn repository_pages_and_their_forms(kind: berth_testkit::DbKind) {
    let s = ui_server(kind, |_| {}).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
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
    expect(
        s.put(
            "/api/v1/repository/acme/web",
            &root,
            json!({"description": "<script>alert(1)</script>"}),
        )
        .await,
        200,
    );
    let advisory = berth_scan::Advisory::parse(json!({"id": "UI-HIGH", "modified": "2026-11-01T00:00:00Z",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}]}]}]
    }).to_string().as_bytes()).unwrap();
    s.app.import_advisories(&[advisory]).await.unwrap();
    let reg = s.reg("root", "rootpassword");
    reg.push_image("acme/web", "v1", &layer()).await;

    let mut b = Browser::new(&s);
    b.post("/signin", &[("username", "root"), ("password", "rootpassword")])
        .await;
    assert!(b.cookie.is_some());

    // The list, with search.
    let (_, _, html) = b.get("/").await;
    assert!(html.contains("href=\"/repository/acme/web\""));
    let (_, _, html) = b.get("/?q=nothing-like-this").await;
    assert!(html.contains("No repository matches"));

    // Creating a repository: the form token is required; errors keep the input.
    let (status, _, _) = b
        .post(
            "/new/repository",
            &[
                ("csrf", "x"),
                ("namespace", "acme"),
                ("name", "api"),
                ("visibility", "private"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let token = b.csrf("/").await;
    let (status, loc, _) = b
        .post(
            "/new/repository",
            &[
                ("csrf", &token),
                ("namespace", "acme"),
                ("name", "api"),
                ("visibility", "private"),
            ],
        )
        .await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/repository/acme/api"));
    let (status, _, html) = b
        .post(
            "/new/repository",
            &[
                ("csrf", &token),
                ("namespace", "acme"),
                ("name", "api"),
                ("visibility", "private"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("already exists") && html.contains("value=\"api\""),
        "{html}"
    );

    // Information: the pull command (plain HTTP here, the newest tag), the description escaped.
    let (_, _, html) = b.get("/repository/acme/web").await;
    assert!(
        html.contains(&format!("podman pull --tls-verify=false {}/acme/web:v1", s.hostname)),
        "{html}"
    );
    assert!(
        html.contains("&#60;script&#62;alert(1)&#60;/script&#62;") || html.contains("&lt;script&gt;"),
        "escaped: {html}"
    );
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("?tab=settings"), "admins see Settings");

    // Tags: size and platform; the tag link that notifications carry opens this tab.
    let (_, _, html) = b.get("/repository/acme/web?tag=v1&tab=tags").await;
    assert!(
        html.contains("<strong>v1</strong>") && html.contains("linux/amd64"),
        "{html}"
    );

    // Security: counts per severity, the package and its fix, once scanned.
    let html = eventually(Duration::from_secs(60), || async {
        let (_, _, html) = b.get("/repository/acme/web?tab=security&tag=v1").await;
        if html.contains(">scanned<") {
            Ok(html)
        } else {
            Err(format!("the tag is scanned: {html}"))
        }
    })
    .await;
    assert!(
        html.contains("High: 1")
            && html.contains("UI-HIGH")
            && html.contains("3.0.13-1~deb12u1")
            && html.contains("libssl3"),
        "{html}"
    );

    // Builds: upload a Dockerfile, land on the build page, follow the log. It is over 2 MiB (a
    // long comment), past the form extractor's own default limit: builds.max_context_bytes rules.
    let token = b.csrf("/repository/acme/web?tab=builds").await;
    let mut dockerfile = b"FROM scratch\n".to_vec();
    while dockerfile.len() < 3 << 20 {
        dockerfile.extend_from_slice(b"# a long Dockerfile comment, to make the upload larger than two mebibytes\n");
    }
    let body = multipart(
        "XBOUNDARYX",
        &[("csrf", &token), ("tags", "ui")],
        ("context", &dockerfile),
    );
    let r = b
        .with_cookie(b.client.post(format!("{}/repository/acme/web/builds", s.base)))
        .header("content-type", "multipart/form-data; boundary=XBOUNDARYX")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let build_page = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(build_page.starts_with("/repository/acme/web/build/"));
    let log = eventually(Duration::from_secs(120), || async {
        let (_, _, log) = b.get(&format!("{build_page}/log?start=0")).await;
        if log.contains("— complete —") {
            Ok(log)
        } else {
            Err(format!("the build completes: {log}"))
        }
    })
    .await;
    assert!(log.contains("== building =="), "{log}");
    let (_, _, html) = b.get(&build_page).await;
    assert!(
        html.contains("badge complete") && !html.contains("Cancel build"),
        "{html}"
    );
    let (_, _, html) = b.get("/repository/acme/web?tab=builds").await;
    assert!(html.contains("upload by root"), "{html}");

    // Settings: add a trigger (a bad regex is refused and nothing is left behind), then delete it.
    let token = b.csrf("/repository/acme/web?tab=settings").await;
    let trigger_form = |regex: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("service", "github".into()),
            ("build_source", "https://github.com/acme/web.git".into()),
            ("dockerfile_path", "Dockerfile".into()),
            ("context", "/".into()),
            ("branchtag_regex", regex.to_owned()),
        ]
    };
    let form = trigger_form("((");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, html) = b.post("/repository/acme/web/triggers", &pairs).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("branchtag_regex"), "{html}");
    let form = trigger_form("heads/main");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, loc, _) = b.post("/repository/acme/web/triggers", &pairs).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{loc}");
    let (_, _, html) = b.get("/repository/acme/web?tab=settings").await;
    assert!(
        html.contains("/webhooks/push/trigger/") && html.contains("https://github.com/acme/web.git"),
        "{html}"
    );
    let list = expect(s.get("/api/v1/repository/acme/web/trigger/", &root).await, 200);
    assert_eq!(list["triggers"].as_array().unwrap().len(), 1);
    let uuid = list["triggers"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = b
        .post(
            &format!("/repository/acme/web/trigger/{uuid}/delete"),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        expect(s.get("/api/v1/repository/acme/web/trigger/", &root).await, 200)["triggers"],
        json!([])
    );

    // Deleting a tag from the Tags tab. The confirmation comes from Berth's own script (a
    // data-confirm attribute), so the Content-Security-Policy allows no inline script at all.
    let (_, _, html) = b.get("/repository/acme/web?tab=tags").await;
    assert!(
        html.contains("data-confirm=\"Delete tag v1?\"") && !html.contains("onsubmit="),
        "{html}"
    );
    assert!(html.contains("<script src=\"/static/berth.js\""));
    let page = b
        .with_cookie(b.client.get(format!("{}/repository/acme/web?tab=tags", s.base)))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self';") && csp.contains("style-src 'self';") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let script = s
        .client
        .get(format!("{}/static/berth.js", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.text().await.unwrap().contains("data-confirm"));
    let (status, _, _) = b.post("/repository/acme/web/tag/v1/delete", &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, html) = b.get("/repository/acme/web?tab=tags").await;
    assert!(!html.contains("<strong>v1</strong>"));

    // A reader: no Settings tab, and its forms are refused by the same rules as the API.
    let mut r = Browser::new(&s);
    let Auth::Basic(_, password) = &reader else {
        panic!("basic")
    };
    r.post("/signin", &[("username", "reader"), ("password", password)])
        .await;
    let (_, _, html) = r.get("/repository/acme/web?tab=settings").await;
    assert!(
        !html.contains("?tab=settings") && !html.contains("Build triggers"),
        "{html}"
    );
    let token = r.csrf("/").await;
    let (status, _, _) = r
        .post(
            "/repository/acme/web/triggers",
            &[("csrf", &token), ("service", "github"), ("build_source", "x")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = r.get("/repository/acme/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A nested name: every page and form route takes it with raw slashes, as the links write it.
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "acme", "repository": "team/app", "visibility": "private", "description": ""}),
        )
        .await,
        201,
    );
    let (status, _, html) = b.get("/repository/acme/team/app?tab=settings").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("acme/team/app"), "{html}");
    let (status, _, form) = b.get("/repository/acme/team/app/notification/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("name=\"url\""), "{form}");
    let token = b.csrf("/").await;
    let (status, location, _) = b
        .post(
            "/repository/acme/team/app/description",
            &[("csrf", &token), ("description", "nested")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location,
        "/repository/acme/team/app?tab=settings&flash=description_saved"
    );
    let repo = expect(s.get("/api/v1/repository/acme/team%2Fapp", &root).await, 200);
    assert_eq!(repo["description"], "nested");
    let (status, _, _) = b
        .post("/repository/acme/team/app/tag/v9/rename", &[("csrf", &token)])
        .await;
    assert!(status.is_client_error(), "no such form: {status}");
    s.stop().await;
}

#[backend_test]
async fn organizations_permissions_and_the_bell(kind: berth_testkit::DbKind) {
    let s = ui_server(kind, |_| {}).await;
    let root = s.init_root().await;
    s.user(&root, "alice").await;
    let mut b = Browser::new(&s);
    b.post("/signin", &[("username", "root"), ("password", "rootpassword")])
        .await;
    let token = b.csrf("/").await;

    // An organization, a team with a member, a robot whose token is shown once.
    let (status, loc, _) = b.post("/new/organization", &[("csrf", &token), ("name", "acme")]).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/organization/acme"));
    let (_, _, html) = b.get("/organization/acme").await;
    assert!(html.contains("owners") && html.contains("root"), "{html}");
    // Removing yourself asks first; removing the last owner is refused with the reason.
    assert!(
        html.contains("data-confirm=\"Remove yourself from team owners? You lose what it gives you in acme.\""),
        "{html}"
    );
    let (status, _, html) = b
        .post("/organization/acme/team/owners/member/root/delete", &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(
        html.contains("Removing root from team owners would leave organization acme with no administrator"),
        "{html}"
    );
    b.post(
        "/organization/acme/teams",
        &[("csrf", &token), ("name", "devs"), ("role", "member")],
    )
    .await;
    let (status, loc, _) = b
        .post(
            "/organization/acme/team/devs/members",
            &[("csrf", &token), ("member", "alice")],
        )
        .await;
    assert_eq!(
        (status, loc.as_str()),
        (StatusCode::SEE_OTHER, "/organization/acme?flash=member_added")
    );
    // The redirect names a message by key; the page writes its text. A link cannot make the page
    // say anything else.
    let (_, _, html) = b.get(&loc).await;
    assert!(
        html.contains("<p class=\"notice\" role=\"status\">Member added.</p>"),
        "{html}"
    );
    for forged in [
        "Your+session+expired%3A+call+%2B1+555+0100",
        "member_added%00",
        "Member+added.",
    ] {
        let (_, _, html) = b.get(&format!("/organization/acme?flash={forged}")).await;
        assert!(
            !html.contains("class=\"notice\"") && !html.contains("555"),
            "{forged}: {html}"
        );
        let (_, _, html) = b.get(&format!("/repository/root/none?flash={forged}")).await;
        assert!(!html.contains("555"), "{forged}: {html}");
    }
    let (status, _, html) = b
        .post(
            "/organization/acme/team/devs/members",
            &[("csrf", &token), ("member", "nobody")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    let (status, _, html) = b
        .post("/organization/acme/robots", &[("csrf", &token), ("name", "ci")])
        .await;
    assert_eq!(status, StatusCode::OK);
    let needle = "id=\"robot-token\" type=\"text\" readonly value=\"";
    let at = html.find(needle).unwrap() + needle.len();
    let robot_token = html[at..at + html[at..].find('"').unwrap()].to_owned();
    assert!(robot_token.len() >= 32, "{robot_token}");
    assert!(
        html.contains(&format!(
            "podman login --tls-verify=false -u 'acme+ci' -p '{robot_token}' {}",
            s.hostname
        )),
        "{html}"
    );
    let (_, _, html) = b.get("/organization/acme").await;
    assert!(
        html.contains("acme+ci") && !html.contains(&robot_token),
        "the token is shown once"
    );

    // Repository roles for a user, a robot and a team, then revoked.
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "acme", "repository": "web", "visibility": "private"}),
        )
        .await,
        201,
    );
    for (kind, name, role) in [
        ("user", "alice", "write"),
        ("user", "acme+ci", "read"),
        ("team", "devs", "admin"),
    ] {
        let (status, _, html) = b
            .post(
                "/repository/acme/web/permissions",
                &[("csrf", &token), ("kind", kind), ("name", name), ("role", role)],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
    }
    let users = expect(s.get("/api/v1/repository/acme/web/permissions/user/", &root).await, 200);
    assert_eq!(users["permissions"]["alice"]["role"], "write");
    assert_eq!(users["permissions"]["acme+ci"]["role"], "read");
    let (_, _, html) = b.get("/repository/acme/web?tab=settings").await;
    assert!(
        html.contains("<td>acme+ci</td><td>robot</td><td>read</td>")
            && html.contains("<td>devs</td><td>team</td><td>admin</td>"),
        "{html}"
    );
    // The namespace page lists the namespace's repositories, and only those.
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "root", "repository": "elsewhere", "visibility": "private"}),
        )
        .await,
        201,
    );
    let (status, _, ns_page) = b.get("/repository/acme").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        ns_page.contains("<h1>Repositories of acme</h1>")
            && ns_page.contains("acme/web")
            && !ns_page.contains("root/elsewhere"),
        "{ns_page}"
    );
    // Quay's user pages: a user's repositories; an organization's name leads to its page.
    let (status, _, user_page) = b.get("/user/root").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        user_page.contains("<h1>Repositories of root</h1>") && user_page.contains("root/elsewhere"),
        "{user_page}"
    );
    let (status, loc, _) = b.get("/user/acme").await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/organization/acme"));
    // The organization's page lists its repositories.
    let (_, _, org_page) = b.get("/organization/acme").await;
    assert!(
        org_page.contains("<a href=\"/repository/acme/web\">acme/web</a>"),
        "{org_page}"
    );
    // Settings edit the description and the visibility, and delete a repository once its name
    // is typed.
    let (status, loc, _) = b
        .post(
            "/repository/acme/web/description",
            &[("csrf", &token), ("description", "The web app")],
        )
        .await;
    assert_eq!(
        (status, loc.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/repository/acme/web?tab=settings&flash=description_saved"
        )
    );
    let public = [("csrf", token.as_str()), ("visibility", "public")];
    let (status, _, _) = b.post("/repository/acme/web/visibility", &public).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, info) = b.get("/repository/acme/web").await;
    assert!(
        info.contains("<p>The web app</p>") && info.contains("<span class=\"badge public\">public</span>"),
        "{info}"
    );
    let (status, _, refused) = b
        .post(
            "/repository/acme/web/visibility",
            &[("csrf", &token), ("visibility", "secret")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused.contains("secret"), "{refused}");
    let private = [("csrf", token.as_str()), ("visibility", "private")];
    let (status, _, _) = b.post("/repository/acme/web/visibility", &private).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let wrong = [("csrf", token.as_str()), ("confirm", "web")];
    let (status, _, refused) = b.post("/repository/root/elsewhere/delete", &wrong).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused.contains("type its name"), "{refused}");
    expect(s.get("/api/v1/repository/root/elsewhere", &root).await, 200);
    let typed = [("csrf", token.as_str()), ("confirm", "root/elsewhere")];
    let (status, loc, _) = b.post("/repository/root/elsewhere/delete", &typed).await;
    assert_eq!((status, loc.as_str()), (StatusCode::SEE_OTHER, "/repository/root"));
    expect(s.get("/api/v1/repository/root/elsewhere", &root).await, 404);
    let (status, _, missing) = b.get("/user/nobody-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing.contains("nobody-here"), "{missing}");
    // No [mail] host here: e-mail is shown disabled, saying what it needs; builds are on, so the
    // trigger form is there.
    assert!(html.contains(r#"action="/repository/acme/web/triggers""#), "{html}");
    // The bell of an organization's repository may notify one member of its teams.
    let (_, _, bell_form) = b
        .get("/repository/acme/web/notification/new?event=repo_push&method=quay_notification")
        .await;
    assert!(
        bell_form.contains("<option value=\"user:root\"") && bell_form.contains("<option value=\"team:owners\""),
        "{bell_form}"
    );
    let (_, _, form) = b.get("/repository/acme/web/notification/new").await;
    assert!(
        form.contains(r#"<option value="email" disabled>E-mail (needs a [mail] host in the configuration)</option>"#),
        "{form}"
    );
    let (status, _, _) = b
        .post("/repository/acme/web/permission/user/alice/delete", &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let users = expect(s.get("/api/v1/repository/acme/web/permissions/user/", &root).await, 200);
    assert!(users["permissions"].get("alice").is_none());
    let (status, _, _) = b.post("/organization/acme/robot/ci/delete", &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // A webhook's page shows its signing secret and recovery.
    let body = json!({"event": "repo_push", "method": "webhook", "config": {"url": "https://hooks.example.com/berth"}, "eventConfig": {}});
    let hook = expect(
        s.post("/api/v1/repository/acme/web/notification/", &root, body).await,
        201,
    );
    let (_, _, html) = b
        .get(&format!(
            "/repository/acme/web/notification/{}",
            hook["uuid"].as_str().unwrap()
        ))
        .await;
    assert!(
        html.contains("Signing secret") && html.contains("Recover since"),
        "{html}"
    );
    // Gone again before anything is pushed: no delivery may try that address.
    let hook_path = format!(
        "/api/v1/repository/acme/web/notification/{}",
        hook["uuid"].as_str().unwrap()
    );
    expect(s.delete(&hook_path, &root).await, 204);

    // The bell: an in-app notification for root, counted in the header, listed, dismissed.
    let body = json!({"event": "repo_push", "method": "quay_notification", "config": {"target": {"kind": "user", "name": "root"}}, "eventConfig": {}});
    let n = expect(
        s.post("/api/v1/repository/acme/web/notification/", &root, body).await,
        201,
    );
    // Settings lists it under a title that links to its page (untitled: "event → method").
    let (_, _, html) = b.get("/repository/acme/web?tab=settings").await;
    assert!(
        html.contains(&format!(
            "<td class=\"title\"><a href=\"/repository/acme/web/notification/{}\">Push to Repository → Bell (in Berth)</a>",
            n["uuid"].as_str().unwrap()
        )),
        "{html}"
    );
    // Its page offers no signing secret and no recovery: nothing leaves Berth.
    let (_, _, html) = b
        .get(&format!(
            "/repository/acme/web/notification/{}",
            n["uuid"].as_str().unwrap()
        ))
        .await;
    assert!(
        html.contains("nothing is signed or sent out") && !html.contains("Signing secret") && !html.contains("Recover"),
        "{html}"
    );
    expect(
        s.post(
            &format!(
                "/api/v1/repository/acme/web/notification/{}/test",
                n["uuid"].as_str().unwrap()
            ),
            &root,
            json!(null),
        )
        .await,
        200,
    );
    let mut delivered = false;
    for _ in 0..100 {
        s.app.deliver_due(chrono::Utc::now(), 10).await.unwrap();
        let (_, _, html) = b.get("/notifications").await;
        if html.contains("Repository acme/web updated") {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered, "the bell item arrived");
    // Its deliveries filter by status; a status that does not exist is a clear 400.
    let page = format!("/repository/acme/web/notification/{}", n["uuid"].as_str().unwrap());
    let (_, _, html) = b.get(&format!("{page}?status=delivered")).await;
    assert!(
        html.contains("class=\"card delivery\"") && html.contains("?status=delivered\" aria-current=\"page\""),
        "{html}"
    );
    // Each card names what the event was about (the test sample's tags).
    assert!(
        html.contains("<span class=\"subject\">tags latest, foo</span>"),
        "{html}"
    );
    // Each delivery has its own page, linked from its card, without the others or the filter.
    let link = format!("href=\"{page}/delivery/");
    let at = html
        .find(&link)
        .unwrap_or_else(|| panic!("a card links to its page: {html}"))
        + link.len();
    let id = html[at..at + html[at..].find('"').unwrap()].to_owned();
    let (status, _, one) = b.get(&format!("{page}/delivery/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert!(
        one.contains("All deliveries</a>")
            && one.contains(&format!("id=\"delivery-{id}\""))
            && one.matches("class=\"card delivery\"").count() == 1
            && !one.contains("Filter deliveries by status"),
        "{one}"
    );
    let (status, _, _) = b.get(&format!("{page}/delivery/no-such-delivery")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, html) = b.get(&format!("{page}?status=failed")).await;
    assert!(
        html.contains("No failed deliveries.") && !html.contains("class=\"card delivery\""),
        "{html}"
    );
    let (status, _, html) = b.get(&format!("{page}?status=bogus")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("bogus"), "{html}");
    let (_, _, html) = b.get("/").await;
    assert!(html.contains("id=\"bell-count\">1<"), "{html}");
    let (_, _, html) = b.get("/notifications").await;
    let needle = "action=\"/notifications/";
    let at = html.find(needle).unwrap() + needle.len();
    let uuid = html[at..at + html[at..].find('/').unwrap()].to_owned();
    let (status, _, _) = b
        .post(&format!("/notifications/{uuid}/dismiss"), &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, html) = b.get("/").await;
    assert!(html.contains("id=\"bell-count\">0<"), "{html}");
    s.stop().await;
}

#[backend_test]
async fn e_mail_notifications_need_a_verified_address(kind: berth_testkit::DbKind) {
    let smtp = berth_testkit::smtp::SmtpReceiver::start();
    let port = smtp.port;
    let s = ui_server(kind, |c| {
        c.mail.host = "127.0.0.1".into();
        c.mail.port = port;
        c.mail.tls = "none".into();
        c.builds.enabled = false;
    })
    .await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let mut b = Browser::new(&s);
    b.post("/signin", &[("username", "root"), ("password", "rootpassword")])
        .await;
    let token = b.csrf("/").await;
    // The form shows the address's state and offers the verification mail.
    let (_, _, html) = b
        .get("/repository/acme/web/notification/new?event=repo_push&method=email&email=dev%40example.com")
        .await;
    assert!(
        html.contains("not authorized yet") && html.contains("Send verification"),
        "{html}"
    );
    // With mail configured, e-mail is offered like any method.
    assert!(
        html.contains(r#"<option value="email" selected>E-mail</option>"#),
        "{html}"
    );
    // With builds off, Settings explains why there is no trigger form instead of showing one.
    let (_, _, settings) = b.get("/repository/acme/web?tab=settings").await;
    assert!(
        settings.contains("Triggers start builds, and builds are not enabled")
            && !settings.contains(r#"action="/repository/acme/web/triggers""#),
        "{settings}"
    );
    // Every event has a source now: none is marked as test sends only.
    assert!(!html.contains("test sends only"), "{html}");
    assert!(
        html.contains("Push to Repository</option>")
            && html.contains("Package Vulnerability Found</option>")
            && html.contains("Image expiry trigger</option>")
            && html.contains("Repository Mirror Started</option>"),
        "{html}"
    );
    let form = [
        ("csrf", token.as_str()),
        ("event", "repo_push"),
        ("method", "email"),
        ("email", "dev@example.com"),
        ("title", "mail me"),
    ];
    let (status, _, html) = b.post("/repository/acme/web/notifications", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("not authorized to receive notifications") && html.contains("value=\"mail me\""),
        "{html}"
    );
    let (status, _, html) = b.post("/repository/acme/web/authorizedemail", &form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("A verification mail was sent"), "{html}");
    let mail = smtp.next(Duration::from_secs(20)).await.expect("the verification mail");
    let text = mail.text.unwrap_or_default();
    let at = text.find("/authrepoemail?code=").expect("a confirmation link");
    let link: String = text[at..].chars().take_while(|c| !c.is_whitespace()).collect();
    let confirmed = s.client.get(format!("{}{link}", s.base)).send().await.unwrap();
    assert_eq!(confirmed.status(), 200);
    let (_, _, html) = b
        .get("/repository/acme/web/notification/new?event=repo_push&method=email&email=dev%40example.com")
        .await;
    assert!(html.contains("is authorized for this repository"), "{html}");
    let (status, loc, _) = b.post("/repository/acme/web/notifications", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{loc}");
    let (_, _, html) = b.get("/repository/acme/web?tab=settings").await;
    assert!(html.contains("mail me") && html.contains("dev@example.com"), "{html}");
    s.stop().await;
}

#[backend_test]
async fn the_notification_list_filters_and_acts_on_the_chosen(kind: berth_testkit::DbKind) {
    let s = ui_server(kind, |_| {}).await;
    let root = s.init_root().await;
    let mut b = Browser::new(&s);
    b.post("/signin", &[("username", "root"), ("password", "rootpassword")])
        .await;
    let token = b.csrf("/").await;
    expect(
        s.post(
            "/api/v1/repository",
            &root,
            json!({"namespace": "root", "repository": "app", "visibility": "private"}),
        )
        .await,
        201,
    );
    let mut uuids = Vec::new();
    for (event, path) in [("repo_push", "a"), ("repo_push", "b"), ("build_failure", "c")] {
        let body = json!({"event": event, "method": "webhook", "config": {"url": format!("https://hooks.example.com/{path}")}, "eventConfig": {}});
        let n = expect(
            s.post("/api/v1/repository/root/app/notification/", &root, body).await,
            201,
        );
        uuids.push(n["uuid"].as_str().unwrap().to_owned());
    }
    let settings = "/repository/root/app?tab=settings";
    let (_, _, html) = b.get(settings).await;
    assert!(html.contains("3 of 3 shown"), "{html}");
    let (_, _, html) = b.get(&format!("{settings}&nevent=build_failure")).await;
    assert!(
        html.contains("1 of 3 shown") && html.contains(&uuids[2]) && !html.contains(&uuids[0]),
        "{html}"
    );
    let (_, _, html) = b.get(&format!("{settings}&nstatus=disabled")).await;
    assert!(html.contains("No notification matches the filter."), "{html}");

    // Acting on the chosen: enable resets them, delete removes only them.
    let chosen = [
        ("csrf", token.as_str()),
        ("uuid", uuids[0].as_str()),
        ("uuid", uuids[1].as_str()),
    ];
    let (status, loc, _) = b
        .post(
            "/repository/root/app/notifications/bulk",
            &[chosen.as_slice(), &[("op", "enable")]].concat(),
        )
        .await;
    assert_eq!(
        (status, loc.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/repository/root/app?tab=settings&flash=notifications_enabled"
        )
    );
    let (status, _, _) = b
        .post(
            "/repository/root/app/notifications/bulk",
            &[chosen.as_slice(), &[("op", "delete")]].concat(),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let left = expect(s.get("/api/v1/repository/root/app/notification/", &root).await, 200);
    let left: Vec<&str> = left["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(left, [uuids[2].as_str()]);
    // One that does not exist among the chosen: a 404, and the others are left as they were.
    let (status, _, _) = b
        .post(
            "/repository/root/app/notifications/bulk",
            &[
                ("csrf", token.as_str()),
                ("uuid", uuids[2].as_str()),
                ("uuid", "no-such-notification"),
                ("op", "delete"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let still = expect(s.get("/api/v1/repository/root/app/notification/", &root).await, 200);
    assert_eq!(still["notifications"].as_array().unwrap().len(), 1, "{still}");
    // Nothing chosen, or an unknown action: a clear 400, nothing touched.
    let (status, _, html) = b
        .post(
            "/repository/root/app/notifications/bulk",
            &[("csrf", token.as_str()), ("op", "delete")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("choose at least one notification"), "{html}");
    let (status, _, html) = b
        .post(
            "/repository/root/app/notifications/bulk",
            &[("csrf", token.as_str()), ("uuid", uuids[2].as_str()), ("op", "explode")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("unknown action") && html.contains("explode"), "{html}");
    expect(s.get("/api/v1/repository/root/app/notification/", &root).await, 200);
    s.stop().await;
}

#[backend_test]
async fn a_notification_is_edited_paused_and_resumed_in_the_ui(kind: berth_testkit::DbKind) {
    let s = ui_server(kind, |_| {}).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "team/app").await;
    let api = "/api/v1/repository/acme/team%2Fapp/notification/";
    let body = json!({"event": "repo_push", "method": "webhook", "eventConfig": {"tag-regex": "v.*", "kept": 1},
        "config": {"url": "https://hooks.example.com/old", "headers": {"Authorization": "Bearer t"}}});
    let uuid = expect(s.post(api, &root, body).await, 201)["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = Browser::new(&s);
    b.post("/signin", &[("username", "root"), ("password", "rootpassword")])
        .await;
    let page = format!("/repository/acme/team/app/notification/{uuid}");

    // The Edit form shows what is stored, with the event and the method fixed.
    let (status, _, form) = b.get(&format!("{page}/edit")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("<h1>Edit Notification</h1>"), "{form}");
    assert!(form.contains("value=\"https://hooks.example.com/old\""), "{form}");
    assert!(form.contains("value=\"v.*\""), "{form}");
    assert!(form.contains(&format!(
        "action=\"/repository/acme/team/app/notification/{uuid}/edit\""
    )));
    assert!(
        form.contains("<select id=\"method\" name=\"method\" disabled>"),
        "{form}"
    );
    let token = b.csrf(&page).await;

    // A refused edit shows the form again with the message by its field, and changes nothing.
    let (status, _, html) = b
        .post(
            &format!("{page}/edit"),
            &[("csrf", &token), ("url", "ftp://nope.example/"), ("tag_regex", "v.*")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("Invalid webhook URL"), "{html}");
    // Saved: the form's keys change, the rest (headers, unknown event keys) stay.
    let (status, location, _) = b
        .post(
            &format!("{page}/edit"),
            &[
                ("csrf", &token),
                ("event", "build_success"),
                ("url", "https://hooks.example.com/new"),
                ("tag_regex", ""),
                ("title", "Releases"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("{page}?flash=notification_saved"));
    let n = expect(s.get(&format!("{api}{uuid}"), &root).await, 200);
    assert_eq!(n["event"], "repo_push", "the form cannot change the event");
    assert_eq!(n["title"], "Releases");
    assert_eq!(
        n["config"],
        json!({"url": "https://hooks.example.com/new", "headers": {"Authorization": "Bearer t"}})
    );
    assert_eq!(n["event_config"], json!({"kept": 1}));

    // Sending a verification mail from the Edit form comes back to it (here mail is not set up,
    // which the form says by the address); a uuid of no notification here is a 404.
    let verify = "/repository/acme/team/app/authorizedemail";
    let fields = [
        ("csrf", token.as_str()),
        ("editing", uuid.as_str()),
        ("event", "repo_push"),
        ("method", "email"),
        ("email", "dev@example.com"),
    ];
    let (_, _, html) = b.post(verify, &fields).await;
    assert!(html.contains("<h1>Edit Notification</h1>"), "{html}");
    let mut forged = fields;
    forged[1] = ("editing", "no-such-uuid");
    let (status, _, _) = b.post(verify, &forged).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Pause, then resume.
    let (status, _, _) = b.post(&format!("{page}/pause"), &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let n = expect(s.get(&format!("{api}{uuid}"), &root).await, 200);
    assert_eq!(
        (&n["enabled"], &n["disabled_reason"]),
        (&json!(false), &json!("Paused by root"))
    );
    let (_, _, html) = b.get(&page).await;
    assert!(html.contains("/resume\"") && !html.contains("/pause\""), "{html}");
    let (status, _, _) = b.post(&format!("{page}/resume"), &[("csrf", &token)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let n = expect(s.get(&format!("{api}{uuid}"), &root).await, 200);
    assert_eq!(n["enabled"], true);
    s.stop().await;
}

#[backend_test]
async fn an_organization_manages_its_namespace_wide_notifications_in_the_ui(kind: berth_testkit::DbKind) {
    let s = ui_server(kind, |_| {}).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    let mut b = Browser::new(&s);
    b.post("/signin", &[("username", "root"), ("password", "rootpassword")])
        .await;
    let list = "/organization/acme/notifications";

    // The organization page leads to its notifications, which start empty.
    let (_, _, html) = b.get("/organization/acme").await;
    assert!(html.contains(&format!("href=\"{list}\"")), "{html}");
    let (status, _, html) = b.get(list).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No namespace-wide notifications yet."), "{html}");

    // The form offers the repository events and the namespace's own, and the repository filter.
    let (status, _, form) = b.get("/organization/acme/notification/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(form.contains("value=\"repo_created\""), "{form}");
    assert!(form.contains("id=\"repository_regex\""), "{form}");
    assert!(form.contains("action=\"/organization/acme/notifications\""), "{form}");
    let (_, _, repo_form) = b.get("/repository/acme/web/notification/new").await;
    assert!(
        !repo_form.contains("value=\"repo_created\"") && !repo_form.contains("id=\"repository_regex\""),
        "a repository's form offers neither"
    );
    let token = b.csrf(list).await;
    // A bad pattern comes back next to its field; a good one is created.
    let fields = |regex: &'static str| -> [(&'static str, String); 6] {
        [
            ("csrf", token.clone()),
            ("event", "repo_push".into()),
            ("method", "webhook".into()),
            ("url", "https://hooks.example.com/all".into()),
            ("repository_regex", regex.into()),
            ("title", "Every team repository".into()),
        ]
    };
    fn refs<'a>(f: &'a [(&'static str, String); 6]) -> Vec<(&'static str, &'a str)> {
        f.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
    let (bad, good) = (fields("("), fields("team/.+"));
    let (status, _, html) = b.post(list, &refs(&bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("invalid repository-regex"), "{html}");
    let (status, location, _) = b.post(list, &refs(&good)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("{list}?flash=notification_created"));
    let api = expect(s.get("/api/v1/organization/acme/notifications", &root).await, 200);
    let n = &api["notifications"][0];
    assert_eq!(n["event_config"], json!({"repository-regex": "team/.+"}));
    let uuid = n["uuid"].as_str().unwrap().to_owned();

    // Listed, with its page of deliveries; a test send, an edit, then a delete.
    let (_, _, html) = b.get(list).await;
    assert!(html.contains("Every team repository"), "{html}");
    assert!(
        html.contains(&format!("href=\"/organization/acme/notification/{uuid}\"")),
        "{html}"
    );
    let page = format!("/organization/acme/notification/{uuid}");
    let (status, _, html) = b.get(&page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("href=\"{list}\"")), "back to the list: {html}");
    let (status, location, _) = b.post(&format!("{page}/test"), &[("csrf", &token)]).await;
    assert_eq!(
        (status, location),
        (StatusCode::SEE_OTHER, format!("{page}?flash=test_sent"))
    );
    let (_, _, form) = b.get(&format!("{page}/edit")).await;
    assert!(form.contains("value=\"team/.+\""), "{form}");
    let (status, _, _) = b
        .post(
            &format!("{page}/edit"),
            &[
                ("csrf", &token),
                ("url", "https://hooks.example.com/all"),
                ("repository_regex", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let n = expect(
        s.get(&format!("/api/v1/organization/acme/notifications/{uuid}"), &root)
            .await,
        200,
    );
    assert_eq!(n["event_config"], json!({}), "the filter was cleared");
    let (status, location, _) = b.post(&format!("{page}/delete"), &[("csrf", &token)]).await;
    assert_eq!(
        (status, location),
        (StatusCode::SEE_OTHER, format!("{list}?flash=notification_deleted"))
    );
    assert_eq!(
        expect(s.get("/api/v1/organization/acme/notifications", &root).await, 200)["notifications"],
        json!([])
    );

    // Someone who does not administer the organization gets no page.
    let Auth::Basic(name, password) = s.user(&root, "eve").await else {
        panic!("a user signs in with a password")
    };
    let mut eve = Browser::new(&s);
    eve.post("/signin", &[("username", &name), ("password", &password)])
        .await;
    let (status, _, _) = eve.get(list).await;
    assert!(matches!(status.as_u16(), 403 | 404), "{status}");
    s.stop().await;
}

#[backend_test]
async fn the_mirroring_tab_sets_the_state_and_the_mirror(kind: berth_testkit::DbKind) {
    let s = ui_server(kind, |_| {}).await;
    let root = s.init_root().await;
    s.org_with_repo(&root, "acme", "web").await;
    s.robot(&root, "acme", "sync").await;
    let mut b = Browser::new(&s);
    b.post("/signin", &[("username", "root"), ("password", "rootpassword")])
        .await;
    let tab = "/repository/acme/web?tab=mirroring";
    let (status, _, html) = b.get(tab).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Not a mirror") && html.contains("<option value=\"acme+sync\""),
        "{html}"
    );
    let token = b.csrf(tab).await;
    let (status, location, _) = b
        .post(
            "/repository/acme/web/changestate",
            &[("csrf", &token), ("state", "MIRROR")],
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/repository/acme/web?tab=mirroring&flash=state_saved"
        )
    );
    let form = |reference: &'static str| {
        [
            ("csrf", token.clone()),
            ("is_enabled", "on".to_owned()),
            ("external_reference", reference.to_owned()),
            ("external_registry_password", "s3cret".to_owned()),
            ("tags", "v1.*, latest".to_owned()),
            ("architecture_filter", "amd64".to_owned()),
            ("robot_username", "acme+sync".to_owned()),
            ("sync_interval", "3600".to_owned()),
            ("sync_start_date", "2030-01-01T06:30".to_owned()),
            ("skopeo_timeout_interval", "600".to_owned()),
        ]
    };
    fn refs<'a>(f: &'a [(&'static str, String); 10]) -> Vec<(&'static str, &'a str)> {
        f.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
    let (bad, good) = (form("not a reference"), form("registry.example.com/library/app"));
    let (status, _, html) = b.post("/repository/acme/web/mirror", &refs(&bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("invalid external_reference"), "{html}");
    let (status, location, _) = b.post("/repository/acme/web/mirror", &refs(&good)).await;
    assert_eq!(
        (status, location.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/repository/acme/web?tab=mirroring&flash=mirror_saved"
        )
    );
    let m = expect(s.get("/api/v1/repository/acme/web/mirror", &root).await, 200);
    assert_eq!(m["root_rule"]["rule_value"], json!(["v1.*", "latest"]));
    assert_eq!(
        (m["sync_start_date"].as_str(), m["skopeo_timeout_interval"].as_i64()),
        (Some("2030-01-01T06:30:00Z"), Some(600))
    );
    assert_eq!(m["external_registry_config"]["verify_tls"], false, "an unchecked box");
    let (_, _, html) = b.get(tab).await;
    assert!(
        html.contains("NEVER_RUN") && html.contains("value=\"registry.example.com/library/app\""),
        "{html}"
    );
    assert!(!html.contains("s3cret"), "the password is never shown");
    let (status, _, _) = b
        .post("/repository/acme/web/mirror/sync-cancel", &[("csrf", &token)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        expect(s.get("/api/v1/repository/acme/web/mirror", &root).await, 200)["sync_status"],
        "CANCEL"
    );
    s.stop().await;
}
