//! Typed database ids. Each aggregate has its own id type so that an account id can never be passed
//! where a repository id is expected.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl From<i64> for $name {
            fn from(v: i64) -> Self {
                Self(v)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user, organization or robot account.
    AccountId
);
id_type!(
    /// A repository.
    RepoId
);
id_type!(
    /// A team inside an organization.
    TeamId
);
id_type!(
    /// An OAuth-style access token.
    TokenId
);
