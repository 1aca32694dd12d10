//! The vulnerability scanner's records: layer and manifest indexes, imported advisories with the
//! package names they cover, and the (manifest, vulnerability) pairs already announced.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use crate::Result;
use crate::db::{Exec, Tx, run};

/// Manifest scan states.
pub mod status {
    /// Indexed; the image index is stored.
    pub const SCANNED: &str = "scanned";
    /// Indexing failed; the reason is stored.
    pub const FAILED: &str = "failed";
    /// Not an image we can index (an artifact, or an index whose children are scanned instead).
    pub const UNSUPPORTED: &str = "unsupported";
}

/// The stored index of a layer.
pub async fn layer(ex: &mut impl Exec, digest: &str) -> Result<Option<Value>> {
    let sql = "SELECT facts FROM secscan_layer WHERE digest = $1";
    let row = run!(ex, c => sqlx::query_scalar::<_, Json<Value>>(sql).bind(digest).fetch_optional(c).await)?;
    Ok(row.map(|j| j.0))
}

/// Stores a layer's index; one already stored is kept.
pub async fn put_layer(tx: &mut Tx, digest: &str, facts: &Value, now: DateTime<Utc>) -> Result<()> {
    let sql =
        "INSERT INTO secscan_layer (digest, facts, indexed_at) VALUES ($1, $2, $3) ON CONFLICT (digest) DO NOTHING";
    run!(tx, c => sqlx::query(sql).bind(digest).bind(Json(facts)).bind(now).execute(c).await.map(|_| ()))?;
    Ok(())
}

/// A manifest's scan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ManifestScan {
    /// The manifest digest.
    pub digest: String,
    /// See [`status`].
    pub status: String,
    /// Why it failed or is unsupported.
    pub reason: Option<String>,
    /// The image index, when scanned.
    pub image: Option<Json<Value>>,
    /// When.
    pub indexed_at: DateTime<Utc>,
}

/// The scan of a manifest, if any.
pub async fn manifest(ex: &mut impl Exec, digest: &str) -> Result<Option<ManifestScan>> {
    let sql = "SELECT digest, status, reason, image, indexed_at FROM secscan_manifest WHERE digest = $1";
    Ok(run!(ex, c => sqlx::query_as::<_, ManifestScan>(sql).bind(digest).fetch_optional(c).await)?)
}

/// Records the scan of a manifest, replacing an earlier one.
pub async fn put_manifest(
    tx: &mut Tx,
    digest: &str,
    status: &str,
    reason: Option<&str>,
    image: Option<&Value>,
    now: DateTime<Utc>,
) -> Result<()> {
    let sql = "INSERT INTO secscan_manifest (digest, status, reason, image, indexed_at) VALUES ($1, $2, $3, $4, $5) \
               ON CONFLICT (digest) DO UPDATE SET status = excluded.status, reason = excluded.reason, \
               image = excluded.image, indexed_at = excluded.indexed_at";
    run!(tx, c => sqlx::query(sql).bind(digest).bind(status).bind(reason).bind(image.map(Json)).bind(now)
        .execute(c).await.map(|_| ()))?;
    Ok(())
}

/// Scanned manifests after `after` (by digest), for re-matching in pages.
pub async fn scanned_after(ex: &mut impl Exec, after: &str, limit: i64) -> Result<Vec<ManifestScan>> {
    let sql = "SELECT digest, status, reason, image, indexed_at FROM secscan_manifest \
               WHERE status = 'scanned' AND digest > $1 ORDER BY digest LIMIT $2";
    Ok(run!(ex, c => sqlx::query_as::<_, ManifestScan>(sql).bind(after).bind(limit).fetch_all(c).await)?)
}

/// Stores an advisory and the `(ecosystem, name)` pairs it covers. Returns `false` (and changes
/// nothing) when the stored copy has the same `modified` time.
pub async fn put_advisory(
    tx: &mut Tx,
    id: &str,
    modified: &str,
    body: &Value,
    packages: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<bool> {
    let same = "SELECT COUNT(*) FROM advisory WHERE id = $1 AND modified = $2";
    let unchanged = run!(tx, c => sqlx::query_scalar::<_, i64>(same).bind(id).bind(modified).fetch_one(c).await)?;
    if unchanged > 0 {
        return Ok(false);
    }
    let sql = "INSERT INTO advisory (id, modified, body, imported_at) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, body = excluded.body, \
               imported_at = excluded.imported_at";
    run!(tx, c => sqlx::query(sql).bind(id).bind(modified).bind(Json(body)).bind(now).execute(c).await.map(|_| ()))?;
    let clear = "DELETE FROM advisory_package WHERE advisory_id = $1";
    run!(tx, c => sqlx::query(clear).bind(id).execute(c).await.map(|_| ()))?;
    let add = "INSERT INTO advisory_package (advisory_id, ecosystem, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    for (ecosystem, name) in packages {
        run!(tx, c => sqlx::query(add).bind(id).bind(ecosystem).bind(name).execute(c).await.map(|_| ()))?;
    }
    Ok(true)
}

/// The advisories naming `name` in ecosystem `ecosystem` (its base, e.g. `Debian`).
pub async fn advisories_for(ex: &mut impl Exec, ecosystem: &str, name: &str) -> Result<Vec<Value>> {
    let sql = "SELECT a.body FROM advisory_package p JOIN advisory a ON a.id = p.advisory_id \
               WHERE p.name = $1 AND p.ecosystem = $2 ORDER BY a.id";
    let rows = run!(ex, c => sqlx::query_scalar::<_, Json<Value>>(sql).bind(name).bind(ecosystem).fetch_all(c).await)?;
    Ok(rows.into_iter().map(|j| j.0).collect())
}

/// How many advisories are stored.
pub async fn advisory_count(ex: &mut impl Exec) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM advisory";
    Ok(run!(ex, c => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await)?)
}

/// Records that `advisory` was found in `manifest`; `false` if it already was.
pub async fn add_finding(tx: &mut Tx, manifest: &str, advisory: &str, now: DateTime<Utc>) -> Result<bool> {
    let sql = "INSERT INTO secscan_finding (manifest_digest, advisory_id, first_seen) VALUES ($1, $2, $3) \
               ON CONFLICT DO NOTHING";
    let n = run!(tx, c => sqlx::query(sql).bind(manifest).bind(advisory).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// The tags that point at `digest` in each repository, directly or through an index that lists
/// it: `(repository id, tag)`, ordered.
pub async fn tags_of(ex: &mut impl Exec, digest: &str) -> Result<Vec<(i64, String)>> {
    let sql = "SELECT t.repository_id, t.name FROM tag t JOIN manifest m ON m.id = t.manifest_id WHERE m.digest = $1 \
               UNION \
               SELECT t.repository_id, t.name FROM manifest_ref r JOIN manifest p ON p.id = r.manifest_id \
               JOIN tag t ON t.manifest_id = p.id WHERE r.kind = 'manifest' AND r.digest = $1 \
               ORDER BY 1, 2";
    Ok(run!(ex, c => sqlx::query_as::<_, (i64, String)>(sql).bind(digest).fetch_all(c).await)?)
}

/// Removes scanner records of manifests and layers that no longer exist anywhere (after deletes
/// and blob collection). Returns how many rows went.
pub async fn purge_orphans(tx: &mut Tx) -> Result<u64> {
    let mut removed = 0;
    for sql in [
        "DELETE FROM secscan_finding WHERE manifest_digest NOT IN (SELECT digest FROM manifest)",
        "DELETE FROM secscan_manifest WHERE digest NOT IN (SELECT digest FROM manifest)",
        "DELETE FROM secscan_layer WHERE digest NOT IN (SELECT digest FROM blob)",
    ] {
        removed += run!(tx, c => sqlx::query(sql).execute(c).await.map(|r| r.rows_affected()))?;
    }
    Ok(removed)
}

/// The header blobs of an RPM database (`rpmdb.sqlite`, RPM 4.16 and later) extracted from an
/// image: the file is opened read-only and immutable, so nothing is written next to it.
pub async fn rpm_headers(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .connect()
        .await?;
    let rows = sqlx::query_scalar::<_, Vec<u8>>("SELECT blob FROM Packages")
        .fetch_all(&mut conn)
        .await?;
    Ok(rows)
}
