//! OAuth-style token scopes, with Quay's names. A token's scopes cap what its owner may do through it:
//! they never grant more than the owner's own permissions.

use crate::{CoreError, RepoRole};

/// One scope a token may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `repo:read`: pull and view repositories the owner can read.
    RepoRead,
    /// `repo:write`: push to repositories the owner can write.
    RepoWrite,
    /// `repo:admin`: administer repositories the owner administers.
    RepoAdmin,
    /// `repo:create`: create repositories where the owner may.
    RepoCreate,
    /// `user:read`: read the owner's account.
    UserRead,
    /// `user:admin`: manage the owner's account and robots.
    UserAdmin,
    /// `org:admin`: administer organizations the owner administers.
    OrgAdmin,
    /// `super:user`: use the owner's superuser powers.
    SuperUser,
}

impl Scope {
    /// Every scope, in Quay's order.
    pub const ALL: [Scope; 8] = [
        Scope::RepoRead,
        Scope::RepoWrite,
        Scope::RepoAdmin,
        Scope::RepoCreate,
        Scope::UserRead,
        Scope::UserAdmin,
        Scope::OrgAdmin,
        Scope::SuperUser,
    ];

    /// Quay's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::RepoRead => "repo:read",
            Scope::RepoWrite => "repo:write",
            Scope::RepoAdmin => "repo:admin",
            Scope::RepoCreate => "repo:create",
            Scope::UserRead => "user:read",
            Scope::UserAdmin => "user:admin",
            Scope::OrgAdmin => "org:admin",
            Scope::SuperUser => "super:user",
        }
    }

    /// Parses Quay's spelling.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s).ok_or_else(|| {
            let all: Vec<_> = Scope::ALL.iter().map(|x| x.as_str()).collect();
            CoreError::invalid("scope", format!("'{s}' is not one of: {}", all.join(", ")))
        })
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of scopes, as carried by one access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeSet(u16);

impl ScopeSet {
    /// Every scope.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Parses a space- or comma-separated list; an empty list is an error (a token must do something).
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let set = s
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(Scope::parse)
            .collect::<Result<ScopeSet, _>>()?;
        if set.0 == 0 {
            return Err(CoreError::invalid("scope", "at least one scope is required"));
        }
        Ok(set)
    }

    /// Whether the set holds `s` itself.
    pub fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    /// The most powerful repository role these scopes allow (`repo:admin` implies write and read).
    pub fn repo_cap(self) -> Option<RepoRole> {
        if self.contains(Scope::RepoAdmin) {
            Some(RepoRole::Admin)
        } else if self.contains(Scope::RepoWrite) {
            Some(RepoRole::Write)
        } else if self.contains(Scope::RepoRead) {
            Some(RepoRole::Read)
        } else {
            None
        }
    }

    /// Whether the owner's account may be read (`user:read`, implied by `user:admin`).
    pub fn allows_user_read(self) -> bool {
        self.contains(Scope::UserRead) || self.contains(Scope::UserAdmin)
    }

    /// The scopes, in Quay's order, joined by spaces.
    pub fn to_text(self) -> String {
        Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        ScopeSet(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render_round_trip() {
        let s = ScopeSet::parse("repo:write user:read,repo:read").unwrap();
        assert_eq!(s.to_text(), "repo:read repo:write user:read");
        assert_eq!(ScopeSet::parse(&ScopeSet::all().to_text()).unwrap(), ScopeSet::all());
        assert!(ScopeSet::parse("").is_err());
        assert_eq!(ScopeSet::parse("repo:read repo:delete").unwrap_err().field(), "scope",);
    }

    #[test]
    fn repo_scopes_imply_the_weaker_ones() {
        assert_eq!(ScopeSet::parse("repo:admin").unwrap().repo_cap(), Some(RepoRole::Admin));
        assert_eq!(ScopeSet::parse("repo:read").unwrap().repo_cap(), Some(RepoRole::Read));
        assert_eq!(ScopeSet::parse("user:read").unwrap().repo_cap(), None);
        assert!(ScopeSet::parse("user:admin").unwrap().allows_user_read());
    }
}
