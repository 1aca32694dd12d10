//! A build's log as it runs: lines buffered and written in batches.

use chrono::Utc;

use crate::{App, AppError};

/// Buffers log lines and writes them in batches (at most every second, from the command loop).
pub(super) struct LogSink {
    app: App,
    build: i64,
    pending: Vec<(String, String)>,
}

impl LogSink {
    pub(super) fn new(app: App, build: i64) -> LogSink {
        LogSink {
            app,
            build,
            pending: Vec::new(),
        }
    }

    pub(super) async fn line(&mut self, kind: &str, message: &str) {
        let message: String = message.chars().take(4096).collect();
        self.pending.push((kind.to_owned(), message));
        if self.pending.len() >= 200 {
            self.flush().await;
        }
    }

    /// Writes what is buffered; a failure is logged and the lines are kept for the next flush.
    pub(super) async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let lines: Vec<(&str, &str)> = self.pending.iter().map(|(k, m)| (k.as_str(), m.as_str())).collect();
        let written = async {
            let mut tx = self.app.store.begin().await?;
            berth_store::builds::append_log(&mut tx, self.build, &lines, Utc::now()).await?;
            tx.commit().await?;
            Ok::<(), AppError>(())
        };
        match written.await {
            Ok(()) => self.pending.clear(),
            Err(e) => tracing::warn!(build = self.build, error = %e, "could not write build log lines"),
        }
    }
}
