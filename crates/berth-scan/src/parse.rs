//! Readers of the files an index looks for: `os-release`, the dpkg and apk databases, RPM headers
//! (from `rpmdb.sqlite`, read by the caller), language lockfiles and Go binaries' build info. Each
//! takes the file's bytes and returns what it lists; malformed content gives an error naming the
//! problem, never a panic.

use crate::ScanError;
use crate::package::{Distro, Package, Source};

fn text<'a>(path: &str, bytes: &'a [u8]) -> Result<&'a str, ScanError> {
    std::str::from_utf8(bytes).map_err(|_| ScanError::Malformed(format!("{path} is not UTF-8")))
}

/// `os-release` (`KEY=value`, values optionally quoted).
pub fn os_release(bytes: &[u8]) -> Distro {
    let content = String::from_utf8_lossy(bytes);
    let mut d = Distro::default();
    for line in content.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches(['"', '\'']).to_owned();
        match key.trim() {
            "ID" => d.id = value.to_ascii_lowercase(),
            "VERSION_ID" => d.version_id = value,
            "PRETTY_NAME" => d.pretty_name = value,
            _ => {}
        }
    }
    d
}

/// The stanzas of a deb822-style file (`Key: value` lines, blank-line separated, continuation
/// lines starting with a space).
fn stanzas(content: &str) -> Vec<Vec<(&str, &str)>> {
    let mut all = Vec::new();
    let mut current = Vec::new();
    for line in content.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                all.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            continue;
        } else if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim(), v.trim()));
        }
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

/// dpkg's `status` file (or one file of `status.d/`): the installed packages.
pub fn dpkg_status(path: &str, bytes: &[u8]) -> Result<Vec<Package>, ScanError> {
    let mut out = Vec::new();
    for stanza in stanzas(text(path, bytes)?) {
        let get = |key: &str| {
            stanza
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| *v)
        };
        let (Some(name), Some(version)) = (get("Package"), get("Version")) else {
            continue;
        };
        // Without a Status field (distroless status.d), the package is installed.
        if let Some(status) = get("Status")
            && !status.ends_with(" installed")
        {
            continue;
        }
        let mut p = Package::new(Source::Dpkg, name, version);
        if let Some(src) = get("Source") {
            let (src_name, src_version) = match src.split_once(' ') {
                Some((n, v)) => (
                    n,
                    Some(v.trim().trim_start_matches('(').trim_end_matches(')').to_owned()),
                ),
                None => (src, None),
            };
            if src_name != name {
                p.source_name = Some(src_name.to_owned());
            }
            p.source_version = src_version.filter(|v| v != version);
        }
        out.push(p);
    }
    Ok(out)
}

/// apk's `installed` database (`P:` name, `V:` version, `o:` origin).
pub fn apk_installed(path: &str, bytes: &[u8]) -> Result<Vec<Package>, ScanError> {
    let mut out = Vec::new();
    for block in text(path, bytes)?.split("\n\n") {
        let (mut name, mut version, mut origin) = (None, None, None);
        for line in block.lines() {
            match line.split_once(':') {
                Some(("P", v)) => name = Some(v),
                Some(("V", v)) => version = Some(v),
                Some(("o", v)) => origin = Some(v),
                _ => {}
            }
        }
        if let (Some(n), Some(v)) = (name, version) {
            let mut p = Package::new(Source::Apk, n, v);
            p.source_name = origin.filter(|o| *o != n).map(str::to_owned);
            out.push(p);
        }
    }
    Ok(out)
}

/// RPM header tags read from `rpmdb.sqlite` blobs.
const RPMTAG_NAME: u32 = 1000;
const RPMTAG_VERSION: u32 = 1001;
const RPMTAG_RELEASE: u32 = 1002;
const RPMTAG_EPOCH: u32 = 1003;
const RPMTAG_SOURCERPM: u32 = 1044;

/// One RPM header blob as stored in `rpmdb.sqlite`'s `Packages` table: a count of index entries
/// and of data bytes (big-endian), 16-byte entries `(tag, type, offset, count)`, then the data.
pub fn rpm_header(blob: &[u8]) -> Result<Package, ScanError> {
    let bad = |what: &str| ScanError::Malformed(format!("RPM header: {what}"));
    let be32 = |at: usize| -> Result<u32, ScanError> {
        let b = blob.get(at..at + 4).ok_or_else(|| bad("truncated"))?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let entries = be32(0)? as usize;
    let data_len = be32(4)? as usize;
    let data_start = 8usize
        .checked_add(entries.checked_mul(16).ok_or_else(|| bad("too many entries"))?)
        .ok_or_else(|| bad("size"))?;
    let data = blob
        .get(data_start..data_start + data_len)
        .ok_or_else(|| bad("data shorter than declared"))?;
    let (mut name, mut version, mut release, mut epoch, mut source_rpm) = (None, None, None, None, None);
    for k in 0..entries {
        let at = 8 + k * 16;
        let (tag, kind, offset) = (be32(at)?, be32(at + 4)?, be32(at + 8)? as usize);
        let string = || -> Result<String, ScanError> {
            let rest = data.get(offset..).ok_or_else(|| bad("offset out of range"))?;
            let end = memchr::memchr(0, rest).ok_or_else(|| bad("unterminated string"))?;
            Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        match (tag, kind) {
            (RPMTAG_NAME, 6) => name = Some(string()?),
            (RPMTAG_VERSION, 6) => version = Some(string()?),
            (RPMTAG_RELEASE, 6) => release = Some(string()?),
            (RPMTAG_SOURCERPM, 6) => source_rpm = Some(string()?),
            (RPMTAG_EPOCH, 4) => {
                let b = data.get(offset..offset + 4).ok_or_else(|| bad("epoch out of range"))?;
                epoch = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
            _ => {}
        }
    }
    let (Some(name), Some(version)) = (name, version) else {
        return Err(bad("no name or version"));
    };
    let mut evr = match epoch {
        Some(e) if e > 0 => format!("{e}:{version}"),
        _ => version,
    };
    if let Some(r) = release {
        evr = format!("{evr}-{r}");
    }
    let mut p = Package::new(Source::Rpm, name, evr);
    // `openssl-3.0.7-27.el9.src.rpm` → `openssl`.
    if let Some(src) = source_rpm {
        let stem = src.trim_end_matches(".rpm").trim_end_matches(".src");
        let mut parts = stem.rsplitn(3, '-');
        if let (Some(_), Some(_), Some(src_name)) = (parts.next(), parts.next(), parts.next())
            && src_name != p.name
        {
            p.source_name = Some(src_name.to_owned());
        }
    }
    Ok(p)
}

/// A TOML lockfile's `[[package]]` tables (`Cargo.lock` and `poetry.lock` share the layout).
#[derive(serde::Deserialize)]
struct TomlLock {
    #[serde(default)]
    package: Vec<TomlEntry>,
}

#[derive(serde::Deserialize)]
struct TomlEntry {
    name: String,
    version: String,
    source: Option<String>,
}

fn toml_lock(path: &str, bytes: &[u8]) -> Result<Vec<TomlEntry>, ScanError> {
    let lock: TomlLock =
        toml::from_str(text(path, bytes)?).map_err(|e| ScanError::Malformed(format!("{path}: {e}")))?;
    Ok(lock.package)
}

/// `Cargo.lock`: crates from a registry (path and git dependencies are not published versions).
pub fn cargo_lock(path: &str, bytes: &[u8]) -> Result<Vec<Package>, ScanError> {
    Ok(toml_lock(path, bytes)?
        .into_iter()
        .filter(|p| p.source.as_deref().is_some_and(|s| s.starts_with("registry+")))
        .map(|p| Package::new(Source::Cargo, p.name, p.version))
        .collect())
}

/// `poetry.lock`.
pub fn poetry_lock(path: &str, bytes: &[u8]) -> Result<Vec<Package>, ScanError> {
    Ok(toml_lock(path, bytes)?
        .into_iter()
        .map(|p| Package::new(Source::Pypi, normalize_pypi(&p.name), p.version))
        .collect())
}

/// PyPI's name normalisation (PEP 503): lower case, runs of `-`, `_`, `.` become `-`.
pub fn normalize_pypi(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// `requirements.txt`: only exact pins (`name==1.2.3`, with optional extras and markers) name an
/// installed version.
pub fn requirements(path: &str, bytes: &[u8]) -> Result<Vec<Package>, ScanError> {
    let mut out = Vec::new();
    for line in text(path, bytes)?.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let line = line.split(';').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('-') {
            continue;
        }
        let Some((name, version)) = line.split_once("==") else {
            continue;
        };
        let name = name.split('[').next().unwrap_or(name).trim();
        let version = version
            .trim_start_matches('=')
            .split([' ', ',', '\\'])
            .next()
            .unwrap_or("")
            .trim();
        if !name.is_empty() && !version.is_empty() {
            out.push(Package::new(Source::Pypi, normalize_pypi(name), version));
        }
    }
    Ok(out)
}

/// `package-lock.json`: lockfile v2/v3 (`packages`, keyed by `node_modules/…` path) or v1
/// (nested `dependencies`).
pub fn package_lock(path: &str, bytes: &[u8]) -> Result<Vec<Package>, ScanError> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ScanError::Malformed(format!("{path}: {e}")))?;
    let mut out = Vec::new();
    if let Some(packages) = doc["packages"].as_object() {
        for (key, p) in packages {
            let Some(at) = key.rfind("node_modules/") else { continue };
            if p["link"].as_bool() == Some(true) {
                continue;
            }
            let name = p["name"].as_str().unwrap_or(&key[at + "node_modules/".len()..]);
            if let Some(v) = p["version"].as_str() {
                out.push(Package::new(Source::Npm, name, v));
            }
        }
    } else {
        fn walk(deps: &serde_json::Value, out: &mut Vec<Package>, depth: usize) {
            let Some(map) = deps.as_object() else { return };
            for (name, d) in map {
                if let Some(v) = d["version"].as_str() {
                    out.push(Package::new(Source::Npm, name, v));
                }
                if depth < 64 {
                    walk(&d["dependencies"], out, depth + 1);
                }
            }
        }
        walk(&doc["dependencies"], &mut out, 0);
    }
    Ok(out)
}

/// `go.mod`: the `require` directives (single-line and block form).
pub fn go_mod(path: &str, bytes: &[u8]) -> Result<Vec<Package>, ScanError> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text(path, bytes)?.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let spec = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if line == "require (" || line == "require(" {
            in_block = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("require ") {
            rest.trim()
        } else {
            continue;
        };
        let mut parts = spec.split_whitespace();
        if let (Some(module), Some(version)) = (parts.next(), parts.next()) {
            out.push(Package::new(Source::Go, module, version.trim_start_matches('v')));
        }
    }
    Ok(out)
}

/// The magic that starts a Go binary's build info blob (Go 1.18 and later).
const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// The modules compiled into a Go binary (its main module, dependencies and the standard library
/// as `stdlib`), from the build info blob of Go ≥ 1.18; `None` if the file has none.
pub fn go_binary(bytes: &[u8]) -> Option<Vec<Package>> {
    let finder = memchr::memmem::Finder::new(GO_BUILDINFO_MAGIC);
    let at = finder.find_iter(bytes).find(|at| at % 16 == 0)?;
    let header = bytes.get(at..at + 32)?;
    // Flag bit 2: version and module info are inline, varint-prefixed strings after the header.
    if header[15] & 2 == 0 {
        return None;
    }
    let mut rest = &bytes[at + 32..];
    let mut read = || -> Option<&[u8]> {
        let (len, used) = uvarint(rest)?;
        let len = usize::try_from(len).ok()?;
        let s = rest.get(used..used + len)?;
        rest = &rest[used + len..];
        Some(s)
    };
    let go_version = String::from_utf8_lossy(read()?).into_owned();
    let modinfo = read()?;
    // The module info is framed by 16 sentinel bytes on each side.
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        &modinfo[16..modinfo.len() - 16]
    } else {
        modinfo
    };
    let mut out = Vec::new();
    if let Some(v) = go_version.strip_prefix("go") {
        let v = v.split([' ', 'X']).next().unwrap_or(v);
        out.push(Package::new(Source::Go, "stdlib", v));
    }
    for line in String::from_utf8_lossy(modinfo).lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod" | "dep", path, version, ..] if *version != "(devel)" => {
                out.push(Package::new(Source::Go, *path, version.trim_start_matches('v')));
            }
            // A replacement applies to the module listed just before it.
            ["=>", path, version, ..] => {
                if let Some(last) = out.last_mut() {
                    last.name = (*path).to_owned();
                    last.version = version.trim_start_matches('v').to_owned();
                }
            }
            _ => {}
        }
    }
    Some(out)
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in b.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}
