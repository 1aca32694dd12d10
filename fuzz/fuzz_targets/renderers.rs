//! The chat and mail renderers (Slack, HipChat, Flowdock, the HTML and text mail) for every event
//! kind, on arbitrary event data.
#![no_main]

use berth_notify::EventKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for &kind in EventKind::all() {
        let _ = berth_notify::send::slack_body(kind, &value, Some("alice"));
        let _ = berth_notify::send::hipchat_body(kind, &value, None);
        let _ = berth_notify::send::flowdock_body(kind, &value, Some("<b>"), "berth@example.com");
        let mail = berth_notify::mail::notification_mail(kind, &value, None, "acme/web", "https://h/x");
        assert!(!mail.html.contains("<script"), "the mail's HTML escapes every value");
    }
});
