//! Event messages, built once from the event data as structured segments and rendered four ways:
//! Slack mrkdwn (with `&`, `<`, `>` escaped), HTML (every interpolated value escaped), Markdown
//! (Discord, Teams; the characters that format or link are escaped) and plain text (e-mail text
//! parts). No HTML is scraped and no avatar letters leak (spec §8 items 5, 29).

use serde_json::Value;

use crate::events::EventKind;

/// A piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Plain text.
    Text(String),
    /// Emphasised text (a name).
    Bold(String),
    /// A link.
    Link {
        /// Target URL.
        url: String,
        /// Visible text.
        text: String,
    },
    /// A line break.
    Break,
}

use Segment::{Bold, Break, Link, Text};

fn t(s: impl Into<String>) -> Segment {
    Text(s.into())
}

fn push_list(out: &mut Vec<Segment>, items: Vec<Segment>) {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(t(", "));
        }
        out.push(item);
    }
}

/// The message of an event occurrence; `performer` is who caused it, when known.
pub fn segments(kind: EventKind, data: &Value, performer: Option<&str>) -> Vec<Segment> {
    let s = |k: &str| data[k].as_str().unwrap_or_default().to_owned();
    let homepage = s("homepage");
    let repo_page = homepage.split("/build/").next().unwrap_or(&homepage).to_owned();
    let repo = Link {
        url: repo_page.clone(),
        text: s("repository"),
    };
    let tag = |name: &str| Link {
        url: format!("{repo_page}?tag={name}&tab=tags"),
        text: name.to_owned(),
    };
    let tags_of = |key: &str| -> Vec<String> {
        data[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    match kind {
        EventKind::RepoPush => {
            match performer {
                Some(p) => out.extend([Bold(p.to_owned()), t(" pushed ")]),
                None => out.push(t("Push of ")),
            }
            let tags = tags_of("updated_tags");
            if !tags.is_empty() {
                push_list(&mut out, tags.iter().map(|x| tag(x)).collect());
                out.push(t(" in "));
            }
            out.extend([t("repository "), repo]);
        }
        EventKind::BuildQueued
        | EventKind::BuildStart
        | EventKind::BuildSuccess
        | EventKind::BuildFailure
        | EventKind::BuildCancelled => {
            let word = match kind {
                EventKind::BuildQueued => "queued",
                EventKind::BuildStart => "started",
                EventKind::BuildSuccess => "completed",
                EventKind::BuildFailure => "failed",
                _ => "cancelled",
            };
            let id: String = s("build_id").chars().take(7).collect();
            out.extend([
                Link {
                    url: homepage.clone(),
                    text: format!("Build {id}"),
                },
                t(format!(" {word} for repository ")),
                repo,
            ]);
            if let Some(r) = data["trigger_metadata"]["ref"].as_str() {
                out.push(t(format!(" ({r})")));
            }
            if let Some(e) = data["error_message"].as_str() {
                out.extend([Break, t(e)]);
            }
        }
        EventKind::VulnerabilityFound => {
            if let Some(list) = crate::events::vulnerability_list_summary(data) {
                out.push(t(format!("{list} were detected in tags ")));
            } else {
                let v = &data["vulnerability"];
                let priority = v["priority"].as_str().unwrap_or("Unknown");
                let title = format!("{priority} vulnerability");
                out.push(t("A "));
                out.push(match v["link"].as_str() {
                    Some(l) => Link {
                        url: l.to_owned(),
                        text: title,
                    },
                    None => t(title),
                });
                out.push(t(format!(
                    " ({}) was detected in tags ",
                    v["id"].as_str().unwrap_or_default()
                )));
            }
            let tags = tags_of("tags");
            push_list(&mut out, tags.iter().take(3).map(|x| tag(x)).collect());
            if tags.len() > 3 {
                out.push(t(format!(" (and {} more)", tags.len() - 3)));
            }
            out.extend([t(" in repository "), repo]);
        }
        EventKind::MirrorStarted | EventKind::MirrorSuccess | EventKind::MirrorFailed => {
            let word = match kind {
                EventKind::MirrorStarted => "started",
                EventKind::MirrorSuccess => "succeeded",
                _ => "failed",
            };
            out.extend([
                t("Mirror of repository "),
                repo,
                t(format!(" {word}: {}", s("message"))),
            ]);
        }
        EventKind::NotificationDisabled => {
            let (holder, link) = if data["repository"].is_string() {
                ("repository", repo)
            } else {
                let namespace = Link {
                    url: homepage.clone(),
                    text: s("namespace"),
                };
                ("namespace", namespace)
            };
            out.extend([
                t("Notification "),
                Bold(s("title")),
                t(format!(" ({} to {}) of {holder} ", s("method"), s("target"))),
                link,
                t(" was disabled"),
                Break,
                t(s("reason")),
            ]);
        }
        EventKind::RepoCreated | EventKind::RepoDeleted => {
            let done = if kind == EventKind::RepoCreated {
                "created"
            } else {
                "deleted"
            };
            let visibility = s("visibility");
            match performer.or(data["performer"].as_str()) {
                Some(p) => out.extend([Bold(p.to_owned()), t(format!(" {done} {visibility} repository ")), repo]),
                None => out.extend([
                    t(format!("The {visibility} repository ")),
                    repo,
                    t(format!(" was {done}")),
                ]),
            }
        }
        EventKind::TagDeleted => {
            let tag = Bold(s("tag"));
            match performer.or(data["performer"].as_str()) {
                Some(p) => out.extend([Bold(p.to_owned()), t(" deleted tag "), tag]),
                None => out.extend([t("Tag "), tag, t(" was deleted")]),
            }
            out.extend([t(" from repository "), repo]);
            if data["reason"].as_str() == Some("manifest_deleted") {
                out.push(t(", with its manifest"));
            }
        }
        EventKind::ImageExpiry => {
            out.push(t("Tags "));
            push_list(&mut out, tags_of("tags").iter().map(|x| tag(x)).collect());
            out.extend([
                t(" of repository "),
                repo,
                t(format!(" expire in {}", s("expiring_in"))),
            ]);
        }
    }
    out
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Escapes Slack's control characters.
pub fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Renders as Slack mrkdwn.
pub fn to_slack(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Text(x) => slack_escape(x),
            Bold(x) => format!("*{}*", slack_escape(x)),
            Link { url, text } => format!(
                "<{}|{}>",
                url.replace('|', "%7C").replace('>', "%3E"),
                slack_escape(text)
            ),
            Break => "\n".into(),
        })
        .collect()
}

/// Renders as HTML; every value is escaped.
pub fn to_html(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Text(x) => html_escape(x),
            Bold(x) => format!("<b>{}</b>", html_escape(x)),
            Link { url, text } => format!("<a href=\"{}\">{}</a>", html_escape(url), html_escape(text)),
            Break => "<br>".into(),
        })
        .collect()
}

/// Escapes the characters that start emphasis, code, spoilers, quotes, tags and links in
/// Markdown (CommonMark, and Discord's and Teams' dialects), so that an interpolated value can
/// neither format nor link; without `[`, a parenthesis is plain text.
pub fn markdown_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '*' | '_' | '~' | '`' | '|' | '<' | '>' | '[' | ']') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// Renders as Markdown: `**bold**`, `[text](url)`, every value escaped; a link's URL has the
/// characters that would end it encoded.
pub fn to_markdown(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Text(x) => markdown_escape(x),
            Bold(x) => format!("**{}**", markdown_escape(x)),
            Link { url, text } if url.is_empty() => markdown_escape(text),
            Link { url, text } => format!(
                "[{}]({})",
                markdown_escape(text),
                url.replace(' ', "%20").replace('(', "%28").replace(')', "%29")
            ),
            Break => "\n".into(),
        })
        .collect()
}

/// Renders as plain text (links as `text (url)`).
pub fn to_text(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Text(x) | Bold(x) => x.clone(),
            Link { url, text } if url.is_empty() => text.clone(),
            Link { url, text } => format!("{text} ({url})"),
            Break => "\n".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renderings_escape_everything_interpolated() {
        let ctx = crate::events::TEST_PLACE;
        let mut data = EventKind::BuildFailure.sample(&ctx, &json!({}), 0.0);
        data["error_message"] = json!("<script>alert('x')</script> & co");
        let seg = segments(EventKind::BuildFailure, &data, None);
        let html = to_html(&seg);
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"),
            "{html}"
        );
        assert_eq!(
            html,
            "<a href=\"https://b.example/repository/acme/web/build/fake-build-id\">Build fake-bu</a> failed for repository \
             <a href=\"https://b.example/repository/acme/web\">acme/web</a> (refs/heads/somebranch)<br>\
             &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"
        );
        let text = to_text(&seg);
        assert!(
            text.starts_with("Build fake-bu (https://b.example/repository/acme/web/build/fake-build-id) failed"),
            "{text}"
        );
        let push = crate::events::repo_push(&ctx, &["v1", "v<2>"], &[]);
        let html = to_html(&segments(EventKind::RepoPush, &push, Some("bob&co")));
        assert!(html.starts_with("<b>bob&amp;co</b> pushed <a href=\"https://b.example/repository/acme/web?tag=v1&amp;tab=tags\">v1</a>, "), "{html}");
        assert!(html.contains(">v&lt;2&gt;</a>"), "{html}");
        let md = to_markdown(&segments(EventKind::BuildFailure, &data, None));
        assert!(
            md.starts_with("[Build fake-bu](https://b.example/repository/acme/web/build/fake-build-id) failed"),
            "{md}"
        );
        assert!(
            md.ends_with("\\<script\\>alert('x')\\</script\\> & co"),
            "markup in a value stays text: {md}"
        );
        assert_eq!(markdown_escape("**a** [b](c) `d`"), "\\*\\*a\\*\\* \\[b\\](c) \\`d\\`");
    }
}
