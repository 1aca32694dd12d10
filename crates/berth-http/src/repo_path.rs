//! Nested repository names with raw slashes in repository paths, for `/api/v1` and the UI alike.
//!
//! Quay's clients send `/api/v1/repository/acme/team/app/notification/` for the repository
//! `team/app`, and the UI links `/repository/acme/team/app/build/…`, where Berth's routes expect
//! one path segment (`team%2Fapp`). Before routing, a path under a repository prefix is split as
//! `/v2` splits its names: by the known suffixes of that prefix's routes (for the API, read from the
//! OpenAPI document; for the UI, from the same table its router is built from), so that they cannot
//! drift from the routes. The shortest repository name whose remainder is a known suffix wins
//! (`acme/app/logs` is the logs of `app`), and its slashes are re-encoded, so every handler sees the
//! same `{repository}` either way.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Uri;

/// Where the API's repository routes start.
const API_PREFIX: &str = "/api/v1/repository/";
/// The two parameters every API repository route starts with, as the OpenAPI document spells them.
const API_TEMPLATE: &str = "/api/v1/repository/{namespace}/{repository}";

/// One segment of a route's suffix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    /// A fixed word (`notification`), or `""` for a trailing slash.
    Literal(String),
    /// A parameter (`{uuid}`): any one non-empty segment.
    Param,
}

/// The routes under one prefix (`/api/v1/repository/`): the suffixes that follow
/// `{namespace}/{repository}` in them.
#[derive(Debug, Clone)]
pub struct RepoSuffixes {
    prefix: &'static str,
    suffixes: Arc<Vec<Vec<Segment>>>,
}

impl RepoSuffixes {
    /// The routes under `prefix` whose suffixes after `{namespace}/{repository}` are `suffixes`
    /// (`""`, `"/build/{uuid}"`, …).
    pub fn new<'a>(prefix: &'static str, suffixes: impl IntoIterator<Item = &'a str>) -> RepoSuffixes {
        let mut all: Vec<Vec<Segment>> = suffixes
            .into_iter()
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| {
                rest.split('/')
                    .skip(1)
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            Segment::Param
                        } else {
                            Segment::Literal(s.to_owned())
                        }
                    })
                    .collect()
            })
            .collect();
        all.sort();
        all.dedup();
        RepoSuffixes {
            prefix,
            suffixes: Arc::new(all),
        }
    }

    /// The suffixes of every documented route under `/api/v1/repository/{namespace}/{repository}`.
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> RepoSuffixes {
        RepoSuffixes::new(
            API_PREFIX,
            doc.paths.paths.keys().filter_map(|p| p.strip_prefix(API_TEMPLATE)),
        )
    }

    fn matches(&self, rest: &[&str]) -> bool {
        self.suffixes.iter().any(|pattern| {
            pattern.len() == rest.len()
                && pattern.iter().zip(rest).all(|(p, s)| match p {
                    Segment::Literal(l) => l == s,
                    Segment::Param => !s.is_empty(),
                })
        })
    }

    /// The path with the repository name's slashes encoded, when it has raw ones and a known
    /// suffix follows; `None` when the path needs no change.
    pub fn canonical(&self, path: &str) -> Option<String> {
        let after = path.strip_prefix(self.prefix)?;
        let (namespace, tail) = after.split_once('/')?;
        let segments: Vec<&str> = tail.split('/').collect();
        // The name takes at least one segment; a single segment needs no change.
        let split = (1..=segments.len())
            .find(|&i| segments[..i].iter().all(|s| !s.is_empty()) && self.matches(&segments[i..]))?;
        if split == 1 {
            return None;
        }
        let name = segments[..split].join("%2F");
        let mut out = format!("{}{namespace}/{name}", self.prefix);
        for s in &segments[split..] {
            out.push('/');
            out.push_str(s);
        }
        Some(out)
    }

    /// Rewrites a request's URI to its canonical form (the query is kept).
    pub fn rewrite(&self, mut req: Request) -> Request {
        let Some(path) = self.canonical(req.uri().path()) else {
            return req;
        };
        let with_query = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = with_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suffixes() -> RepoSuffixes {
        RepoSuffixes::from_openapi(&crate::openapi())
    }

    #[test]
    fn raw_slashes_are_encoded_by_the_known_suffixes() {
        let s = suffixes();
        let cases = [
            (
                "/api/v1/repository/acme/team/app",
                Some("/api/v1/repository/acme/team%2Fapp"),
            ),
            (
                "/api/v1/repository/acme/team/app/notification/",
                Some("/api/v1/repository/acme/team%2Fapp/notification/"),
            ),
            (
                "/api/v1/repository/acme/a/b/c/notification/1234/test",
                Some("/api/v1/repository/acme/a%2Fb%2Fc/notification/1234/test"),
            ),
            (
                "/api/v1/repository/acme/team/app/manifest/sha256:ab/security",
                Some("/api/v1/repository/acme/team%2Fapp/manifest/sha256:ab/security"),
            ),
            // Already one segment, encoded or plain: unchanged.
            ("/api/v1/repository/acme/team%2Fapp/notification/", None),
            ("/api/v1/repository/acme/app/notification/", None),
            ("/api/v1/repository/acme/app", None),
            // The shortest name with a known suffix: the logs of `app`.
            ("/api/v1/repository/acme/app/logs", None),
            (
                "/api/v1/repository/acme/team/app/logs",
                Some("/api/v1/repository/acme/team%2Fapp/logs"),
            ),
            // Nothing known follows, or empty segments: left for the router to refuse.
            (
                "/api/v1/repository/acme/team/app/bogus/x",
                Some("/api/v1/repository/acme/team%2Fapp%2Fbogus%2Fx"),
            ),
            ("/api/v1/repository/acme//app/logs", None),
            ("/api/v1/repository", None),
            ("/api/v1/repository/acme", None),
            ("/api/v1/organization/acme/team/x", None),
        ];
        for (path, want) in cases {
            assert_eq!(s.canonical(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn the_uis_nested_names_are_split_by_its_own_routes() {
        let ui = crate::ui::repo_suffixes();
        let cases = [
            ("/repository/acme/team/app", Some("/repository/acme/team%2Fapp")),
            ("/repository/acme/team/app/", Some("/repository/acme/team%2Fapp/")),
            (
                "/repository/acme/team/app/build/1234/log",
                Some("/repository/acme/team%2Fapp/build/1234/log"),
            ),
            (
                "/repository/acme/a/b/notification/n-1/delivery/d.1/redeliver",
                Some("/repository/acme/a%2Fb/notification/n-1/delivery/d.1/redeliver"),
            ),
            (
                "/repository/acme/team/app/tag/v1/delete",
                Some("/repository/acme/team%2Fapp/tag/v1/delete"),
            ),
            (
                "/repository/acme/team/app/notification/new",
                Some("/repository/acme/team%2Fapp/notification/new"),
            ),
            ("/repository/acme/web/notification/new", None),
            ("/repository/acme/web/permission/user/acme+ci/delete", None),
            ("/repository/acme", None),
            ("/api/v1/repository/acme/team/app", None),
        ];
        for (path, want) in cases {
            assert_eq!(ui.canonical(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn the_query_is_kept() {
        let req = Request::builder()
            .uri("/api/v1/repository/acme/team/app/tag/?limit=5&page=2")
            .body(axum::body::Body::empty())
            .unwrap();
        let req = suffixes().rewrite(req);
        assert_eq!(req.uri().path(), "/api/v1/repository/acme/team%2Fapp/tag/");
        assert_eq!(req.uri().query(), Some("limit=5&page=2"));
    }
}
