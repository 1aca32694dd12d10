//! PEP 440 version order for PyPI: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`, with the
//! normalisations the PEP lists (case, `alpha`/`c`/`pre`/`preview` spellings, `-`/`_`/`.`
//! separators, implicit numbers, `-N` as a post release, a leading `v`). Trailing zeros of the
//! release do not count (`1.0 == 1.0.0`); a dev release sorts before its pre-releases, which sort
//! before the release, which sorts before its post releases.

use std::cmp::Ordering;

/// A parsed PEP 440 version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440 {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<Local>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Local {
    // Letters sort before numbers in a local segment.
    Text(String),
    Number(u64),
}

/// A phase (pre, post or dev) as `(rank, number)`, ranked so that absence sorts right.
type Phase = (i8, u64);

/// `(epoch, release, pre, post, dev, local)`.
type SortKey<'a> = (u64, &'a [u64], Phase, Phase, Phase, &'a [Local]);

/// Reads `word`, then optional separators and a number (implicitly 0).
fn tagged<'w>(s: &str, words: &[&'w str]) -> Option<(&'w str, u64, usize)> {
    let t = s.trim_start_matches(['.', '-', '_']);
    let skipped = s.len() - t.len();
    let word = words.iter().find(|w| t.starts_with(**w))?;
    let after = &t[word.len()..];
    let n_start = after.trim_start_matches(['.', '-', '_']);
    let digits = n_start.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Some((word, 0, skipped + word.len()));
    }
    let sep = after.len() - n_start.len();
    let n = n_start[..digits].parse().ok()?;
    Some((word, n, skipped + word.len() + sep + digits))
}

impl Pep440 {
    /// Parses a version; `None` if it is not PEP 440.
    pub fn parse(v: &str) -> Option<Pep440> {
        let lower = v.trim().to_ascii_lowercase();
        let mut s = lower.strip_prefix('v').unwrap_or(&lower);
        let (public, local) = match s.split_once('+') {
            Some((p, l)) => (p, Some(l)),
            None => (s, None),
        };
        s = public;
        let mut epoch = 0;
        if let Some((e, rest)) = s.split_once('!') {
            epoch = e.parse().ok()?;
            s = rest;
        }
        let mut release = Vec::new();
        loop {
            let n = s.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            release.push(s[..n].parse().ok()?);
            s = &s[n..];
            match s.strip_prefix('.') {
                Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) => s = after,
                _ => break,
            }
        }
        let mut pre = None;
        if let Some((word, n, used)) = tagged(s, &["alpha", "beta", "preview", "pre", "rc", "a", "b", "c"]) {
            let rank = match word {
                "alpha" | "a" => 0,
                "beta" | "b" => 1,
                _ => 2,
            };
            pre = Some((rank, n));
            s = &s[used..];
        }
        let mut post = None;
        if let Some((_, n, used)) = tagged(s, &["post", "rev", "r"]) {
            post = Some(n);
            s = &s[used..];
        } else if let Some(after) = s.strip_prefix('-') {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                post = Some(after[..digits].parse().ok()?);
                s = &after[digits..];
            }
        }
        let mut dev = None;
        if let Some((_, n, used)) = tagged(s, &["dev"]) {
            dev = Some(n);
            s = &s[used..];
        }
        if !s.is_empty() {
            return None;
        }
        let mut segments = Vec::new();
        if let Some(local) = local {
            for part in local.split(['.', '-', '_']) {
                if part.is_empty() || !part.bytes().all(|c| c.is_ascii_alphanumeric()) {
                    return None;
                }
                segments.push(match part.parse() {
                    Ok(n) => Local::Number(n),
                    Err(_) => Local::Text(part.to_owned()),
                });
            }
        }
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        Some(Pep440 {
            epoch,
            release,
            pre,
            post,
            dev,
            local: segments,
        })
    }

    /// The PEP's sort key: absent parts take the values that put them in the right place.
    fn key(&self) -> SortKey<'_> {
        let pre = match (self.pre, self.post, self.dev) {
            (Some((rank, n)), _, _) => (rank as i8, n),
            (None, None, Some(_)) => (-1, 0),
            (None, _, _) => (3, 0),
        };
        let post = self.post.map_or((-1, 0), |n| (0, n));
        let dev = self.dev.map_or((1, 0), |n| (0, n));
        (self.epoch, &self.release, pre, post, dev, &self.local)
    }
}

impl PartialOrd for Pep440 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pep440 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Compares two PyPI versions; `None` if either is not PEP 440.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(Pep440::parse(a)?.cmp(&Pep440::parse(b)?))
}
