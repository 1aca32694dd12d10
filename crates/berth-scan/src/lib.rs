//! Berth's vulnerability scanner, built into the binary so that `vulnerability_found` is real on
//! an embedded install: index image layers ([`layer`], [`image`]) for the packages they install
//! ([`parse`], [`package`]), and match them against OSV advisories ([`osv`], [`feed`]) with each
//! ecosystem's own version order ([`version`]) and Quay's severity levels ([`severity`]).
//!
//! Architecture invariant: pure and synchronous, no storage and no async runtime. The application
//! layer feeds it blobs and advisories and stores what it returns; callers run it on blocking
//! threads.

pub mod feed;
pub mod image;
pub mod layer;
pub mod osv;
pub mod package;
pub mod parse;
pub mod severity;
pub mod version;

pub use image::{Found, ImageIndex};
pub use layer::{LayerIndex, Limits};
pub use osv::Advisory;
pub use package::{Distro, Package, Source};
pub use severity::Severity;

/// What can go wrong while scanning.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The layer or a file in it is not what it claims to be.
    #[error("{0}")]
    Malformed(String),
    /// A resource limit was reached.
    #[error("{0}")]
    Limit(String),
    /// An advisory could not be read.
    #[error("advisory: {0}")]
    Advisory(String),
    /// Reading failed.
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
}
