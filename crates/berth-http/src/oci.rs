//! The OCI distribution API under `/v2/{*rest}`: one tested parser turns the tail of the path into
//! a route (repository names contain `/`, so the router cannot split them); `dispatch`
//! authenticates the caller and checks its access to the repository once, and one handler per
//! area (tags, blobs, uploads, manifests, referrers, the catalog) calls the registry use cases
//! with the resulting `RepoRequest`.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_app::registry::{Action, RegistryAuth, RegistryError};
use berth_app::{AppError, Ctx};
use berth_core::{Digest, DigestAlgorithm, Reference, RepoPath};
use futures_util::TryStreamExt;
use tokio_util::io::StreamReader;

use crate::HttpState;
use crate::extract::{Credentials, credentials};
use crate::registry::OciError;

/// A parsed `/v2/` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `_catalog`.
    Catalog,
    /// `<name>/tags/list`.
    Tags(String),
    /// `<name>/manifests/<reference>`.
    Manifest(String, String),
    /// `<name>/blobs/uploads/` (start) or `<name>/blobs/uploads/<id>`.
    Upload(String, Option<String>),
    /// `<name>/blobs/<digest>`.
    Blob(String, String),
    /// `<name>/referrers/<digest>`.
    Referrers(String, String),
}

impl Route {
    /// Parses the part of the path after `/v2/`. The name is whatever precedes the last marker;
    /// references, digests and upload ids never contain `/`.
    pub fn parse(rest: &str) -> Option<Route> {
        if rest == "_catalog" {
            return Some(Route::Catalog);
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Some(Route::Tags(name.to_owned()));
        }
        if let Some(name) = rest
            .strip_suffix("/blobs/uploads/")
            .or_else(|| rest.strip_suffix("/blobs/uploads"))
        {
            return Some(Route::Upload(name.to_owned(), None));
        }
        let split = |marker: &str| {
            rest.rsplit_once(marker)
                .filter(|(name, tail)| !name.is_empty() && !tail.is_empty() && !tail.contains('/'))
                .map(|(n, t)| (n.to_owned(), t.to_owned()))
        };
        if let Some((name, id)) = split("/blobs/uploads/") {
            return Some(Route::Upload(name, Some(id)));
        }
        if let Some((name, r)) = split("/manifests/") {
            return Some(Route::Manifest(name, r));
        }
        if let Some((name, d)) = split("/blobs/") {
            return Some(Route::Blob(name, d));
        }
        if let Some((name, d)) = split("/referrers/") {
            return Some(Route::Referrers(name, d));
        }
        None
    }

    fn name(&self) -> Option<&str> {
        match self {
            Route::Catalog => None,
            Route::Tags(n)
            | Route::Manifest(n, _)
            | Route::Upload(n, _)
            | Route::Blob(n, _)
            | Route::Referrers(n, _) => Some(n),
        }
    }
}

fn err(state: &HttpState, e: AppError, scope: Option<String>) -> Response {
    OciError::from_app_with_scope(state, e, scope).into_response()
}

fn parse_digest(d: &str) -> Result<Digest, AppError> {
    Digest::parse(d).map_err(|e| AppError::from(RegistryError::DigestInvalid(e.to_string())))
}

fn parse_reference(r: &str) -> Result<Reference, AppError> {
    Reference::parse(r).map_err(|e| AppError::from(RegistryError::ManifestInvalid(e.to_string())))
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn registry_auth(
    state: &HttpState,
    headers: &HeaderMap,
    client: Option<std::net::IpAddr>,
) -> Result<RegistryAuth, AppError> {
    Ok(match credentials(headers)? {
        None => RegistryAuth::Anonymous,
        Some(Credentials::Bearer(t)) => RegistryAuth::Token(state.app.verify_registry_token(&t)?),
        Some(Credentials::Basic(u, p)) => RegistryAuth::Caller(state.app.authenticate_basic(&u, &p, client).await?),
    })
}

/// A request body as a byte reader.
pub(crate) fn body_reader(body: Body) -> impl tokio::io::AsyncRead + Send + Unpin {
    StreamReader::new(body.into_data_stream().map_err(std::io::Error::other))
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

/// A response with these headers. A header that cannot be built (a value with a control
/// character: never from validated names, digests and upload ids) is an error, not dropped.
fn respond(status: StatusCode, headers: &[(&str, String)], body: Body) -> Result<Response, AppError> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    set_headers(&mut r, headers)?;
    Ok(r)
}

/// Sets `headers` on `r`; see [`respond`].
fn set_headers(r: &mut Response, headers: &[(&str, String)]) -> Result<(), AppError> {
    for (k, v) in headers {
        let name = header::HeaderName::try_from(*k).map_err(|e| AppError::Internal(format!("header name {k}: {e}")))?;
        let value = HeaderValue::from_str(v).map_err(|e| AppError::Internal(format!("header {k}: {e}")))?;
        r.headers_mut().insert(name, value);
    }
    Ok(())
}

/// Parses `Range: bytes=start-[end]`.
fn parse_range(h: &HeaderMap) -> Result<Option<(u64, Option<u64>)>, AppError> {
    let Some(v) = header_str(h, header::RANGE) else {
        return Ok(None);
    };
    let bad = || AppError::from(RegistryError::RangeInvalid(format!("invalid Range header '{v}'")));
    let spec = v.strip_prefix("bytes=").ok_or_else(bad)?;
    let (s, e) = spec.split_once('-').ok_or_else(bad)?;
    let start = s.parse().map_err(|_| bad())?;
    let end = if e.is_empty() {
        None
    } else {
        Some(e.parse().map_err(|_| bad())?)
    };
    Ok(Some((start, end)))
}

/// Parses `Content-Range: start-end` of a chunk.
fn parse_content_range(h: &HeaderMap) -> Result<Option<u64>, AppError> {
    let Some(v) = header_str(h, header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        AppError::from(RegistryError::RangeInvalid(format!(
            "invalid Content-Range '{v}': expected start-end"
        )))
    };
    let spec = v.strip_prefix("bytes ").unwrap_or(v);
    let (s, e) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = s.parse().map_err(|_| bad())?;
    let end: u64 = e.split('/').next().unwrap_or(e).parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    Ok(Some(start))
}

/// Every `/v2/{*rest}` request.
pub async fn dispatch(
    State(state): State<HttpState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    body: Body,
) -> Response {
    let Some(route) = Route::parse(&rest) else {
        return OciError::not_found("NAME_UNKNOWN", format!("no such endpoint: /v2/{rest}")).into_response();
    };
    let path = match route.name().map(RepoPath::parse) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => return err(&state, AppError::from(RegistryError::NameInvalid(e.to_string())), None),
        None => None,
    };
    let action = match (&method, &route) {
        (&Method::GET | &Method::HEAD, _) => Action::Pull,
        (&Method::DELETE, Route::Manifest(..) | Route::Blob(..)) => Action::Delete,
        _ => Action::Push,
    };
    let scope = path.as_ref().map(|p| {
        let actions = if action == Action::Pull {
            "pull".to_owned()
        } else {
            format!("pull,{}", action.as_str())
        };
        format!("repository:{p}:{actions}")
    });
    let auth = match registry_auth(&state, &headers, Some(peer.ip())).await {
        Ok(a) => a,
        Err(e) => return err(&state, e, scope),
    };
    let param = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let result = match (route, path) {
        (Route::Catalog, _) => catalog(&state, &auth, param("last"), param("n")).await,
        (route, Some(path)) => match state.app.registry_repo(&auth, &path, action).await {
            Ok(repo) => {
                let req = RepoRequest {
                    state: &state,
                    auth: &auth,
                    ip: Some(peer.ip().to_string()),
                    method: &method,
                    headers: &headers,
                    query: &q,
                    name: path.to_string(),
                    repo,
                };
                match route {
                    Route::Tags(_) => tags(req).await,
                    Route::Blob(_, d) => blob(req, &d).await,
                    Route::Upload(_, id) => upload(req, id, body).await,
                    Route::Manifest(_, r) => manifest(req, &r, body).await,
                    Route::Referrers(_, d) => referrers(req, &d).await,
                    Route::Catalog => Err(AppError::not_found()),
                }
            }
            Err(e) => Err(e),
        },
        (_, None) => Err(AppError::not_found()),
    };
    match result {
        Ok(r) => r,
        Err(e) => err(&state, e, scope),
    }
}

fn parse_n(n: Option<&str>) -> Result<Option<u32>, AppError> {
    n.map(|v| {
        v.parse::<u32>()
            .map_err(|_| AppError::from(RegistryError::SizeInvalid(format!("invalid n '{v}'"))))
    })
    .transpose()
}

fn next_link(base: &str, n: Option<u32>, last: Option<String>) -> Vec<(&'static str, String)> {
    match last {
        Some(l) => {
            let n = n.map(|n| format!("n={n}&")).unwrap_or_default();
            vec![("link", format!("<{base}?{n}last={l}>; rel=\"next\""))]
        }
        None => Vec::new(),
    }
}

async fn catalog(
    state: &HttpState,
    auth: &RegistryAuth,
    last: Option<&str>,
    n: Option<&str>,
) -> Result<Response, AppError> {
    let n = parse_n(n)?;
    let page = state.app.catalog(auth, last, n).await?;
    let body = serde_json::json!({"repositories": page.items}).to_string();
    let mut headers = next_link("/v2/_catalog", n, page.next_last);
    headers.push(("content-type", "application/json".into()));
    respond(StatusCode::OK, &headers, Body::from(body))
}

/// One request on a repository, after its route was parsed, its caller authenticated and its
/// access to the repository checked: what every area's handler reads (the body, which is not
/// `Sync`, goes beside it to the handlers that read one).
struct RepoRequest<'a> {
    state: &'a HttpState,
    auth: &'a RegistryAuth,
    ip: Option<String>,
    method: &'a Method,
    headers: &'a HeaderMap,
    query: &'a [(String, String)],
    /// The repository's path, as in URLs.
    name: String,
    repo: berth_app::model::RepoRow,
}

impl RepoRequest<'_> {
    /// A query parameter's first value.
    fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A query parameter that must be a digest when given.
    fn digest_param(&self, key: &str) -> Result<Option<Digest>, AppError> {
        self.param(key).map(parse_digest).transpose()
    }

    /// The caller as the use cases that record who did what (pushes, deletes) take it.
    async fn ctx(&self) -> Result<Ctx, AppError> {
        Ok(Ctx {
            caller: self.state.app.registry_caller(self.auth).await?,
            ip: self.ip.clone(),
        })
    }

    /// 405 for a method this area does not serve.
    fn unsupported(&self, area: &str) -> Result<Response, AppError> {
        let message = format!("{} is not supported on {area}", self.method);
        Ok(OciError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message).into_response())
    }
}

/// `GET <name>/tags/list`, paged by `n` and `last`.
async fn tags(req: RepoRequest<'_>) -> Result<Response, AppError> {
    if req.method != Method::GET {
        return req.unsupported("tags");
    }
    let n = parse_n(req.param("n"))?;
    let page = req.state.app.list_tags(&req.repo, req.param("last"), n).await?;
    let body = serde_json::json!({"name": req.name, "tags": page.items}).to_string();
    let mut h = next_link(&format!("/v2/{}/tags/list", req.name), n, page.next_last);
    h.push(("content-type", "application/json".into()));
    respond(StatusCode::OK, &h, Body::from(body))
}

/// `GET`, `HEAD` (with `Range` on `GET`) and `DELETE` of `<name>/blobs/<digest>`.
async fn blob(req: RepoRequest<'_>, digest: &str) -> Result<Response, AppError> {
    let app = &req.state.app;
    let head = match *req.method {
        Method::GET => false,
        Method::HEAD => true,
        Method::DELETE => {
            app.delete_blob(&req.repo, &parse_digest(digest)?).await?;
            return respond(StatusCode::ACCEPTED, &[], Body::empty());
        }
        _ => return req.unsupported("blobs"),
    };
    let digest = parse_digest(digest)?;
    if head {
        let size = app.blob_size(&req.repo, &digest).await?;
        let h = [
            ("docker-content-digest", digest.to_string()),
            ("content-type", "application/octet-stream".into()),
            ("content-length", size.to_string()),
            ("accept-ranges", "bytes".into()),
        ];
        return respond(StatusCode::OK, &h, Body::empty());
    }
    // With `[storage] redirect`, the client downloads from the bucket itself (it sends its Range
    // there), as Distribution does.
    if let Some(url) = app.blob_redirect(&req.repo, &digest).await? {
        let h = [("docker-content-digest", digest.to_string()), ("location", url)];
        return respond(StatusCode::TEMPORARY_REDIRECT, &h, Body::empty());
    }
    let range = parse_range(req.headers)?;
    let (content, served) = app.read_blob(&req.repo, &digest, range).await?;
    let mut h = vec![
        ("docker-content-digest", digest.to_string()),
        ("content-type", "application/octet-stream".into()),
    ];
    let (status, len) = match served {
        Some((s, e)) => {
            h.push(("content-range", format!("bytes {s}-{e}/{}", content.size)));
            (StatusCode::PARTIAL_CONTENT, e - s + 1)
        }
        None => (StatusCode::OK, content.size),
    };
    h.push(("content-length", len.to_string()));
    h.push(("accept-ranges", "bytes".into()));
    respond(status, &h, Body::from_stream(content.stream))
}

/// Uploads: `POST <name>/blobs/uploads/` starts one (or mounts, or uploads in one go), then
/// `GET`, `PATCH`, `PUT` and `DELETE` on `<name>/blobs/uploads/<id>`.
async fn upload(req: RepoRequest<'_>, id: Option<String>, body: Body) -> Result<Response, AppError> {
    let Some(id) = id else {
        return if req.method == Method::POST {
            start_upload(req, body).await
        } else {
            req.unsupported("uploads")
        };
    };
    let app = &req.state.app;
    let location = upload_location(&req.name, &id);
    match *req.method {
        Method::GET => {
            let st = app.upload_state(&req.repo, &id).await?;
            let h = [
                ("location", location),
                ("range", range_header(st.size)),
                ("docker-upload-uuid", id),
            ];
            respond(StatusCode::NO_CONTENT, &h, Body::empty())
        }
        Method::PATCH => {
            let start = parse_content_range(req.headers)?;
            let st = match app.append_upload(&req.repo, &id, start, &mut body_reader(body)).await {
                Ok(st) => st,
                Err(AppError::Registry(e @ RegistryError::RangeInvalid(_))) => {
                    // The client resumes from what is stored.
                    let current = app.upload_state(&req.repo, &id).await?;
                    let mut r = OciError::registry(e).into_response();
                    set_headers(&mut r, &[("location", location), ("range", range_header(current.size))])?;
                    return Ok(r);
                }
                Err(e) => return Err(e),
            };
            let h = [
                ("location", location),
                ("range", range_header(st.size)),
                ("docker-upload-uuid", id),
                ("content-length", "0".into()),
            ];
            respond(StatusCode::ACCEPTED, &h, Body::empty())
        }
        Method::PUT => {
            let digest = req.digest_param("digest")?.ok_or_else(|| {
                AppError::from(RegistryError::DigestInvalid("the digest parameter is required".into()))
            })?;
            app.finish_upload(&req.repo, &id, &digest, &mut body_reader(body))
                .await?;
            let h = [
                ("location", format!("/v2/{}/blobs/{digest}", req.name)),
                ("docker-content-digest", digest.to_string()),
            ];
            respond(StatusCode::CREATED, &h, Body::empty())
        }
        Method::DELETE => {
            app.cancel_upload(&req.repo, &id).await?;
            respond(StatusCode::NO_CONTENT, &[], Body::empty())
        }
        _ => req.unsupported("uploads"),
    }
}

/// `POST <name>/blobs/uploads/`: a cross-repository mount (`mount` and `from`), a monolithic
/// upload (`digest`, with the body), or the start of a chunked one.
async fn start_upload(req: RepoRequest<'_>, body: Body) -> Result<Response, AppError> {
    let app = &req.state.app;
    if let (Some(mount), Some(from)) = (req.digest_param("mount")?, req.param("from"))
        && app.mount_blob(req.auth, &req.repo, from, &mount).await?
    {
        let h = [
            ("location", format!("/v2/{}/blobs/{mount}", req.name)),
            ("docker-content-digest", mount.to_string()),
        ];
        return respond(StatusCode::CREATED, &h, Body::empty());
    }
    let digest = req.digest_param("digest")?;
    let algo = digest.as_ref().map_or(DigestAlgorithm::Sha256, Digest::algorithm);
    let upload = app.start_upload(&req.repo, algo).await?;
    if let Some(d) = digest {
        app.finish_upload(&req.repo, &upload.id, &d, &mut body_reader(body))
            .await?;
        let h = [
            ("location", format!("/v2/{}/blobs/{d}", req.name)),
            ("docker-content-digest", d.to_string()),
        ];
        return respond(StatusCode::CREATED, &h, Body::empty());
    }
    let h = [
        ("location", upload_location(&req.name, &upload.id)),
        ("range", "0-0".into()),
        ("docker-upload-uuid", upload.id.clone()),
        ("content-length", "0".into()),
    ];
    respond(StatusCode::ACCEPTED, &h, Body::empty())
}

/// `GET`, `HEAD`, `PUT` and `DELETE` of `<name>/manifests/<reference>`.
async fn manifest(req: RepoRequest<'_>, reference: &str, body: Body) -> Result<Response, AppError> {
    let app = &req.state.app;
    let head = match *req.method {
        Method::GET => false,
        Method::HEAD => true,
        Method::PUT => return put_manifest(req, reference, body).await,
        Method::DELETE => {
            let reference = parse_reference(reference)?;
            app.delete_manifest(&req.ctx().await?, &req.repo, &reference).await?;
            return respond(StatusCode::ACCEPTED, &[], Body::empty());
        }
        _ => return req.unsupported("manifests"),
    };
    // A reference that is neither a tag nor a digest names nothing that could exist: the spec's
    // conformance suite and Distribution answer 404, not 400 (a PUT stays 400).
    let reference = Reference::parse(reference)
        .map_err(|e| AppError::from(RegistryError::ManifestUnknown(format!("manifest unknown: {e}"))))?;
    let found = app.get_manifest(&req.repo, &reference).await?;
    if !accepts(req.headers, &found.media_type) {
        return Err(AppError::from(RegistryError::ManifestUnknown(format!(
            "manifest is {}, which the Accept header excludes",
            found.media_type
        ))));
    }
    let mut h = vec![
        ("docker-content-digest", found.digest.clone()),
        ("content-type", found.media_type.clone()),
        ("content-length", found.content.len().to_string()),
    ];
    if let Some(s) = &found.subject_digest {
        h.push(("oci-subject", s.clone()));
    }
    let body = if head { Body::empty() } else { Body::from(found.content) };
    respond(StatusCode::OK, &h, body)
}

/// `PUT <name>/manifests/<reference>`, the body read up to the manifest limit.
async fn put_manifest(req: RepoRequest<'_>, reference: &str, body: Body) -> Result<Response, AppError> {
    let app = &req.state.app;
    let reference = parse_reference(reference)?;
    let ctx = req.ctx().await?;
    let limit = berth_app::registry::MAX_MANIFEST_BYTES;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| AppError::from(RegistryError::SizeInvalid(format!("manifest exceeds {limit} bytes"))))?;
    let content_type = header_str(req.headers, header::CONTENT_TYPE);
    let pushed = app
        .put_manifest(&ctx, &req.repo, &reference, content_type, &bytes)
        .await?;
    let mut h = vec![
        ("location", format!("/v2/{}/manifests/{}", req.name, pushed.digest)),
        ("docker-content-digest", pushed.digest.to_string()),
    ];
    if let Some(s) = pushed.subject {
        h.push(("oci-subject", s));
    }
    respond(StatusCode::CREATED, &h, Body::empty())
}

/// `GET <name>/referrers/<digest>`, optionally filtered by `artifactType`.
async fn referrers(req: RepoRequest<'_>, digest: &str) -> Result<Response, AppError> {
    if req.method != Method::GET {
        return req.unsupported("referrers");
    }
    let digest = parse_digest(digest)?;
    let filter = req.param("artifactType");
    let found = req.state.app.referrers(&req.repo, &digest, filter).await?;
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .map(|m| {
            let mut v = serde_json::json!({"mediaType": m.media_type, "digest": m.digest, "size": m.size});
            if let Some(t) = m.artifact_type {
                v["artifactType"] = t.into();
            }
            if let Some(a) = m.annotations {
                v["annotations"] = a;
            }
            v
        })
        .collect();
    let index = berth_app::registry::OCI_INDEX;
    let body = serde_json::json!({"schemaVersion": 2, "mediaType": index, "manifests": manifests});
    let mut h = vec![("content-type", index.to_owned())];
    if filter.is_some() {
        h.push(("oci-filters-applied", "artifactType".into()));
    }
    respond(StatusCode::OK, &h, Body::from(body.to_string()))
}

/// Whether the `Accept` header admits `media_type` (no header, or a wildcard, admits anything).
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return true;
    }
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or(t).trim())
        .any(|t| t == media_type || t == "*/*" || t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_with_slashes_in_names() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Route::parse("_catalog"), Some(Route::Catalog));
        assert_eq!(Route::parse("a/b/c/tags/list"), Some(Route::Tags("a/b/c".into())));
        assert_eq!(
            Route::parse("ns/app/manifests/latest"),
            Some(Route::Manifest("ns/app".into(), "latest".into()))
        );
        // A repository may itself contain a "manifests" component.
        assert_eq!(
            Route::parse("ns/manifests/x/manifests/v1"),
            Some(Route::Manifest("ns/manifests/x".into(), "v1".into()))
        );
        assert_eq!(
            Route::parse("ns/app/blobs/uploads/"),
            Some(Route::Upload("ns/app".into(), None))
        );
        assert_eq!(
            Route::parse("ns/app/blobs/uploads/abc-1"),
            Some(Route::Upload("ns/app".into(), Some("abc-1".into())))
        );
        assert_eq!(
            Route::parse(&format!("ns/app/blobs/{d}")),
            Some(Route::Blob("ns/app".into(), d.clone()))
        );
        assert_eq!(
            Route::parse(&format!("ns/app/referrers/{d}")),
            Some(Route::Referrers("ns/app".into(), d))
        );
        for bad in [
            "",
            "ns/app",
            "ns/app/manifests/",
            "/manifests/x",
            "ns/app/unknown/x",
            "ns/app/manifests/a/b",
        ] {
            assert_eq!(Route::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn accept_negotiation() {
        let mut h = HeaderMap::new();
        assert!(accepts(&h, "anything"));
        h.append(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json, application/json;q=0.5"),
        );
        assert!(accepts(&h, "application/vnd.oci.image.index.v1+json"));
        assert!(!accepts(&h, "application/vnd.docker.distribution.manifest.v2+json"));
        h.append(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&h, "application/vnd.docker.distribution.manifest.v2+json"));
    }
}
