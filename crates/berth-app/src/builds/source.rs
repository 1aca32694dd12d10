//! Fetching a build's context into its directory: an upload, a downloaded archive (through the
//! delivery engine's SSRF-guarded sender) or a git commit, and unpacking archives.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_core::BuildSource;
use berth_store::builds::{self as store, BuildRow};

use super::log::LogSink;
use super::runner::Step;
use super::worker::End;
use crate::{App, Result};

/// How long downloading an archive may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);

impl App {
    /// An uploaded context's bytes: from the blob store, or (uploaded before contexts moved there)
    /// from the database's pieces; `None` when it is gone or was never filled.
    async fn filedrop_bytes(&self, id: &str) -> Result<Option<Vec<u8>>> {
        use tokio::io::AsyncReadExt;
        let mut conn = self.store.conn().await?;
        let Some(row) = store::filedrop(&mut conn, id).await? else {
            return Ok(None);
        };
        let Some(size) = row.size.and_then(|s| u64::try_from(s).ok()) else {
            return Ok(None);
        };
        if let Some(digest) = row.digest.as_deref().and_then(|d| berth_core::Digest::parse(d).ok())
            && self.blobs.stat(&digest).await? == Some(size)
        {
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            let mut reader = self.blobs.read(&digest, 0, size).await?;
            reader
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| crate::AppError::Unavailable(format!("reading the uploaded context {id}: {e}")))?;
            return Ok(Some(bytes));
        }
        Ok(store::filedrop_content(&mut conn, id).await?)
    }

    /// Puts the build context in `src`; the inner error is a build error (bad archive, unknown
    /// commit), the outer one infrastructure.
    pub(super) async fn fetch_source(
        &self,
        build: &BuildRow,
        src: &Path,
        deadline: Instant,
        log: &mut LogSink,
    ) -> Result<std::result::Result<(), End>> {
        match &build.source.0 {
            BuildSource::Upload { file_id: id } => {
                let Some(bytes) = self.filedrop_bytes(id).await? else {
                    return Ok(Err(End::Failed(format!("the uploaded context {id} is gone"))));
                };
                log.line("command", "unpacking the uploaded context").await;
                Ok(unpack(bytes, src.to_path_buf()).await.map_err(End::Failed))
            }
            BuildSource::Archive { url } => {
                log.line("command", &format!("downloading {url}")).await;
                match self.download(url).await {
                    Ok(bytes) => Ok(unpack(bytes, src.to_path_buf()).await.map_err(End::Failed)),
                    Err(e) => Ok(Err(End::Failed(e))),
                }
            }
            BuildSource::Git { url, commit } => {
                let target = src.display().to_string();
                let clone = vec![
                    "git".to_owned(),
                    "clone".into(),
                    "--quiet".into(),
                    "--".into(),
                    url.clone(),
                    target.clone(),
                ];
                match self.run_command(build, &clone, src, deadline, log).await? {
                    Step::Ok => {}
                    Step::Failed(msg) => return Ok(Err(End::Failed(format!("git clone of {url} failed: {msg}")))),
                    other @ (Step::Cancelled | Step::TimedOut) => {
                        return Ok(Err(other.end(self.settings.builds.timeout)));
                    }
                }
                let checkout = vec![
                    "git".to_owned(),
                    "-C".into(),
                    target,
                    "checkout".into(),
                    "--quiet".into(),
                    "--detach".into(),
                    commit.clone(),
                ];
                match self.run_command(build, &checkout, src, deadline, log).await? {
                    Step::Ok => Ok(Ok(())),
                    Step::Failed(msg) => Ok(Err(End::Failed(format!(
                        "commit {commit} could not be checked out: {msg}"
                    )))),
                    other @ (Step::Cancelled | Step::TimedOut) => Ok(Err(other.end(self.settings.builds.timeout))),
                }
            }
        }
    }

    /// Downloads an archive with the delivery engine's sender (the same SSRF guard), within
    /// `builds.max_context_bytes`.
    async fn download(&self, url: &str) -> std::result::Result<Vec<u8>, String> {
        let sender = self.sender().map_err(|e| e.to_string())?;
        sender
            .download(url, self.settings.builds.max_context_bytes, DOWNLOAD_TIMEOUT)
            .await
    }
}

/// Unpacks an uploaded or downloaded context: a tar (optionally gzipped) is extracted (entries
/// that would leave the directory are refused by the tar reader); anything else is taken as the
/// Dockerfile itself.
async fn unpack(bytes: Vec<u8>, dst: PathBuf) -> std::result::Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .map_err(|e| format!("the context is not a valid gzip file: {e}"))?;
            out
        } else {
            bytes
        };
        let is_tar = raw.len() >= 262 && &raw[257..262] == b"ustar";
        if is_tar {
            tar::Archive::new(&raw[..])
                .unpack(&dst)
                .map_err(|e| format!("the context is not a valid tar archive: {e}"))
        } else {
            std::fs::write(dst.join("Dockerfile"), &raw).map_err(|e| format!("writing the Dockerfile: {e}"))
        }
    })
    .await
    .unwrap_or_else(|e| Err(format!("unpacking stopped: {e}")))
}
