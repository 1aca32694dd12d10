//! Semantic-version order for crates.io, npm and Go: SemVer 2.0 precedence (build metadata
//! ignored), tolerant of a leading `v` or `=` and of missing minor or patch numbers (`1.2` is
//! `1.2.0`), as advisories and lockfiles write them.

use std::cmp::Ordering;

/// Parses a version leniently.
pub fn parse(v: &str) -> Option<semver::Version> {
    let v = v.trim().trim_start_matches(['v', '=']);
    if let Ok(parsed) = semver::Version::parse(v) {
        return Some(parsed);
    }
    // Pad `1` / `1.2` (before any pre-release or build part) to three numbers.
    let cut = v.find(['-', '+']).unwrap_or(v.len());
    let (core, rest) = v.split_at(cut);
    let dots = core.matches('.').count();
    if dots >= 2 || core.is_empty() {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(2 - dots));
    semver::Version::parse(&padded).ok()
}

/// Compares two versions by SemVer precedence; `None` if either does not parse.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parse(a)?, parse(b)?);
    Some(a.cmp_precedence(&b))
}
