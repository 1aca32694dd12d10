//! The OCI distribution API under `/v2/{*rest}`: one tested parser turns the tail of the path into
//! a route (repository names contain `/`, so the router cannot split them), and one handler per
//! route calls the registry use cases.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_app::registry::{Action, OciCode, RegistryAuth};
use berth_app::{AppError, Ctx};
use berth_core::{Digest, DigestAlgorithm, Reference, RepoPath};
use futures_util::TryStreamExt;
use tokio_util::io::{ReaderStream, StreamReader};

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

fn invalid(code: OciCode, message: impl Into<String>) -> AppError {
    AppError::Oci {
        code,
        message: message.into(),
    }
}

fn parse_digest(d: &str) -> Result<Digest, AppError> {
    Digest::parse(d).map_err(|e| invalid(OciCode::DigestInvalid, e.to_string()))
}

fn parse_reference(r: &str) -> Result<Reference, AppError> {
    Reference::parse(r).map_err(|e| invalid(OciCode::ManifestInvalid, e.to_string()))
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

fn respond(status: StatusCode, headers: &[(&str, String)], body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (header::HeaderName::try_from(*k), HeaderValue::from_str(v)) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// Parses `Range: bytes=start-[end]`.
fn parse_range(h: &HeaderMap) -> Result<Option<(u64, Option<u64>)>, AppError> {
    let Some(v) = header_str(h, header::RANGE) else {
        return Ok(None);
    };
    let bad = || invalid(OciCode::RangeInvalid, format!("invalid Range header '{v}'"));
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
        invalid(
            OciCode::RangeInvalid,
            format!("invalid Content-Range '{v}': expected start-end"),
        )
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
        Some(Err(e)) => return err(&state, invalid(OciCode::NameInvalid, e.to_string()), None),
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
                let ip = Some(peer.ip().to_string());
                handle(&state, &auth, ip, &method, &headers, &q, route, &path, repo, body).await
            }
            Err(e) => Err(e),
        },
        (_, None) => Err(AppError::not_found()),
    };
    match result {
        Ok(r) => r,
        Err(AppError::Oci {
            code: OciCode::RangeInvalid,
            message,
        }) => OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", message).into_response(),
        Err(e) => err(&state, e, scope),
    }
}

fn parse_n(n: Option<&str>) -> Result<Option<u32>, AppError> {
    n.map(|v| {
        v.parse::<u32>()
            .map_err(|_| invalid(OciCode::SizeInvalid, format!("invalid n '{v}'")))
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
    Ok(respond(StatusCode::OK, &headers, Body::from(body)))
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &HttpState,
    auth: &RegistryAuth,
    ip: Option<String>,
    method: &Method,
    headers: &HeaderMap,
    q: &[(String, String)],
    route: Route,
    path: &RepoPath,
    repo: berth_app::model::RepoRow,
    body: Body,
) -> Result<Response, AppError> {
    let app = &state.app;
    let name = path.to_string();
    let param = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let digest_param = |k: &str| -> Result<Option<Digest>, AppError> { param(k).map(parse_digest).transpose() };
    match (method.clone(), route) {
        (Method::GET, Route::Tags(_)) => {
            let n = parse_n(param("n"))?;
            let page = app.list_tags(&repo, param("last"), n).await?;
            let body = serde_json::json!({"name": name, "tags": page.items}).to_string();
            let mut h = next_link(&format!("/v2/{name}/tags/list"), n, page.next_last);
            h.push(("content-type", "application/json".into()));
            Ok(respond(StatusCode::OK, &h, Body::from(body)))
        }
        (m @ (Method::GET | Method::HEAD), Route::Blob(_, d)) => {
            let digest = parse_digest(&d)?;
            let range = if m == Method::GET { parse_range(headers)? } else { None };
            let (content, served) = app.read_blob(&repo, &digest, range).await?;
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
            let body = if m == Method::HEAD {
                Body::empty()
            } else {
                // Large reads: each one is a trip to a blocking thread.
                Body::from_stream(ReaderStream::with_capacity(content.reader, 256 * 1024))
            };
            Ok(respond(status, &h, body))
        }
        (Method::DELETE, Route::Blob(_, d)) => {
            let digest = parse_digest(&d)?;
            app.delete_blob(&repo, &digest).await?;
            Ok(respond(StatusCode::ACCEPTED, &[], Body::empty()))
        }
        (Method::POST, Route::Upload(_, None)) => {
            if let (Some(mount), Some(from)) = (digest_param("mount")?, param("from"))
                && app.mount_blob(auth, &repo, from, &mount).await?
            {
                let h = [
                    ("location", format!("/v2/{name}/blobs/{mount}")),
                    ("docker-content-digest", mount.to_string()),
                ];
                return Ok(respond(StatusCode::CREATED, &h, Body::empty()));
            }
            let digest = digest_param("digest")?;
            let algo = digest.as_ref().map_or(DigestAlgorithm::Sha256, Digest::algorithm);
            let upload = app.start_upload(&repo, algo).await?;
            if let Some(d) = digest {
                // Monolithic upload in one POST.
                app.finish_upload(&repo, &upload.id, &d, &mut body_reader(body)).await?;
                let h = [
                    ("location", format!("/v2/{name}/blobs/{d}")),
                    ("docker-content-digest", d.to_string()),
                ];
                return Ok(respond(StatusCode::CREATED, &h, Body::empty()));
            }
            let h = [
                ("location", upload_location(&name, &upload.id)),
                ("range", "0-0".into()),
                ("docker-upload-uuid", upload.id.clone()),
                ("content-length", "0".into()),
            ];
            Ok(respond(StatusCode::ACCEPTED, &h, Body::empty()))
        }
        (Method::GET, Route::Upload(_, Some(id))) => {
            let st = app.upload_state(&repo, &id).await?;
            let h = [
                ("location", upload_location(&name, &id)),
                ("range", range_header(st.size)),
                ("docker-upload-uuid", id),
            ];
            Ok(respond(StatusCode::NO_CONTENT, &h, Body::empty()))
        }
        (Method::PATCH, Route::Upload(_, Some(id))) => {
            let start = parse_content_range(headers)?;
            let st = match app.append_upload(&repo, &id, start, &mut body_reader(body)).await {
                Ok(st) => st,
                Err(AppError::Oci {
                    code: OciCode::RangeInvalid,
                    message,
                }) => {
                    let current = app.upload_state(&repo, &id).await?;
                    let h = [
                        ("location", upload_location(&name, &id)),
                        ("range", range_header(current.size)),
                    ];
                    let mut r = OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", message)
                        .into_response();
                    for (k, v) in h {
                        if let Ok(v) = HeaderValue::from_str(&v) {
                            r.headers_mut().insert(k, v);
                        }
                    }
                    return Ok(r);
                }
                Err(e) => return Err(e),
            };
            let h = [
                ("location", upload_location(&name, &id)),
                ("range", range_header(st.size)),
                ("docker-upload-uuid", id),
                ("content-length", "0".into()),
            ];
            Ok(respond(StatusCode::ACCEPTED, &h, Body::empty()))
        }
        (Method::PUT, Route::Upload(_, Some(id))) => {
            let digest = digest_param("digest")?
                .ok_or_else(|| invalid(OciCode::DigestInvalid, "the digest parameter is required"))?;
            app.finish_upload(&repo, &id, &digest, &mut body_reader(body)).await?;
            let h = [
                ("location", format!("/v2/{name}/blobs/{digest}")),
                ("docker-content-digest", digest.to_string()),
            ];
            Ok(respond(StatusCode::CREATED, &h, Body::empty()))
        }
        (Method::DELETE, Route::Upload(_, Some(id))) => {
            app.cancel_upload(&repo, &id).await?;
            Ok(respond(StatusCode::NO_CONTENT, &[], Body::empty()))
        }
        (m @ (Method::GET | Method::HEAD), Route::Manifest(_, r)) => {
            // A reference that is neither a tag nor a digest names nothing that could exist: the
            // spec's conformance suite and Distribution answer 404, not 400 (a PUT stays 400).
            let reference = Reference::parse(&r)
                .map_err(|e| invalid(OciCode::ManifestUnknown, format!("manifest unknown: {e}")))?;
            let m_row = app.get_manifest(&repo, &reference).await?;
            if !accepts(headers, &m_row.media_type) {
                return Err(invalid(
                    OciCode::ManifestUnknown,
                    format!("manifest is {}, which the Accept header excludes", m_row.media_type),
                ));
            }
            let mut h = vec![
                ("docker-content-digest", m_row.digest.clone()),
                ("content-type", m_row.media_type.clone()),
                ("content-length", m_row.content.len().to_string()),
            ];
            if let Some(s) = &m_row.subject_digest {
                h.push(("oci-subject", s.clone()));
            }
            let body = if m == Method::HEAD {
                Body::empty()
            } else {
                Body::from(m_row.content)
            };
            Ok(respond(StatusCode::OK, &h, body))
        }
        (Method::PUT, Route::Manifest(_, r)) => {
            let reference = parse_reference(&r)?;
            let limit = berth_app::registry::MAX_MANIFEST_BYTES;
            let bytes = axum::body::to_bytes(body, limit)
                .await
                .map_err(|_| invalid(OciCode::SizeInvalid, format!("manifest exceeds {limit} bytes")))?;
            let pushed = app
                .put_manifest(
                    &Ctx {
                        caller: app.registry_caller(auth).await?,
                        ip: ip.clone(),
                    },
                    &repo,
                    &reference,
                    header_str(headers, header::CONTENT_TYPE),
                    &bytes,
                )
                .await?;
            let mut h = vec![
                ("location", format!("/v2/{name}/manifests/{}", pushed.digest)),
                ("docker-content-digest", pushed.digest.to_string()),
            ];
            if let Some(s) = pushed.subject {
                h.push(("oci-subject", s));
            }
            Ok(respond(StatusCode::CREATED, &h, Body::empty()))
        }
        (Method::DELETE, Route::Manifest(_, r)) => {
            let reference = parse_reference(&r)?;
            app.delete_manifest(
                &Ctx {
                    caller: app.registry_caller(auth).await?,
                    ip: ip.clone(),
                },
                &repo,
                &reference,
            )
            .await?;
            Ok(respond(StatusCode::ACCEPTED, &[], Body::empty()))
        }
        (Method::GET, Route::Referrers(_, d)) => {
            let digest = parse_digest(&d)?;
            let filter = param("artifactType");
            let found = app.referrers(&repo, &digest, filter).await?;
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
            let body = serde_json::json!({"schemaVersion": 2, "mediaType": berth_app::registry::OCI_INDEX, "manifests": manifests});
            let mut h = vec![("content-type", berth_app::registry::OCI_INDEX.to_owned())];
            if filter.is_some() {
                h.push(("oci-filters-applied", "artifactType".into()));
            }
            Ok(respond(StatusCode::OK, &h, Body::from(body.to_string())))
        }
        (m, r) => Ok(OciError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("{m} is not supported on {r:?}"),
        )
        .into_response()),
    }
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
