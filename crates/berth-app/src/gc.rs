//! Garbage collection: abandoned upload sessions past their maximum age, blobs that no manifest
//! references any more, once they are older than the grace period (so a push in progress, whose
//! blobs are uploaded before its manifest, never loses one), finished deliveries past the
//! delivery log's retention, scanner records of manifests and layers that are gone, and build
//! contexts uploaded more than a week ago.
//!
//! Database records go first, in transactions that re-check the condition; files are removed after
//! the commit. A crash in between leaves an orphan file, never a record without its file. A blob's
//! record and bytes go under its lock ([`berth_store::Store::lock_blob`]), which uploads of the
//! same content also take: one never sees the other half done.

use std::time::Duration;

use berth_core::Digest;
use berth_store::registry as reg;
use chrono::{DateTime, Utc};

use crate::{App, Result};

/// What one collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Upload sessions removed.
    pub uploads: usize,
    /// Blobs removed.
    pub blobs: usize,
    /// Delivery log entries removed.
    pub deliveries: u64,
    /// Scanner records (manifest and layer indexes, findings) removed.
    pub scan_records: u64,
    /// Uploaded build contexts older than a week removed.
    pub filedrops: u64,
}

/// How old things must be before collection.
#[derive(Debug, Clone, Copy)]
pub struct GcPolicy {
    /// Upload sessions untouched for this long are abandoned.
    pub upload_max_age: Duration,
    /// Unreferenced blobs are kept this long after they were stored or linked.
    pub blob_grace: Duration,
}

fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl App {
    /// Runs one collection as of `now`.
    pub async fn collect_garbage(&self, policy: GcPolicy, now: DateTime<Utc>) -> Result<GcReport> {
        let mut report = GcReport::default();
        let upload_cutoff = before(now, policy.upload_max_age);
        let stale = {
            let mut conn = self.store.conn().await?;
            reg::stale_uploads(&mut conn, upload_cutoff).await?
        };
        for (id, parts) in stale {
            let mut tx = self.store.begin().await?;
            let removed = reg::delete_upload(&mut tx, &id).await?;
            tx.commit().await?;
            if removed {
                let parts = berth_blob::UploadParts::restore(&parts).unwrap_or_default();
                self.blobs.delete_upload(&id, &parts).await?;
                report.uploads += 1;
            }
        }
        let blob_cutoff = before(now, policy.blob_grace);
        let candidates = {
            let mut conn = self.store.conn().await?;
            reg::unreferenced_blobs(&mut conn, blob_cutoff).await?
        };
        for d in candidates {
            // Under the blob's lock, so that an upload of the same content (which may find these
            // bytes stored and keep them) records it before or after the record and bytes go.
            let lock = self.store.lock_blob(&d).await?;
            let mut tx = self.store.begin().await?;
            let removed = reg::delete_blob_if_unreferenced(&mut tx, &d, blob_cutoff).await?;
            tx.commit().await?;
            if removed {
                while self.failpoints.hit(crate::failpoint::GC_HOLD_BEFORE_BLOB_BYTES) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let deleted = match Digest::parse(&d) {
                    Ok(digest) => self.blobs.delete(&digest).await,
                    Err(e) => {
                        tracing::warn!(digest = %d, error = %e, "collected a blob record with an invalid digest");
                        Ok(())
                    }
                };
                lock.release().await;
                deleted?;
                report.blobs += 1;
            } else {
                lock.release().await;
            }
        }
        {
            let cutoff = before(now, self.settings.delivery.log_retention);
            let mut tx = self.store.begin().await?;
            report.deliveries = berth_store::deliveries::delete_before(&mut tx, cutoff).await?;
            report.scan_records = berth_store::secscan::purge_orphans(&mut tx).await?;
            // Uploaded build contexts are needed until their build runs; a week is plenty.
            report.filedrops =
                berth_store::builds::delete_filedrops_before(&mut tx, now - chrono::Duration::days(7)).await?;
            tx.commit().await?;
        }
        metrics::counter!("berth_gc_uploads_removed_total").increment(report.uploads as u64);
        metrics::counter!("berth_gc_blobs_removed_total").increment(report.blobs as u64);
        if report != GcReport::default() {
            tracing::info!(
                uploads = report.uploads,
                blobs = report.blobs,
                deliveries = report.deliveries,
                scan_records = report.scan_records,
                "garbage collected"
            );
        }
        Ok(report)
    }
}
