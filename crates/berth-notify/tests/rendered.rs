//! Snapshot of every event's rendered message, from its sample data: summary, level, HTML, plain
//! text and Slack mrkdwn. Review changes with `INSTA_UPDATE=always cargo test -p berth-notify`.

use berth_notify::message::{segments, to_html, to_slack, to_text};
use berth_notify::{EventKind, RepoContext};
use serde_json::{Map, Value, json};

#[test]
fn every_event_renders() {
    let ctx = RepoContext {
        hostname: "registry.example.com",
        scheme: "https",
        namespace: "acme",
        name: "web",
    };
    let mut all = Map::new();
    for e in EventKind::all() {
        let data = e.sample(&ctx, &json!({"days": 3, "level": 1}), 1_700_000_000.0);
        let seg = segments(*e, &data, Some("alice"));
        all.insert(
            e.name().to_owned(),
            json!({
                "title": e.title(),
                "summary": e.summary(&data),
                "level": e.level(&data).as_str(),
                "html": to_html(&seg),
                "text": to_text(&seg),
                "slack": to_slack(&seg),
            }),
        );
    }
    insta::assert_json_snapshot!("rendered_messages", Value::Object(all));
}
