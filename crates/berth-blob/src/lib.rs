//! Content-addressed blob storage and upload sessions.
//!
//! Architecture invariants:
//! - blobs are addressed only by digest; this crate knows nothing of repositories or permissions;
//! - an upload becomes a blob only through [`BlobStore::commit_upload`], after its digest was
//!   verified, so an interrupted or failed upload is never visible;
//! - the hash state of an upload is returned to the caller after each chunk (to be stored in the
//!   upload's database row), so any instance can continue a chunked upload.

pub mod hasher;
pub mod local;

use async_trait::async_trait;
use berth_core::Digest;
use tokio::io::AsyncRead;

pub use hasher::UploadHasher;
pub use local::LocalBlobStore;

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
}

/// A byte stream to read a blob from.
pub type BlobReader = Box<dyn AsyncRead + Send + Unpin>;

/// Where blobs live. The local filesystem is the default; S3-compatible storage comes through the
/// same trait.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// The size of a stored blob, or `None`.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError>;

    /// Reads `len` bytes of a blob from `offset`.
    async fn read(&self, digest: &Digest, offset: u64, len: u64) -> Result<BlobReader, BlobError>;

    /// Deletes a blob; a missing blob is not an error.
    async fn delete(&self, digest: &Digest) -> Result<(), BlobError>;

    /// Appends `body` to upload `id`, which currently holds `offset` bytes, updating `hasher`.
    /// Returns the new size. On error the upload may hold a partial tail past `offset`; the caller
    /// keeps its stored size and state, so the next append overwrites it.
    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        hasher: &mut UploadHasher,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, BlobError>;

    /// Makes upload `id` (of `size` bytes) the blob `digest`, after checking that the stored bytes
    /// have that digest. An existing blob of that digest is kept, never replaced.
    async fn commit_upload(&self, id: &str, size: u64, digest: &Digest) -> Result<(), BlobError>;

    /// Discards upload `id`; a missing upload is not an error.
    async fn delete_upload(&self, id: &str) -> Result<(), BlobError>;
}
