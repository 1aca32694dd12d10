//! Content-addressed blob storage and upload sessions.
//!
//! Architecture invariants:
//! - blobs are addressed only by digest; this crate knows nothing of repositories or permissions;
//! - an upload becomes a blob only through [`BlobStore::publish_upload`], after
//!   [`BlobStore::seal_upload`] verified its digest, so an interrupted or failed upload is never
//!   visible;
//! - the hash state of an upload, and what storage holds of it ([`UploadParts`]), are returned to
//!   the caller after each chunk (to be stored in the upload's database row), so any instance can
//!   continue a chunked upload;
//! - a stored blob is never overwritten: a second upload of the same content is discarded.

pub mod hasher;
pub mod local;
pub mod s3;

use async_trait::async_trait;
use berth_core::Digest;
use tokio::io::AsyncRead;

pub use hasher::UploadHasher;
pub use local::LocalBlobStore;
pub use s3::{S3BlobStore, S3Settings};

/// A failure of blob storage.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The blob or upload does not exist.
    #[error("not found")]
    NotFound,
    /// The uploaded content does not have the digest the client claimed.
    #[error("digest mismatch: expected {expected}, computed {actual}")]
    DigestMismatch {
        /// What the client said.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// The stored hash state is unusable (corrupt row).
    #[error("invalid upload state: {0}")]
    BadState(String),
    /// The request body ended with an error.
    #[error("reading the request body: {0}")]
    Body(std::io::Error),
    /// The storage backend failed.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage service could not be reached, timed out, or refused the request.
    #[error("blob storage unavailable: {0}")]
    Unavailable(String),
    /// The storage configuration does not work; the message names the key to fix.
    #[error("{0}")]
    Config(String),
}

/// What storage holds of an upload in progress besides its size: nothing on a local disk (the
/// bytes are one file); on S3, the multipart upload, the ETags of its full parts, and the staged
/// tail shorter than a part. Saved with the upload's row after every chunk, so that the instance
/// that takes the next chunk knows where the previous one stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadParts {
    /// The S3 multipart upload, once a full part was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<String>,
    /// The ETags of the full parts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// The staged object holding the bytes after the last full part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
    /// How many bytes `tail` holds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tail_len: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl UploadParts {
    /// The saved form (empty for a local upload).
    pub fn save(&self) -> String {
        if self == &UploadParts::default() {
            return String::new();
        }
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a saved form.
    pub fn restore(saved: &str) -> Result<UploadParts, BlobError> {
        if saved.is_empty() {
            return Ok(UploadParts::default());
        }
        serde_json::from_str(saved).map_err(|e| BlobError::BadState(format!("upload parts: {e}")))
    }
}

/// A byte stream to read a blob from.
pub type BlobReader = Box<dyn AsyncRead + Send + Unpin>;

/// A blob's bytes as the pieces storage delivers them, to send on without copying.
pub type BlobStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

/// Where blobs live. The local filesystem is the default; S3-compatible storage comes through the
/// same trait.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// The size of a stored blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError>;

    /// Reads `len` bytes of a blob from `offset`.
    async fn read(&self, digest: &Digest, offset: u64, len: u64) -> Result<BlobReader, BlobError>;

    /// Streams `len` bytes of a blob from `offset` (for sending it on: what `read` gives, in
    /// large pieces, unless storage delivers pieces of its own).
    async fn stream(&self, digest: &Digest, offset: u64, len: u64) -> Result<BlobStream, BlobError> {
        let reader = self.read(digest, offset, len).await?;
        // Large pieces: each read of a local file is a trip to a blocking thread.
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            reader,
            256 * 1024,
        )))
    }

    /// Deletes a blob; a missing blob is not an error.
    async fn delete(&self, digest: &Digest) -> Result<(), BlobError>;

    /// Appends `body` to upload `id`, which currently holds `offset` bytes, updating `hasher` and
    /// `parts`. Returns the new size. On error the upload may hold a partial tail past `offset`;
    /// the caller keeps its stored size, hash state and parts, so the next append overwrites it.
    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        hasher: &mut UploadHasher,
        parts: &mut UploadParts,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, BlobError>;

    /// Checks that upload `id` (of `size` bytes, stored as `parts`) holds exactly the bytes of
    /// `digest`, and readies them for [`BlobStore::publish_upload`] (the slow half of a commit,
    /// which needs no lock: nothing is visible yet).
    async fn seal_upload(&self, id: &str, size: u64, parts: &UploadParts, digest: &Digest) -> Result<(), BlobError>;

    /// Makes sealed upload `id` the blob `digest` and removes what staged it. An existing blob of
    /// that digest is kept, never replaced. Callers hold the blob's lock from here until the blob
    /// is recorded, so that garbage collection cannot remove bytes this found stored.
    async fn publish_upload(&self, id: &str, parts: &UploadParts, digest: &Digest) -> Result<(), BlobError>;

    /// [`BlobStore::seal_upload`], then [`BlobStore::publish_upload`].
    async fn commit_upload(&self, id: &str, size: u64, parts: &UploadParts, digest: &Digest) -> Result<(), BlobError> {
        self.seal_upload(id, size, parts, digest).await?;
        self.publish_upload(id, parts, digest).await
    }

    /// Discards upload `id`; a missing upload is not an error.
    async fn delete_upload(&self, id: &str, parts: &UploadParts) -> Result<(), BlobError>;

    /// A URL from which a client may fetch the blob directly for a short while (a presigned S3
    /// URL), when this store hands out such URLs.
    async fn redirect_url(&self, _digest: &Digest) -> Result<Option<String>, BlobError> {
        Ok(None)
    }

    /// Checks that the storage works with this configuration (reachable, credentials accepted,
    /// writable); an error names the configuration key to fix.
    async fn check(&self) -> Result<(), BlobError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_parts_round_trip_and_refuse_garbage() {
        assert_eq!(UploadParts::default().save(), "", "a local upload saves nothing");
        assert_eq!(UploadParts::restore("").unwrap(), UploadParts::default());
        let parts = UploadParts {
            multipart: Some("mp-1".into()),
            parts: vec!["\"etag1\"".into(), "\"etag2\"".into()],
            tail: Some("tail-x".into()),
            tail_len: 42,
        };
        assert_eq!(UploadParts::restore(&parts.save()).unwrap(), parts);
        assert!(matches!(UploadParts::restore("{not json"), Err(BlobError::BadState(_))));
    }
}
