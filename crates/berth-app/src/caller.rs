//! Who is calling: an anonymous caller or an authenticated principal, with the scopes of the token it
//! used (if any), and the request context that audit entries record.

use berth_core::{AccountId, AccountKind, Scope, ScopeSet};

use crate::{AppError, Result};

/// An authenticated account (a user or a robot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account's id.
    pub id: AccountId,
    /// The account's name (robots: `ns+short`).
    pub name: String,
    /// User or robot.
    pub kind: AccountKind,
    /// Whether the account is a superuser.
    pub superuser: bool,
    /// The scopes of the token used; `None` for a password or robot token, which carry no cap.
    pub scopes: Option<ScopeSet>,
    /// Set for a build's push credential: the only repository it may write (it reads what
    /// anyone may read), and its pushes raise no `repo_push` (the build raises it when done).
    pub build_repo: Option<berth_core::RepoId>,
}

impl Principal {
    /// Whether the credential used allows `scope` (unscoped credentials allow everything).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.is_none_or(|s| s.contains(scope))
    }

    /// Whether superuser powers apply to this request (a token needs `super:user`).
    pub fn acts_as_superuser(&self) -> bool {
        self.superuser && self.allows(Scope::SuperUser)
    }
}

/// The caller of a use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials were given.
    Anonymous,
    /// Valid credentials were given.
    Account(Principal),
}

impl Caller {
    /// The principal, or 401.
    pub fn principal(&self) -> Result<&Principal> {
        match self {
            Caller::Anonymous => Err(AppError::Unauthenticated),
            Caller::Account(p) => Ok(p),
        }
    }

    /// The principal if it is a user (not a robot) and its credential allows `scope`; 401 when
    /// anonymous, 403 otherwise.
    pub fn user_with(&self, scope: Scope) -> Result<&Principal> {
        let p = self.principal()?;
        if p.kind != AccountKind::User || !p.allows(scope) {
            return Err(AppError::forbidden());
        }
        Ok(p)
    }

    /// The principal, if any.
    pub fn account(&self) -> Option<&Principal> {
        match self {
            Caller::Anonymous => None,
            Caller::Account(p) => Some(p),
        }
    }
}

/// A use case's request context: who calls and from where.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The caller.
    pub caller: Caller,
    /// The caller's IP address, when known.
    pub ip: Option<String>,
}

impl Ctx {
    /// A context for the command line: no caller, no address.
    pub fn system() -> Ctx {
        Ctx {
            caller: Caller::Anonymous,
            ip: None,
        }
    }
}
