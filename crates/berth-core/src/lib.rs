//! Berth's domain model: validated names, typed ids, roles, token scopes and the permission rules.
//!
//! Architecture invariant: this crate performs no I/O and knows nothing about storage, HTTP or
//! configuration. Everything here is a pure value or a pure function, so it is cheap to test
//! exhaustively. Values are built only through parse constructors, so holding one means it is valid.

#[macro_use]
mod macros;

pub mod build;
pub mod error;
pub mod ids;
pub mod names;
pub mod oci;
pub mod perms;
pub mod roles;
pub mod scopes;
pub mod status;

pub use build::BuildSource;
pub use error::CoreError;
pub use ids::{AccountId, RepoId, TeamId, TokenId};
pub use names::{AccountName, Email, RepoName, RepoPath, RobotName, RobotShortName, TeamName};
pub use oci::{Digest, DigestAlgorithm, Reference, Tag};
pub use perms::{Access, RepoAccessFacts, effective_repo_role};
pub use roles::{AccountKind, RepoRole, RepoState, TeamRole, Visibility};
pub use scopes::{Scope, ScopeSet};
pub use status::{BuildPhase, DeliveryStatus, JobQueue};
