//! Stacking layer indexes into an image index, as the container's filesystem would be: each layer
//! first removes what its whiteouts and opaque directories hide below it, then adds its own files.
//! Every package remembers the file and the layer that put it there (Quay's `AddedBy`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layer::{Facts, LayerIndex};
use crate::package::{Distro, Package};

/// A package found in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// The package.
    #[serde(flatten)]
    pub package: Package,
    /// The file that lists it.
    pub path: String,
    /// The digest of the layer that added that file.
    pub layer: String,
}

/// What an image contains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    /// The distribution, if `os-release` is present.
    pub distro: Option<Distro>,
    /// Installed packages, deduplicated by (kind, name, version, file).
    pub packages: Vec<Found>,
    /// Files that could not be read, with the reason.
    #[serde(default)]
    pub skipped: Vec<(String, String)>,
}

fn under(path: &str, dir: &str) -> bool {
    dir.is_empty() || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// Stacks layers, lowest first: `(layer digest, its index)`.
pub fn stack(layers: &[(String, LayerIndex)]) -> ImageIndex {
    let mut files: BTreeMap<String, (&str, &Facts)> = BTreeMap::new();
    for (digest, layer) in layers {
        for gone in &layer.whiteouts {
            files.retain(|p, _| p != gone && !under(p, gone));
        }
        for dir in &layer.opaque {
            files.retain(|p, _| !under(p, dir));
        }
        for (path, facts) in &layer.files {
            files.insert(path.clone(), (digest.as_str(), facts));
        }
    }
    let mut out = ImageIndex::default();
    // /etc/os-release wins over /usr/lib/os-release, as systemd reads them.
    for candidate in ["usr/lib/os-release", "etc/os-release"] {
        if let Some((_, Facts::OsRelease { distro })) = files.get(candidate) {
            out.distro = Some(distro.clone());
        }
    }
    for (path, (layer, facts)) in &files {
        match facts {
            Facts::Packages { packages } => {
                for p in packages {
                    out.packages.push(Found {
                        package: p.clone(),
                        path: path.clone(),
                        layer: (*layer).to_owned(),
                    });
                }
            }
            Facts::Skipped { reason } => out.skipped.push((path.clone(), reason.clone())),
            Facts::OsRelease { .. } => {}
        }
    }
    out.packages.sort_by(|a, b| {
        (a.package.source as u8, &a.package.name, &a.package.version, &a.path).cmp(&(
            b.package.source as u8,
            &b.package.name,
            &b.package.version,
            &b.path,
        ))
    });
    out.packages.dedup_by(|a, b| a.package == b.package && a.path == b.path);
    out
}
