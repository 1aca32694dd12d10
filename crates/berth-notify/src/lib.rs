//! Notification events and methods, independent of storage and HTTP: the event catalogue (Quay's
//! payloads, levels, summaries, sample data, filters), Quay's JSON template language for webhook
//! bodies, and validation of each method's configuration.
//!
//! Architecture invariant: this crate knows the outbound payload shapes and nothing about the
//! database or the web framework; lookups that need the database (users, teams, authorized
//! e-mails) are done by the application layer.

pub mod events;
pub mod guard;
pub mod jsontemplate;
pub mod mail;
pub mod message;
pub mod methods;
pub mod outbound;
pub mod send;
pub mod sign;

pub use events::{EventKind, Level, RepoContext};
pub use jsontemplate::JsonTemplate;
pub use methods::MethodKind;
