//! The layer walker: any bytes as a (possibly gzipped) tar layer are indexed or refused within
//! the limits.
#![no_main]

use berth_scan::layer::{Limits, index_layer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_unpacked_bytes: 1 << 20,
        max_files: 1_000,
        max_file_bytes: 1 << 16,
        deadline: None,
    };
    let _ = index_layer(std::io::Cursor::new(data), &limits);
});
