//! Reading OSV data as the projects publish it: a directory of JSON files (searched
//! recursively), a zip of them (the per-ecosystem `all.zip` exports), or one JSON file. Each
//! document is handed to the caller as it is read, so a large export never sits in memory whole.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use crate::ScanError;
use crate::osv::Advisory;

/// One document: the advisory, or why it could not be read, with its name.
pub type Item = (String, Result<Advisory, ScanError>);

/// The files of `path` that hold documents (`.json` and `.zip`), in the order they are read:
/// `path` itself, or a directory's, its own sorted before its subdirectories'.
fn sources(path: &Path) -> Result<Vec<PathBuf>, ScanError> {
    let meta = std::fs::metadata(path).map_err(|e| ScanError::Advisory(format!("{}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| ScanError::Advisory(format!("{}: {e}", dir.display())))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json" || x == "zip") {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn is_zip(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "zip")
}

/// Reads a directory, a `.zip` or a `.json` file, calling `each` per document.
pub fn read_path(path: &Path, each: &mut dyn FnMut(Item)) -> Result<(), ScanError> {
    for p in sources(path)? {
        if is_zip(&p) {
            read_zip(std::fs::File::open(&p)?, each)?;
            continue;
        }
        let name = p.display().to_string();
        let mut bytes = Vec::new();
        let doc = std::fs::File::open(&p)
            .and_then(|f| std::io::BufReader::new(f).read_to_end(&mut bytes))
            .map_err(|e| ScanError::Advisory(format!("{name}: {e}")));
        each((name, doc.and_then(|_| Advisory::parse(&bytes))));
    }
    Ok(())
}

/// How many documents [`read_path`] will read from `path`, from directory listings and zip
/// indexes only (nothing is parsed): the total a progress display counts towards.
pub fn count_path(path: &Path) -> Result<usize, ScanError> {
    let mut n = 0;
    for p in sources(path)? {
        if is_zip(&p) {
            let zip = zip::ZipArchive::new(std::fs::File::open(&p)?)
                .map_err(|e| ScanError::Advisory(format!("{}: not a zip archive: {e}", p.display())))?;
            n += zip
                .file_names()
                .filter(|f| f.as_ref().is_ok_and(|f| f.ends_with(".json")))
                .count();
        } else {
            n += 1;
        }
    }
    Ok(n)
}

/// Reads every `.json` member of a zip archive.
pub fn read_zip(reader: impl Read + Seek, each: &mut dyn FnMut(Item)) -> Result<(), ScanError> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| ScanError::Advisory(format!("not a zip archive: {e}")))?;
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| ScanError::Advisory(format!("zip member {i}: {e}")))?;
        let name = member
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("member {i}"));
        if !member.is_file() || !name.ends_with(".json") {
            continue;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(member.size()).unwrap_or(0).min(16 << 20));
        let read = member
            .read_to_end(&mut bytes)
            .map_err(|e| ScanError::Advisory(format!("{name}: {e}")));
        each((name, read.and_then(|_| Advisory::parse(&bytes))));
    }
    Ok(())
}
