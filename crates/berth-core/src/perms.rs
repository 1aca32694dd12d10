//! The permission rules, as pure functions of facts gathered elsewhere.
//!
//! A caller's role on a repository is the strongest of:
//! - `admin` for superusers, the namespace's owner and members of the organization's admin teams;
//! - the explicit grants to the caller and to every team the caller belongs to.
//!
//! That role is capped by the caller's token scopes when a token was used, and is never less than
//! `read` on a public repository. Whoever has no role at all may not even learn that the repository
//! exists.

use crate::{RepoRole, ScopeSet, TeamRole};

/// What is known about one caller and one repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoAccessFacts {
    /// The repository is public.
    pub public: bool,
    /// The caller is a superuser and is allowed to use that power in this request.
    pub superuser: bool,
    /// The caller is the user whose namespace holds the repository.
    pub owns_namespace: bool,
    /// The caller's strongest team role in the namespace, when that namespace is an organization.
    pub org_role: Option<TeamRole>,
    /// The strongest explicit grant to the caller or one of its teams.
    pub explicit: Option<RepoRole>,
}

/// The caller's effective role on the repository, or `None` when it may not see it.
/// `scopes` is `None` when the caller authenticated with a password (no cap).
pub fn effective_repo_role(f: &RepoAccessFacts, scopes: Option<ScopeSet>) -> Option<RepoRole> {
    let implicit_admin = f.superuser || f.owns_namespace || f.org_role == Some(TeamRole::Admin);
    let granted = if implicit_admin {
        Some(RepoRole::Admin)
    } else {
        f.explicit
    };
    let capped = match scopes {
        None => granted,
        Some(s) => granted.zip(s.repo_cap()).map(|(g, cap)| g.min(cap)),
    };
    let public = f.public.then_some(RepoRole::Read);
    capped.max(public)
}

/// The outcome of checking a role against what an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The operation may proceed.
    Granted,
    /// The caller sees the repository but lacks the role: a 403.
    Forbidden,
    /// The caller may not learn the repository exists: it must look exactly like a missing one.
    Hidden,
}

impl Access {
    /// Checks an effective role against the role an operation needs.
    pub fn check(role: Option<RepoRole>, need: RepoRole) -> Access {
        match role {
            None => Access::Hidden,
            Some(r) if r >= need => Access::Granted,
            Some(_) => Access::Forbidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;

    fn role(f: RepoAccessFacts, scopes: Option<&str>) -> Option<RepoRole> {
        effective_repo_role(&f, scopes.map(|s| ScopeSet::parse(s).unwrap()))
    }

    #[test]
    fn implicit_admins() {
        for f in [
            RepoAccessFacts {
                superuser: true,
                ..Default::default()
            },
            RepoAccessFacts {
                owns_namespace: true,
                ..Default::default()
            },
            RepoAccessFacts {
                org_role: Some(TeamRole::Admin),
                ..Default::default()
            },
        ] {
            assert_eq!(role(f, None), Some(RepoRole::Admin));
        }
        for r in [TeamRole::Member, TeamRole::Creator] {
            let f = RepoAccessFacts {
                org_role: Some(r),
                ..Default::default()
            };
            assert_eq!(role(f, None), None, "{r} grants nothing by itself");
        }
    }

    #[test]
    fn scopes_cap_but_public_still_reads() {
        let owner = RepoAccessFacts {
            owns_namespace: true,
            ..Default::default()
        };
        assert_eq!(role(owner, Some("repo:read")), Some(RepoRole::Read));
        assert_eq!(role(owner, Some("repo:write")), Some(RepoRole::Write));
        assert_eq!(role(owner, Some("user:read")), None);
        let public = RepoAccessFacts { public: true, ..owner };
        assert_eq!(role(public, Some("user:read")), Some(RepoRole::Read));
        let reader = RepoAccessFacts {
            explicit: Some(RepoRole::Read),
            ..Default::default()
        };
        assert_eq!(
            role(reader, Some("repo:admin")),
            Some(RepoRole::Read),
            "scopes never add power"
        );
    }

    #[test]
    fn exhaustive_rule_holds() {
        // Brute force over every combination: the result is never above the grant or the scope cap,
        // and public repositories are always readable.
        let roles = [None, Some(RepoRole::Read), Some(RepoRole::Write), Some(RepoRole::Admin)];
        let teams = [
            None,
            Some(TeamRole::Member),
            Some(TeamRole::Creator),
            Some(TeamRole::Admin),
        ];
        let scope_sets = [
            None,
            Some(ScopeSet::default()),
            Some([Scope::RepoRead].into_iter().collect()),
            Some(ScopeSet::all()),
        ];
        for bits in 0..8u8 {
            for org_role in teams {
                for explicit in roles {
                    for scopes in scope_sets {
                        let f = RepoAccessFacts {
                            public: bits & 1 != 0,
                            superuser: bits & 2 != 0,
                            owns_namespace: bits & 4 != 0,
                            org_role,
                            explicit,
                        };
                        let r = effective_repo_role(&f, scopes);
                        if f.public {
                            assert!(r >= Some(RepoRole::Read));
                        }
                        if let Some(cap) = scopes.map(ScopeSet::repo_cap) {
                            assert!(r <= cap.max(f.public.then_some(RepoRole::Read)));
                        }
                        if !f.public && !f.superuser && !f.owns_namespace && org_role != Some(TeamRole::Admin) {
                            assert!(r <= explicit);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn access_check() {
        assert_eq!(Access::check(None, RepoRole::Read), Access::Hidden);
        assert_eq!(Access::check(Some(RepoRole::Read), RepoRole::Write), Access::Forbidden);
        assert_eq!(Access::check(Some(RepoRole::Admin), RepoRole::Write), Access::Granted);
    }
}
