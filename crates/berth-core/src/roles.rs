//! Roles and kinds, each with the exact spelling Quay uses on the wire and in storage.

use crate::CoreError;

string_enum!(
    /// A permission on one repository. Ordered: `Read < Write < Admin`, each including the ones below.
    RepoRole, "role", { Read => "read", Write => "write", Admin => "admin" }
);

string_enum!(
    /// A team's role in its organization. `Admin` teams administer the organization and all of its
    /// repositories; `Creator` teams may create repositories; `Member` grants nothing by itself.
    TeamRole, "role", { Member => "member", Creator => "creator", Admin => "admin" }
);

string_enum!(
    /// Whether anonymous callers may pull a repository.
    Visibility, "visibility", { Public => "public", Private => "private" }
);

string_enum!(
    /// Who may write to a repository (Quay's states): anyone with write (`NORMAL`), nobody
    /// (`READ_ONLY`), or only its mirror (`MIRROR`).
    RepoState, "state", { Normal => "NORMAL", ReadOnly => "READ_ONLY", Mirror => "MIRROR" }
);

string_enum!(
    /// What an account row is. Quay keeps all three in one table, and so do we: they share a namespace
    /// of names.
    AccountKind, "kind", { User => "user", Organization => "org", Robot => "robot" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(RepoRole::Read < RepoRole::Write && RepoRole::Write < RepoRole::Admin);
        assert!(TeamRole::Member < TeamRole::Creator && TeamRole::Creator < TeamRole::Admin);
    }

    #[test]
    fn parse_round_trips_and_rejects_unknown_values() {
        for r in RepoRole::ALL {
            assert_eq!(RepoRole::parse(r.as_str()), Ok(*r));
        }
        let err = RepoRole::parse("owner").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid role: 'owner' is not one of: read, write, admin"
        );
        assert!(Visibility::parse("Public").is_err(), "spelling is case-sensitive");
    }
}
