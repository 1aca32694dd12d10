//! What build triggers understand of the outside world, without storage: each service's push
//! payload mapped to Quay's `trigger_metadata` (`commit`, `ref`, `default_branch`, `git_url`,
//! `parsed_ref`, `commit_info` with `short_sha`, `url`, `message`, `date`, `author`,
//! `committer`), webhook signature checks (GitHub's `X-Hub-Signature-256`, GitLab's
//! `X-Gitlab-Token`, the custom trigger's secret), the branch/tag filter and tag templates.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};

/// The trigger services Berth accepts.
pub const SERVICES: [&str; 3] = ["custom-git", "github", "gitlab"];

/// What a webhook delivery means.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    /// A push to build, as Quay's `trigger_metadata`.
    Build(Value),
    /// Something to acknowledge and ignore (a ping, a deleted branch, another event), and why.
    Ignore(String),
}

fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}

/// `refs/heads/x` → `{"branch": "x"}`, `refs/tags/v1` → `{"tag": "v1"}`.
pub fn parsed_ref(r: &str) -> Value {
    if let Some(b) = r.strip_prefix("refs/heads/") {
        json!({"branch": b})
    } else if let Some(t) = r.strip_prefix("refs/tags/") {
        json!({"tag": t})
    } else if let Some(x) = r.strip_prefix("refs/remotes/") {
        json!({"remote": x})
    } else {
        json!({})
    }
}

fn metadata(commit: &str, r: &str, default_branch: &str, git_url: &str, commit_info: Value) -> Value {
    let mut info = match commit_info {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    info.insert("short_sha".into(), json!(short(commit)));
    json!({
        "commit": commit,
        "ref": r,
        "default_branch": default_branch,
        "git_url": git_url,
        "parsed_ref": parsed_ref(r),
        "commit_info": info,
    })
}

fn is_commit(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn require_ref(r: &str) -> Result<(), String> {
    if r.starts_with("refs/heads/") || r.starts_with("refs/tags/") {
        Ok(())
    } else {
        Err(format!(
            "'{r}' is not a branch or tag ref (refs/heads/… or refs/tags/…)"
        ))
    }
}

/// GitHub's `push` event (the `X-GitHub-Event` header is `event`).
pub fn github(event: &str, body: &Value) -> Result<Push, String> {
    if event == "ping" {
        return Ok(Push::Ignore("ping".into()));
    }
    if event != "push" {
        return Ok(Push::Ignore(format!("'{event}' events do not build")));
    }
    if body["deleted"].as_bool() == Some(true) {
        return Ok(Push::Ignore("a deleted ref does not build".into()));
    }
    let r = body["ref"].as_str().ok_or("the push has no 'ref'")?;
    require_ref(r)?;
    let head = &body["head_commit"];
    let commit = head["id"]
        .as_str()
        .or(body["after"].as_str())
        .ok_or("the push has no head commit")?;
    let repo = &body["repository"];
    let sender = &body["sender"];
    let person = |p: &Value| -> Option<Value> {
        let username = p["username"].as_str()?;
        let mut out = json!({"username": username, "url": format!("https://github.com/{username}")});
        if sender["login"].as_str() == Some(username)
            && let Some(a) = sender["avatar_url"].as_str()
        {
            out["avatar_url"] = json!(a);
        }
        Some(out)
    };
    let mut info = json!({
        "url": head["url"].as_str().unwrap_or_default(),
        "message": head["message"].as_str().unwrap_or_default(),
        "date": head["timestamp"].as_str().unwrap_or_default(),
    });
    if let Some(a) = person(&head["author"]) {
        info["author"] = a;
    }
    if let Some(c) = person(&head["committer"]) {
        info["committer"] = c;
    }
    let git_url = repo["ssh_url"]
        .as_str()
        .or(repo["clone_url"].as_str())
        .unwrap_or_default();
    let default_branch = repo["default_branch"].as_str().unwrap_or_default();
    Ok(Push::Build(metadata(commit, r, default_branch, git_url, info)))
}

/// GitLab's Push Hook and Tag Push Hook (the `X-Gitlab-Event` header is `event`).
pub fn gitlab(event: &str, body: &Value) -> Result<Push, String> {
    if event != "Push Hook" && event != "Tag Push Hook" {
        return Ok(Push::Ignore(format!("'{event}' events do not build")));
    }
    let r = body["ref"].as_str().ok_or("the push has no 'ref'")?;
    require_ref(r)?;
    let commit = body["checkout_sha"]
        .as_str()
        .or(body["after"].as_str())
        .unwrap_or_default();
    if commit.is_empty() || commit.bytes().all(|c| c == b'0') {
        return Ok(Push::Ignore("a deleted ref does not build".into()));
    }
    let project = &body["project"];
    let web = project["web_url"].as_str().unwrap_or_default();
    let site = web.split('/').take(3).collect::<Vec<_>>().join("/");
    let found = body["commits"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["id"].as_str() == Some(commit)))
        .cloned()
        .unwrap_or(Value::Null);
    let mut info = json!({
        "url": found["url"].as_str().unwrap_or_default(),
        "message": found["message"].as_str().unwrap_or_default(),
        "date": found["timestamp"].as_str().unwrap_or_default(),
    });
    // GitLab names the pusher; the commit's author is that user when the e-mail matches.
    let author_email = found["author"]["email"].as_str();
    if author_email.is_some() && author_email == body["user_email"].as_str() {
        if let Some(username) = body["user_username"].as_str() {
            let mut a = json!({"username": username, "url": format!("{site}/{username}")});
            if let Some(avatar) = body["user_avatar"].as_str() {
                a["avatar_url"] = json!(avatar);
            }
            info["author"] = a;
        }
    } else if let Some(name) = found["author"]["name"].as_str() {
        info["author"] = json!({"username": name});
    }
    let git_url = project["git_ssh_url"]
        .as_str()
        .or(body["repository"]["git_ssh_url"].as_str())
        .or(project["git_http_url"].as_str())
        .unwrap_or_default();
    let default_branch = project["default_branch"].as_str().unwrap_or_default();
    Ok(Push::Build(metadata(commit, r, default_branch, git_url, info)))
}

/// The custom git trigger's body: `commit`, `ref`, `default_branch` and optional `commit_info`,
/// as Quay documents it; `git_url` is the trigger's own `build_source`.
pub fn custom(body: &Value, build_source: &str) -> Result<Push, String> {
    let commit = body["commit"].as_str().ok_or("the body has no 'commit'")?;
    if !is_commit(commit) {
        return Err(format!("'commit' must be a hexadecimal commit SHA, not '{commit}'"));
    }
    let r = body["ref"].as_str().ok_or("the body has no 'ref'")?;
    require_ref(r)?;
    let default_branch = body["default_branch"].as_str().unwrap_or_default();
    let info = body.get("commit_info").cloned().unwrap_or_else(|| json!({}));
    if !info.is_object() {
        return Err("'commit_info' must be an object".into());
    }
    if let Some(a) = info.get("author")
        && a["username"].as_str().is_none()
    {
        return Err("'commit_info.author' needs a 'username'".into());
    }
    Ok(Push::Build(metadata(commit, r, default_branch, build_source, info)))
}

/// Checks GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
pub fn github_signature_ok(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2_resumable::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Compares a shared secret in constant time (GitLab's `X-Gitlab-Token`, the custom trigger).
pub fn secret_ok(secret: &str, given: Option<&str>) -> bool {
    given.is_some_and(|g| crate::secret::same_secret(secret, g))
}

/// The form a ref is matched in by `branchtag_regex`: `heads/<branch>` or `tags/<tag>`.
pub fn ref_for_filter(r: &str) -> &str {
    r.strip_prefix("refs/").unwrap_or(r)
}

/// A valid Docker tag from any text: other characters become `_`, at most 128 characters.
pub fn sanitize_tag(s: &str) -> Option<String> {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    if out.starts_with(['.', '-']) {
        out.replace_range(0..1, "_");
    }
    (!out.is_empty()).then_some(out)
}

/// Expands `${a.b}` from the metadata; `None` if a variable is missing.
fn expand(template: &str, meta: &Value) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after.find('}')?;
        let mut v = meta;
        for key in after[..end].split('.') {
            v = v.get(key.trim())?;
        }
        match v {
            Value::String(s) => out.push_str(s),
            Value::Number(n) => out.push_str(&n.to_string()),
            _ => return None,
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The tags a trigger build pushes: the branch or tag name (`default_tag_from_ref`, default on),
/// `latest` on the default branch (`latest_for_default_branch`, default on), and each of
/// `tag_templates` that expands (e.g. `${commit_info.short_sha}`); `latest` when nothing applies.
pub fn tags_for(config: &Value, meta: &Value) -> Vec<String> {
    let on = |key: &str| config[key].as_bool().unwrap_or(true);
    let mut tags = Vec::new();
    if on("default_tag_from_ref")
        && let Some(name) = meta["parsed_ref"]["branch"]
            .as_str()
            .or(meta["parsed_ref"]["tag"].as_str())
    {
        tags.extend(sanitize_tag(name));
    }
    if on("latest_for_default_branch")
        && meta["parsed_ref"]["branch"]
            .as_str()
            .is_some_and(|b| Some(b) == meta["default_branch"].as_str())
    {
        tags.push("latest".into());
    }
    for t in config["tag_templates"].as_array().into_iter().flatten() {
        if let Some(x) = t.as_str().and_then(|t| expand(t, meta)).and_then(|x| sanitize_tag(&x)) {
            tags.push(x);
        }
    }
    if tags.is_empty() {
        tags.push("latest".into());
    }
    let mut seen = std::collections::HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github_body() -> Value {
        json!({
            "ref": "refs/heads/master",
            "after": "0123456789abcdef0123456789abcdef01234567",
            "deleted": false,
            "repository": {"default_branch": "master", "ssh_url": "git@github.com:acme/web.git", "clone_url": "https://github.com/acme/web.git"},
            "head_commit": {
                "id": "0123456789abcdef0123456789abcdef01234567",
                "url": "https://github.com/acme/web/commit/0123456",
                "message": "Fix the thing",
                "timestamp": "2026-11-20T10:00:00Z",
                "author": {"name": "Alice", "email": "a@example.com", "username": "alice"},
                "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"}
            },
            "sender": {"login": "alice", "avatar_url": "https://avatars.example/alice"}
        })
    }

    #[test]
    fn github_push_maps_to_quay_metadata() {
        let Push::Build(m) = github("push", &github_body()).unwrap() else {
            panic!("a build")
        };
        assert_eq!(m["commit"], "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(m["ref"], "refs/heads/master");
        assert_eq!(m["default_branch"], "master");
        assert_eq!(m["git_url"], "git@github.com:acme/web.git");
        assert_eq!(m["parsed_ref"], json!({"branch": "master"}));
        let info = &m["commit_info"];
        assert_eq!(info["short_sha"], "0123456");
        assert_eq!(info["message"], "Fix the thing");
        assert_eq!(info["date"], "2026-11-20T10:00:00Z");
        assert_eq!(
            info["author"],
            json!({"username": "alice", "url": "https://github.com/alice", "avatar_url": "https://avatars.example/alice"})
        );
        assert_eq!(
            info["committer"],
            json!({"username": "web-flow", "url": "https://github.com/web-flow"})
        );
        assert_eq!(github("ping", &json!({})).unwrap(), Push::Ignore("ping".into()));
        let mut deleted = github_body();
        deleted["deleted"] = json!(true);
        assert!(matches!(github("push", &deleted).unwrap(), Push::Ignore(_)));
        let mut odd = github_body();
        odd["ref"] = json!("refs/pull/1/head");
        assert!(github("push", &odd).unwrap_err().contains("not a branch or tag ref"));
    }

    #[test]
    fn gitlab_push_maps_to_quay_metadata() {
        let body = json!({
            "object_kind": "push", "ref": "refs/tags/v1.2", "checkout_sha": "89abcdef0123456789abcdef0123456789abcdef",
            "user_username": "bob", "user_email": "b@example.com", "user_avatar": "https://gitlab.example/avatar/bob",
            "project": {"web_url": "https://gitlab.example/acme/web", "git_ssh_url": "git@gitlab.example:acme/web.git", "default_branch": "main"},
            "commits": [{"id": "89abcdef0123456789abcdef0123456789abcdef", "message": "Release", "timestamp": "2026-11-21T09:00:00+00:00",
                         "url": "https://gitlab.example/acme/web/-/commit/89abcdef", "author": {"name": "Bob", "email": "b@example.com"}}]
        });
        let Push::Build(m) = gitlab("Tag Push Hook", &body).unwrap() else {
            panic!("a build")
        };
        assert_eq!(m["parsed_ref"], json!({"tag": "v1.2"}));
        assert_eq!(m["git_url"], "git@gitlab.example:acme/web.git");
        assert_eq!(
            m["commit_info"]["author"],
            json!({"username": "bob", "url": "https://gitlab.example/bob", "avatar_url": "https://gitlab.example/avatar/bob"})
        );
        assert_eq!(
            m["commit_info"]["url"],
            "https://gitlab.example/acme/web/-/commit/89abcdef"
        );
        assert!(matches!(gitlab("Issue Hook", &body).unwrap(), Push::Ignore(_)));
    }

    #[test]
    fn custom_bodies_are_checked() {
        let ok = json!({"commit": "abcdef1234567", "ref": "refs/heads/dev", "default_branch": "main",
                        "commit_info": {"url": "http://x", "message": "m", "date": "d", "author": {"username": "u"}}});
        let Push::Build(m) = custom(&ok, "file:///src/repo").unwrap() else {
            panic!("a build")
        };
        assert_eq!(m["git_url"], "file:///src/repo");
        assert_eq!(m["commit_info"]["short_sha"], "abcdef1");
        assert!(
            custom(&json!({"ref": "refs/heads/x"}), "u")
                .unwrap_err()
                .contains("'commit'")
        );
        assert!(
            custom(&json!({"commit": "xyz", "ref": "refs/heads/x"}), "u")
                .unwrap_err()
                .contains("hexadecimal")
        );
        assert!(
            custom(&json!({"commit": "abcdef1", "ref": "master"}), "u")
                .unwrap_err()
                .contains("not a branch")
        );
        let no_user = json!({"commit": "abcdef1", "ref": "refs/heads/x", "commit_info": {"author": {}}});
        assert!(custom(&no_user, "u").unwrap_err().contains("username"));
    }

    #[test]
    fn signatures() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(github_signature_ok(
            "It's a Secret to Everybody",
            b"Hello, World!",
            Some(sig)
        ));
        assert!(!github_signature_ok(
            "It's a Secret to Everybody",
            b"Hello, World?",
            Some(sig)
        ));
        assert!(!github_signature_ok("another", b"Hello, World!", Some(sig)));
        assert!(!github_signature_ok("s", b"x", None));
        assert!(!github_signature_ok("s", b"x", Some("sha1=abc")));
        assert!(secret_ok("token", Some("token")));
        assert!(!secret_ok("token", Some("nope")));
        assert!(!secret_ok("token", None));
    }

    #[test]
    fn tags_and_templates() {
        let meta = |r: &str| json!({"ref": r, "default_branch": "master", "parsed_ref": parsed_ref(r), "commit_info": {"short_sha": "abc1234"}});
        assert_eq!(tags_for(&json!({}), &meta("refs/heads/master")), ["master", "latest"]);
        assert_eq!(tags_for(&json!({}), &meta("refs/heads/feature/x")), ["feature_x"]);
        assert_eq!(tags_for(&json!({}), &meta("refs/tags/v1.0")), ["v1.0"]);
        let config = json!({"default_tag_from_ref": false, "latest_for_default_branch": false,
                            "tag_templates": ["${commit_info.short_sha}", "build-${parsed_ref.branch}", "${missing.value}"]});
        assert_eq!(
            tags_for(&config, &meta("refs/heads/master")),
            ["abc1234", "build-master"]
        );
        assert_eq!(
            tags_for(
                &json!({"default_tag_from_ref": false, "latest_for_default_branch": false}),
                &meta("refs/heads/x")
            ),
            ["latest"]
        );
        assert_eq!(sanitize_tag("-x/y"), Some("_x_y".into()));
        assert_eq!(ref_for_filter("refs/heads/master"), "heads/master");
    }
}
