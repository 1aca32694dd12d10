//! Uploaded build contexts (Quay's filedrop): an upload slot, then its content, read in pieces
//! and stored as it arrives, within the size limit.

use berth_store::builds as store;
use chrono::Utc;

use crate::secret::{random_token, token_hash};
use crate::{App, AppError, Ctx, Result};

/// Uploads are read and stored in pieces of this size.
const UPLOAD_PIECE: usize = 1 << 20;
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
    /// feature, the id and the token were checked and the slot was taken for this upload; then in
    /// pieces of [`UPLOAD_PIECE`] bytes, each stored (in a short transaction of its own) as it
    /// arrives, up to `builds.max_context_bytes`. A `declared` length (`Content-Length`) over the
    /// limit is refused before anything is read. Returns the size.
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
            Ok((size, digest)) => {
                let mut tx = self.store.begin().await?;
                let size_i = i64::try_from(size).unwrap_or(i64::MAX);
                let finished = store::finish_filedrop_upload(&mut tx, id, started, size_i, &digest).await?;
                tx.commit().await?;
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

    /// Reads `body` in pieces into filedrop `id`; returns its size and digest.
    async fn receive_pieces(
        &self,
        id: &str,
        limit: u64,
        body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    ) -> std::result::Result<(u64, String), Received> {
        use sha2::Digest as _;
        use tokio::io::AsyncReadExt;
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        let mut piece = Vec::with_capacity(UPLOAD_PIECE);
        for seq in 0i64.. {
            piece.clear();
            // Fill one piece (or reach the end), reading at most one byte past the limit.
            while piece.len() < UPLOAD_PIECE {
                let room = (UPLOAD_PIECE - piece.len()) as u64;
                let allowed = (limit + 1).saturating_sub(size + piece.len() as u64).min(room);
                if allowed == 0 {
                    break;
                }
                let n = (&mut *body)
                    .take(allowed)
                    .read_buf(&mut piece)
                    .await
                    .map_err(|e| Received::Failed(AppError::invalid(format!("reading the upload: {e}"))))?;
                if n == 0 {
                    break;
                }
            }
            if piece.is_empty() {
                break;
            }
            size += piece.len() as u64;
            if size > limit {
                return Err(Received::TooLarge(size));
            }
            hasher.update(&piece);
            let stored = async {
                let mut tx = self.store.begin().await?;
                store::add_filedrop_chunk(&mut tx, id, seq, &piece).await?;
                tx.commit().await?;
                Ok::<_, berth_store::StoreError>(())
            };
            stored.await.map_err(|e| Received::Failed(e.into()))?;
            if piece.len() < UPLOAD_PIECE {
                break;
            }
        }
        Ok((size, format!("sha256:{}", hex::encode(hasher.finalize()))))
    }
}
