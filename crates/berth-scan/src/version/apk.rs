//! apk-tools' version order: `digits{.digits}[letter]{_suffix[N]}[~hash][-rN]`. Numbers compare
//! numerically, except that a later component with a leading zero compares as a decimal fraction
//! (`1.01 < 1.1`); a longer list of numbers wins; a letter beats none; suffixes `_alpha < _beta <
//! _pre < _rc < (none) < _cvs < _svn < _git < _hg < _p`, each with its number; then the `-rN`
//! revision. Text that does not fit the grammar is compared as plain text at the end, so the order
//! stays total.

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq)]
struct Parsed<'a> {
    numbers: Vec<&'a str>,
    letter: Option<u8>,
    suffixes: Vec<(i8, u64)>,
    revision: u64,
    rest: &'a str,
}

const SUFFIXES: [(&str, i8); 9] = [
    ("alpha", -4),
    ("beta", -3),
    ("pre", -2),
    ("rc", -1),
    ("cvs", 1),
    ("svn", 2),
    ("git", 3),
    ("hg", 4),
    ("p", 5),
];

fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

fn parse(v: &str) -> Parsed<'_> {
    let mut s = v.trim();
    let mut p = Parsed {
        numbers: Vec::new(),
        letter: None,
        suffixes: Vec::new(),
        revision: 0,
        rest: "",
    };
    loop {
        let n = digits(s);
        if n == 0 {
            break;
        }
        p.numbers.push(&s[..n]);
        s = &s[n..];
        match s.strip_prefix('.') {
            Some(after) if digits(after) > 0 => s = after,
            _ => break,
        }
    }
    if let Some(&c) = s.as_bytes().first()
        && c.is_ascii_lowercase()
    {
        p.letter = Some(c);
        s = &s[1..];
    }
    while let Some(after) = s.strip_prefix('_') {
        let Some((name, rank)) = SUFFIXES.iter().find(|(name, _)| after.starts_with(name)) else {
            break;
        };
        let after = &after[name.len()..];
        let n = digits(after);
        p.suffixes.push((*rank, after[..n].parse().unwrap_or(0)));
        s = &after[n..];
    }
    if let Some(after) = s.strip_prefix('~') {
        let n = after.bytes().take_while(u8::is_ascii_hexdigit).count();
        s = &after[n..];
    }
    if let Some(after) = s.strip_prefix("-r") {
        let n = digits(after);
        if n > 0 {
            p.revision = after[..n].parse().unwrap_or(u64::MAX);
            s = &after[n..];
        }
    }
    p.rest = s;
    p
}

fn compare_number(first: bool, a: &str, b: &str) -> Ordering {
    let fractional = |s: &str| !first && s.len() > 1 && s.starts_with('0');
    if fractional(a) || fractional(b) {
        return a.cmp(b);
    }
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Compares two Alpine package versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (pa, pb) = (parse(a), parse(b));
    for (k, (x, y)) in pa.numbers.iter().zip(&pb.numbers).enumerate() {
        let c = compare_number(k == 0, x, y);
        if c != Ordering::Equal {
            return c;
        }
    }
    let by_count = pa.numbers.len().cmp(&pb.numbers.len());
    if by_count != Ordering::Equal {
        return by_count;
    }
    let c = pa.letter.cmp(&pb.letter);
    if c != Ordering::Equal {
        return c;
    }
    let longest = pa.suffixes.len().max(pb.suffixes.len());
    for k in 0..longest {
        let none = (0, 0);
        let c = pa
            .suffixes
            .get(k)
            .unwrap_or(&none)
            .cmp(pb.suffixes.get(k).unwrap_or(&none));
        if c != Ordering::Equal {
            return c;
        }
    }
    pa.revision.cmp(&pb.revision).then_with(|| pa.rest.cmp(pb.rest))
}
