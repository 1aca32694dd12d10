//! Registry content: blobs and their links to repositories, upload sessions, manifests with their
//! references, and tags.

use berth_core::RepoId;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::db::{Exec, Tx, run};

/// Records a blob (its size is fixed by its digest, so a second insert changes nothing).
pub async fn insert_blob(tx: &mut Tx, digest: &str, size: i64) -> Result<()> {
    let sql = "INSERT INTO blob (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING";
    run!(tx, c => sqlx::query(sql).bind(digest).bind(size).bind(Utc::now()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Makes a stored blob visible in a repository.
pub async fn link_blob(tx: &mut Tx, repo: RepoId, digest: &str) -> Result<()> {
    let sql = "INSERT INTO repo_blob (repository_id, digest, created_at) VALUES ($1, $2, $3) \
               ON CONFLICT (repository_id, digest) DO NOTHING";
    run!(tx, c => sqlx::query(sql).bind(repo.0).bind(digest).bind(Utc::now()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The size of a blob visible in `repo`, or `None`.
pub async fn repo_blob_size(ex: &mut impl Exec, repo: RepoId, digest: &str) -> Result<Option<i64>> {
    let sql = "SELECT b.size FROM repo_blob rb JOIN blob b ON b.digest = rb.digest \
               WHERE rb.repository_id = $1 AND rb.digest = $2";
    Ok(run!(ex, c => sqlx::query_scalar::<_, i64>(sql).bind(repo.0).bind(digest).fetch_optional(c).await)?)
}

/// The size of a stored blob, in any repository.
pub async fn blob_size(ex: &mut impl Exec, digest: &str) -> Result<Option<i64>> {
    let sql = "SELECT size FROM blob WHERE digest = $1";
    Ok(run!(ex, c => sqlx::query_scalar::<_, i64>(sql).bind(digest).fetch_optional(c).await)?)
}

/// Removes a blob from a repository. Returns whether it was linked.
pub async fn unlink_blob(tx: &mut Tx, repo: RepoId, digest: &str) -> Result<bool> {
    let sql = "DELETE FROM repo_blob WHERE repository_id = $1 AND digest = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(repo.0).bind(digest).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// One row of `blob_upload`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadRow {
    /// The session id (a UUID).
    pub id: String,
    /// The repository it uploads into.
    #[sqlx(try_from = "i64")]
    pub repository_id: RepoId,
    /// Bytes received so far.
    pub size: i64,
    /// The resumable hash state after `size` bytes.
    pub hash_state: Vec<u8>,
    /// What blob storage holds of it (its saved `UploadParts`; empty on a local disk).
    pub parts: String,
    /// When it started.
    pub created_at: DateTime<Utc>,
}

/// Starts an upload session.
pub async fn create_upload(tx: &mut Tx, id: &str, repo: RepoId, hash_state: &[u8]) -> Result<()> {
    let sql = "INSERT INTO blob_upload (id, repository_id, size, hash_state, created_at, updated_at) \
               VALUES ($1, $2, 0, $3, $4, $4)";
    run!(tx, c => sqlx::query(sql).bind(id).bind(repo.0).bind(hash_state).bind(Utc::now()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// An upload session of `repo`.
pub async fn upload(ex: &mut impl Exec, repo: RepoId, id: &str) -> Result<Option<UploadRow>> {
    let sql = "SELECT id, repository_id, size, hash_state, parts, created_at FROM blob_upload WHERE id = $1 AND repository_id = $2";
    Ok(run!(ex, c => sqlx::query_as::<_, UploadRow>(sql).bind(id).bind(repo.0).fetch_optional(c).await)?)
}

/// Records a chunk: moves the session from `old_size` to `new_size`, with the hash state and the
/// storage's parts after it. Returns false when another request moved it first (the caller answers
/// 416 and the client resumes from the stored size).
pub async fn advance_upload(
    tx: &mut Tx,
    id: &str,
    old_size: i64,
    new_size: i64,
    hash_state: &[u8],
    parts: &str,
) -> Result<bool> {
    let sql =
        "UPDATE blob_upload SET size = $3, hash_state = $4, parts = $5, updated_at = $6 WHERE id = $1 AND size = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(id).bind(old_size).bind(new_size).bind(hash_state).bind(parts).bind(Utc::now()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Ends an upload session. Returns whether it existed.
pub async fn delete_upload(tx: &mut Tx, id: &str) -> Result<bool> {
    let n = run!(tx, c => sqlx::query("DELETE FROM blob_upload WHERE id = $1").bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A manifest with its bytes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ManifestRow {
    /// Its row id.
    pub id: i64,
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The exact bytes that were pushed.
    pub content: Vec<u8>,
    /// The digest of its `subject`, if any.
    pub subject_digest: Option<String>,
}

/// What [`insert_manifest`] stores.
#[derive(Debug, Clone)]
pub struct NewManifest<'a> {
    /// The repository.
    pub repo: RepoId,
    /// Digest of `content`.
    pub digest: &'a str,
    /// Media type.
    pub media_type: &'a str,
    /// Artifact type (OCI 1.1), for referrers.
    pub artifact_type: Option<&'a str>,
    /// Digest of the `subject`, if any.
    pub subject: Option<&'a str>,
    /// The bytes, exactly as received.
    pub content: &'a [u8],
    /// Blobs it references.
    pub blobs: &'a [String],
    /// Manifests it references (indexes).
    pub children: &'a [String],
}

/// Stores a manifest and its references; an identical one already present is kept. Returns its id.
pub async fn insert_manifest(tx: &mut Tx, m: &NewManifest<'_>) -> Result<i64> {
    let sql = "INSERT INTO manifest (repository_id, digest, media_type, artifact_type, subject_digest, size, content, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (repository_id, digest) DO NOTHING";
    let size = i64::try_from(m.content.len()).unwrap_or(i64::MAX);
    run!(tx, c => sqlx::query(sql)
        .bind(m.repo.0).bind(m.digest).bind(m.media_type).bind(m.artifact_type).bind(m.subject)
        .bind(size).bind(m.content).bind(Utc::now())
        .execute(c).await.map(|r| r.rows_affected()))?;
    let id_sql = "SELECT id FROM manifest WHERE repository_id = $1 AND digest = $2";
    let id = run!(tx, c => sqlx::query_scalar::<_, i64>(id_sql).bind(m.repo.0).bind(m.digest).fetch_one(c).await)?;
    let ref_sql = "INSERT INTO manifest_ref (manifest_id, kind, digest) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    for (kind, list) in [("blob", m.blobs), ("manifest", m.children)] {
        for d in list {
            run!(tx, c => sqlx::query(ref_sql).bind(id).bind(kind).bind(d).execute(c).await.map(|r| r.rows_affected()))?;
        }
    }
    Ok(id)
}

/// A manifest of `repo` by digest.
pub async fn manifest_by_digest(ex: &mut impl Exec, repo: RepoId, digest: &str) -> Result<Option<ManifestRow>> {
    let sql =
        "SELECT id, digest, media_type, content, subject_digest FROM manifest WHERE repository_id = $1 AND digest = $2";
    Ok(run!(ex, c => sqlx::query_as::<_, ManifestRow>(sql).bind(repo.0).bind(digest).fetch_optional(c).await)?)
}

/// The manifest a tag of `repo` points at.
pub async fn manifest_by_tag(ex: &mut impl Exec, repo: RepoId, tag: &str) -> Result<Option<ManifestRow>> {
    let sql = "SELECT m.id, m.digest, m.media_type, m.content, m.subject_digest FROM tag t \
               JOIN manifest m ON m.id = t.manifest_id WHERE t.repository_id = $1 AND t.name = $2";
    Ok(run!(ex, c => sqlx::query_as::<_, ManifestRow>(sql).bind(repo.0).bind(tag).fetch_optional(c).await)?)
}

/// Deletes a manifest and the tags pointing at it. Returns whether it existed.
pub async fn delete_manifest(tx: &mut Tx, repo: RepoId, digest: &str) -> Result<bool> {
    let sql = "DELETE FROM manifest WHERE repository_id = $1 AND digest = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(repo.0).bind(digest).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A manifest that names a subject, with the bytes its annotations are read from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReferrerRow {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its artifact type (`artifactType`, else its config's media type).
    pub artifact_type: Option<String>,
    /// Its size in bytes.
    pub size: i64,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// The manifests of `repo` whose subject is `digest` (OCI referrers). The subject itself need not
/// exist: a referrer may be pushed first.
pub async fn referrers(ex: &mut impl Exec, repo: RepoId, digest: &str) -> Result<Vec<ReferrerRow>> {
    let sql = "SELECT digest, media_type, artifact_type, size, content FROM manifest \
               WHERE repository_id = $1 AND subject_digest = $2 ORDER BY digest";
    Ok(run!(ex, c => sqlx::query_as::<_, ReferrerRow>(sql).bind(repo.0).bind(digest).fetch_all(c).await)?)
}

/// Points a tag at a manifest, creating or moving it, with its expiry (`None`: it never expires;
/// a moved tag takes the new one, as Quay's new tag does). Returns the digest it pointed at before.
pub async fn set_tag(
    tx: &mut Tx,
    repo: RepoId,
    name: &str,
    manifest_id: i64,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Option<String>> {
    let before_sql = "SELECT m.digest FROM tag t JOIN manifest m ON m.id = t.manifest_id \
                      WHERE t.repository_id = $1 AND t.name = $2";
    let before =
        run!(tx, c => sqlx::query_scalar::<_, String>(before_sql).bind(repo.0).bind(name).fetch_optional(c).await)?;
    let sql = "INSERT INTO tag (repository_id, name, manifest_id, updated_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
               ON CONFLICT (repository_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, \
               updated_at = excluded.updated_at, expires_at = excluded.expires_at";
    run!(tx, c => sqlx::query(sql).bind(repo.0).bind(name).bind(manifest_id).bind(Utc::now()).bind(expires_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(before)
}

/// Sets or clears a tag's expiry. Returns whether the tag exists.
pub async fn set_tag_expiry(tx: &mut Tx, repo: RepoId, name: &str, expires_at: Option<DateTime<Utc>>) -> Result<bool> {
    let sql = "UPDATE tag SET expires_at = $3 WHERE repository_id = $1 AND name = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(repo.0).bind(name).bind(expires_at).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A tag whose expiry has passed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExpiredTag {
    /// Its repository.
    #[sqlx(try_from = "i64")]
    pub repository_id: RepoId,
    /// Its name.
    pub name: String,
}

/// Tags that expired at or before `now`, soonest first, at most `limit`.
pub async fn expired_tags(ex: &mut impl Exec, now: DateTime<Utc>, limit: i64) -> Result<Vec<ExpiredTag>> {
    let sql = "SELECT repository_id, name FROM tag WHERE expires_at IS NOT NULL AND expires_at <= $1 \
               ORDER BY expires_at, repository_id, name LIMIT $2";
    Ok(run!(ex, c => sqlx::query_as::<_, ExpiredTag>(sql).bind(now).bind(limit).fetch_all(c).await)?)
}

/// Deletes a tag if it has expired by `now`. Returns the digest it pointed at, when it was
/// deleted (an expiry moved later, or a tag already gone, deletes nothing).
pub async fn delete_expired_tag(tx: &mut Tx, repo: RepoId, name: &str, now: DateTime<Utc>) -> Result<Option<String>> {
    let sql = "SELECT m.digest FROM tag t JOIN manifest m ON m.id = t.manifest_id \
               WHERE t.repository_id = $1 AND t.name = $2 AND t.expires_at IS NOT NULL AND t.expires_at <= $3";
    let digest =
        run!(tx, c => sqlx::query_scalar::<_, String>(sql).bind(repo.0).bind(name).bind(now).fetch_optional(c).await)?;
    if digest.is_some() {
        delete_tag(tx, repo, name).await?;
    }
    Ok(digest)
}

/// Deletes a tag. Returns whether it existed.
pub async fn delete_tag(tx: &mut Tx, repo: RepoId, name: &str) -> Result<bool> {
    let sql = "DELETE FROM tag WHERE repository_id = $1 AND name = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(repo.0).bind(name).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The names of the tags of `repo` that point at the manifest `digest`, in lexical order.
pub async fn tags_of_manifest(ex: &mut impl Exec, repo: RepoId, digest: &str) -> Result<Vec<String>> {
    let sql = "SELECT t.name FROM tag t JOIN manifest m ON m.id = t.manifest_id \
               WHERE t.repository_id = $1 AND m.digest = $2 ORDER BY t.name";
    Ok(run!(ex, c => sqlx::query_scalar::<_, String>(sql).bind(repo.0).bind(digest).fetch_all(c).await)?)
}

/// Tag names of `repo` in lexical order, after `last`, at most `limit`.
pub async fn tags(ex: &mut impl Exec, repo: RepoId, last: Option<&str>, limit: i64) -> Result<Vec<String>> {
    let sql = "SELECT name FROM tag WHERE repository_id = $1 AND ($2 IS NULL OR name > $2) ORDER BY name LIMIT $3";
    Ok(run!(ex, c => sqlx::query_scalar::<_, String>(sql).bind(repo.0).bind(last).bind(limit).fetch_all(c).await)?)
}

/// Upload sessions not touched since `before`: their ids and saved storage parts.
pub async fn stale_uploads(ex: &mut impl Exec, before: DateTime<Utc>) -> Result<Vec<(String, String)>> {
    let sql = "SELECT id, parts FROM blob_upload WHERE updated_at < $1 ORDER BY id";
    Ok(run!(ex, c => sqlx::query_as::<_, (String, String)>(sql).bind(before).fetch_all(c).await)?)
}

/// Blobs that no manifest references, no uploaded build context (filedrop) holds, and that were
/// neither stored nor linked to a repository since `before` (the grace period that protects
/// pushes in progress).
pub async fn unreferenced_blobs(ex: &mut impl Exec, before: DateTime<Utc>) -> Result<Vec<String>> {
    let sql = "SELECT b.digest FROM blob b WHERE b.created_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM manifest_ref r WHERE r.kind = 'blob' AND r.digest = b.digest) \
               AND NOT EXISTS (SELECT 1 FROM repo_blob rb WHERE rb.digest = b.digest AND rb.created_at >= $1) \
               AND NOT EXISTS (SELECT 1 FROM filedrop f WHERE f.digest = b.digest) \
               ORDER BY b.digest";
    Ok(run!(ex, c => sqlx::query_scalar::<_, String>(sql).bind(before).fetch_all(c).await)?)
}

/// Deletes a blob's record (and its repository links) if it is still unreferenced and outside the
/// grace period, re-checked in the same statement. Returns whether it was deleted.
pub async fn delete_blob_if_unreferenced(tx: &mut Tx, digest: &str, before: DateTime<Utc>) -> Result<bool> {
    let sql = "DELETE FROM blob WHERE digest = $1 AND created_at < $2 \
               AND NOT EXISTS (SELECT 1 FROM manifest_ref r WHERE r.kind = 'blob' AND r.digest = $1) \
               AND NOT EXISTS (SELECT 1 FROM repo_blob rb WHERE rb.digest = $1 AND rb.created_at >= $2) \
               AND NOT EXISTS (SELECT 1 FROM filedrop f WHERE f.digest = $1)";
    let n = run!(tx, c => sqlx::query(sql).bind(digest).bind(before).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The digests of the manifests of `repo` (indexes) that list `digest` as a child.
pub async fn parents(ex: &mut impl Exec, repo: RepoId, digest: &str) -> Result<Vec<String>> {
    let sql = "SELECT m.digest FROM manifest_ref r JOIN manifest m ON m.id = r.manifest_id \
               WHERE m.repository_id = $1 AND r.kind = 'manifest' AND r.digest = $2 ORDER BY m.digest";
    Ok(run!(ex, c => sqlx::query_scalar::<_, String>(sql).bind(repo.0).bind(digest).fetch_all(c).await)?)
}

/// A tag with what Quay's tag API shows.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TagDetail {
    /// Tag name.
    pub name: String,
    /// Digest of its manifest.
    pub digest: String,
    /// Media type of its manifest.
    pub media_type: String,
    /// When it last moved.
    pub updated_at: DateTime<Utc>,
    /// When it expires, if it does.
    pub expires_at: Option<DateTime<Utc>>,
    /// Sum of the sizes of the blobs its manifest references.
    pub size: i64,
}

/// Tags of `repo`, most recently moved first, `limit` after `offset`, or only `name` if given.
pub async fn tag_details(
    ex: &mut impl Exec,
    repo: RepoId,
    name: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<TagDetail>> {
    let sql = "SELECT t.name, m.digest, m.media_type, t.updated_at, t.expires_at, \
               CAST(COALESCE((SELECT SUM(b.size) FROM manifest_ref r JOIN blob b ON b.digest = r.digest \
                              WHERE r.manifest_id = m.id AND r.kind = 'blob'), 0) AS BIGINT) AS size \
               FROM tag t JOIN manifest m ON m.id = t.manifest_id \
               WHERE t.repository_id = $1 AND ($2 IS NULL OR t.name = $2) \
               ORDER BY t.updated_at DESC, t.name LIMIT $3 OFFSET $4";
    Ok(
        run!(ex, c => sqlx::query_as::<_, TagDetail>(sql).bind(repo.0).bind(name).bind(limit).bind(offset).fetch_all(c).await)?,
    )
}
