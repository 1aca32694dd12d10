//! Berth's own OCI distribution client, for a mirror's upstream: the `/v2/` probe (HTTPS, or
//! plain HTTP when TLS verification is off and HTTPS does not answer), authentication (anonymous,
//! Basic, and the Bearer token flow of `WWW-Authenticate: Bearer realm, service, scope`), the
//! tag list with its `Link` pages, manifests by tag or digest with their digest verified, and
//! blobs streamed in segments. Every connection goes through the delivery guard.

use berth_core::Digest;
use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};

use crate::registry::{DOCKER_LIST, DOCKER_MANIFEST, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST};

/// Where a mirror copies from: `host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// `host[:port]`.
    pub host: String,
    /// The repository path.
    pub path: String,
}

impl Upstream {
    /// Parses `host[:port]/path` (no scheme, no tag or digest).
    pub fn parse(reference: &str) -> Result<Upstream, String> {
        let reference = reference.trim();
        let (host, path) = reference
            .split_once('/')
            .ok_or_else(|| format!("'{reference}' is not host[:port]/path"))?;
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            && (host.contains('.') || host.contains(':') || host == "localhost");
        let path_ok = !path.is_empty()
            && !path.contains(['@', ' ', '?', '#'])
            && !path.rsplit('/').next().is_some_and(|last| last.contains(':'))
            && path.split('/').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
            });
        if !host_ok || !path_ok {
            return Err(format!(
                "'{reference}' is not host[:port]/path (a registry host, then a repository path without a tag)"
            ));
        }
        Ok(Upstream {
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// The credentials a mirror presents.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
}

/// A manifest as fetched: its bytes, media type and (verified) digest.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// Its digest (sha256 of the bytes).
    pub digest: Digest,
}

/// A client of one upstream repository.
pub struct Client {
    http: reqwest::Client,
    base: String,
    upstream: Upstream,
    credentials: Credentials,
    /// The `Authorization` header that works, once found.
    auth: Option<String>,
}

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

impl Client {
    /// Connects: probes `/v2/` over HTTPS (over plain HTTP too when `verify_tls` is off and HTTPS
    /// fails) and authenticates as the probe's challenge asks.
    pub async fn connect(
        http: reqwest::Client,
        upstream: Upstream,
        credentials: Credentials,
        verify_tls: bool,
    ) -> Result<Client, String> {
        let mut schemes = vec!["https"];
        if !verify_tls {
            schemes.push("http");
        }
        let mut last = String::new();
        for scheme in schemes {
            let base = format!("{scheme}://{}", upstream.host);
            match http.get(format!("{base}/v2/")).send().await {
                Ok(probe) => {
                    let mut c = Client {
                        http,
                        base,
                        upstream,
                        credentials,
                        auth: None,
                    };
                    c.answer(&probe).await?;
                    return Ok(c);
                }
                Err(e) => last = format!("{base}/v2/: {}", error_chain(&e)),
            }
        }
        Err(format!("the upstream registry does not answer: {last}"))
    }

    /// Takes a `/v2/` answer: fine, or a challenge to meet.
    async fn answer(&mut self, r: &Response) -> Result<(), String> {
        match r.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => self.authenticate(&challenge(r)).await,
            s => Err(format!("the upstream registry answered {s} to /v2/")),
        }
    }

    /// Meets a challenge: Basic with the credentials, or a Bearer token fetched from the realm for
    /// pulling this repository.
    async fn authenticate(&mut self, challenge: &str) -> Result<(), String> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let params = parse_params(params);
        let basic = || {
            use base64::Engine;
            let user = self.credentials.username.clone().unwrap_or_default();
            let pass = self.credentials.password.clone().unwrap_or_default();
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            )
        };
        if scheme.eq_ignore_ascii_case("basic") {
            if self.credentials.username.is_none() {
                return Err("the upstream registry wants a user name and password".into());
            }
            self.auth = Some(basic());
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(format!(
                "the upstream registry asks for '{scheme}' authentication, which Berth does not speak"
            ));
        }
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or("the upstream registry's Bearer challenge names no realm")?;
        let mut query: Vec<(String, String)> = params.into_iter().filter(|(k, _)| k == "service").collect();
        query.push(("scope".into(), format!("repository:{}:pull", self.upstream.path)));
        let mut url = url::Url::parse(&realm).map_err(|e| format!("the token realm {realm}: {e}"))?;
        url.query_pairs_mut().extend_pairs(&query);
        let mut req = self.http.get(url);
        if self.credentials.username.is_some() {
            req = req.header(AUTHORIZATION, basic());
        }
        let r = req
            .send()
            .await
            .map_err(|e| format!("the token service at {realm}: {}", error_chain(&e)))?;
        if !r.status().is_success() {
            return Err(format!(
                "the token service at {realm} answered {}: wrong user name or password?",
                r.status()
            ));
        }
        let body: serde_json::Value = r
            .json()
            .await
            .map_err(|e| format!("the token service at {realm} sent no JSON: {e}"))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .ok_or_else(|| format!("the token service at {realm} sent no token"))?;
        self.auth = Some(format!("Bearer {token}"));
        Ok(())
    }

    /// GETs a path under `/v2/<repository>/`, meeting one new challenge on a 401.
    async fn get(&mut self, suffix: &str, accept: Option<&str>) -> Result<Response, String> {
        let url = format!("{}/v2/{}/{suffix}", self.base, self.upstream.path);
        for _ in 0..2 {
            let mut req = self.http.get(&url);
            if let Some(a) = &self.auth {
                req = req.header(AUTHORIZATION, a);
            }
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            let r = req
                .send()
                .await
                .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
            if r.status() == StatusCode::UNAUTHORIZED {
                self.authenticate(&challenge(&r)).await?;
                continue;
            }
            return Ok(r);
        }
        Err(format!(
            "GET {url}: the upstream registry refused the credentials (401)"
        ))
    }

    /// Every tag of the repository, following the `Link` pages.
    pub async fn tags(&mut self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut next = Some("tags/list?n=1000".to_owned());
        let mut pages = 0;
        while let Some(suffix) = next.take() {
            pages += 1;
            if pages > 1000 {
                return Err("the upstream tag list does not end".into());
            }
            let r = self.get(&suffix, None).await?;
            if r.status() == StatusCode::NOT_FOUND {
                return Err(format!("the upstream has no repository {}", self.upstream.path));
            }
            if !r.status().is_success() {
                return Err(format!("listing the upstream tags: {}", r.status()));
            }
            next = r
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| {
                    l.split_once('<')
                        .and_then(|(_, rest)| rest.split_once('>'))
                        .map(|(u, _)| u.to_owned())
                })
                .and_then(|u| u.split_once("/tags/list").map(|(_, q)| format!("tags/list{q}")));
            let body: serde_json::Value = r.json().await.map_err(|e| format!("the upstream tag list: {e}"))?;
            out.extend(
                body["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_owned)),
            );
        }
        Ok(out)
    }

    /// A manifest by tag or digest, its digest computed (and checked against a digest asked for,
    /// and against the registry's `Docker-Content-Digest`).
    pub async fn manifest(&mut self, reference: &str) -> Result<Fetched, String> {
        let r = self
            .get(&format!("manifests/{reference}"), Some(MANIFEST_TYPES))
            .await?;
        if !r.status().is_success() {
            return Err(format!("the upstream manifest {reference}: {}", r.status()));
        }
        let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let claimed = header("docker-content-digest");
        let media_type = header("content-type").unwrap_or_default();
        let media_type = media_type.split(';').next().unwrap_or_default().trim().to_owned();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| format!("reading the upstream manifest {reference}: {e}"))?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(format!(
                "the upstream manifest {reference} exceeds {MAX_MANIFEST_BYTES} bytes"
            ));
        }
        let digest = sha256(&bytes);
        for expected in [Some(reference.to_owned()).filter(|r| r.contains(':')), claimed]
            .into_iter()
            .flatten()
        {
            if expected != digest.as_str() {
                return Err(format!(
                    "the upstream manifest {reference} has digest {digest}, not {expected}"
                ));
            }
        }
        let media_type = match media_type.as_str() {
            OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST => media_type,
            // A registry that does not say: the document says.
            _ => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|d| d["mediaType"].as_str().map(str::to_owned))
                .unwrap_or_else(|| OCI_MANIFEST.to_owned()),
        };
        Ok(Fetched {
            bytes: bytes.to_vec(),
            media_type,
            digest,
        })
    }

    /// A blob, as a response whose body the caller streams.
    pub async fn blob(&mut self, digest: &Digest) -> Result<Response, String> {
        let r = self.get(&format!("blobs/{digest}"), None).await?;
        if !r.status().is_success() {
            return Err(format!("the upstream blob {digest}: {}", r.status()));
        }
        Ok(r)
    }
}

/// The `WWW-Authenticate` challenge of a 401.
fn challenge(r: &Response) -> String {
    r.headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> Digest {
    let mut h = berth_blob::UploadHasher::new(berth_core::DigestAlgorithm::Sha256);
    h.update(bytes);
    h.finish()
}

/// The `key="value"` pairs of a challenge.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, t)) => (v.to_owned(), t),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, t)) => (v.trim().to_owned(), t),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.push((key, value));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// An error with its causes, as reqwest hides the interesting part (a refused address) in them.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_host_and_path() {
        let u = Upstream::parse("registry.example.com:5000/library/alpine").unwrap();
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("registry.example.com:5000", "library/alpine")
        );
        assert_eq!(
            Upstream::parse("127.0.0.1:8080/acme/web").unwrap().host,
            "127.0.0.1:8080"
        );
        assert_eq!(Upstream::parse("localhost/x").unwrap().host, "localhost");
        for bad in [
            "",
            "alpine",
            "docker.io",
            "https://quay.io/x",
            "quay.io/x:latest",
            "quay.io/x@sha256:00",
            "quay.io/X",
            "quay.io//x",
            "quay io/x",
            "noport/x",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn challenges_are_read_with_quotes_and_commas() {
        let p = parse_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            p,
            [
                ("realm".to_owned(), "https://auth.example/token".to_owned()),
                ("service".to_owned(), "registry.example".to_owned()),
                ("scope".to_owned(), "repository:a/b:pull,push".to_owned()),
            ]
        );
        assert_eq!(
            parse_params(r#"realm="Registry Realm""#),
            [("realm".to_owned(), "Registry Realm".to_owned())]
        );
        assert_eq!(parse_params("realm=x, service=y").len(), 2);
    }
}
