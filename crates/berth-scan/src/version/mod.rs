//! Version order per ecosystem. Each scheme is its package manager's own rule: dpkg (epochs, `~`),
//! apk (letters, `_alpha`…`_p` suffixes, `-rN`), rpm (`rpmvercmp` with `~` and `^`), semver (crates.io,
//! npm, Go) and PEP 440 (PyPI). Matching an advisory is only as right as this order, so each
//! comparator is tested against its package manager's published comparison table and with
//! property tests (a total order: antisymmetric and transitive).

use std::cmp::Ordering;

mod apk;
mod dpkg;
mod pep440;
mod rpm;
mod semverish;

pub use apk::compare as apk_compare;
pub use dpkg::compare as dpkg_compare;
pub use pep440::{Pep440, compare as pep440_compare};
pub use rpm::{compare_evr as rpm_compare, rpmvercmp};
pub use semverish::compare as semver_compare;

/// Splits `[epoch:]version[-release]`, the layout dpkg and RPM share: a missing epoch is 0 and a
/// missing release is empty; the release starts after the last `-`.
fn split_evr(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((version, release)) => (epoch, version, release),
        None => (epoch, rest, ""),
    }
}

/// How an ecosystem orders its versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Debian and Ubuntu packages.
    Dpkg,
    /// Alpine packages.
    Apk,
    /// RPM packages (Red Hat, Fedora, Rocky, Alma, SUSE).
    Rpm,
    /// Semantic versions: crates.io, npm, Go modules (a leading `v` is ignored).
    Semver,
    /// Python packages.
    Pep440,
}

impl Scheme {
    /// Compares two versions; `None` when either is not a version of this scheme (dpkg, apk and rpm
    /// order every string, so only semver and PEP 440 can refuse).
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        match self {
            Scheme::Dpkg => Some(dpkg_compare(a, b)),
            Scheme::Apk => Some(apk_compare(a, b)),
            Scheme::Rpm => Some(rpm_compare(a, b)),
            Scheme::Semver => semver_compare(a, b),
            Scheme::Pep440 => pep440_compare(a, b),
        }
    }

    /// Quay's `VersionFormat` name for features of this scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Dpkg => "dpkg",
            Scheme::Apk => "apk",
            Scheme::Rpm => "rpm",
            Scheme::Semver => "semver",
            Scheme::Pep440 => "pep440",
        }
    }
}
