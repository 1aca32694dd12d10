//! Indexing one layer: stream the tar (gzip, zstd or uncompressed, told apart by magic bytes),
//! note whiteouts, and read the few files that list software. The result is what this layer
//! alone says, so it can be stored per layer digest and reused by every image that shares it;
//! [`crate::image`] stacks layers.
//!
//! Limits: unpacked bytes, entry count, size of a file we read, and a deadline, each failing the
//! layer with a reason that names it. A truncated or corrupt stream is an error, never a panic.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::ScanError;
use crate::package::{Distro, Package};
use crate::parse;

/// How much one layer may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of uncompressed tar.
    pub max_unpacked_bytes: u64,
    /// Tar entries.
    pub max_files: u64,
    /// Size of a file that is read (package databases, lockfiles, executables checked for Go
    /// build info); larger ones are skipped and noted.
    pub max_file_bytes: u64,
    /// When to give up.
    pub deadline: Option<Instant>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_unpacked_bytes: 8 << 30,
            max_files: 1_000_000,
            max_file_bytes: 64 << 20,
            deadline: None,
        }
    }
}

/// What a file told us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Facts {
    /// `os-release`.
    OsRelease {
        /// The distribution.
        distro: Distro,
    },
    /// A package list (database, lockfile or binary).
    Packages {
        /// The packages.
        packages: Vec<Package>,
    },
    /// A file we could not use, and why.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// What one layer says, before stacking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerIndex {
    /// Facts by path (no leading `/`).
    pub files: BTreeMap<String, Facts>,
    /// Paths this layer deletes from the layers below (`.wh.name`).
    pub whiteouts: Vec<String>,
    /// Directories whose lower contents this layer hides (`.wh..wh..opq`).
    pub opaque: Vec<String>,
    /// RPM sqlite databases found, by path: reading them needs SQLite, which the caller has.
    #[serde(skip)]
    pub rpm_databases: Vec<(String, Vec<u8>)>,
}

/// What kind of file a path is, for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OsRelease,
    Dpkg,
    Apk,
    RpmDb,
    CargoLock,
    PackageLock,
    Requirements,
    PoetryLock,
    GoMod,
}

fn classify(path: &str) -> Option<Kind> {
    let name = path.rsplit('/').next().unwrap_or(path);
    Some(match path {
        "etc/os-release" | "usr/lib/os-release" => Kind::OsRelease,
        "var/lib/dpkg/status" => Kind::Dpkg,
        "lib/apk/db/installed" => Kind::Apk,
        "var/lib/rpm/rpmdb.sqlite" | "usr/lib/sysimage/rpm/rpmdb.sqlite" => Kind::RpmDb,
        p if p.starts_with("var/lib/dpkg/status.d/") && !name.contains('.') => Kind::Dpkg,
        _ => match name {
            "Cargo.lock" => Kind::CargoLock,
            "package-lock.json" => Kind::PackageLock,
            "requirements.txt" => Kind::Requirements,
            "poetry.lock" => Kind::PoetryLock,
            "go.mod" => Kind::GoMod,
            _ => return None,
        },
    })
}

/// Counts what the tar reader consumes, failing past the limit.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other(ScanError::Limit(
                "the layer unpacks to more than max_unpacked_bytes".into(),
            ))
        })?;
        Ok(n)
    }
}

/// Normalises a tar path: no `./` or leading `/`.
fn normalize(path: &str) -> String {
    let p = path.trim_start_matches("./").trim_start_matches('/');
    p.trim_end_matches('/').to_owned()
}

fn io_error(e: std::io::Error) -> ScanError {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<ScanError>() {
            Ok(scan) => *scan,
            Err(other) => ScanError::Malformed(format!("unreadable layer: {other}")),
        },
        None => ScanError::Malformed("unreadable layer".into()),
    }
}

/// Indexes one layer from its (possibly compressed) bytes.
pub fn index_layer(reader: impl Read, limits: &Limits) -> Result<LayerIndex, ScanError> {
    let mut buffered = BufReader::with_capacity(256 << 10, reader);
    let head = buffered
        .fill_buf()
        .map_err(|e| ScanError::Malformed(format!("unreadable layer: {e}")))?
        .get(..4)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let decoded: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if head == [0x28, 0xb5, 0x2f, 0xfd] {
        let decoder = ruzstd::decoding::StreamingDecoder::new(buffered)
            .map_err(|e| ScanError::Malformed(format!("bad zstd stream: {e}")))?;
        Box::new(decoder)
    } else {
        Box::new(buffered)
    };
    let capped = Capped {
        inner: decoded,
        left: limits.max_unpacked_bytes,
    };
    index_tar(capped, limits)
}

fn index_tar(reader: impl Read, limits: &Limits) -> Result<LayerIndex, ScanError> {
    let mut archive = tar::Archive::new(reader);
    let mut out = LayerIndex::default();
    let mut count = 0u64;
    for entry in archive.entries().map_err(io_error)? {
        count += 1;
        if count > limits.max_files {
            return Err(ScanError::Limit(format!(
                "the layer has more than {} entries (max_files)",
                limits.max_files
            )));
        }
        if limits.deadline.is_some_and(|d| Instant::now() > d) {
            return Err(ScanError::Limit("the scan ran out of time (time_budget_secs)".into()));
        }
        let mut entry = entry.map_err(io_error)?;
        let raw_path = entry.path().map_err(io_error)?.to_string_lossy().into_owned();
        let path = normalize(&raw_path);
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", path.as_str()),
        };
        if name == ".wh..wh..opq" {
            out.opaque.push(dir.to_owned());
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            out.whiteouts.push(if dir.is_empty() {
                hidden.to_owned()
            } else {
                format!("{dir}/{hidden}")
            });
            continue;
        }
        let header = entry.header();
        if !header.entry_type().is_file() {
            continue;
        }
        let size = header.size().map_err(io_error)?;
        let executable = header.mode().map(|m| m & 0o111 != 0).unwrap_or(false);
        let kind = classify(&path);
        if kind.is_none() && !executable {
            continue;
        }
        if size > limits.max_file_bytes {
            if kind.is_some() {
                let reason = format!("{size} bytes is over max_file_bytes");
                out.files.insert(path, Facts::Skipped { reason });
            }
            continue;
        }
        let Some(kind) = kind else {
            // An executable: only Go binaries interest us, and they are ELF files.
            let mut magic = [0u8; 4];
            if size < 64 || entry.read_exact(&mut magic).is_err() || magic != *b"\x7fELF" {
                continue;
            }
            let mut bytes = magic.to_vec();
            entry.read_to_end(&mut bytes).map_err(io_error)?;
            if let Some(packages) = parse::go_binary(&bytes) {
                out.files.insert(path, Facts::Packages { packages });
            }
            continue;
        };
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry.read_to_end(&mut bytes).map_err(io_error)?;
        let facts = match kind {
            Kind::OsRelease => Ok(Facts::OsRelease {
                distro: parse::os_release(&bytes),
            }),
            Kind::RpmDb => {
                out.rpm_databases.push((path, bytes));
                continue;
            }
            Kind::Dpkg => parse::dpkg_status(&path, &bytes).map(packages),
            Kind::Apk => parse::apk_installed(&path, &bytes).map(packages),
            Kind::CargoLock => parse::cargo_lock(&path, &bytes).map(packages),
            Kind::PackageLock => parse::package_lock(&path, &bytes).map(packages),
            Kind::Requirements => parse::requirements(&path, &bytes).map(packages),
            Kind::PoetryLock => parse::poetry_lock(&path, &bytes).map(packages),
            Kind::GoMod => parse::go_mod(&path, &bytes).map(packages),
        };
        let facts = facts.unwrap_or_else(|e| Facts::Skipped { reason: e.to_string() });
        out.files.insert(path, facts);
    }
    Ok(out)
}

fn packages(packages: Vec<Package>) -> Facts {
    Facts::Packages { packages }
}
