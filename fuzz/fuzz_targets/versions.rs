//! The version comparators: any two versions (split at the first NUL) compare without panicking,
//! and comparing them the other way round gives the opposite answer, in every scheme.
#![no_main]

use berth_scan::version::Scheme;
use libfuzzer_sys::fuzz_target;

const SCHEMES: [Scheme; 5] = [Scheme::Dpkg, Scheme::Apk, Scheme::Rpm, Scheme::Semver, Scheme::Pep440];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((a, b)) = text.split_once('\0') else {
        return;
    };
    for scheme in SCHEMES {
        let there = scheme.compare(a, b);
        let back = scheme.compare(b, a).map(std::cmp::Ordering::reverse);
        assert_eq!(there, back, "{scheme:?}: {a:?} vs {b:?}");
    }
});
