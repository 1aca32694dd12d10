//! What the background workers (deliveries, scans, builds) share: tasks that stop with their
//! owner, and renewing a claimed job's lease while it runs, so that a job outliving its lease is
//! not taken over by another worker while this one is still on it.

use std::time::Duration;

use berth_store::queue;
use chrono::Utc;

use crate::{App, AppError};

/// Aborts a background task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
