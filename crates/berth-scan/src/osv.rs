//! OSV advisories (<https://ossf.github.io/osv-schema/>): the parts matching needs, read
//! tolerantly (unknown fields and ecosystems are kept out of the way, not rejected), and the
//! schema's evaluation of `affected` ranges with each ecosystem's own version order.
//!
//! Our own structs rather than the `osv` crate: its ecosystem enum rejects a whole advisory whose
//! ecosystem it does not know, and real exports gain new ones every few months.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::ScanError;
use crate::package::{Distro, Package};
use crate::severity::Severity;
use crate::version::Scheme;

/// One advisory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Advisory {
    /// e.g. `DSA-5532-1`, `GHSA-…`, `CVE-2024-…`.
    pub id: String,
    /// Last change, RFC 3339.
    #[serde(default)]
    pub modified: String,
    /// Set when the advisory was withdrawn; it then matches nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    /// Other ids of the same vulnerability.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One line.
    #[serde(default)]
    pub summary: String,
    /// Long text.
    #[serde(default)]
    pub details: String,
    /// Scores.
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// What it affects.
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// Links.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// Database-specific data (GitHub puts `severity` here).
    #[serde(default)]
    pub database_specific: serde_json::Value,
}

/// A score.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeverityEntry {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`, ….
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A vector, a number, or a label.
    #[serde(default)]
    pub score: String,
}

/// One affected package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Affected {
    /// The package.
    #[serde(default)]
    pub package: AffectedPackage,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Enumerated affected versions.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Scores for this package only.
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// Ecosystem data (Debian `urgency`, …).
    #[serde(default)]
    pub ecosystem_specific: serde_json::Value,
    /// Database data.
    #[serde(default)]
    pub database_specific: serde_json::Value,
}

/// A package name in an ecosystem.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AffectedPackage {
    /// e.g. `Debian:12`, `crates.io`.
    #[serde(default)]
    pub ecosystem: String,
    /// The package name.
    #[serde(default)]
    pub name: String,
}

/// A range of versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Range {
    /// `ECOSYSTEM`, `SEMVER` or `GIT`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The events that open and close it.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// A range event: exactly one field is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Event {
    /// Affected from here (`0`: from the beginning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    /// Not affected from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Affected up to and including here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    /// The range ends before here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// A link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reference {
    /// `ADVISORY`, `WEB`, `FIX`, ….
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The address.
    #[serde(default)]
    pub url: String,
}

/// What a match found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The first fixed version above the installed one, if any.
    pub fixed_by: Option<String>,
}

impl Advisory {
    /// Parses one OSV JSON document.
    pub fn parse(bytes: &[u8]) -> Result<Advisory, ScanError> {
        let a: Advisory = serde_json::from_slice(bytes).map_err(|e| ScanError::Advisory(e.to_string()))?;
        if a.id.trim().is_empty() {
            return Err(ScanError::Advisory("advisory has no id".into()));
        }
        Ok(a)
    }

    /// The `(ecosystem base, name)` pairs it names, for lookup (`Debian:12` → `Debian`).
    pub fn package_keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = self
            .affected
            .iter()
            .filter(|a| !a.package.name.is_empty())
            .map(|a| {
                let base = a.package.ecosystem.split(':').next().unwrap_or("").to_owned();
                let name = lookup_name(&base, &a.package.name);
                (base, name)
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Its severity: the highest CVSS score given (advisory-wide or per package), else the
    /// ecosystem's own label, else Unknown.
    pub fn severity(&self) -> Severity {
        let entries = self
            .severity
            .iter()
            .chain(self.affected.iter().flat_map(|a| a.severity.iter()));
        let mut best: Option<f64> = None;
        let mut label = None;
        for e in entries {
            let score = if e.kind.starts_with("CVSS") {
                Severity::score_vector(&e.score).or_else(|| e.score.trim().parse().ok())
            } else {
                label = label.or(Some(Severity::from_label(&e.score)));
                None
            };
            if let Some(s) = score {
                best = Some(best.map_or(s, |b: f64| b.max(s)));
            }
        }
        if let Some(s) = best {
            return Severity::from_score(s);
        }
        if let Some(l) = label.filter(|l| *l != Severity::Unknown) {
            return l;
        }
        let labels = std::iter::once(&self.database_specific["severity"]).chain(self.affected.iter().flat_map(|a| {
            [
                &a.ecosystem_specific["severity"],
                &a.ecosystem_specific["urgency"],
                &a.database_specific["severity"],
                &a.database_specific["urgency"],
            ]
        }));
        labels
            .filter_map(|v| v.as_str())
            .map(Severity::from_label)
            .filter(|s| *s != Severity::Unknown)
            .min()
            .unwrap_or(Severity::Unknown)
    }

    /// The CVSS base score, when a vector or number is given.
    pub fn base_score(&self) -> Option<f64> {
        self.severity
            .iter()
            .chain(self.affected.iter().flat_map(|a| a.severity.iter()))
            .filter(|e| e.kind.starts_with("CVSS"))
            .filter_map(|e| Severity::score_vector(&e.score).or_else(|| e.score.trim().parse().ok()))
            .reduce(f64::max)
    }

    /// A description: the summary, else the start of the details.
    pub fn description(&self) -> String {
        let text = if self.summary.trim().is_empty() {
            self.details.trim()
        } else {
            self.summary.trim()
        };
        let mut out: String = text.chars().take(500).collect();
        if text.chars().count() > 500 {
            out.push('…');
        }
        out
    }

    /// The page to read: an `ADVISORY` reference, else a `WEB` one, else the first, else osv.dev.
    pub fn link(&self) -> String {
        ["ADVISORY", "WEB"]
            .iter()
            .find_map(|kind| self.references.iter().find(|r| r.kind == *kind))
            .or(self.references.first())
            .map(|r| r.url.clone())
            .unwrap_or_else(|| format!("https://osv.dev/vulnerability/{}", self.id))
    }

    /// Whether `package` (on `distro`) is affected, and by what it is fixed.
    pub fn affects(&self, package: &Package, distro: Option<&Distro>) -> Option<Match> {
        if self.withdrawn.is_some() {
            return None;
        }
        for a in &self.affected {
            let Some(version) = applies(a, package, distro) else {
                continue;
            };
            if let Some(m) = evaluate(a, version, package.source.scheme()) {
                return Some(m);
            }
        }
        None
    }
}

/// The key a package name is looked up by in an ecosystem (PyPI names are normalised, others
/// are case-sensitive).
pub fn lookup_name(ecosystem_base: &str, name: &str) -> String {
    if ecosystem_base == "PyPI" {
        crate::parse::normalize_pypi(name)
    } else {
        name.to_owned()
    }
}

/// The OSV ecosystem (its base, without a release) a package is looked up in: the language's,
/// or the distribution's for OS packages (dpkg and apk packages without `os-release` are taken
/// as Debian and Alpine).
pub fn ecosystem_of(package: &Package, distro: Option<&Distro>) -> Option<&'static str> {
    if let Some(eco) = package.source.language_ecosystem() {
        return Some(eco);
    }
    distro.and_then(Distro::ecosystem).or(match package.source {
        crate::package::Source::Dpkg => Some("Debian"),
        crate::package::Source::Apk => Some("Alpine"),
        _ => None,
    })
}

/// If `a` names `package` (in its ecosystem and release), the installed version to compare.
fn applies<'p>(a: &Affected, package: &'p Package, distro: Option<&Distro>) -> Option<&'p str> {
    let mut parts = a.package.ecosystem.split(':');
    let base = parts.next().unwrap_or("");
    let release: Vec<&str> = parts.collect();
    let eco = ecosystem_of(package, distro)?;
    if package.source.language_ecosystem().is_some() {
        return (base == eco && lookup_name(base, &a.package.name) == lookup_name(base, &package.name))
            .then_some(package.version.as_str());
    }
    if base != eco {
        return None;
    }
    if !release.is_empty() {
        let vid = distro.map(|d| d.version_id.as_str()).unwrap_or("");
        let matches = release.iter().any(|r| {
            let r = r.trim_start_matches('v');
            !r.is_empty() && (vid == r || vid.starts_with(&format!("{r}.")))
        });
        if !matches {
            return None;
        }
    }
    if a.package.name == package.name {
        return Some(&package.version);
    }
    if package.source_name.as_deref() == Some(a.package.name.as_str()) {
        return Some(package.source_version.as_deref().unwrap_or(&package.version));
    }
    None
}

/// The schema's evaluation: listed versions match exactly; a range affects `v` if, walking its
/// events in version order, the last `introduced` at or below `v` is not followed by a `fixed` at
/// or below `v` (or a `last_affected` below it), and `v` is under every `limit`.
fn evaluate(a: &Affected, v: &str, scheme: Scheme) -> Option<Match> {
    for r in &a.ranges {
        let scheme = match r.kind.as_str() {
            "SEMVER" => Scheme::Semver,
            "ECOSYSTEM" => scheme,
            _ => continue,
        };
        let cmp = |x: &str, y: &str| scheme.compare(x, y);
        fn key(e: &Event) -> Option<&str> {
            e.introduced
                .as_deref()
                .or(e.fixed.as_deref())
                .or(e.last_affected.as_deref())
                .or(e.limit.as_deref())
        }
        let mut events: Vec<&Event> = r.events.iter().filter(|e| key(e).is_some()).collect();
        // Sorting needs every pair to compare; a range with an unreadable version is skipped.
        if events
            .iter()
            .any(|e| key(e) != Some("0") && key(e).is_some_and(|k| cmp(k, k).is_none()))
            || cmp(v, v).is_none()
        {
            continue;
        }
        events.sort_by(|x, y| match (key(x), key(y)) {
            (Some("0"), Some("0")) => Ordering::Equal,
            (Some("0"), _) => Ordering::Less,
            (_, Some("0")) => Ordering::Greater,
            (Some(p), Some(q)) => cmp(p, q).unwrap_or(Ordering::Equal),
            _ => Ordering::Equal,
        });
        let ge = |x: &str| cmp(v, x).is_some_and(|o| o != Ordering::Less);
        let mut affected = false;
        for e in &events {
            if let Some(i) = &e.introduced {
                if i == "0" || ge(i) {
                    affected = true;
                }
            } else if let Some(f) = &e.fixed {
                if ge(f) {
                    affected = false;
                }
            } else if let Some(l) = &e.last_affected
                && cmp(v, l) == Some(Ordering::Greater)
            {
                affected = false;
            }
        }
        if events.iter().filter_map(|e| e.limit.as_deref()).any(ge) {
            affected = false;
        }
        if affected {
            let fixed_by = events
                .iter()
                .filter_map(|e| e.fixed.as_deref())
                .find(|f| cmp(v, f) == Some(Ordering::Less))
                .map(str::to_owned);
            return Some(Match { fixed_by });
        }
    }
    a.versions.iter().any(|x| x == v).then_some(Match { fixed_by: None })
}
