//! All of Berth's SQL, written once for SQLite and PostgreSQL.
//!
//! Rules of this crate:
//! - every SQL statement of the product lives here, and nowhere else;
//! - the same SQL text runs on both backends wherever possible (`$1` placeholders, `RETURNING`,
//!   `ON CONFLICT`); the few statements that must differ are matched per backend explicitly;
//! - no business decisions: functions store and fetch, the application layer decides;
//! - writes go through [`Store::begin`] (on SQLite, the single writer connection), reads may use
//!   [`Store::conn`];
//! - a statement that fails ends its transaction: PostgreSQL aborts the transaction (and would
//!   silently turn a later COMMIT into a rollback), so callers propagate the error and drop the
//!   [`Tx`]; they never carry on in it;
//! - every public function is exercised by the backend-matrix tests, on both databases.

pub mod accounts;
pub mod audit;
pub mod authorized_email;
pub mod builds;
pub mod db;
pub mod deliveries;
pub mod error;
pub mod expiry;
pub mod inapp;
pub mod mirrors;
pub mod notifications;
pub mod queue;
pub mod registry;
pub mod repos;
pub mod secrets;
pub mod secscan;
pub mod sessions;
pub mod teams;
pub mod tokens;

pub use db::{Backend, BlobLock, Conn, Exec, Store, Tx};
pub use error::StoreError;

/// The result type of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
