//! Blobs on S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph …) through
//! `object_store`.
//!
//! Layout under the optional key prefix:
//! - a blob is `blobs/<algorithm>/<first two hex>/<hex>`, written once, after its upload was
//!   verified, and never overwritten;
//! - an upload is an S3 multipart upload of `uploads/<id>/data` in parts of `part_size` bytes.
//!   S3 refuses parts under 5 MiB except the last, so the bytes after the last full part wait in a
//!   staged object `uploads/<id>/tail-<uuid>` until the next chunk (which prepends them) or the
//!   commit (which sends them as the last part). Which parts and which tail belong to the upload
//!   is the [`UploadParts`] the caller saves with the upload's row, so any instance can take the
//!   next chunk. A tail is never rewritten (each append stages a new one), so a failed or losing
//!   append leaves the recorded state intact.
//! - Seal: an upload that never filled a part is one small staged object, read back and hashed; a
//!   multipart upload is completed with the recorded parts' ETags (S3 refuses the completion if a
//!   part was replaced since: the assembled object is exactly the bytes that were hashed), and its
//!   size checked. Publish (under the blob's lock): that object is copied inside the service to
//!   the blob's key, unless the blob is stored already; everything under `uploads/<id>/` is
//!   removed afterwards.
//! - Failures of the service (unreachable, timed out, refusing) are [`BlobError::Unavailable`]:
//!   the request fails and the upload keeps its recorded state; nothing becomes a blob before the
//!   commit succeeded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::Digest;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::{BlobError, BlobReader, BlobStore, BlobStream, UploadHasher, UploadParts};

/// The part size of multipart uploads (S3's minimum is 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts being sent while the next one is read from the client.
const PARTS_IN_FLIGHT: usize = 2;
/// How long a presigned blob URL works.
const REDIRECT_TTL: Duration = Duration::from_secs(300);

/// Where and how to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// The region (signatures name it).
    pub region: String,
    /// The service's URL; `None` means AWS.
    pub endpoint: Option<String>,
    /// A key prefix inside the bucket ("" for none).
    pub prefix: String,
    /// The access key id; empty takes credentials from the environment (instance roles).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// Allow a plain-HTTP endpoint.
    pub allow_http: bool,
    /// Answer blob downloads with a redirect to a presigned URL.
    pub redirect: bool,
    /// How long the service may stay silent (connecting, or mid-response) before a request fails.
    pub timeout: Duration,
    /// The multipart part size, at least 5 MiB.
    pub part_size: usize,
}

/// Blob storage in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    s3: Arc<AmazonS3>,
    prefix: String,
    settings: S3Settings,
}

fn unavailable(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => BlobError::Unavailable(other.to_string()),
    }
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// A removal's outcome: something already gone is removed.
fn removed(r: Result<(), object_store::Error>) -> Result<(), BlobError> {
    match r {
        Err(e) if !is_not_found(&e) => Err(unavailable(e)),
        _ => Ok(()),
    }
}

impl S3BlobStore {
    /// Builds the client; nothing is contacted until the first request (see
    /// [`BlobStore::check`]).
    pub fn new(settings: S3Settings) -> Result<Self, BlobError> {
        if settings.bucket.is_empty() {
            return Err(BlobError::Config(
                "storage.bucket must name a bucket when storage.kind is \"s3\"".into(),
            ));
        }
        let options = ClientOptions::new()
            .with_allow_http(settings.allow_http)
            // A whole download may take long; what must not is silence.
            .with_timeout_disabled()
            .with_connect_timeout(settings.timeout)
            .with_read_timeout(settings.timeout);
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: settings.timeout,
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_allow_http(settings.allow_http)
            .with_client_options(options)
            .with_retry(retry);
        if !settings.access_key_id.is_empty() {
            builder = builder
                .with_access_key_id(&settings.access_key_id)
                .with_secret_access_key(&settings.secret_access_key);
        }
        if let Some(endpoint) = settings.endpoint.as_deref().filter(|e| !e.is_empty()) {
            builder = builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
        }
        let s3 = builder
            .build()
            .map_err(|e| BlobError::Config(format!("storage: {e}")))?;
        Ok(S3BlobStore {
            s3: Arc::new(s3),
            prefix: settings.prefix.trim_matches('/').to_owned(),
            settings: S3Settings {
                part_size: settings.part_size.max(MIN_PART_SIZE),
                ..settings
            },
        })
    }

    fn key(&self, rest: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rest)
        } else {
            Path::from(format!("{}/{rest}", self.prefix))
        }
    }

    fn blob_key(&self, d: &Digest) -> Path {
        let hex = d.hex();
        self.key(&format!(
            "blobs/{}/{}/{hex}",
            d.algorithm().as_str(),
            &hex[..2.min(hex.len())]
        ))
    }

    fn upload_dir(&self, id: &str) -> Result<Path, BlobError> {
        // Ids are generated by Berth (UUIDs); refuse anything that could name another key.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(BlobError::BadState(format!("invalid upload id '{id}'")));
        }
        Ok(self.key(&format!("uploads/{id}")))
    }

    fn data_key(&self, id: &str) -> Result<Path, BlobError> {
        Ok(self.upload_dir(id)?.join("data"))
    }

    async fn exists(&self, key: &Path) -> Result<bool, BlobError> {
        match self.s3.head(key).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The staged tail's bytes, which must be `len` long.
    async fn read_tail(&self, id: &str, parts: &UploadParts) -> Result<Vec<u8>, BlobError> {
        let Some(tail) = &parts.tail else {
            return Ok(Vec::new());
        };
        let key = self.upload_dir(id)?.join(tail.as_str());
        let bytes = self
            .s3
            .get(&key)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => BlobError::BadState(format!("the staged tail {tail} is gone")),
                other => unavailable(other),
            })?
            .bytes()
            .await
            .map_err(unavailable)?;
        if bytes.len() as u64 != parts.tail_len {
            return Err(BlobError::BadState(format!(
                "the staged tail {tail} holds {} bytes, not {}",
                bytes.len(),
                parts.tail_len
            )));
        }
        Ok(bytes.to_vec())
    }

    /// Removes every object of upload `id` (its staged tails and assembled data).
    async fn remove_upload_objects(&self, id: &str) -> Result<(), BlobError> {
        let dir = self.upload_dir(id)?;
        let keys: Vec<Path> = self
            .s3
            .list(Some(&dir))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(unavailable)?;
        for key in keys {
            removed(self.s3.delete(&key).await)?;
        }
        Ok(())
    }

    fn send_part(
        &self,
        data: &Path,
        multipart: &str,
        idx: usize,
        bytes: Vec<u8>,
    ) -> JoinHandle<Result<PartId, object_store::Error>> {
        let s3 = self.s3.clone();
        let data = data.clone();
        let multipart = multipart.to_owned();
        tokio::spawn(async move { s3.put_part(&data, &multipart, idx, PutPayload::from(bytes)).await })
    }

    /// Names a configuration key for a failure of the start-up check.
    fn config_error(&self, e: object_store::Error) -> BlobError {
        let text = e.to_string();
        let s = &self.settings;
        let where_ = s.endpoint.as_deref().unwrap_or("AWS");
        BlobError::Config(if text.contains("SignatureDoesNotMatch") {
            format!(
                "storage.secret_access_key was refused by the S3 service at {where_} (SignatureDoesNotMatch): it does not belong to storage.access_key_id '{}'",
                s.access_key_id
            )
        } else if text.contains("InvalidAccessKeyId") {
            format!(
                "storage.access_key_id '{}' is not known to the S3 service at {where_}",
                s.access_key_id
            )
        } else if text.contains("NoSuchBucket") {
            format!("storage.bucket '{}' does not exist at {where_}", s.bucket)
        } else if matches!(
            e,
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
        ) {
            format!(
                "the S3 service at {where_} refused storage.access_key_id '{}' on storage.bucket '{}': {text}",
                s.access_key_id, s.bucket
            )
        } else {
            format!(
                "storage.endpoint {where_} did not answer as an S3 service for storage.bucket '{}': {text}",
                s.bucket
            )
        })
    }
}

/// Reads up to `limit` bytes of `body` into the end of `buf`; returns how many.
async fn read_some(
    body: &mut (dyn AsyncRead + Send + Unpin),
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, BlobError> {
    let want = limit.saturating_sub(buf.len()) as u64;
    (&mut *body).take(want).read_to_end(buf).await.map_err(BlobError::Body)
}

async fn joined(h: JoinHandle<Result<PartId, object_store::Error>>) -> Result<String, BlobError> {
    h.await
        .map_err(|e| BlobError::Unavailable(format!("sending a part: {e}")))?
        .map(|p| p.content_id)
        .map_err(unavailable)
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        match self.s3.head(&self.blob_key(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn read(&self, digest: &Digest, offset: u64, len: u64) -> Result<BlobReader, BlobError> {
        Ok(Box::new(tokio_util::io::StreamReader::new(
            self.stream(digest, offset, len).await?,
        )))
    }

    async fn stream(&self, digest: &Digest, offset: u64, len: u64) -> Result<BlobStream, BlobError> {
        let key = self.blob_key(digest);
        if len == 0 {
            if !self.exists(&key).await? {
                return Err(BlobError::NotFound);
            }
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(offset..offset + len)),
            ..GetOptions::default()
        };
        let stream = self
            .s3
            .get_opts(&key, options)
            .await
            .map_err(unavailable)?
            .into_stream()
            .map_err(std::io::Error::from);
        Ok(Box::pin(stream))
    }

    async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        removed(self.s3.delete(&self.blob_key(digest)).await)
    }

    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        hasher: &mut UploadHasher,
        parts: &mut UploadParts,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, BlobError> {
        let part_size = self.settings.part_size;
        let data = self.data_key(id)?;
        // Read before touching storage: a final PUT usually has no body, and changes nothing.
        let mut fresh = Vec::new();
        let n = read_some(body, &mut fresh, part_size).await?;
        if n == 0 {
            return Ok(offset);
        }
        hasher.update(&fresh);
        let mut size = offset + n as u64;
        let mut state = parts.clone();
        let mut buf = self.read_tail(id, parts).await?;
        buf.extend_from_slice(&fresh);
        drop(fresh);
        let mut sending: VecDeque<JoinHandle<Result<PartId, object_store::Error>>> = VecDeque::new();
        loop {
            while buf.len() >= part_size {
                let rest = buf.split_off(part_size);
                let part = std::mem::replace(&mut buf, rest);
                let multipart = match &state.multipart {
                    Some(m) => m.clone(),
                    None => {
                        let m = self.s3.create_multipart(&data).await.map_err(unavailable)?;
                        state.multipart = Some(m.clone());
                        m
                    }
                };
                if sending.len() >= PARTS_IN_FLIGHT
                    && let Some(h) = sending.pop_front()
                {
                    state.parts.push(joined(h).await?);
                }
                let idx = state.parts.len() + sending.len();
                sending.push_back(self.send_part(&data, &multipart, idx, part));
            }
            let before = buf.len();
            let n = read_some(body, &mut buf, part_size).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[before..]);
            size += n as u64;
        }
        for h in sending {
            state.parts.push(joined(h).await?);
        }
        if buf.is_empty() {
            state.tail = None;
            state.tail_len = 0;
        } else {
            let name = format!("tail-{}", uuid::Uuid::new_v4());
            state.tail_len = buf.len() as u64;
            self.s3
                .put(&self.upload_dir(id)?.join(name.as_str()), PutPayload::from(buf))
                .await
                .map_err(unavailable)?;
            state.tail = Some(name);
        }
        *parts = state;
        Ok(size)
    }

    async fn seal_upload(&self, id: &str, size: u64, parts: &UploadParts, digest: &Digest) -> Result<(), BlobError> {
        let data = self.data_key(id)?;
        match &parts.multipart {
            None => {
                let bytes = self.read_tail(id, parts).await?;
                if bytes.len() as u64 != size {
                    return Err(BlobError::BadState(format!(
                        "the upload holds {} bytes, not {size}",
                        bytes.len()
                    )));
                }
                let mut hasher = UploadHasher::new(digest.algorithm());
                hasher.update(&bytes);
                let actual = hasher.finish();
                if &actual != digest {
                    return Err(BlobError::DigestMismatch {
                        expected: digest.clone(),
                        actual,
                    });
                }
            }
            Some(multipart) => {
                let mut ids: Vec<PartId> = parts.parts.iter().map(|e| PartId { content_id: e.clone() }).collect();
                if parts.tail.is_some() {
                    let tail = self.read_tail(id, parts).await?;
                    ids.push(PartId {
                        content_id: joined(self.send_part(&data, multipart, ids.len(), tail)).await?,
                    });
                }
                // S3 checks every ETag: a part replaced since it was recorded fails the completion.
                self.s3
                    .complete_multipart(&data, multipart, ids)
                    .await
                    .map_err(unavailable)?;
                let stored = self.s3.head(&data).await.map_err(unavailable)?.size;
                if stored != size {
                    return Err(BlobError::BadState(format!(
                        "the assembled upload holds {stored} bytes, not {size}"
                    )));
                }
            }
        }
        Ok(())
    }

    async fn publish_upload(&self, id: &str, parts: &UploadParts, digest: &Digest) -> Result<(), BlobError> {
        let to = self.blob_key(digest);
        if !self.exists(&to).await? {
            // Copies inside the service, of objects that are never rewritten: what was sealed.
            let from = match (&parts.multipart, &parts.tail) {
                (Some(_), _) => Some(self.data_key(id)?),
                (None, Some(tail)) => Some(self.upload_dir(id)?.join(tail.as_str())),
                (None, None) => None,
            };
            match from {
                Some(from) => self.s3.copy(&from, &to).await.map_err(unavailable)?,
                None => {
                    self.s3.put(&to, PutPayload::default()).await.map_err(unavailable)?;
                }
            }
        }
        if let Err(e) = self.remove_upload_objects(id).await {
            // The blob is stored; leftovers go with the next clean-up of this id, or stay unseen.
            tracing::warn!(upload = id, error = %e, "could not remove a committed upload's staged objects");
        }
        Ok(())
    }

    async fn delete_upload(&self, id: &str, parts: &UploadParts) -> Result<(), BlobError> {
        if let Some(multipart) = &parts.multipart {
            removed(self.s3.abort_multipart(&self.data_key(id)?, multipart).await)?;
        }
        self.remove_upload_objects(id).await
    }

    async fn redirect_url(&self, digest: &Digest) -> Result<Option<String>, BlobError> {
        if !self.settings.redirect {
            return Ok(None);
        }
        let url = self
            .s3
            .signed_url(http::Method::GET, &self.blob_key(digest), REDIRECT_TTL)
            .await
            .map_err(unavailable)?;
        Ok(Some(url.to_string()))
    }

    async fn check(&self) -> Result<(), BlobError> {
        // A write, a read and a delete: the bucket exists, the signature is accepted, and the
        // key may write there.
        let probe = self.key(&format!(".berth-check/{}", uuid::Uuid::new_v4()));
        self.s3
            .put(&probe, PutPayload::from_static(b"berth"))
            .await
            .map_err(|e| self.config_error(e))?;
        self.s3.head(&probe).await.map_err(|e| self.config_error(e))?;
        self.s3.delete(&probe).await.map_err(|e| self.config_error(e))?;
        Ok(())
    }
}
