//! The web UI: server-rendered pages (askama templates, escaped by default), htmx for the live
//! build log, one stylesheet, no build chain. Pages call the same use cases as the API, so every
//! rule (permissions, validation) is the application's.
//!
//! Sessions: signing in sets an `HttpOnly`, `SameSite=Lax` cookie (`Secure` when the server's
//! scheme is https) holding a random token stored hashed; every state-changing form carries the
//! session's form token, checked before anything happens (CSRF). The cookie never authenticates
//! `/api/v1` or `/v2`.

mod flash;
mod notify;
mod org;
mod repo;

use askama::Template;
use std::net::IpAddr;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use berth_app::{AppError, Ctx};
use serde::Deserialize;

use crate::HttpState;
use crate::extract::ClientAddr;

/// The session cookie's name.
pub const COOKIE: &str = "berth_session";

const CSS: &str = include_str!("../../assets/berth.css");
const HTMX: &str = include_str!("../../assets/htmx-2.0.11.min.js");
const SCRIPT: &str = include_str!("../../assets/berth.js");

/// The UI's routes.
pub fn router() -> Router<HttpState> {
    let mut router = Router::new();
    for (suffix, page) in repo::PAGES {
        let handler = move |s, h, ip, p, uri, q| repo::get(page, s, h, ip, p, uri, q);
        router = router.route(&format!("{REPO_ROUTE}{suffix}"), get(handler));
    }
    for (suffix, action) in repo::ACTIONS {
        let handler = move |s, h, ip, p, uri, body| repo::post(action, s, h, ip, p, uri, body);
        router = router.route(&format!("{REPO_ROUTE}{suffix}"), post(handler));
    }
    for (suffix, page) in org::PAGES {
        let handler = move |s, h, ip, p, uri, q| org::notification_page(page, s, h, ip, p, uri, q);
        router = router.route(&format!("/organization/{{org}}{suffix}"), get(handler));
    }
    for (suffix, action) in org::ACTIONS {
        let handler = move |s, h, ip, p, form| org::post(action, s, h, ip, p, form);
        router = router.route(&format!("/organization/{{org}}{suffix}"), post(handler));
    }
    router
        .route("/", get(home))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .route("/setup", get(setup_page).post(setup))
        .route("/new/repository", post(create_repo))
        .route("/new/organization", post(create_org))
        .route("/organization/{org}", get(org::get))
        .route("/notifications", get(bell_page))
        .route("/notifications/{uuid}/dismiss", post(dismiss))
        .route("/repository/{ns}", get(namespace_page))
        .route("/user/{name}", get(user_page))
        .route(
            "/static/berth.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/static/htmx.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", HTMX) }),
        )
        .route(
            "/static/berth.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
}

/// Where the repository pages' routes start; [`repo::PAGES`] and [`repo::ACTIONS`] follow it.
const REPO_ROUTE: &str = "/repository/{ns}/{repo}";

/// The repository routes' suffixes, by which nested names' raw slashes are re-encoded before
/// routing (`/repository/acme/team/app/build/1` is a build of `team/app`).
pub(crate) fn repo_suffixes() -> crate::repo_path::RepoSuffixes {
    let pages = repo::PAGES.iter().map(|(suffix, _)| *suffix);
    let actions = repo::ACTIONS.iter().map(|(suffix, _)| *suffix);
    crate::repo_path::RepoSuffixes::new("/repository/", pages.chain(actions))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// What the page frame shows: who is signed in, and the form token.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The signed-in user's name.
    pub user: Option<String>,
    /// The session's form token.
    pub csrf: String,
    /// Undismissed in-app notifications (the bell).
    pub unread: i64,
}

/// A signed-in request.
#[derive(Debug, Clone)]
pub struct Session {
    /// The use-case context (the session's user, the client address).
    pub ctx: Ctx,
    /// The frame.
    pub chrome: Chrome,
}

impl Session {
    /// Checks a form's token against the session's: the refusal page when it does not match.
    pub fn refused(&self, form_token: &str) -> Option<Response> {
        if !form_token.is_empty() && berth_app::secret::same_secret(&self.chrome.csrf, form_token) {
            None
        } else {
            Some(message(
                StatusCode::FORBIDDEN,
                &self.chrome,
                "Form expired",
                "This form is out of date or did not come from Berth. Reload the page and try again.",
            ))
        }
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie_named(headers, COOKIE)
}

/// The value of cookie `name`, if the request carries it.
fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The cookie that carries the sign-in form's token (double submit: the form must post the value
/// its cookie holds, which another site can neither read nor set), so nobody can sign a visitor
/// in to an account of theirs (login CSRF).
const SIGNIN_COOKIE: &str = "berth_signin";

/// The sign-in form token of this visitor: the one its cookie holds, or a new one.
fn signin_token(headers: &HeaderMap) -> String {
    cookie_named(headers, SIGNIN_COOKIE)
        .filter(|t| t.len() == 32 && t.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| berth_app::secret::random_token(32))
}

/// Renders the sign-in page with the form token, setting its cookie.
fn signin_form(s: &HttpState, status: StatusCode, page: &SignInPage) -> Response {
    let mut r = render(status, page);
    let secure = if s.app.settings().preferred_url_scheme == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SIGNIN_COOKIE}={}; Path=/signin; HttpOnly; SameSite=Strict; Max-Age=3600{secure}",
        page.form_token
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The signed-in session, if the cookie names a live one.
pub async fn session(s: &HttpState, headers: &HeaderMap, ip: Option<IpAddr>) -> Result<Option<Session>, AppError> {
    let Some(token) = cookie_token(headers) else {
        return Ok(None);
    };
    let Some(found) = s.app.session_caller(&token).await? else {
        return Ok(None);
    };
    let user = found.caller.account().map(|p| p.name.clone());
    let unread = s.app.unread_count(&found.caller).await?;
    Ok(Some(Session {
        ctx: Ctx {
            caller: found.caller,
            ip: ip.map(|ip| ip.to_string()),
        },
        chrome: Chrome {
            user,
            csrf: found.csrf,
            unread,
        },
    }))
}

/// The session, or a redirect to the sign-in page that comes back to `path`.
pub async fn require(s: &HttpState, headers: &HeaderMap, ip: Option<IpAddr>, path: &str) -> Result<Session, Response> {
    match session(s, headers, ip).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(Redirect::to(&format!("/signin?next={}", encode(path))).into_response()),
        Err(e) => Err(error_page(&Chrome::default(), e)),
    }
}

/// A time as every page shows it: `2026-12-07 05:17:25 UTC`.
pub(crate) fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The target a page's sign-in redirect comes back to: its path with its query (`?tab=tags`).
pub(crate) fn target(uri: &axum::http::Uri) -> &str {
    uri.path_and_query().map_or("/", |pq| pq.as_str())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The session of a form post whose token checks out; otherwise the sign-in redirect or the
/// refusal page.
pub async fn form_session(
    s: &HttpState,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
    path: &str,
    csrf: &str,
) -> Result<Session, Response> {
    let session = require(s, headers, ip, path).await?;
    match session.refused(csrf) {
        Some(refused) => Err(refused),
        None => Ok(session),
    }
}

/// Renders a template, with the security headers every page gets.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            let h = r.headers_mut();
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
            // Scripts and styles only from this server, never inline (htmx's own indicator style
            // is turned off in base.html; berth.css has it).
            h.insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'self'; script-src 'self'; style-src 'self'; \
                     img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
                ),
            );
            h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    chrome: &'a Chrome,
    message: &'a str,
}

/// A page with a title and one message.
pub fn message(status: StatusCode, chrome: &Chrome, title: &str, text: &str) -> Response {
    render(
        status,
        &MessagePage {
            title,
            chrome,
            message: text,
        },
    )
}

/// The page for a use case's error, with the API's status mapping.
pub fn error_page(chrome: &Chrome, e: AppError) -> Response {
    let api = crate::error::ApiError::from(e);
    let title = match api.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::UNAUTHORIZED => "Sign in needed",
        StatusCode::BAD_REQUEST => "That did not work",
        _ => "Something went wrong",
    };
    let mut resp = message(api.status, chrome, title, &api.detail);
    if let Some(secs) = api.retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Any path no route serves: a page saying so, with a way back (under `/api/v1` the error
/// envelope turns it into Quay's JSON body).
pub async fn not_found(uri: axum::http::Uri) -> Response {
    error_page(
        &Chrome::default(),
        AppError::NotFound(format!("There is no page at {}.", uri.path())),
    )
}

/// The `Set-Cookie` value of a session token (empty and expired to clear it).
fn session_cookie(s: &HttpState, token: &str, clear: bool) -> String {
    let secure = if s.app.settings().preferred_url_scheme == "https" {
        "; Secure"
    } else {
        ""
    };
    let age = if clear {
        0
    } else {
        berth_app::sessions::SESSION_TTL.num_seconds()
    };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={age}{secure}")
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    title: &'static str,
    chrome: Chrome,
    error: Option<String>,
    username: String,
    next: String,
    form_token: String,
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

/// Only local paths are followed after sign-in (no open redirect); anything else goes to `/`.
fn safe_next(next: &str) -> String {
    if is_local_path(next) {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

/// Whether `next` is a path on this site: no whitespace as sent; one leading `/` not followed by
/// `/` or `\` (which browsers read as another host), no backslash or control character anywhere
/// (browsers drop tabs and newlines, so `/<TAB>/host` is `//host`), checked again after each round
/// of percent-decoding (`/%2F`, `/%09/`, `%252F`); and it resolves to this origin.
fn is_local_path(next: &str) -> bool {
    if next.chars().any(char::is_whitespace) {
        return false;
    }
    let mut text = next.to_owned();
    for _ in 0..4 {
        let local = text.starts_with('/')
            && !text[1..].starts_with(['/', '\\'])
            && !text.chars().any(|c| c == '\\' || c.is_control());
        if !local {
            return false;
        }
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == text {
            break;
        }
        text = decoded;
    }
    let Ok(base) = url::Url::parse("http://berth.invalid/") else {
        return false;
    };
    base.join(next)
        .is_ok_and(|u| u.scheme() == "http" && u.host_str() == Some("berth.invalid"))
}

/// Whether `next` carries a control character, as sent or percent-encoded: a malformed form.
fn has_control(next: &str) -> bool {
    next.chars().any(char::is_control)
        || percent_encoding::percent_decode_str(next)
            .decode_utf8_lossy()
            .chars()
            .any(char::is_control)
}

async fn signin_page(State(s): State<HttpState>, headers: HeaderMap, Query(q): Query<NextQuery>) -> Response {
    if s.app.needs_setup().await.unwrap_or(false) {
        return Redirect::to("/setup").into_response();
    }
    signin_form(
        &s,
        StatusCode::OK,
        &SignInPage {
            title: "Sign in",
            chrome: Chrome::default(),
            error: None,
            username: String::new(),
            next: safe_next(&q.next),
            form_token: signin_token(&headers),
        },
    )
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    form_token: String,
}

async fn signin(
    State(s): State<HttpState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let expected = cookie_named(&headers, SIGNIN_COOKIE);
    if !expected.is_some_and(|t| !t.is_empty() && berth_app::secret::same_secret(&t, &f.form_token)) {
        return message(
            StatusCode::FORBIDDEN,
            &Chrome::default(),
            "Not allowed",
            "The sign-in form has expired or did not come from this site. Reload the page and sign in again.",
        );
    }
    if has_control(&f.next) {
        return message(
            StatusCode::BAD_REQUEST,
            &Chrome::default(),
            "That did not work",
            "The address to return to after signing in is not valid.",
        );
    }
    match s.app.sign_in(f.username.trim(), &f.password, client).await {
        Ok(new) => {
            let mut r = Redirect::to(&safe_next(&f.next)).into_response();
            if let Ok(v) = HeaderValue::from_str(&session_cookie(&s, &new.token, false)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(AppError::BadCredentials(msg)) => signin_form(
            &s,
            StatusCode::UNAUTHORIZED,
            &SignInPage {
                title: "Sign in",
                chrome: Chrome::default(),
                error: Some(msg),
                username: f.username,
                next: safe_next(&f.next),
                form_token: f.form_token,
            },
        ),
        Err(e) => error_page(&Chrome::default(), e),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn signout(State(s): State<HttpState>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let Some(token) = cookie_token(&headers) else {
        return Redirect::to("/signin").into_response();
    };
    if let Ok(Some(session)) = session(&s, &headers, None).await
        && let Some(refused) = session.refused(&f.csrf)
    {
        return refused;
    }
    if let Err(e) = s.app.sign_out(&token).await {
        return error_page(&Chrome::default(), e);
    }
    let mut r = Redirect::to("/signin").into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&s, "", true)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    title: &'static str,
    chrome: Chrome,
    error: Option<String>,
    username: String,
    email: String,
}

async fn setup_page(State(s): State<HttpState>) -> Response {
    match s.app.needs_setup().await {
        Ok(true) => render(
            StatusCode::OK,
            &SetupPage {
                title: "Set up Berth",
                chrome: Chrome::default(),
                error: None,
                username: String::new(),
                email: String::new(),
            },
        ),
        Ok(false) => Redirect::to("/signin").into_response(),
        Err(e) => error_page(&Chrome::default(), e),
    }
}

#[derive(Debug, Deserialize)]
struct SetupForm {
    username: String,
    email: String,
    password: String,
}

async fn setup(State(s): State<HttpState>, ClientAddr(client): ClientAddr, Form(f): Form<SetupForm>) -> Response {
    let ctx = Ctx {
        caller: berth_app::Caller::Anonymous,
        ip: client.map(|ip| ip.to_string()),
    };
    let new = berth_app::accounts::NewUser {
        username: f.username.trim().to_owned(),
        email: Some(f.email.trim().to_owned()),
        password: f.password.clone(),
        superuser: true,
    };
    match s.app.initialize(&ctx, new, false).await {
        Ok(_) => match s.app.sign_in(f.username.trim(), &f.password, client).await {
            Ok(session) => {
                let mut r = Redirect::to("/").into_response();
                if let Ok(v) = HeaderValue::from_str(&session_cookie(&s, &session.token, false)) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            }
            Err(e) => error_page(&Chrome::default(), e),
        },
        Err(AppError::Invalid { message: msg, .. }) => render(
            StatusCode::BAD_REQUEST,
            &SetupPage {
                title: "Set up Berth",
                chrome: Chrome::default(),
                error: Some(msg),
                username: f.username,
                email: f.email,
            },
        ),
        Err(e) => error_page(&Chrome::default(), e),
    }
}

/// A repository in the list.
/// A repository in a list: its path, visibility and the caller's role.
pub(super) struct RepoItem {
    pub path: String,
    pub visibility: String,
    pub role: String,
}

/// The repositories the caller may see that match `query`, those of `namespace` only when given.
pub(super) async fn repo_items(
    s: &HttpState,
    caller: &berth_app::Caller,
    query: &str,
    namespace: Option<&str>,
) -> Result<Vec<RepoItem>, AppError> {
    Ok(s.app
        .visible_repos(caller, query)
        .await?
        .into_iter()
        .filter(|r| namespace.is_none_or(|n| r.repo.namespace == n))
        .map(|r| RepoItem {
            path: format!("{}/{}", r.repo.namespace, r.repo.name),
            visibility: r.repo.visibility.as_str().to_owned(),
            role: r.role.as_str().to_owned(),
        })
        .collect())
}

#[derive(Template)]
#[template(path = "repos.html")]
struct ReposPage {
    title: String,
    chrome: Chrome,
    query: String,
    repos: Vec<RepoItem>,
    host: String,
    /// ` --tls-verify=false` on a plain-HTTP instance.
    tls: &'static str,
    error: Option<String>,
    form_namespace: String,
    form_name: String,
    orgs: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct HomeQuery {
    #[serde(default)]
    q: String,
}

async fn repos_page(
    s: &HttpState,
    session: Session,
    query: String,
    error: Option<String>,
    form: (String, String),
    namespace: Option<&str>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let repos = match repo_items(s, &session.ctx.caller, &query, namespace).await {
        Ok(r) => r,
        Err(e) => return error_page(&session.chrome, e),
    };
    let orgs = match s.app.user_info(&session.ctx.caller).await {
        Ok(info) => info.organizations.into_iter().map(|(o, _)| o.name).collect(),
        Err(_) => Vec::new(),
    };
    let form_namespace = match (form.0.is_empty(), namespace) {
        (false, _) => form.0,
        (true, Some(n)) => n.to_owned(),
        (true, None) => session.chrome.user.clone().unwrap_or_default(),
    };
    render(
        status,
        &ReposPage {
            title: namespace.map_or_else(|| "Repositories".to_owned(), |n| format!("Repositories of {n}")),
            host: s.app.settings().server_hostname.clone(),
            tls: s.app.settings().podman_tls_flag(),
            chrome: session.chrome,
            query,
            repos,
            error,
            form_namespace,
            form_name: form.1,
            orgs,
        },
    )
}

async fn home(
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    uri: axum::http::Uri,
    Query(q): Query<HomeQuery>,
) -> Response {
    if s.app.needs_setup().await.unwrap_or(false) {
        return Redirect::to("/setup").into_response();
    }
    let session = match require(&s, &headers, ip, target(&uri)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    repos_page(&s, session, q.q, None, (String::new(), String::new()), None).await
}

/// `/repository/{ns}`: the namespace's repositories that the caller can see.
async fn namespace_page(
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    uri: axum::http::Uri,
    Path(ns): Path<String>,
) -> Response {
    let session = match require(&s, &headers, ip, target(&uri)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    repos_page(
        &s,
        session,
        String::new(),
        None,
        (String::new(), String::new()),
        Some(&ns),
    )
    .await
}

/// A user's page, as Quay has it at `/user/{name}`: the user's repositories that the caller may
/// see. An organization's name leads to its page; an unknown name is a 404.
async fn user_page(
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    uri: axum::http::Uri,
    Path(name): Path<String>,
) -> Response {
    let session = match require(&s, &headers, ip, target(&uri)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match s.app.namespace_kind(&session.ctx.caller, &name).await {
        Ok(berth_core::AccountKind::Organization) => Redirect::to(&format!("/organization/{name}")).into_response(),
        Ok(_) => {
            let form = (String::new(), String::new());
            repos_page(&s, session, String::new(), None, form, Some(&name)).await
        }
        Err(e) => error_page(&session.chrome, e),
    }
}

#[derive(Debug, Deserialize)]
struct NewRepoForm {
    #[serde(default)]
    csrf: String,
    namespace: String,
    name: String,
    visibility: String,
}

async fn create_repo(
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    Form(f): Form<NewRepoForm>,
) -> Response {
    let session = match form_session(&s, &headers, ip, "/", &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let visibility = match f.visibility.as_str() {
        "public" => berth_core::Visibility::Public,
        _ => berth_core::Visibility::Private,
    };
    let new = berth_app::repos::NewRepo {
        namespace: f.namespace.trim().to_owned(),
        name: f.name.trim().to_owned(),
        visibility,
        description: String::new(),
    };
    match s.app.create_repo(&session.ctx, &new).await {
        Ok(r) => Redirect::to(&format!("/repository/{}/{}", r.namespace, r.name)).into_response(),
        Err(
            e @ (AppError::Invalid { .. } | AppError::Conflict(_) | AppError::Forbidden(_) | AppError::NotFound(_)),
        ) => {
            let msg = match e {
                AppError::Forbidden(_) | AppError::NotFound(_) => {
                    format!("You cannot create repositories in '{}'.", new.namespace)
                }
                other => other.to_string(),
            };
            repos_page(&s, session, String::new(), Some(msg), (f.namespace, f.name), None).await
        }
        Err(e) => error_page(&session.chrome, e),
    }
}

async fn bell_page(State(s): State<HttpState>, headers: HeaderMap, ClientAddr(ip): ClientAddr) -> Response {
    let session = match require(&s, &headers, ip, "/notifications").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    notify::bell(&session, &s.app)
        .await
        .unwrap_or_else(|e| error_page(&session.chrome, e))
}

async fn dismiss(
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    axum::extract::Path(uuid): axum::extract::Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let session = match form_session(&s, &headers, ip, "/notifications", &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match s.app.dismiss_notification(&session.ctx.caller, &uuid, true).await {
        Ok(_) => Redirect::to("/notifications").into_response(),
        Err(e) => error_page(&session.chrome, e),
    }
}

#[derive(Debug, Deserialize)]
struct NewOrgForm {
    #[serde(default)]
    csrf: String,
    name: String,
}

async fn create_org(
    State(s): State<HttpState>,
    headers: HeaderMap,
    ClientAddr(ip): ClientAddr,
    Form(f): Form<NewOrgForm>,
) -> Response {
    let session = match form_session(&s, &headers, ip, "/", &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match s.app.create_org(&session.ctx, f.name.trim(), None).await {
        Ok(org) => Redirect::to(&format!("/organization/{}", org.name)).into_response(),
        Err(e @ (AppError::Invalid { .. } | AppError::Conflict(_))) => {
            repos_page(
                &s,
                session,
                String::new(),
                Some(e.to_string()),
                (String::new(), String::new()),
                None,
            )
            .await
        }
        Err(e) => error_page(&session.chrome, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_paths_are_returned_to() {
        for ok in [
            "/",
            "/repository/acme/web",
            "/repository/acme/web?tab=builds",
            "/a%20b",
            "/ü",
        ] {
            assert!(is_local_path(ok), "{ok}");
            assert_eq!(safe_next(ok), ok);
        }
        for bad in [
            "",
            "repository",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            "%2F%2Fevil.example",
            "/%2F/evil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "/%252F/evil.example",
            "/%25252F/evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/ /evil.example",
        ] {
            assert!(!is_local_path(bad), "{bad:?}");
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn control_characters_are_found_raw_and_encoded() {
        assert!(has_control("/\tx") && has_control("/%0Dx") && has_control("/%00"));
        assert!(!has_control("/repository/acme/web") && !has_control("/%2F"));
    }
}
