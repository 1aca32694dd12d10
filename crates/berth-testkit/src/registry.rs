//! A registry client for tests: blob and manifest pushes over the OCI distribution API, as
//! skopeo and podman make them, with Basic authentication, asserting each step succeeded.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::json;
use sha2::Digest as _;

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The `sha256:` digest of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// An authenticated client of one registry.
pub struct Reg<'a> {
    /// The registry's base URL (`http://127.0.0.1:<port>`).
    pub base: &'a str,
    /// The HTTP client to send with.
    pub client: &'a reqwest::Client,
    /// The Basic-auth user (a user, robot or `$oauthtoken`).
    pub user: &'a str,
    /// Its password or token.
    pub pass: &'a str,
}

impl Reg<'_> {
    /// A request to `path` (under the base, or a whole URL such as a `Location`), authenticated.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.request(method, url).basic_auth(self.user, Some(self.pass))
    }

    /// Sends an authenticated request without a body.
    pub async fn send(&self, method: Method, path: &str) -> Response {
        self.req(method, path).send().await.expect("the registry answers")
    }

    /// The tags of `repo` as one `GET …/tags/list` lists them (in its order; the answer must hold
    /// a `tags` array of strings).
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let body: serde_json::Value = self
            .send(Method::GET, &format!("/v2/{repo}/tags/list"))
            .await
            .json()
            .await
            .expect("a JSON tag list");
        body["tags"]
            .as_array()
            .unwrap_or_else(|| panic!("no tags array: {body}"))
            .iter()
            .map(|t| {
                t.as_str()
                    .unwrap_or_else(|| panic!("a tag that is not a string: {t}"))
                    .to_owned()
            })
            .collect()
    }

    /// Monolithic upload in one POST; a registry that answers with a session instead (202, as
    /// Distribution does) gets the bytes in one PUT to it, as the spec allows.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = digest(bytes);
        let mut r = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(bytes.to_vec())
            .send()
            .await
            .expect("the registry answers");
        if r.status() == 202 {
            let location = r.headers()["location"].to_str().expect("a session location").to_owned();
            let sep = if location.contains('?') { '&' } else { '?' };
            r = self
                .req(Method::PUT, &format!("{location}{sep}digest={d}"))
                .body(bytes.to_vec())
                .send()
                .await
                .expect("the registry answers");
        }
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        assert_eq!(r.headers()["docker-content-digest"], d.as_str());
        d
    }

    /// PUTs a manifest as `media_type`.
    pub async fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("the registry answers")
    }

    /// A one-layer image: returns (manifest bytes, manifest digest, layer digest).
    pub async fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> (Vec<u8>, String, String) {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let cd = self.push_blob(repo, config).await;
        let ld = self.push_blob(repo, layer).await;
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": layer.len()}]
        });
        let bytes = serde_json::to_vec_pretty(&manifest).expect("a JSON value serializes");
        let r = self.push_manifest(repo, tag, OCI_MANIFEST, &bytes).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        let md = digest(&bytes);
        (bytes, md, ld)
    }
}
