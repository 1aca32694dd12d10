//! Validated names: accounts, robots, teams, repositories and e-mail addresses.
//!
//! Grammars (kept compatible with both Quay and the OCI distribution spec):
//! - account (user or organization): lowercase alphanumeric runs joined by single `.`, `_` or `-`,
//!   2 to 255 characters — Quay's username rule, which is also a valid OCI path component;
//! - robot short name: `[a-z][a-z0-9_]{1,254}`; a robot's full name is `namespace+short`;
//! - team: `[a-z][a-z0-9]+`, at most 255 characters;
//! - repository: one or more OCI path components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`,
//!   at most 255 characters.

use crate::CoreError;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` against this name's grammar.
            pub fn parse(s: &str) -> Result<Self, CoreError> {
                $check(s).map_err(|reason| CoreError::invalid($field, format!("'{s}' {reason}")))?;
                Ok(Self(s.to_owned()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// The name of a user or organization, which is also a namespace.
    AccountName, "name", check_account
);
name_type!(
    /// The part of a robot's name after the `+`.
    RobotShortName, "robot name", check_robot_short
);
name_type!(
    /// A team's name, unique within its organization.
    TeamName, "team name", check_team
);
name_type!(
    /// A repository's name inside its namespace; may contain `/`.
    RepoName, "repository", check_repo
);
name_type!(
    /// An e-mail address (a deliberately loose check: one `@`, something on each side, no spaces).
    Email, "email", check_email
);

const MAX_LEN: usize = 255;

fn check_len(s: &str, min: usize) -> Result<(), String> {
    if s.len() < min {
        return Err(format!("must be at least {min} characters"));
    }
    if s.len() > MAX_LEN {
        return Err(format!("must be at most {MAX_LEN} characters"));
    }
    Ok(())
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn check_account(s: &str) -> Result<(), String> {
    check_len(s, 2)?;
    // Runs of [a-z0-9]+ joined by exactly one separator.
    let mut prev_sep = true;
    for c in s.chars() {
        if is_alnum(c) {
            prev_sep = false;
        } else if matches!(c, '.' | '_' | '-') && !prev_sep {
            prev_sep = true;
        } else {
            return Err("must be lowercase letters and digits, joined by single '.', '_' or '-'".into());
        }
    }
    if prev_sep {
        return Err("must end with a letter or digit".into());
    }
    Ok(())
}

fn check_robot_short(s: &str) -> Result<(), String> {
    check_len(s, 2)?;
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok || !chars.all(|c| is_alnum(c) || c == '_') {
        return Err("must start with a lowercase letter, then lowercase letters, digits or '_'".into());
    }
    Ok(())
}

fn check_team(s: &str) -> Result<(), String> {
    check_len(s, 2)?;
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok || !chars.all(is_alnum) {
        return Err("must start with a lowercase letter, then lowercase letters or digits".into());
    }
    Ok(())
}

/// One OCI path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_oci_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn check_repo(s: &str) -> Result<(), String> {
    check_len(s, 1)?;
    if !s.split('/').all(is_oci_component) {
        return Err("must be lowercase path components of letters and digits, separated by '.', '_', '__' or '-', joined by '/'".into());
    }
    Ok(())
}

fn check_email(s: &str) -> Result<(), String> {
    check_len(s, 3)?;
    let Some((local, domain)) = s.split_once('@') else {
        return Err("must contain '@'".into());
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') || s.chars().any(char::is_whitespace) {
        return Err("is not an e-mail address".into());
    }
    Ok(())
}

/// A robot's full name, `namespace+short`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RobotName {
    namespace: AccountName,
    short: RobotShortName,
}

impl RobotName {
    /// Joins a namespace and a short name.
    pub fn new(namespace: AccountName, short: RobotShortName) -> Self {
        Self { namespace, short }
    }

    /// Parses `namespace+short`.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let (ns, short) = s
            .split_once('+')
            .ok_or_else(|| CoreError::invalid("robot name", format!("'{s}' must be namespace+name")))?;
        Ok(Self {
            namespace: AccountName::parse(ns)?,
            short: RobotShortName::parse(short)?,
        })
    }

    /// The namespace that owns the robot.
    pub fn namespace(&self) -> &AccountName {
        &self.namespace
    }

    /// The part after the `+`.
    pub fn short(&self) -> &RobotShortName {
        &self.short
    }

    /// The full name, as used to log in.
    pub fn full(&self) -> String {
        format!("{}+{}", self.namespace, self.short)
    }
}

impl std::fmt::Display for RobotName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{}", self.namespace, self.short)
    }
}

/// A repository's full path, `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoPath {
    /// The owning user or organization.
    pub namespace: AccountName,
    /// The name inside the namespace.
    pub name: RepoName,
}

impl RepoPath {
    /// Parses `namespace/name[/more]`: the first component is the namespace.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let (ns, name) = s
            .split_once('/')
            .ok_or_else(|| CoreError::invalid("repository", format!("'{s}' must be namespace/name")))?;
        Ok(Self {
            namespace: AccountName::parse(ns)?,
            name: RepoName::parse(name)?,
        })
    }
}

impl std::fmt::Display for RepoPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_follow_quay_rules() {
        for ok in ["ab", "alice", "acme-corp", "a.b_c-d", "x1"] {
            assert!(AccountName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "Alice", "-a", "a-", "a..b", "a b", "a+b", "", &"a".repeat(256)] {
            assert!(AccountName::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            AccountName::parse("A").unwrap_err().to_string(),
            "invalid name: 'A' must be at least 2 characters"
        );
    }

    #[test]
    fn repository_names_follow_the_oci_grammar() {
        for ok in [
            "app", "team/app", "a/b/c", "my-app", "my--app", "my__app", "my.app", "a1",
        ] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "App", "app/", "/app", "a//b", "a___b", "a._b", "-a", "a-", "a b"] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn robots_teams_and_emails() {
        let r = RobotName::parse("acme+ci_bot").unwrap();
        assert_eq!(
            (r.namespace().as_str(), r.short().as_str(), r.full().as_str()),
            ("acme", "ci_bot", "acme+ci_bot")
        );
        assert!(RobotName::parse("acme").is_err());
        assert!(RobotName::parse("acme+1bot").is_err());
        assert!(TeamName::parse("owners").is_ok());
        assert!(TeamName::parse("Owners").is_err() && TeamName::parse("dev-team").is_err());
        assert!(Email::parse("a@example.com").is_ok());
        for bad in ["a", "@x", "a@", "a b@x", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repo_paths_split_on_the_first_slash() {
        let p = RepoPath::parse("acme/team/app").unwrap();
        assert_eq!((p.namespace.as_str(), p.name.as_str()), ("acme", "team/app"));
        assert!(RepoPath::parse("app").is_err());
    }
}
