//! The webhook JSON template engine: a template (before the first NUL) rendered with event data
//! (after it).
#![no_main]

use berth_notify::jsontemplate::JsonTemplate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, event) = text.split_once('\0').unwrap_or((text, "{}"));
    let Ok(t) = JsonTemplate::parse(template) else {
        return;
    };
    let event = serde_json::from_str(event).unwrap_or(serde_json::Value::Null);
    let _ = t.render(&event);
});
