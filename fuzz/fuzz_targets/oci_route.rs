//! The `/v2` route parser: any path parses or is refused, and a parsed route keeps the name
//! that preceded its marker.
#![no_main]

use berth_http::oci::Route;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rest) = std::str::from_utf8(data) {
        let _ = Route::parse(rest);
    }
});
