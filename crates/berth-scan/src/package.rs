//! What an index finds in an image: the distribution (from `os-release`) and installed packages,
//! each with the ecosystem that names it and the file it was read from.

use serde::{Deserialize, Serialize};

use crate::version::Scheme;

/// Where a package comes from, which decides its OSV ecosystem and version order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A Debian/Ubuntu package (`var/lib/dpkg/status`).
    Dpkg,
    /// An Alpine package (`lib/apk/db/installed`).
    Apk,
    /// An RPM package (`rpmdb.sqlite`).
    Rpm,
    /// A Rust crate (`Cargo.lock`).
    Cargo,
    /// An npm package (`package-lock.json`).
    Npm,
    /// A Python package (`requirements.txt`, `poetry.lock`).
    Pypi,
    /// A Go module (`go.mod`, Go binaries' build info).
    Go,
}

impl Source {
    /// The version order of this source.
    pub fn scheme(self) -> Scheme {
        match self {
            Source::Dpkg => Scheme::Dpkg,
            Source::Apk => Scheme::Apk,
            Source::Rpm => Scheme::Rpm,
            Source::Cargo | Source::Npm | Source::Go => Scheme::Semver,
            Source::Pypi => Scheme::Pep440,
        }
    }

    /// Whether the OSV ecosystem comes from the distribution (`Debian:12`) rather than the
    /// language (`crates.io`).
    pub fn is_os(self) -> bool {
        matches!(self, Source::Dpkg | Source::Apk | Source::Rpm)
    }

    /// The OSV ecosystem of a language package; OS packages depend on the distribution.
    pub fn language_ecosystem(self) -> Option<&'static str> {
        match self {
            Source::Cargo => Some("crates.io"),
            Source::Npm => Some("npm"),
            Source::Pypi => Some("PyPI"),
            Source::Go => Some("Go"),
            Source::Dpkg | Source::Apk | Source::Rpm => None,
        }
    }
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Its name as installed (a binary package for distributions).
    pub name: String,
    /// Its installed version.
    pub version: String,
    /// The source package it was built from, when different (Debian `Source:`, Alpine origin,
    /// RPM source name); advisories of distributions name source packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// The source package's version, when it differs from `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// What kind of package it is.
    pub source: Source,
}

impl Package {
    /// A package with no separate source package.
    pub fn new(source: Source, name: impl Into<String>, version: impl Into<String>) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            source_name: None,
            source_version: None,
            source,
        }
    }
}

/// The distribution, from `os-release`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distro {
    /// `ID`, e.g. `debian`.
    pub id: String,
    /// `VERSION_ID`, e.g. `12`.
    #[serde(default)]
    pub version_id: String,
    /// `PRETTY_NAME`.
    #[serde(default)]
    pub pretty_name: String,
}

impl Distro {
    /// The OSV ecosystem name of this distribution, e.g. `Debian`, `Alpine`, `Rocky Linux`.
    pub fn ecosystem(&self) -> Option<&'static str> {
        Some(match self.id.as_str() {
            "debian" => "Debian",
            "ubuntu" => "Ubuntu",
            "alpine" => "Alpine",
            "rhel" => "Red Hat",
            "rocky" => "Rocky Linux",
            "almalinux" => "AlmaLinux",
            "opensuse-leap" | "opensuse-tumbleweed" | "opensuse" => "openSUSE",
            "sles" => "SUSE",
            "wolfi" => "Wolfi",
            "chainguard" => "Chainguard",
            "photon" => "Photon OS",
            "mageia" => "Mageia",
            _ => return None,
        })
    }

    /// Quay's `NamespaceName`, e.g. `debian:12`.
    pub fn namespace(&self) -> String {
        if self.version_id.is_empty() {
            self.id.clone()
        } else {
            format!("{}:{}", self.id, self.version_id)
        }
    }
}
