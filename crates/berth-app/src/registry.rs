//! The OCI distribution use cases: who may pull, push and delete (registry token grants or direct
//! credentials), blob uploads (monolithic, chunked and resumable on any instance, cross-repository
//! mounts), manifests stored byte for byte with their references checked, tags, referrers and the
//! catalog.
//!
//! Invariants: a blob becomes visible only after its digest was verified; a manifest is stored only
//! when every blob and child manifest it references is present in the repository.

use berth_blob::{BlobError, BlobStream, UploadHasher, UploadParts};
use berth_core::{AccountKind, Digest, DigestAlgorithm, Reference, RepoId, RepoPath, RepoRole, Visibility};
use berth_store::accounts;
use berth_store::registry::{self as reg, ManifestRow, NewManifest};
use berth_store::repos::{self, RepoRow};
use serde_json::json;
use tokio::io::AsyncRead;

use crate::auth::{RegistryGrant, principal};
use crate::repos::NewRepo;
use crate::{App, AppError, Caller, Ctx, Principal, Result};
use berth_store::registry::UploadRow;

/// Largest manifest accepted, as in CNCF Distribution.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Media types of manifests Berth stores.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Why a registry operation was refused, in the registry's own terms; each carries the message
/// the client sees. The HTTP layer words each one as the OCI distribution spec's error code and
/// status, in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The repository has no such blob.
    #[error("{0}")]
    BlobUnknown(String),
    /// An upload's data cannot be used (its body could not be read).
    #[error("{0}")]
    UploadInvalid(String),
    /// No such upload session.
    #[error("{0}")]
    UploadUnknown(String),
    /// A digest is malformed, of the wrong algorithm, or does not match the content.
    #[error("{0}")]
    DigestInvalid(String),
    /// A manifest refers to a blob or manifest the repository does not have.
    #[error("{0}")]
    ManifestBlobUnknown(String),
    /// A manifest is not one Berth can read or store.
    #[error("{0}")]
    ManifestInvalid(String),
    /// The repository has no such manifest (or none the client accepts).
    #[error("{0}")]
    ManifestUnknown(String),
    /// A repository name is malformed.
    #[error("{0}")]
    NameInvalid(String),
    /// A size or count is out of bounds.
    #[error("{0}")]
    SizeInvalid(String),
    /// A byte range does not fit what is stored: a read outside a blob, or a chunk that does not
    /// start where the upload ends (the client resumes from the current range).
    #[error("{0}")]
    RangeInvalid(String),
}

impl RegistryError {
    /// Whether it says that what was asked for does not exist (a blob, an upload, a manifest or
    /// tag), as against a refusal of what was sent.
    pub fn is_unknown(&self) -> bool {
        matches!(
            self,
            RegistryError::BlobUnknown(_) | RegistryError::UploadUnknown(_) | RegistryError::ManifestUnknown(_)
        )
    }
}

/// Refuses a user's write to a repository whose state forbids it: a read-only one takes no
/// writes, a mirror only its own sync's.
pub(crate) fn writable(repo: &RepoRow) -> Result<()> {
    match repo.state {
        berth_core::RepoState::Normal => Ok(()),
        berth_core::RepoState::ReadOnly => Err(AppError::Forbidden(format!(
            "repository {}/{} is read-only",
            repo.namespace, repo.name
        ))),
        berth_core::RepoState::Mirror => Err(AppError::Forbidden(format!(
            "repository {}/{} is a mirror: only its mirror writes to it",
            repo.namespace, repo.name
        ))),
    }
}

fn blob_unknown(digest: &Digest) -> AppError {
    AppError::from(RegistryError::BlobUnknown(format!(
        "blob unknown to registry: {digest}"
    )))
}

fn manifest_unknown(reference: &Reference) -> AppError {
    AppError::from(RegistryError::ManifestUnknown(format!(
        "manifest unknown to registry: {reference}"
    )))
}

fn name_unknown(path: &RepoPath) -> AppError {
    AppError::NotFound(format!("repository name not known to registry: {path}"))
}

impl From<BlobError> for AppError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => AppError::from(RegistryError::BlobUnknown("blob unknown to registry".into())),
            BlobError::DigestMismatch { expected, actual } => AppError::from(RegistryError::DigestInvalid(format!(
                "provided digest {expected} does not match content {actual}"
            ))),
            BlobError::Body(e) => {
                AppError::from(RegistryError::UploadInvalid(format!("reading the request body: {e}")))
            }
            BlobError::Unavailable(detail) => {
                tracing::error!(error = %detail, "blob storage failed");
                AppError::Unavailable("blob storage is unavailable, please retry".into())
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// How a registry request authenticated.
#[derive(Debug, Clone)]
pub enum RegistryAuth {
    /// No credentials.
    Anonymous,
    /// Basic credentials, checked against the database on every request.
    Caller(Principal),
    /// A token from `/v2/auth`, whose grants were decided when it was issued.
    Token(RegistryGrant),
}

impl RegistryAuth {
    fn is_anonymous(&self) -> bool {
        match self {
            RegistryAuth::Anonymous => true,
            RegistryAuth::Caller(_) => false,
            RegistryAuth::Token(g) => g.subject.is_empty(),
        }
    }
}

/// What a registry request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read.
    Pull,
    /// Write.
    Push,
    /// Delete.
    Delete,
}

impl Action {
    /// The token action name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn role(self) -> RepoRole {
        match self {
            Action::Pull => RepoRole::Read,
            Action::Push => RepoRole::Write,
            Action::Delete => RepoRole::Admin,
        }
    }
}

/// An upload session's state, as the client sees it.
#[derive(Debug, Clone)]
pub struct UploadState {
    /// Its id.
    pub id: String,
    /// Bytes received.
    pub size: u64,
}

/// A stored blob to serve.
pub struct BlobContent {
    /// Total size.
    pub size: u64,
    /// The bytes (the requested range of them).
    pub stream: BlobStream,
}

/// The result of a manifest push.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    /// The digest of the bytes.
    pub digest: Digest,
    /// Its subject, if any (the `OCI-Subject` header).
    pub subject: Option<String>,
}

/// One page of a listing and the `last` to ask for the next.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Present when there may be more.
    pub next_last: Option<String>,
}

impl Page<String> {
    /// A page from up to `limit + 1` items in order: the extra one only says that more follow.
    fn of(mut items: Vec<String>, limit: usize) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next_last = if more { items.last().cloned() } else { None };
        Page { items, next_last }
    }
}

impl App {
    /// Checks that the request may do `action` on `path` and returns the repository. A push to a
    /// missing repository creates it (private) when the caller may create in that namespace.
    pub async fn registry_repo(&self, auth: &RegistryAuth, path: &RepoPath, action: Action) -> Result<RepoRow> {
        let name = path.to_string();
        let mut conn = self.store.conn().await?;
        let repo = repos::by_path(&mut conn, path.namespace.as_str(), path.name.as_str()).await?;
        let (visible, allowed) = match (auth, &repo) {
            (RegistryAuth::Token(g), _) => (
                g.allows(&name, "pull") || g.allows(&name, action.as_str()),
                g.allows(&name, action.as_str()),
            ),
            (RegistryAuth::Anonymous, Some(r)) => {
                let public = r.visibility == Visibility::Public;
                (public, public && action == Action::Pull)
            }
            (RegistryAuth::Caller(p), Some(r)) => {
                let role = self.repo_role(&mut conn, &Caller::Account(p.clone()), r).await?;
                (role.is_some(), role.is_some_and(|x| x >= action.role()))
            }
            (_, None) => (false, false),
        };
        drop(conn);
        match repo {
            Some(r) if allowed && action != Action::Pull => {
                writable(&r)?;
                Ok(r)
            }
            Some(r) if allowed => Ok(r),
            // Anonymous callers are challenged, so that clients log in and retry.
            _ if auth.is_anonymous() => Err(AppError::Unauthenticated),
            Some(_) if visible => Err(AppError::forbidden()),
            None if action == Action::Push => self.create_on_push(auth, path, allowed).await,
            _ => Err(name_unknown(path)),
        }
    }

    async fn create_on_push(&self, auth: &RegistryAuth, path: &RepoPath, token_allows: bool) -> Result<RepoRow> {
        if matches!(auth, RegistryAuth::Token(_)) && !token_allows {
            return Err(name_unknown(path));
        }
        let caller = self.registry_caller(auth).await?;
        if caller.account().is_none() {
            return Err(AppError::Unauthenticated);
        }
        let ctx = Ctx { caller, ip: None };
        if !self.may_create_in(&ctx.caller, path.namespace.as_str()).await? {
            return Err(name_unknown(path));
        }
        let new = NewRepo {
            namespace: path.namespace.to_string(),
            name: path.name.to_string(),
            visibility: Visibility::Private,
            description: String::new(),
        };
        match self.create_repo(&ctx, &new).await {
            Ok(r) => Ok(r),
            // Two first pushes raced: the other one created it.
            Err(AppError::Conflict(_)) => {
                let mut conn = self.store.conn().await?;
                repos::by_path(&mut conn, path.namespace.as_str(), path.name.as_str())
                    .await?
                    .ok_or_else(AppError::not_found)
            }
            Err(e) => Err(e),
        }
    }

    /// The caller behind a registry request: a token's subject is looked up, so that audit entries
    /// and events name the pusher whichever way it authenticated.
    pub async fn registry_caller(&self, auth: &RegistryAuth) -> Result<Caller> {
        Ok(match auth {
            RegistryAuth::Anonymous => Caller::Anonymous,
            RegistryAuth::Caller(p) => Caller::Account(p.clone()),
            RegistryAuth::Token(g) if g.subject.is_empty() => Caller::Anonymous,
            RegistryAuth::Token(g) => {
                let mut conn = self.store.conn().await?;
                match accounts::by_name(&mut conn, &g.subject).await? {
                    Some(a) if a.kind != AccountKind::Organization => {
                        let mut p = principal(a, None);
                        p.build_repo = g.build_repo;
                        Caller::Account(p)
                    }
                    _ => Caller::Anonymous,
                }
            }
        })
    }

    /// The size of a blob visible in the repository.
    pub async fn blob_size(&self, repo: &RepoRow, digest: &Digest) -> Result<u64> {
        let mut conn = self.store.conn().await?;
        let size = reg::repo_blob_size(&mut conn, repo.id, digest.as_str()).await?;
        size.and_then(|s| u64::try_from(s).ok())
            .ok_or_else(|| blob_unknown(digest))
    }

    /// Where a client may download a blob visible in the repository directly (a presigned URL of
    /// the blob store, when it is configured to redirect downloads).
    pub async fn blob_redirect(&self, repo: &RepoRow, digest: &Digest) -> Result<Option<String>> {
        // Signing is local: a store that does not redirect costs no query here.
        let Some(url) = self.blobs.redirect_url(digest).await? else {
            return Ok(None);
        };
        self.blob_size(repo, digest).await?;
        Ok(Some(url))
    }

    /// Opens a blob, or the byte range `[start, end]` of it.
    pub async fn read_blob(
        &self,
        repo: &RepoRow,
        digest: &Digest,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<(BlobContent, Option<(u64, u64)>)> {
        let size = self.blob_size(repo, digest).await?;
        let (start, end) = match range {
            None => (0, size.saturating_sub(1)),
            Some((s, e)) => {
                let end = e.unwrap_or(size.saturating_sub(1)).min(size.saturating_sub(1));
                if s >= size || s > end {
                    return Err(AppError::from(RegistryError::RangeInvalid(format!(
                        "range {s}-{end} outside blob of {size} bytes"
                    ))));
                }
                (s, end)
            }
        };
        let len = if size == 0 { 0 } else { end - start + 1 };
        let stream = self.blobs.stream(digest, start, len).await?;
        Ok((BlobContent { size, stream }, range.map(|_| (start, end))))
    }

    /// Removes a blob from the repository (the bytes stay until garbage collection).
    pub async fn delete_blob(&self, repo: &RepoRow, digest: &Digest) -> Result<()> {
        let mut tx = self.store.begin().await?;
        if !reg::unlink_blob(&mut tx, repo.id, digest.as_str()).await? {
            return Err(blob_unknown(digest));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes a blob of `from` visible in `repo` when the caller may pull `from`. Returns false when
    /// the mount is not possible (the client then uploads normally).
    pub async fn mount_blob(&self, auth: &RegistryAuth, repo: &RepoRow, from: &str, digest: &Digest) -> Result<bool> {
        let Ok(from) = RepoPath::parse(from) else {
            return Ok(false);
        };
        let Ok(source) = self.registry_repo(auth, &from, Action::Pull).await else {
            return Ok(false);
        };
        self.link_stored_blob(repo, digest, Some(source.id)).await
    }

    /// Links blob `digest` into `repo` when `from` (a repository, or any when `None`) holds it,
    /// and says whether it did. Under the blob's lock: a collection of it either finished first
    /// (and nothing is linked) or waits for the link.
    pub(crate) async fn link_stored_blob(&self, repo: &RepoRow, digest: &Digest, from: Option<RepoId>) -> Result<bool> {
        let mut lock = self.store.lock_blob(digest.as_str()).await?;
        let tx = lock.tx(&self.store).await?;
        let held = match from {
            Some(source) => reg::repo_blob_size(tx, source, digest.as_str()).await?,
            None => reg::blob_size(tx, digest.as_str()).await?,
        };
        if held.is_none() {
            lock.release().await;
            return Ok(false);
        }
        reg::link_blob(tx, repo.id, digest.as_str()).await?;
        lock.commit().await?;
        Ok(true)
    }

    /// Starts an upload session.
    pub async fn start_upload(&self, repo: &RepoRow, algo: DigestAlgorithm) -> Result<UploadState> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.store.begin().await?;
        reg::create_upload(&mut tx, &id, repo.id, &UploadHasher::new(algo).save()).await?;
        tx.commit().await?;
        Ok(UploadState { id, size: 0 })
    }

    async fn load_upload(&self, repo: &RepoRow, id: &str) -> Result<UploadRow> {
        let mut conn = self.store.conn().await?;
        reg::upload(&mut conn, repo.id, id)
            .await?
            .ok_or_else(|| AppError::from(RegistryError::UploadUnknown("blob upload unknown to registry".into())))
    }

    /// The state of an upload session.
    pub async fn upload_state(&self, repo: &RepoRow, id: &str) -> Result<UploadState> {
        let row = self.load_upload(repo, id).await?;
        Ok(UploadState {
            id: row.id,
            size: u64::try_from(row.size).unwrap_or(0),
        })
    }

    /// Appends a chunk. `start`, from `Content-Range`, must equal the bytes received so far.
    pub async fn append_upload(
        &self,
        repo: &RepoRow,
        id: &str,
        start: Option<u64>,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<UploadState> {
        let (state, ..) = self.append_chunk(repo, id, start, body, None).await?;
        Ok(state)
    }

    async fn append_chunk(
        &self,
        repo: &RepoRow,
        id: &str,
        start: Option<u64>,
        body: &mut (dyn AsyncRead + Send + Unpin),
        final_algo: Option<DigestAlgorithm>,
    ) -> Result<(UploadState, UploadHasher, UploadParts)> {
        let row = self.load_upload(repo, id).await?;
        let size = u64::try_from(row.size).unwrap_or(0);
        if let Some(s) = start
            && s != size
        {
            return Err(AppError::from(RegistryError::RangeInvalid(format!(
                "chunk starts at {s}, but {size} bytes were received"
            ))));
        }
        let mut hasher = UploadHasher::restore(&row.hash_state)?;
        // Nothing hashed yet: hash with the algorithm of the digest the client will check.
        if let Some(algo) = final_algo.filter(|a| size == 0 && *a != hasher.algorithm()) {
            hasher = UploadHasher::new(algo);
        }
        let mut parts = UploadParts::restore(&row.parts)?;
        let new_size = self
            .blobs
            .append_upload(id, size, &mut hasher, &mut parts, body)
            .await?;
        if new_size != size {
            let mut tx = self.store.begin().await?;
            let moved = reg::advance_upload(
                &mut tx,
                id,
                row.size,
                i64::try_from(new_size).unwrap_or(i64::MAX),
                &hasher.save(),
                &parts.save(),
            )
            .await?;
            if !moved {
                return Err(AppError::from(RegistryError::RangeInvalid(
                    "another request appended to this upload first".into(),
                )));
            }
            tx.commit().await?;
        }
        Ok((
            UploadState {
                id: id.to_owned(),
                size: new_size,
            },
            hasher,
            parts,
        ))
    }

    /// Completes an upload with an optional last chunk, verifies the digest and makes the blob
    /// visible in the repository.
    pub async fn finish_upload(
        &self,
        repo: &RepoRow,
        id: &str,
        digest: &Digest,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<()> {
        let (state, hasher, parts) = self
            .append_chunk(repo, id, None, body, Some(digest.algorithm()))
            .await?;
        if hasher.algorithm() != digest.algorithm() {
            return Err(AppError::from(RegistryError::DigestInvalid(format!(
                "this upload was hashed with {}; give a digest of that algorithm",
                hasher.algorithm().as_str()
            ))));
        }
        let actual = hasher.finish();
        if &actual != digest {
            self.cancel_upload(repo, id).await?;
            return Err(BlobError::DigestMismatch {
                expected: digest.clone(),
                actual,
            }
            .into());
        }
        let mut lock = match self.publish_blob(id, state.size, &parts, digest).await {
            Ok(lock) => lock,
            Err(e) => {
                self.discard_failed_upload(repo, id).await;
                return Err(e);
            }
        };
        let tx = lock.tx(&self.store).await?;
        reg::insert_blob(tx, digest.as_str(), i64::try_from(state.size).unwrap_or(i64::MAX)).await?;
        reg::link_blob(tx, repo.id, digest.as_str()).await?;
        reg::delete_upload(tx, id).await?;
        lock.commit().await?;
        Ok(())
    }

    /// Verifies upload `id` (without the blob's lock: nothing is visible yet), then publishes it
    /// as blob `digest` under the lock, which it returns: the caller records the blob in the
    /// lock's transaction. Garbage collection of the same digest waits, and is waited for, so it
    /// never removes bytes that an upload found stored and is about to record.
    pub(crate) async fn publish_blob(
        &self,
        id: &str,
        size: u64,
        parts: &UploadParts,
        digest: &Digest,
    ) -> Result<berth_store::BlobLock> {
        self.blobs.seal_upload(id, size, parts, digest).await?;
        let lock = self.store.lock_blob(digest.as_str()).await?;
        if let Err(e) = self.blobs.publish_upload(id, parts, digest).await {
            lock.release().await;
            return Err(e.into());
        }
        Ok(lock)
    }

    /// Ends a session whose bytes do not match (or whose storage failed): it is unusable.
    async fn discard_failed_upload(&self, repo: &RepoRow, id: &str) {
        if let Err(cleanup) = self.cancel_upload(repo, id).await {
            tracing::warn!(upload = id, error = %cleanup, "could not discard a failed upload");
        }
    }

    /// Abandons an upload session.
    pub async fn cancel_upload(&self, repo: &RepoRow, id: &str) -> Result<()> {
        let row = self.load_upload(repo, id).await?;
        let mut tx = self.store.begin().await?;
        reg::delete_upload(&mut tx, id).await?;
        tx.commit().await?;
        self.blobs
            .delete_upload(id, &UploadParts::restore(&row.parts).unwrap_or_default())
            .await?;
        Ok(())
    }

    /// Stores a manifest (byte for byte) under `reference`, after checking that everything it
    /// references is present.
    pub async fn put_manifest(
        &self,
        ctx: &Ctx,
        repo: &RepoRow,
        reference: &Reference,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<PushedManifest> {
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(AppError::from(RegistryError::SizeInvalid(format!(
                "manifest exceeds {MAX_MANIFEST_BYTES} bytes"
            ))));
        }
        let parsed = ParsedManifest::parse(content_type, body)?;
        let algo = match reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => DigestAlgorithm::Sha256,
        };
        let mut h = UploadHasher::new(algo);
        h.update(body);
        let digest = h.finish();
        if let Reference::Digest(d) = reference
            && d != &digest
        {
            return Err(AppError::from(RegistryError::DigestInvalid(format!(
                "manifest digest {digest} does not match {d}"
            ))));
        }
        // A tag's expiry from the image's `quay.expires-after` label, read before the transaction.
        let expires_at = match (reference, &parsed.config) {
            (Reference::Tag(_), Some(config)) => self
                .image_config(config)
                .await?
                .and_then(|c| crate::expiry::expiry_of_config(&c, chrono::Utc::now())),
            _ => None,
        };
        let mut tx = self.store.begin().await?;
        for b in &parsed.blobs {
            if reg::repo_blob_size(&mut tx, repo.id, b).await?.is_none() {
                return Err(AppError::from(RegistryError::ManifestBlobUnknown(format!(
                    "blob unknown to registry: {b}"
                ))));
            }
        }
        for m in &parsed.children {
            if reg::manifest_by_digest(&mut tx, repo.id, m).await?.is_none() {
                return Err(AppError::from(RegistryError::ManifestBlobUnknown(format!(
                    "manifest unknown to registry: {m}"
                ))));
            }
        }
        let id = reg::insert_manifest(
            &mut tx,
            &NewManifest {
                repo: repo.id,
                digest: digest.as_str(),
                media_type: &parsed.media_type,
                artifact_type: parsed.artifact_type.as_deref(),
                subject: parsed.subject.as_deref(),
                content: body,
                blobs: &parsed.blobs,
                children: &parsed.children,
            },
        )
        .await?;
        if let Reference::Tag(tag) = reference {
            let before = reg::set_tag(&mut tx, repo.id, tag.as_str(), id, expires_at).await?;
            // Every PUT by tag raises repo_push, as in Quay; pushes by digest (an index's children) do not.
            let data = berth_notify::events::repo_push(
                &crate::events::repo_context(&self.settings, repo),
                &[tag.as_str()],
                &[digest.as_str()],
            );
            // A build's own pushes are announced by the build, after build_success.
            let from_build = ctx.caller.account().is_some_and(|p| p.build_repo.is_some());
            if !from_build {
                self.raise(&mut tx, repo, "repo_push", &data, ctx.caller.account())
                    .await?;
            }
            if before.as_deref() != Some(digest.as_str()) {
                let meta = json!({"repo": repo.name, "namespace": repo.namespace, "tag": tag.as_str(), "manifest_digest": digest.as_str()});
                crate::audit::record(&mut tx, ctx, "push_repo", Some(repo.namespace_id), Some(repo.id), meta).await?;
            }
        }
        let scan = self.enqueue_scan(&mut tx, repo.id, digest.as_str()).await?;
        if self.failpoints.hit(crate::failpoint::PUT_MANIFEST_BEFORE_COMMIT) {
            // As if the process died here: the transaction is dropped, nothing is committed.
            return Err(AppError::Unavailable("failpoint: put_manifest.before_commit".into()));
        }
        tx.commit().await?;
        if scan {
            self.scan_wake.notify_one();
        }
        Ok(PushedManifest {
            digest,
            subject: parsed.subject,
        })
    }

    /// A manifest by tag or digest.
    pub async fn get_manifest(&self, repo: &RepoRow, reference: &Reference) -> Result<ManifestRow> {
        let mut conn = self.store.conn().await?;
        let found = match reference {
            Reference::Tag(t) => reg::manifest_by_tag(&mut conn, repo.id, t.as_str()).await?,
            Reference::Digest(d) => reg::manifest_by_digest(&mut conn, repo.id, d.as_str()).await?,
        };
        found.ok_or_else(|| manifest_unknown(reference))
    }

    /// Deletes a manifest by digest (with its tags), or only a tag. Each tag removed raises
    /// `tag_deleted` in the same transaction (the outbox rule).
    pub async fn delete_manifest(&self, ctx: &Ctx, repo: &RepoRow, reference: &Reference) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let (removed, reason) = match reference {
            Reference::Tag(t) => {
                let digest = reg::manifest_by_tag(&mut tx, repo.id, t.as_str())
                    .await?
                    .map(|m| m.digest);
                (
                    digest.map(|d| (t.as_str().to_owned(), d)).into_iter().collect(),
                    "deleted",
                )
            }
            Reference::Digest(d) => {
                let tags = reg::tags_of_manifest(&mut tx, repo.id, d.as_str()).await?;
                (
                    tags.into_iter().map(|t| (t, d.to_string())).collect::<Vec<_>>(),
                    "manifest_deleted",
                )
            }
        };
        let (deleted, kind) = match reference {
            Reference::Tag(t) => (reg::delete_tag(&mut tx, repo.id, t.as_str()).await?, "delete_tag"),
            Reference::Digest(d) => {
                // Deleting a child of an index would break the index's tags.
                let parents = reg::parents(&mut tx, repo.id, d.as_str()).await?;
                if let Some(p) = parents.first() {
                    return Err(AppError::Conflict(format!(
                        "manifest {d} is part of index {p}; delete the index first"
                    )));
                }
                (
                    reg::delete_manifest(&mut tx, repo.id, d.as_str()).await?,
                    "delete_manifest",
                )
            }
        };
        if !deleted {
            return Err(manifest_unknown(reference));
        }
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "reference": reference.to_string()});
        crate::audit::record(&mut tx, ctx, kind, Some(repo.namespace_id), Some(repo.id), meta).await?;
        for (tag, digest) in &removed {
            self.raise_tag_deleted(&mut tx, repo, tag, digest, reason, ctx.caller.account())
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Raises `tag_deleted` in `tx`, the transaction that removed the tag (the API, `/v2`, the
    /// UI, the expiry pass, a mirror sync).
    pub(crate) async fn raise_tag_deleted(
        &self,
        tx: &mut berth_store::Tx,
        repo: &RepoRow,
        tag: &str,
        digest: &str,
        reason: &str,
        performer: Option<&crate::Principal>,
    ) -> Result<()> {
        let gone = berth_notify::events::DeletedTag {
            tag,
            manifest_digest: digest,
            reason,
            performer: performer.map(|p| p.name.as_str()),
        };
        let data = berth_notify::events::tag_deleted(&crate::events::repo_context(&self.settings, repo), &gone);
        self.raise(tx, repo, berth_notify::EventKind::TagDeleted.name(), &data, performer)
            .await?;
        Ok(())
    }

    /// Tags in lexical order, `n` at a time after `last`.
    pub async fn list_tags(&self, repo: &RepoRow, last: Option<&str>, n: Option<u32>) -> Result<Page<String>> {
        let limit = n.unwrap_or(1000).min(10_000);
        let mut conn = self.store.conn().await?;
        let items = reg::tags(&mut conn, repo.id, last, i64::from(limit) + 1).await?;
        Ok(Page::of(items, limit as usize))
    }

    /// Manifests whose subject is `digest`, optionally of one artifact type, as the descriptors of
    /// the referrers index.
    pub async fn referrers(
        &self,
        repo: &RepoRow,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let mut conn = self.store.conn().await?;
        let all = reg::referrers(&mut conn, repo.id, digest.as_str()).await?;
        Ok(all
            .into_iter()
            .filter(|m| artifact_type.is_none_or(|t| m.artifact_type.as_deref() == Some(t)))
            .map(|m| {
                // Stored manifests parsed when they were pushed, so a failure here means none.
                let annotations = serde_json::from_slice::<serde_json::Value>(&m.content)
                    .ok()
                    .and_then(|v| v.get("annotations").filter(|a| a.is_object()).cloned());
                Referrer {
                    digest: m.digest,
                    media_type: m.media_type,
                    artifact_type: m.artifact_type,
                    size: m.size,
                    annotations,
                }
            })
            .collect())
    }

    /// Repository names the caller may pull, in order, `n` at a time after `last`.
    pub async fn catalog(&self, auth: &RegistryAuth, last: Option<&str>, n: Option<u32>) -> Result<Page<String>> {
        let limit = n.unwrap_or(1000).min(10_000) as usize;
        let caller = self.registry_caller(auth).await?;
        let viewer = crate::repos::viewer(&caller);
        // A namespace never contains `/`; the name after it may.
        let after = last.map(|l| l.split_once('/').unwrap_or((l, "")));
        let mut conn = self.store.conn().await?;
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let items = repos::visible_paths(&mut conn, viewer, after, fetch).await?;
        Ok(Page::of(items, limit))
    }
}

/// Checks a manifest as a push checks it before looking at the blobs it names: JSON, a supported
/// media type, well-formed descriptors. The fuzz target `manifest` drives it.
pub fn check_manifest(content_type: Option<&str>, body: &[u8]) -> Result<()> {
    ParsedManifest::parse(content_type, body).map(|_| ())
}

/// What Berth reads out of a manifest.
struct ParsedManifest {
    media_type: String,
    artifact_type: Option<String>,
    subject: Option<String>,
    /// An image manifest's config blob.
    config: Option<Digest>,
    blobs: Vec<String>,
    children: Vec<String>,
}

impl ParsedManifest {
    fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ParsedManifest> {
        let invalid = |m: String| AppError::from(RegistryError::ManifestInvalid(m));
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| invalid("manifest must be a JSON object".into()))?;
        if obj.get("schemaVersion").and_then(serde_json::Value::as_i64) != Some(2) {
            return Err(invalid("schemaVersion must be 2".into()));
        }
        let declared = obj.get("mediaType").and_then(serde_json::Value::as_str);
        let header = content_type
            .map(|c| c.split(';').next().unwrap_or(c).trim())
            .filter(|c| !c.is_empty());
        let media_type = match (header, declared) {
            (Some(h), Some(d)) if h != d => {
                return Err(invalid(format!(
                    "Content-Type {h} does not match the manifest's mediaType {d}"
                )));
            }
            (Some(h), _) => h.to_owned(),
            (None, Some(d)) => d.to_owned(),
            // An OCI manifest may omit mediaType; tell it from its fields.
            (None, None) if obj.contains_key("manifests") => OCI_INDEX.to_owned(),
            (None, None) => OCI_MANIFEST.to_owned(),
        };
        let digest_of = |x: &serde_json::Value, what: &str| -> Result<String> {
            let d = x
                .get("digest")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| invalid(format!("{what} has no digest")))?;
            Digest::parse(d)
                .map(|d| d.to_string())
                .map_err(|e| invalid(e.to_string()))
        };
        let (mut blobs, mut children, mut config_digest) = (Vec::new(), Vec::new(), None);
        match media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let config = obj
                    .get("config")
                    .ok_or_else(|| invalid("manifest has no config".into()))?;
                let d = digest_of(config, "config")?;
                config_digest = Digest::parse(&d).ok();
                blobs.push(d);
                let layers = obj
                    .get("layers")
                    .and_then(serde_json::Value::as_array)
                    .ok_or_else(|| invalid("manifest has no layers array".into()))?;
                for l in layers {
                    // Foreign layers live elsewhere, by their URLs.
                    let foreign = l
                        .get("urls")
                        .is_some_and(|u| u.as_array().is_some_and(|a| !a.is_empty()));
                    if !foreign {
                        blobs.push(digest_of(l, "layer")?);
                    }
                }
            }
            OCI_INDEX | DOCKER_LIST => {
                let list = obj
                    .get("manifests")
                    .and_then(serde_json::Value::as_array)
                    .ok_or_else(|| invalid("index has no manifests array".into()))?;
                for m in list {
                    children.push(digest_of(m, "index entry")?);
                }
            }
            other => return Err(invalid(format!("unsupported manifest media type {other}"))),
        }
        blobs.sort();
        blobs.dedup();
        children.sort();
        children.dedup();
        let subject = match obj.get("subject") {
            Some(s) => Some(digest_of(s, "subject")?),
            None => None,
        };
        let artifact_type = obj
            .get("artifactType")
            .and_then(serde_json::Value::as_str)
            .or_else(|| {
                obj.get("config")
                    .and_then(|c| c.get("mediaType"))
                    .and_then(serde_json::Value::as_str)
            })
            .map(str::to_owned);
        Ok(ParsedManifest {
            media_type,
            artifact_type,
            subject,
            config: config_digest,
            blobs,
            children,
        })
    }
}

/// One entry of a referrers index: a manifest whose subject was asked for.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its artifact type.
    pub artifact_type: Option<String>,
    /// Its size in bytes.
    pub size: i64,
    /// Its `annotations` object, if it has one.
    pub annotations: Option<serde_json::Value>,
}

/// One tag as Quay's tag API shows it.
#[derive(Debug, Clone)]
pub struct TagInfo {
    /// Tag name.
    pub name: String,
    /// Its manifest's digest.
    pub manifest_digest: String,
    /// Whether the manifest is an index or manifest list.
    pub is_manifest_list: bool,
    /// Sum of the referenced blob sizes (`None` for indexes, as Quay).
    pub size: Option<i64>,
    /// When it last moved.
    pub last_modified: chrono::DateTime<chrono::Utc>,
    /// When it expires, if it does.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl App {
    /// Deletes a tag by repository path (repository `write`), as the web UI does.
    pub async fn delete_tag(&self, ctx: &Ctx, namespace: &str, name: &str, tag: &str) -> Result<()> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Write).await?;
        writable(&repo)?;
        let tag = berth_core::Tag::parse(tag).map_err(|e| AppError::invalid(e.to_string()))?;
        self.delete_manifest(ctx, &repo, &Reference::Tag(tag)).await
    }

    /// Points a tag at a manifest of the repository, by digest (repository `write`), as Quay's
    /// `PUT …/tag/{tag}` does with `manifest_digest`: a push by tag without the upload, raising
    /// `repo_push`. The tag's expiry is cleared, as a pushed tag's is.
    pub async fn move_tag(&self, ctx: &Ctx, namespace: &str, name: &str, tag: &str, digest: &str) -> Result<()> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Write).await?;
        writable(&repo)?;
        let tag = berth_core::Tag::parse(tag).map_err(|e| AppError::invalid_field("tag", e.to_string()))?;
        let mut tx = self.store.begin().await?;
        let manifest = reg::manifest_by_digest(&mut tx, repo.id, digest)
            .await?
            .ok_or_else(|| {
                AppError::invalid_field("manifest_digest", format!("No manifest {digest} in this repository"))
            })?;
        let before = reg::set_tag(&mut tx, repo.id, tag.as_str(), manifest.id, None).await?;
        if before.as_deref() != Some(digest) {
            let data = berth_notify::events::repo_push(
                &crate::events::repo_context(&self.settings, &repo),
                &[tag.as_str()],
                &[digest],
            );
            self.raise(&mut tx, &repo, "repo_push", &data, ctx.caller.account())
                .await?;
            let kind = if before.is_some() { "move_tag" } else { "create_tag" };
            let meta =
                json!({"repo": repo.name, "namespace": repo.namespace, "tag": tag.as_str(), "manifest_digest": digest});
            crate::audit::record(&mut tx, ctx, kind, Some(repo.namespace_id), Some(repo.id), meta).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The platforms (`os/arch[/variant]`) of a manifest of `repo`: an index's children, or an
    /// image's config. Empty when unknown (artifacts, unreadable configs).
    pub async fn platforms(&self, repo: &RepoRow, digest: &str) -> Result<Vec<String>> {
        let Some(m) = reg::manifest_by_digest(&mut self.store.conn().await?, repo.id, digest).await? else {
            return Ok(Vec::new());
        };
        let doc: serde_json::Value = serde_json::from_slice(&m.content).unwrap_or_default();
        let name = |p: &serde_json::Value| -> Option<String> {
            let (os, arch) = (p["os"].as_str()?, p["architecture"].as_str()?);
            Some(match p["variant"].as_str() {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            })
        };
        if let Some(children) = doc["manifests"].as_array() {
            return Ok(children.iter().filter_map(|c| name(&c["platform"])).collect());
        }
        let Some(config) = doc["config"]["digest"].as_str().and_then(|d| Digest::parse(d).ok()) else {
            return Ok(Vec::new());
        };
        let conf = self.image_config(&config).await?;
        Ok(conf.as_ref().and_then(name).into_iter().collect())
    }

    /// An image's config blob, when it is at most 1 MiB of JSON.
    async fn image_config(&self, config: &Digest) -> Result<Option<serde_json::Value>> {
        let size = self.blobs.stat(config).await?.unwrap_or(0);
        if size == 0 || size > 1 << 20 {
            return Ok(None);
        }
        let mut reader = self.blobs.read(config, 0, size).await?;
        let mut bytes = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes)
            .await
            .map_err(|e| AppError::Unavailable(format!("reading {config}: {e}")))?;
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// A page of a repository's tags (read), most recently moved first; returns whether more exist.
    pub async fn repo_tags(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        specific: Option<&str>,
        paging: crate::paging::Paging,
    ) -> Result<(Vec<TagInfo>, bool)> {
        let (repo, _) = self.repo_access(caller, namespace, name, RepoRole::Read).await?;
        let mut conn = self.store.conn().await?;
        let rows = reg::tag_details(&mut conn, repo.id, specific, paging.fetch(), paging.offset()).await?;
        let (rows, more) = paging.split(rows);
        let tags = rows
            .into_iter()
            .map(|t| {
                let is_list = t.media_type == OCI_INDEX || t.media_type == DOCKER_LIST;
                TagInfo {
                    name: t.name,
                    manifest_digest: t.digest,
                    is_manifest_list: is_list,
                    size: (!is_list).then_some(t.size),
                    last_modified: t.updated_at,
                    expires_at: t.expires_at,
                }
            })
            .collect();
        Ok((tags, more))
    }
}
