//! Configuration parsing: any TOML text gives a validated configuration or an error naming a key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = berth_server::config::Config::from_toml(text);
    }
});
