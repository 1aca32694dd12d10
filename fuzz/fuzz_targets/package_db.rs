//! The package-database and lockfile parsers; the first byte picks one.
#![no_main]

use berth_scan::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 11 {
        0 => drop(parse::os_release(bytes)),
        1 => drop(parse::dpkg_status("var/lib/dpkg/status", bytes)),
        2 => drop(parse::apk_installed("lib/apk/db/installed", bytes)),
        3 => drop(parse::rpm_header(bytes)),
        4 => drop(parse::cargo_lock("Cargo.lock", bytes)),
        5 => drop(parse::poetry_lock("poetry.lock", bytes)),
        6 => drop(parse::requirements("requirements.txt", bytes)),
        7 => drop(parse::package_lock("package-lock.json", bytes)),
        8 => drop(parse::go_mod("go.mod", bytes)),
        9 => drop(parse::go_binary(bytes)),
        _ => drop(parse::normalize_pypi(&String::from_utf8_lossy(bytes))),
    }
});
