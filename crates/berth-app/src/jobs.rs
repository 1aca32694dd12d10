//! What the background workers (deliveries, scans, builds, mirrors) share: tasks that stop with
//! their owner, the claim loop of the workers that run one job at a time (scans, builds, mirror
//! syncs), renewing a claimed job's lease while it runs (so that a job outliving its lease is not
//! taken over by another worker while this one is still on it), moving a job to its end, and the
//! periodic jobs that one process at a time runs among those sharing a database.

use std::time::Duration;

use berth_core::JobQueue;
use berth_store::Tx;
use berth_store::queue::{self, Claimed};
use chrono::Utc;

use crate::{App, AppError, Result};

/// Attempts a notification or scan job gets before it is dead (builds have their own setting).
pub(crate) const DEFAULT_RETRIES: i32 = 8;

/// Aborts a background task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A worker that runs the jobs of one queue one at a time (scans, builds).
pub(crate) struct JobWorker<'a> {
    /// The queue it takes jobs from.
    pub(crate) queue: JobQueue,
    /// How long a claim is leased (renewed by [`App::keep_leased`] while the job runs).
    pub(crate) lease: Duration,
    /// How long it waits for a wake-up before looking again.
    pub(crate) poll: Duration,
    /// Signalled when jobs were enqueued.
    pub(crate) wake: &'a tokio::sync::Notify,
}

impl JobWorker<'_> {
    /// A worker id for claims: the kind's letter, the process, and a random part.
    pub(crate) fn id(kind: char) -> String {
        let random = uuid::Uuid::new_v4().simple().to_string();
        format!("{kind}{}-{}", std::process::id(), &random[..8])
    }

    /// Waits for the next due job of the queue and claims it as `worker`: looks again when woken
    /// or after `poll`, and after `poll` when the store failed (logged).
    pub(crate) async fn next(&self, app: &App, worker: &str) -> Claimed {
        loop {
            let claimed = async {
                let lease = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::minutes(1));
                let mut tx = app.store.begin().await?;
                let now = Utc::now();
                let jobs = queue::claim(&mut tx, self.queue, now, now + lease, 1, worker, &[]).await?;
                tx.commit().await?;
                Ok::<Option<Claimed>, AppError>(jobs.into_iter().next())
            };
            match claimed.await {
                Ok(Some(job)) => return job,
                Ok(None) => {
                    let _ = tokio::time::timeout(self.poll, self.wake.notified()).await;
                }
                Err(e) => {
                    tracing::warn!(queue = self.queue.as_str(), error = %e, "could not claim a job");
                    tokio::time::sleep(self.poll).await;
                }
            }
        }
    }
}

impl App {
    /// Renews job `id`'s lease every third of `lease` until the returned guard is dropped, or
    /// until the claim is lost.
    pub(crate) fn keep_leased(&self, id: i64, state: String, lease: Duration) -> AbortOnDrop {
        let app = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1));
                let renewed = async {
                    let mut tx = app.store.begin().await?;
                    let ok = queue::heartbeat(&mut tx, id, &state, until).await?;
                    tx.commit().await?;
                    Ok::<bool, AppError>(ok)
                };
                if !matches!(renewed.await, Ok(true)) {
                    return;
                }
            }
        }))
    }
}

/// How a claimed job ends.
pub(crate) enum JobEnd<'a> {
    /// Finished: the job is removed.
    Done,
    /// Runs again after `after`, with the error recorded.
    Retry {
        /// How long to wait.
        after: Duration,
        /// What went wrong.
        error: &'a str,
    },
    /// No try left: kept as dead, with the error.
    Bury(&'a str),
}

/// Moves a claimed job to its end in `tx` (a claim lost meanwhile changes nothing).
pub(crate) async fn end_job(tx: &mut Tx, job: &Claimed, end: JobEnd<'_>) -> Result<()> {
    match end {
        JobEnd::Done => {
            queue::complete(tx, job.id, &job.state_id).await?;
        }
        JobEnd::Retry { after, error } => {
            let at = Utc::now() + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::hours(1));
            queue::retry_at(tx, job.id, &job.state_id, at, error).await?;
        }
        JobEnd::Bury(error) => {
            queue::bury(tx, job.id, &job.state_id, error).await?;
        }
    }
    Ok(())
}

/// A periodic job that one process at a time runs among those sharing a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodicJob {
    /// Garbage collection (uploads, blobs, the delivery log's retention, scanner records).
    Gc,
    /// The tag expiry pass.
    Expiry,
    /// The vulnerability feed's refresh (and the rescans it starts).
    Feed,
}

impl PeriodicJob {
    /// Its advisory lock key.
    fn key(self) -> i64 {
        const BASE: i64 = 0x6265_7274_6800_0000;
        BASE + match self {
            PeriodicJob::Gc => 0,
            PeriodicJob::Expiry => 1,
            PeriodicJob::Feed => 2,
        }
    }
}

impl App {
    /// Runs `work` unless another process (or task) runs `job` now: `None` then. The right is
    /// given back when `work` ends, however it ends.
    pub async fn run_alone<T>(
        &self,
        job: PeriodicJob,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<Option<T>> {
        let Some(alone) = self.store.try_exclusive(job.key()).await? else {
            tracing::debug!(?job, "another process runs this periodic job now");
            return Ok(None);
        };
        let result = work.await;
        alone.release().await;
        result.map(Some)
    }
}
