//! The store's error type. It keeps "not found", "conflict" and "busy" apart from other database
//! failures, so that callers can answer 404, 400/409 or 503 instead of a blanket 500.

/// A failure of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or foreign-key constraint refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database is locked or out of connections; the operation may succeed if retried.
    #[error("database busy: {0}")]
    Busy(String),
    /// The `database_url` could not be understood.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// Applying schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value did not decode into the domain type (a corrupted or hand-edited row).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() || db.is_foreign_key_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "5" || c == "6" || c == "55P03") => {
                // SQLITE_BUSY, SQLITE_LOCKED, PostgreSQL lock_not_available.
                StoreError::Busy(db.message().to_owned())
            }
            sqlx::Error::PoolTimedOut => StoreError::Busy("timed out waiting for a connection".into()),
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Database(e),
        }
    }
}
