//! Reading OSV data as the projects publish it: a directory of JSON files (searched
//! recursively), a zip of them (the per-ecosystem `all.zip` exports), or one JSON file. Each
//! document is handed to the caller as it is read, so a large export never sits in memory whole.

use std::io::{Read, Seek};
use std::path::Path;

use crate::ScanError;
use crate::osv::Advisory;

/// One document: the advisory, or why it could not be read, with its name.
pub type Item = (String, Result<Advisory, ScanError>);

/// Reads a directory, a `.zip` or a `.json` file, calling `each` per document.
pub fn read_path(path: &Path, each: &mut dyn FnMut(Item)) -> Result<(), ScanError> {
    let meta = std::fs::metadata(path).map_err(|e| ScanError::Advisory(format!("{}: {e}", path.display())))?;
    if meta.is_dir() {
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
                } else if p.extension().is_some_and(|x| x == "json") {
                    let name = p.display().to_string();
                    let doc = std::fs::read(&p).map_err(|e| ScanError::Advisory(format!("{name}: {e}")));
                    each((name, doc.and_then(|b| Advisory::parse(&b))));
                } else if p.extension().is_some_and(|x| x == "zip") {
                    read_zip(std::fs::File::open(&p)?, each)?;
                }
            }
        }
        return Ok(());
    }
    let file = std::fs::File::open(path)?;
    if path.extension().is_some_and(|x| x == "zip") {
        return read_zip(file, each);
    }
    let mut bytes = Vec::new();
    std::io::BufReader::new(file).read_to_end(&mut bytes)?;
    each((path.display().to_string(), Advisory::parse(&bytes)));
    Ok(())
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
