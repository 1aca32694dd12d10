//! RPM's version order: `[epoch:]version[-release]`, each part compared by `rpmvercmp` (segments of
//! digits or letters; separators only split; `~` sorts before anything, `^` after the end but before
//! any further segment; numbers beat letters; whoever has segments left wins).

use std::cmp::Ordering;

/// Compares two `[epoch:]version[-release]` strings; a missing epoch is 0, and a missing release
/// compares as empty.
pub fn compare_evr(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = super::split_evr(a);
    let (eb, vb, rb) = super::split_evr(b);
    ea.cmp(&eb)
        .then_with(|| rpmvercmp(va, vb))
        .then_with(|| rpmvercmp(ra, rb))
}

/// RPM's segment comparison of one version or release string.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            match (ca, cb) {
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
                (Some(x), _) if x != b'^' => return Ordering::Greater,
                (_, Some(y)) if y != b'^' => return Ordering::Less,
                _ => {}
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(x), Some(_)) = (ca, cb) else { break };
        let numeric = x.is_ascii_digit();
        let take = |s: &[u8], mut k: usize| {
            let start = k;
            while k < s.len()
                && if numeric {
                    s[k].is_ascii_digit()
                } else {
                    s[k].is_ascii_alphabetic()
                }
            {
                k += 1;
            }
            (start, k)
        };
        let (sa, ea) = take(a, i);
        let (sb, eb) = take(b, j);
        if sb == eb {
            // Segments of different kinds: a number is newer than letters.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let (mut sega, mut segb) = (&a[sa..ea], &b[sb..eb]);
        if numeric {
            while sega.first() == Some(&b'0') {
                sega = &sega[1..];
            }
            while segb.first() == Some(&b'0') {
                segb = &segb[1..];
            }
            let by_len = sega.len().cmp(&segb.len());
            if by_len != Ordering::Equal {
                return by_len;
            }
        }
        let c = sega.cmp(segb);
        if c != Ordering::Equal {
            return c;
        }
        i = ea;
        j = eb;
    }
    match (i < a.len(), j < b.len()) {
        (false, false) => Ordering::Equal,
        (true, _) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}
