//! Uploaded build contexts (Quay's filedrop): an upload slot, then its content, streamed into the
//! blob store (a blob like any other, kept while its filedrop exists) within the size limit, so
//! that any worker instance can run the build.

use berth_store::builds as store;
use chrono::Utc;

use crate::secret::{random_token, token_hash};
use crate::{App, AppError, Ctx, Result};

/// An upload still arriving after this long may be replaced by a new one.
const UPLOAD_STALE_MINUTES: i64 = 30;

/// Why an upload was not received.
enum Received {
    /// It went past the limit (at least this many bytes).
    TooLarge(u64),
    /// Reading or storing failed.
    Failed(AppError),
}

impl App {
    /// Creates an empty upload slot and returns `(file_id, upload token)`; the file is then
    /// PUT to `/filedrop/{file_id}?token=…` (Quay's signed upload URL).
    pub async fn request_filedrop(&self, ctx: &Ctx, mime_type: &str) -> Result<(String, String)> {
        self.builds_enabled()?;
        let p = ctx.caller.principal()?;
        if p.build_repo.is_some() {
            return Err(AppError::forbidden());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let token = random_token(32);
        let mut tx = self.store.begin().await?;
        store::create_filedrop(&mut tx, &id, p.id.0, &token_hash(&token), mime_type).await?;
        tx.commit().await?;
        Ok((id, token))
    }

    /// Stores an upload slot's content (once, with its token), read from `body` only after the
    /// feature, the id and the token were checked and the slot was taken for this upload; then
    /// streamed into the blob store, up to `builds.max_context_bytes`. A `declared` length
    /// (`Content-Length`) over the limit is refused before anything is read. Returns the size.
    pub async fn fill_filedrop(
        &self,
        id: &str,
        token: &str,
        declared: Option<u64>,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    ) -> Result<u64> {
        self.builds_enabled()?;
        let started = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let stale = started - chrono::Duration::minutes(UPLOAD_STALE_MINUTES);
        let mut tx = self.store.begin().await?;
        let taken = store::begin_filedrop_upload(&mut tx, id, &token_hash(token), started, stale).await?;
        tx.commit().await?;
        if !taken {
            return Err(AppError::NotFound(
                "no empty upload with this id and token (or another upload to it is arriving)".into(),
            ));
        }
        let limit = self.settings.builds.max_context_bytes;
        let received = match declared.filter(|n| *n > limit) {
            Some(n) => Err(Received::TooLarge(n)),
            None => self.receive_pieces(id, limit, body).await,
        };
        let failure = match received {
            Ok((size, digest, mut lock)) => {
                let tx = lock.tx(&self.store).await?;
                let size_i = i64::try_from(size).unwrap_or(i64::MAX);
                // A blob record, so that garbage collection knows the bytes (and keeps them while
                // the filedrop exists).
                berth_store::registry::insert_blob(tx, &digest, size_i).await?;
                let finished = store::finish_filedrop_upload(tx, id, started, size_i, &digest).await?;
                lock.commit().await?;
                if finished {
                    return Ok(size);
                }
                AppError::Conflict("the upload took so long that another one replaced it".into())
            }
            Err(Received::TooLarge(n)) => AppError::TooLarge(format!(
                "the upload is {n} bytes or more, over the limit of {limit} (builds.max_context_bytes)"
            )),
            Err(Received::Failed(e)) => e,
        };
        let mut tx = self.store.begin().await?;
        store::abort_filedrop_upload(&mut tx, id, started).await?;
        tx.commit().await?;
        Err(failure)
    }

    /// Reads `body` into the blob store (so that any worker instance can build from it), at
    /// most one byte past `limit`; returns its size, its digest, and the blob's lock, held until
    /// the blob is recorded.
    async fn receive_pieces(
        &self,
        id: &str,
        limit: u64,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    ) -> std::result::Result<(u64, String, berth_store::BlobLock), Received> {
        use tokio::io::AsyncReadExt;
        let upload = format!("filedrop-{id}");
        let mut hasher = berth_blob::UploadHasher::new(berth_core::DigestAlgorithm::Sha256);
        let mut parts = berth_blob::UploadParts::default();
        let mut limited = (&mut *body).take(limit + 1);
        let appended = self
            .blobs
            .append_upload(&upload, 0, &mut hasher, &mut parts, &mut limited)
            .await;
        let outcome = match appended {
            Ok(size) if size > limit => Err(Received::TooLarge(size)),
            Ok(size) => {
                let digest = hasher.finish();
                match self.publish_blob(&upload, size, &parts, &digest).await {
                    Ok(lock) => return Ok((size, digest.to_string(), lock)),
                    Err(e) => Err(Received::Failed(e)),
                }
            }
            Err(berth_blob::BlobError::Body(e)) => {
                Err(Received::Failed(AppError::invalid(format!("reading the upload: {e}"))))
            }
            Err(e) => Err(Received::Failed(e.into())),
        };
        if let Err(e) = self.blobs.delete_upload(&upload, &parts).await {
            tracing::warn!(filedrop = id, error = %e, "could not discard a failed context upload");
        }
        outcome
    }
}
