//! The repository event catalogue (spec §1): names, human titles, levels, summaries, sample data,
//! event-config validation and filters. Real sources and test sends build their payloads here, so
//! both have the same shape.
//!
//! Fixes of Quay's quirks (spec §8):
//! - event configuration is validated at creation: `ref-regex` must compile, `level` must be 0–5
//!   (an integer or a numeric string), `days` a positive integer;
//! - `ref-regex` must match the **whole** ref (`refs/heads/master` does not match
//!   `refs/heads/master-old`); write `refs/heads/release-.*` for a prefix;
//! - the vulnerability sample uses the configured level, and no event bypasses the level filter.
//!
//! Berth's additions:
//! - `repo_push` takes `tag-regex`, matched like `ref-regex` against the whole of each updated
//!   tag; a push passes when any of its tags matches;
//! - a namespace-wide notification takes `repository-regex`, matched against the whole of the
//!   repository's name (without its namespace), with any event's own filter;
//! - `repo_created` and `repo_deleted` fire only for namespace-wide notifications, since a
//!   repository's own notifications do not exist before it and die with it.

use serde_json::{Map, Value, json};

/// A repository event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `repo_push`.
    RepoPush,
    /// `build_queued`.
    BuildQueued,
    /// `build_start`.
    BuildStart,
    /// `build_success`.
    BuildSuccess,
    /// `build_failure`.
    BuildFailure,
    /// `build_cancelled`.
    BuildCancelled,
    /// `vulnerability_found`.
    VulnerabilityFound,
    /// `repo_mirror_sync_started`.
    MirrorStarted,
    /// `repo_mirror_sync_success`.
    MirrorSuccess,
    /// `repo_mirror_sync_failed`.
    MirrorFailed,
    /// `repo_image_expiry`.
    ImageExpiry,
    /// `tag_deleted` (Berth): a tag was removed.
    TagDeleted,
    /// `notification_disabled` (Berth): another notification of the repository was disabled.
    NotificationDisabled,
    /// `repo_created` (Berth, namespace-wide notifications only): a repository was created.
    RepoCreated,
    /// `repo_deleted` (Berth, namespace-wide notifications only): a repository was deleted.
    RepoDeleted,
}

/// What holds a notification, as far as its event configuration goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// One repository's notification.
    Repository,
    /// A namespace-wide notification (Berth): every repository of the namespace.
    Namespace,
}

/// The `eventConfig` key of a namespace-wide notification's repository filter.
pub const REPOSITORY_REGEX: &str = "repository-regex";

/// An event's colour in chat methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `info`.
    Info,
    /// `warning`.
    Warning,
    /// `error`.
    Error,
    /// `primary`.
    Primary,
    /// `success`.
    Success,
}

impl Level {
    /// Quay's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Primary => "primary",
            Level::Success => "success",
        }
    }
}

/// Severity names by Quay index (0 = Critical … 5 = Unknown), spec §1.3.
pub const SEVERITIES: [&str; 6] = ["Critical", "High", "Medium", "Low", "Negligible", "Unknown"];

/// The index of a severity name.
pub fn severity_index(name: &str) -> Option<usize> {
    SEVERITIES.iter().position(|s| *s == name)
}

/// A field of an event configuration that is invalid, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct EventConfigError {
    /// The offending key of `eventConfig`.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

/// Where an event happened, for the payload's URLs.
#[derive(Debug, Clone)]
pub struct RepoContext<'a> {
    /// `server_hostname`.
    pub hostname: &'a str,
    /// `preferred_url_scheme`.
    pub scheme: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// The repository name.
    pub name: &'a str,
}

/// `acme/web` on `https://b.example`: the place unit tests render their events at.
#[cfg(test)]
pub(crate) const TEST_PLACE: RepoContext<'static> = RepoContext {
    hostname: "b.example",
    scheme: "https",
    namespace: "acme",
    name: "web",
};

impl RepoContext<'_> {
    /// The base repository block (spec §1.0), with an optional homepage subpage.
    pub fn block(&self, subpage: Option<&str>) -> Map<String, Value> {
        let (ns, name) = (self.namespace, self.name);
        let mut homepage = format!("{}://{}/repository/{ns}/{name}", self.scheme, self.hostname);
        if let Some(sub) = subpage {
            if !sub.starts_with('/') {
                homepage.push('/');
            }
            homepage.push_str(sub);
        }
        let mut m = Map::new();
        m.insert("repository".into(), json!(format!("{ns}/{name}")));
        m.insert("namespace".into(), json!(ns));
        m.insert("name".into(), json!(name));
        m.insert("docker_url".into(), json!(format!("{}/{ns}/{name}", self.hostname)));
        m.insert("homepage".into(), json!(homepage));
        m
    }
}

/// A namespace, for the payload of an event about the namespace itself rather than one of its
/// repositories.
#[derive(Debug, Clone)]
pub struct NamespaceContext<'a> {
    /// `server_hostname`.
    pub hostname: &'a str,
    /// `preferred_url_scheme`.
    pub scheme: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// Whether it is an organization (else a user).
    pub organization: bool,
}

impl NamespaceContext<'_> {
    /// Quay's base namespace block (spec §1.6): `namespace` and its `homepage`.
    pub fn block(&self) -> Map<String, Value> {
        let kind = if self.organization { "organization" } else { "user" };
        let mut m = Map::new();
        m.insert("namespace".into(), json!(self.namespace));
        m.insert(
            "homepage".into(),
            json!(format!("{}://{}/{kind}/{}", self.scheme, self.hostname, self.namespace)),
        );
        m
    }
}

fn with(mut base: Map<String, Value>, extra: Value) -> Value {
    if let Value::Object(e) = extra {
        base.extend(e);
    }
    Value::Object(base)
}

/// `repo_push`: the base block, `updated_tags`, and (additive) the digest each tag now points at.
pub fn repo_push(ctx: &RepoContext<'_>, tags: &[&str], digests: &[&str]) -> Value {
    with(
        ctx.block(None),
        json!({"updated_tags": tags, "manifest_digests": digests}),
    )
}

/// What a `tag_deleted` event says.
#[derive(Debug, Clone, Copy)]
pub struct DeletedTag<'a> {
    /// The tag.
    pub tag: &'a str,
    /// The manifest it pointed at.
    pub manifest_digest: &'a str,
    /// Why it went: `deleted` (the tag itself, by the API, the UI or `/v2`) or `manifest_deleted`
    /// (its manifest was deleted by digest).
    pub reason: &'a str,
    /// Who removed it, when a person or robot did.
    pub performer: Option<&'a str>,
}

/// `tag_deleted` (Berth): the base block, `tag`, `manifest_digest`, `reason` and `performer`.
pub fn tag_deleted(ctx: &RepoContext<'_>, d: &DeletedTag<'_>) -> Value {
    with(
        ctx.block(None),
        json!({"tag": d.tag, "manifest_digest": d.manifest_digest, "reason": d.reason, "performer": d.performer}),
    )
}

/// `repo_mirror_sync_started`, `_success` and `_failed`: the base block and Quay's `message`
/// (`'<reference>' with tag pattern '<globs>'`, with the reason on a failure).
pub fn mirror_sync(ctx: &RepoContext<'_>, message: &str) -> Value {
    with(ctx.block(None), json!({ "message": message }))
}

/// `repo_image_expiry`: the base block, the `tags` that expire within `days` days, `expiring_in`
/// (Quay's `"<days> days"`) and `days`.
pub fn image_expiry(ctx: &RepoContext<'_>, tags: &[&str], days: u64) -> Value {
    with(
        ctx.block(None),
        json!({"tags": tags, "expiring_in": format!("{days} days"), "days": days}),
    )
}

/// What `repo_created` and `repo_deleted` say about the repository.
#[derive(Debug, Clone, Copy)]
pub struct RepositoryChange<'a> {
    /// `public` or `private`.
    pub visibility: &'a str,
    /// Who created or deleted it, when a person or robot did.
    pub performer: Option<&'a str>,
}

/// `repo_created` and `repo_deleted` (Berth): the base block, `visibility` and `performer`.
pub fn repository_changed(ctx: &RepoContext<'_>, c: &RepositoryChange<'_>) -> Value {
    with(
        ctx.block(None),
        json!({"visibility": c.visibility, "performer": c.performer}),
    )
}

/// What a `notification_disabled` event says about the notification that was disabled.
#[derive(Debug, Clone, Copy)]
pub struct DisabledNotification<'a> {
    /// Its uuid.
    pub uuid: &'a str,
    /// Its title (or, without one, its event and method).
    pub title: &'a str,
    /// Its event.
    pub event: &'a str,
    /// Its method.
    pub method: &'a str,
    /// Where it sends, secrets masked.
    pub target: &'a str,
    /// Why it was disabled.
    pub reason: &'a str,
}

/// `notification_disabled` (Berth, an operational event): the base block, and the disabled
/// notification's `uuid`, `title`, `event`, `method`, masked `target` and `reason`.
pub fn notification_disabled(ctx: &RepoContext<'_>, n: &DisabledNotification<'_>) -> Value {
    with(ctx.block(None), disabled_fields(n))
}

/// `notification_disabled` about a namespace-wide notification: the namespace's block (no
/// repository), and the same fields.
pub fn namespace_notification_disabled(ctx: &NamespaceContext<'_>, n: &DisabledNotification<'_>) -> Value {
    with(ctx.block(), disabled_fields(n))
}

fn disabled_fields(n: &DisabledNotification<'_>) -> Value {
    json!({"uuid": n.uuid, "title": n.title, "event": n.event, "method": n.method,
           "target": n.target, "reason": n.reason})
}

/// What build events say about a build (spec §1.2).
#[derive(Debug, Clone, Default)]
pub struct BuildFacts<'a> {
    /// The build's uuid.
    pub build_id: &'a str,
    /// Its display name: the short commit SHA of trigger builds, a short hash of an upload.
    pub build_name: &'a str,
    /// The tags it pushes.
    pub docker_tags: &'a [String],
    /// The trigger's uuid, if a trigger started it.
    pub trigger_id: Option<&'a str>,
    /// The trigger's service (`github`, `gitlab`, `custom-git`).
    pub trigger_kind: Option<&'a str>,
    /// Quay's `trigger_metadata` (`{}` when none).
    pub trigger_metadata: Option<&'a Value>,
    /// Whether a person started it (API upload or a manual trigger run).
    pub is_manual: bool,
    /// Who started it by hand.
    pub manual_user: Option<&'a str>,
    /// The pushed image's id (its config digest), on success.
    pub image_id: Option<&'a str>,
    /// The pushed manifests' digests, on success.
    pub manifest_digests: &'a [String],
    /// Why it failed, on failure.
    pub error_message: Option<&'a str>,
}

/// `build_queued`: base (homepage `…/build/<uuid>`), `build_id`, `docker_tags`, `repo`,
/// `namespace`, `is_manual`, `manual_user`, and the trigger's `trigger_id`, `trigger_kind`,
/// `trigger_metadata`, `trigger_manual` when a trigger started it. No `build_name`, as in Quay.
pub fn build_queued(ctx: &RepoContext<'_>, b: &BuildFacts<'_>) -> Value {
    let mut data = with(
        ctx.block(Some(&format!("/build/{}", b.build_id))),
        json!({
            "build_id": b.build_id,
            "docker_tags": b.docker_tags,
            "repo": ctx.name,
            "namespace": ctx.namespace,
            "is_manual": b.is_manual,
            "manual_user": b.manual_user,
        }),
    );
    if let Some(id) = b.trigger_id {
        data["trigger_id"] = json!(id);
        data["trigger_kind"] = json!(b.trigger_kind);
        data["trigger_metadata"] = b.trigger_metadata.cloned().unwrap_or_else(|| json!({}));
        data["trigger_manual"] = json!(b.is_manual);
    }
    data
}

/// `build_start`, `build_success`, `build_failure`, `build_cancelled`: base, `build_id`,
/// `build_name`, `docker_tags` (`["latest"]` when empty), `trigger_id`, `trigger_kind`,
/// `trigger_metadata`, plus the fields Quay defined but never filled: `image_id` and
/// `manifest_digests` on success, `error_message` on failure.
pub fn build_update(ctx: &RepoContext<'_>, b: &BuildFacts<'_>) -> Value {
    let tags: Vec<&str> = if b.docker_tags.is_empty() {
        vec!["latest"]
    } else {
        b.docker_tags.iter().map(String::as_str).collect()
    };
    let mut data = with(
        ctx.block(Some(&format!("/build/{}", b.build_id))),
        json!({
            "build_id": b.build_id,
            "build_name": b.build_name,
            "docker_tags": tags,
            "trigger_id": b.trigger_id,
            "trigger_kind": b.trigger_kind,
            "trigger_metadata": b.trigger_metadata.cloned().unwrap_or_else(|| json!({})),
        }),
    );
    if let Some(image) = b.image_id {
        data["image_id"] = json!(image);
        data["manifest_digests"] = json!(b.manifest_digests);
    }
    if let Some(e) = b.error_message {
        data["error_message"] = json!(e);
    }
    data
}

/// The `vulnerability_found` payload of one vulnerability: `tags` (at most 100) and
/// `vulnerability` {`id`, `description`, `link`, `priority`, `has_fix`}.
pub fn vulnerability_found(ctx: &RepoContext<'_>, tags: &[&str], vulnerability: Value) -> Value {
    let tags: Vec<&str> = tags.iter().take(100).copied().collect();
    with(ctx.block(None), json!({"tags": tags, "vulnerability": vulnerability}))
}

/// The payload that stands for several vulnerabilities at once (Quay's `vulnerabilities` list):
/// `vulnerability` is the most severe of them, so the `level` filter still applies to it.
pub fn vulnerabilities_found(ctx: &RepoContext<'_>, tags: &[&str], vulnerabilities: &[Value]) -> Value {
    let top = vulnerabilities.first().cloned().unwrap_or(Value::Null);
    let mut data = vulnerability_found(ctx, tags, top);
    data["vulnerabilities"] = Value::Array(vulnerabilities.to_vec());
    data
}

/// `<n> <top>[ and <m> more]`: how many of the listed vulnerabilities have the top priority,
/// and how many others there are.
fn vulnerability_counts(list: &[Value]) -> String {
    let top = list.first().and_then(|v| v["priority"].as_str()).unwrap_or("Unknown");
    let n = list.iter().filter(|v| v["priority"].as_str() == Some(top)).count();
    let more = list.len() - n;
    if more > 0 {
        format!("{n} {top} and {more} more")
    } else {
        format!("{n} {top}")
    }
}

/// The summary of a multi-vulnerability payload, if it is one.
pub fn vulnerability_list_summary(data: &Value) -> Option<String> {
    let list = data["vulnerabilities"].as_array().filter(|l| !l.is_empty())?;
    Some(format!("{} vulnerabilities", vulnerability_counts(list)))
}

const ALL: [EventKind; 15] = [
    EventKind::RepoPush,
    EventKind::BuildQueued,
    EventKind::BuildStart,
    EventKind::BuildSuccess,
    EventKind::BuildFailure,
    EventKind::BuildCancelled,
    EventKind::VulnerabilityFound,
    EventKind::MirrorStarted,
    EventKind::MirrorSuccess,
    EventKind::MirrorFailed,
    EventKind::ImageExpiry,
    EventKind::TagDeleted,
    EventKind::NotificationDisabled,
    EventKind::RepoCreated,
    EventKind::RepoDeleted,
];

impl EventKind {
    /// Every repository event.
    pub fn all() -> &'static [EventKind] {
        &ALL
    }

    /// Quay's name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::RepoPush => "repo_push",
            EventKind::BuildQueued => "build_queued",
            EventKind::BuildStart => "build_start",
            EventKind::BuildSuccess => "build_success",
            EventKind::BuildFailure => "build_failure",
            EventKind::BuildCancelled => "build_cancelled",
            EventKind::VulnerabilityFound => "vulnerability_found",
            EventKind::MirrorStarted => "repo_mirror_sync_started",
            EventKind::MirrorSuccess => "repo_mirror_sync_success",
            EventKind::MirrorFailed => "repo_mirror_sync_failed",
            EventKind::ImageExpiry => "repo_image_expiry",
            EventKind::TagDeleted => "tag_deleted",
            EventKind::NotificationDisabled => "notification_disabled",
            EventKind::RepoCreated => "repo_created",
            EventKind::RepoDeleted => "repo_deleted",
        }
    }

    /// Parses Quay's name; anything else (including the namespace-only quota events) is an error
    /// listing the valid names.
    pub fn parse(name: &str) -> Result<EventKind, String> {
        ALL.into_iter().find(|e| e.name() == name).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|e| e.name()).collect();
            format!("Invalid event '{name}'. Must be one of: {}", names.join(", "))
        })
    }

    /// The name Quay's UI shows.
    pub fn title(self) -> &'static str {
        match self {
            EventKind::RepoPush => "Push to Repository",
            EventKind::BuildQueued => "Dockerfile Build Queued",
            EventKind::BuildStart => "Dockerfile Build Started",
            EventKind::BuildSuccess => "Dockerfile Build Successfully Completed",
            EventKind::BuildFailure => "Dockerfile Build Failed",
            EventKind::BuildCancelled => "Dockerfile Build Cancelled",
            EventKind::VulnerabilityFound => "Package Vulnerability Found",
            EventKind::MirrorStarted => "Repository Mirror Started",
            EventKind::MirrorSuccess => "Repository Mirror Success",
            EventKind::MirrorFailed => "Repository Mirror Unsuccessful",
            EventKind::ImageExpiry => "Image expiry trigger",
            EventKind::TagDeleted => "Tag Deleted",
            EventKind::NotificationDisabled => "Notification Disabled",
            EventKind::RepoCreated => "Repository Created",
            EventKind::RepoDeleted => "Repository Deleted",
        }
    }

    /// Whether only namespace-wide notifications may subscribe to it (`repo_created`,
    /// `repo_deleted`): a repository's own notifications do not exist before it and die with it.
    pub fn namespace_only(self) -> bool {
        matches!(self, EventKind::RepoCreated | EventKind::RepoDeleted)
    }

    /// Whether this is one of the five build events.
    pub fn is_build(self) -> bool {
        matches!(
            self,
            EventKind::BuildQueued
                | EventKind::BuildStart
                | EventKind::BuildSuccess
                | EventKind::BuildFailure
                | EventKind::BuildCancelled
        )
    }

    /// The level of an occurrence (vulnerabilities: by priority).
    pub fn level(self, data: &Value) -> Level {
        match self {
            EventKind::RepoPush => Level::Primary,
            EventKind::BuildSuccess | EventKind::MirrorSuccess => Level::Success,
            EventKind::BuildFailure | EventKind::MirrorFailed => Level::Error,
            EventKind::TagDeleted | EventKind::RepoDeleted => Level::Warning,
            EventKind::NotificationDisabled => Level::Error,
            EventKind::VulnerabilityFound => match data["vulnerability"]["priority"].as_str() {
                Some("Critical") => Level::Error,
                Some("High" | "Medium") => Level::Warning,
                _ => Level::Info,
            },
            _ => Level::Info,
        }
    }

    /// The one-line summary (e-mail subject, chat text).
    pub fn summary(self, data: &Value) -> String {
        let repo = data["repository"].as_str().unwrap_or_default();
        let build = || {
            let id = data["build_id"].as_str().unwrap_or_default();
            let short: String = id.chars().take(7).collect();
            format!("for repository {repo} [{short}]")
        };
        let message = data["message"].as_str().unwrap_or_default();
        match self {
            EventKind::RepoPush => format!("Repository {repo} updated"),
            EventKind::BuildQueued => format!("Build queued {}", build()),
            EventKind::BuildStart => format!("Build started {}", build()),
            EventKind::BuildSuccess => format!("Build succeeded {}", build()),
            EventKind::BuildFailure => format!("Build failure {}", build()),
            EventKind::BuildCancelled => format!("Build cancelled {}", build()),
            EventKind::VulnerabilityFound => {
                let tags = data["tags"].as_array().map_or(0, Vec::len);
                if let Some(list) = vulnerability_list_summary(data) {
                    return format!("{list} were detected in repository {repo} in {tags} tags");
                }
                let priority = data["vulnerability"]["priority"].as_str().unwrap_or("Unknown");
                format!("{priority} vulnerability detected in repository {repo} in {tags} tags")
            }
            EventKind::MirrorStarted => format!("Repository Mirror started for {message}"),
            EventKind::MirrorSuccess => format!("Repository Mirror success for {message}"),
            EventKind::MirrorFailed => format!("Repository Mirror failed for {message}"),
            EventKind::ImageExpiry => format!("Repository {repo} image(s) expiring"),
            EventKind::TagDeleted => format!(
                "Tag {} deleted from repository {repo}",
                data["tag"].as_str().unwrap_or_default()
            ),
            EventKind::NotificationDisabled => {
                let title = data["title"].as_str().unwrap_or_default();
                match data["repository"].as_str() {
                    Some(repo) => format!("Notification {title} of repository {repo} was disabled"),
                    None => format!(
                        "Notification {title} of namespace {} was disabled",
                        data["namespace"].as_str().unwrap_or_default()
                    ),
                }
            }
            EventKind::RepoCreated => format!("Repository {repo} created"),
            EventKind::RepoDeleted => format!("Repository {repo} deleted"),
        }
    }

    /// Checks an `eventConfig` at creation, for a notification of `reach`. Unknown keys are kept
    /// and ignored, as in Quay, except `repository-regex` on a repository's own notification,
    /// which would filter nothing.
    pub fn validate_config(self, config: &Value, reach: Reach) -> Result<(), EventConfigError> {
        let Some(obj) = config.as_object() else {
            return Err(EventConfigError {
                field: "eventConfig",
                reason: "must be a JSON object".into(),
            });
        };
        let pattern = |key: &'static str| -> Result<(), EventConfigError> {
            let Some(re) = obj.get(key).filter(|v| !v.is_null()) else {
                return Ok(());
            };
            let text = re.as_str().ok_or_else(|| EventConfigError {
                field: key,
                reason: "must be a string".into(),
            })?;
            if !text.is_empty() {
                anchored(text).map_err(|e| EventConfigError {
                    field: key,
                    reason: format!("does not compile: {e}"),
                })?;
            }
            Ok(())
        };
        if let Some(key) = self.regex_key() {
            pattern(key)?;
        }
        match reach {
            Reach::Namespace => pattern(REPOSITORY_REGEX)?,
            Reach::Repository if obj.get(REPOSITORY_REGEX).is_some_and(|v| !v.is_null()) => {
                return Err(EventConfigError {
                    field: REPOSITORY_REGEX,
                    reason: "applies only to namespace-wide notifications".into(),
                });
            }
            Reach::Repository => {}
        }
        if self == EventKind::VulnerabilityFound
            && let Some(level) = obj.get("level").filter(|v| !v.is_null())
        {
            parse_level(level).map_err(|reason| EventConfigError { field: "level", reason })?;
        }
        if self == EventKind::ImageExpiry {
            let days = obj.get("days").ok_or_else(|| EventConfigError {
                field: "days",
                reason: "is required".into(),
            })?;
            match expiry_days(config) {
                Some(_) => {}
                None => {
                    return Err(EventConfigError {
                        field: "days",
                        reason: format!("{days} is not a positive integer"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The `eventConfig` key of the event's regular-expression filter: `ref-regex` for builds,
    /// `tag-regex` for pushes.
    pub fn regex_key(self) -> Option<&'static str> {
        if self.is_build() {
            Some("ref-regex")
        } else if self == EventKind::RepoPush {
            Some("tag-regex")
        } else {
            None
        }
    }

    /// Whether an occurrence passes the notification's filter (evaluated at delivery). A
    /// delivery engine that checks many occurrences against one configuration compiles it once
    /// with [`EventKind::filter`].
    pub fn should_perform(self, data: &Value, config: &Value) -> bool {
        self.filter(config).passes(data)
    }

    /// The notification's filter, compiled: its regular expression (`ref-regex` for builds,
    /// `tag-regex` for pushes) or its vulnerability level, and a namespace-wide notification's
    /// `repository-regex`. A pattern that does not compile (it was checked at creation) lets
    /// nothing through.
    pub fn filter(self, config: &Value) -> Filter {
        let repository = config
            .get(REPOSITORY_REGEX)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|re| anchored(re).map_or(Rule::Nothing, Rule::Pattern));
        let rule = if let Some(key) = self.regex_key()
            && let Some(re) = config.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
        {
            match anchored(re) {
                Ok(re) => Rule::Pattern(re),
                Err(_) => Rule::Nothing,
            }
        } else if self == EventKind::VulnerabilityFound
            && let Some(level) = config.get("level").filter(|v| !v.is_null())
        {
            parse_level(level).map_or(Rule::Nothing, Rule::Level)
        } else {
            Rule::Everything
        };
        Filter {
            event: self,
            rule,
            repository,
        }
    }
    /// The synthetic data a "test notification" sends (spec §1, with the quirks fixed).
    pub fn sample(self, ctx: &RepoContext<'_>, config: &Value, now_epoch: f64) -> Value {
        let commit_info = json!({
            "url": "http://path/to/the/commit",
            "message": "Some commit message",
            "date": now_epoch,
            "author": {
                "username": "fakeauthor",
                "url": "http://path/to/fake/author/in/scm",
                "avatar_url": "http://www.gravatar.com/avatar/fakehash",
            },
        });
        let build = |extra: Value| {
            let mut metadata = json!({
                "default_branch": "master",
                "ref": "refs/heads/somebranch",
                "commit": "42d4a62c53350993ea41069e9f2cfdefb0df097d",
            });
            let mut data = json!({
                "build_id": "fake-build-id",
                "build_name": "some-fake-build",
                "docker_tags": ["latest", "foo", "bar"],
                "trigger_id": "1245634",
                "trigger_kind": "GitHub",
            });
            if let Value::Object(e) = extra {
                for (k, v) in e {
                    if k == "commit_info" {
                        metadata["commit_info"] = v;
                    } else {
                        data[k] = v;
                    }
                }
            }
            data["trigger_metadata"] = metadata;
            with(ctx.block(Some("/build/fake-build-id")), data)
        };
        match self {
            EventKind::RepoPush => with(
                ctx.block(None),
                json!({"updated_tags": ["latest", "foo"], "pruned_image_count": 3}),
            ),
            EventKind::BuildQueued => build(json!({"is_manual": false, "commit_info": commit_info})),
            EventKind::BuildStart => build(json!({})),
            EventKind::BuildSuccess => build(json!({"image_id": "1245657346"})),
            EventKind::BuildFailure => {
                build(json!({"error_message": "This is a fake error message", "commit_info": commit_info}))
            }
            EventKind::BuildCancelled => build(json!({"image_id": "1245657346"})),
            EventKind::VulnerabilityFound => {
                let level = config.get("level").and_then(|l| parse_level(l).ok()).unwrap_or(0);
                with(
                    ctx.block(None),
                    json!({
                        "tags": ["latest", "prod", "foo", "bar", "baz"],
                        "image": "some-image-id",
                        "vulnerability": {
                            "id": "CVE-FAKE-CVE",
                            "description": "A futurist vulnerability",
                            "link": "https://security-tracker.debian.org/tracker/CVE-FAKE-CVE",
                            "priority": SEVERITIES[level],
                        },
                    }),
                )
            }
            EventKind::MirrorStarted | EventKind::MirrorSuccess | EventKind::MirrorFailed => {
                mirror_sync(ctx, "TEST NOTIFICATION")
            }
            EventKind::ImageExpiry => image_expiry(ctx, &["latest", "v1"], expiry_days(config).unwrap_or(7)),
            EventKind::NotificationDisabled => notification_disabled(
                ctx,
                &DisabledNotification {
                    uuid: "00000000-0000-0000-0000-000000000000",
                    title: "Push to CI",
                    event: "repo_push",
                    method: "webhook",
                    target: "https://ci.example.com/hook?token=***",
                    reason: "disabled after failing continuously since 2026-12-01 10:00 UTC; last error: 503 response for webhook",
                },
            ),
            EventKind::RepoCreated | EventKind::RepoDeleted => repository_changed(
                ctx,
                &RepositoryChange {
                    visibility: "private",
                    performer: Some("someuser"),
                },
            ),
            EventKind::TagDeleted => tag_deleted(
                ctx,
                &DeletedTag {
                    tag: "latest",
                    manifest_digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                    reason: "deleted",
                    performer: Some("someuser"),
                },
            ),
        }
    }
}

/// A notification's filter, compiled once for the occurrences it is checked against.
#[derive(Debug, Clone)]
pub struct Filter {
    event: EventKind,
    rule: Rule,
    /// A namespace-wide notification's `repository-regex` (`Pattern` or `Nothing`).
    repository: Option<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Everything,
    Nothing,
    Pattern(regex::Regex),
    Level(usize),
}

impl Filter {
    /// Whether it needs the event data (so that deliveries that filter nothing need not parse it).
    pub fn needs_data(&self) -> bool {
        !matches!(self.rule, Rule::Everything) || self.repository.is_some()
    }

    /// Whether an occurrence passes.
    pub fn passes(&self, data: &Value) -> bool {
        let repository = match &self.repository {
            None => true,
            Some(Rule::Pattern(re)) => data["name"].as_str().is_some_and(|n| re.is_match(n)),
            Some(_) => false,
        };
        repository && self.rule_passes(data)
    }

    fn rule_passes(&self, data: &Value) -> bool {
        match &self.rule {
            Rule::Everything => true,
            Rule::Nothing => false,
            Rule::Pattern(re) if self.event.is_build() => {
                data["trigger_metadata"]["ref"].as_str().is_some_and(|r| re.is_match(r))
            }
            Rule::Pattern(re) => data["updated_tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().filter_map(Value::as_str).any(|t| re.is_match(t))),
            Rule::Level(level) => data["vulnerability"]["priority"]
                .as_str()
                .and_then(severity_index)
                .is_some_and(|i| i <= *level),
        }
    }
}

/// A `repo_image_expiry` notification's window, `days` (a positive integer, or a numeric string).
pub fn expiry_days(config: &Value) -> Option<u64> {
    let days = config.get("days")?;
    days.as_u64()
        .or_else(|| days.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|d| *d >= 1)
}

/// A `ref-regex` compiled to match the whole ref.
fn anchored(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{re})$"))
}

/// A vulnerability `level`: 0–5, as an integer or a numeric string.
fn parse_level(v: &Value) -> Result<usize, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= 5 => Ok(usize::try_from(n).unwrap_or(5)),
        _ => Err(format!("{v} is not a severity level from 0 (Critical) to 5 (Unknown)")),
    }
}

/// What an occurrence is about, in a few words for a list of deliveries: its build (short id and
/// tags) or its tags; `None` when its data names neither.
pub fn subject(data: &Value) -> Option<String> {
    let names = |key: &str| -> Vec<&str> {
        data[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let tags = |list: Vec<&str>| match list.len() {
        0 => None,
        1 => Some(format!("tag {}", list[0])),
        _ => Some(format!("tags {}", list.join(", "))),
    };
    if let Some(id) = data["build_id"].as_str().filter(|id| !id.is_empty()) {
        let short: String = id.chars().take(8).collect();
        return Some(match tags(names("docker_tags")) {
            Some(t) => format!("build {short} ({t})"),
            None => format!("build {short}"),
        });
    }
    tags(names("updated_tags"))
        .or_else(|| tags(names("tags")))
        .or_else(|| data["tag"].as_str().map(|t| format!("tag {t}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_names_its_build_or_its_tags() {
        let cases = [
            (json!({"updated_tags": ["v1"]}), Some("tag v1")),
            (json!({"updated_tags": ["v1", "latest"]}), Some("tags v1, latest")),
            (
                json!({"build_id": "0a1b2c3d-4e5f", "docker_tags": ["latest"]}),
                Some("build 0a1b2c3d (tag latest)"),
            ),
            (json!({"build_id": "0a1b2c3d-4e5f"}), Some("build 0a1b2c3d")),
            (json!({"tags": ["a", "b"], "vulnerability": {}}), Some("tags a, b")),
            (json!({"updated_tags": []}), None),
            (json!({}), None),
        ];
        for (data, want) in cases {
            assert_eq!(subject(&data).as_deref(), want, "{data}");
        }
    }

    fn ctx() -> RepoContext<'static> {
        RepoContext {
            hostname: "quay.example.com",
            scheme: "https",
            namespace: "acme",
            name: "web",
        }
    }

    #[test]
    fn names_round_trip_and_unknown_events_are_listed() {
        for e in EventKind::all() {
            assert_eq!(EventKind::parse(e.name()), Ok(*e));
        }
        let err = EventKind::parse("quota_warning").unwrap_err();
        assert!(
            err.starts_with("Invalid event 'quota_warning'. Must be one of: repo_push, build_queued"),
            "{err}"
        );
    }

    #[test]
    fn base_block_and_repo_push() {
        let v = repo_push(&ctx(), &["v1"], &["sha256:abc"]);
        assert_eq!(
            v,
            json!({"repository": "acme/web", "namespace": "acme", "name": "web",
                   "docker_url": "quay.example.com/acme/web",
                   "homepage": "https://quay.example.com/repository/acme/web",
                   "updated_tags": ["v1"], "manifest_digests": ["sha256:abc"]})
        );
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys[..5], ["repository", "namespace", "name", "docker_url", "homepage"]);
        assert_eq!(EventKind::RepoPush.summary(&v), "Repository acme/web updated");
        assert_eq!(EventKind::RepoPush.level(&v), Level::Primary);
    }

    #[test]
    fn build_filter_matches_whole_refs_like_quays_tests_but_anchored() {
        let e = EventKind::BuildSuccess;
        let no_ref = json!({});
        let empty_meta = json!({"trigger_metadata": {}});
        let branch = |r: &str| json!({"trigger_metadata": {"ref": r}});
        for cfg in [json!({}), json!({"ref-regex": ""})] {
            for d in [&no_ref, &empty_meta, &branch("refs/heads/somebranch")] {
                assert!(e.should_perform(d, &cfg));
            }
        }
        let master = json!({"ref-regex": "refs/heads/master"});
        assert!(!e.should_perform(&no_ref, &master));
        assert!(e.should_perform(&branch("refs/heads/master"), &master));
        assert!(
            !e.should_perform(&branch("refs/heads/master-old"), &master),
            "whole-ref match, not Quay's prefix"
        );
        let any_branch = json!({"ref-regex": "refs/heads/.+"});
        assert!(e.should_perform(&branch("refs/heads/somebranch"), &any_branch));
        assert!(!e.should_perform(&branch("refs/tags/sometag"), &any_branch));
        assert_eq!(
            e.validate_config(&json!({"ref-regex": "]["}), Reach::Repository)
                .unwrap_err()
                .field,
            "ref-regex"
        );
        assert!(
            e.validate_config(&json!({"ref-regex": "refs/heads/.+"}), Reach::Repository)
                .is_ok()
        );
    }

    #[test]
    fn push_filter_matches_any_whole_tag() {
        let e = EventKind::RepoPush;
        let pushed = |tags: &[&str]| json!({"updated_tags": tags});
        let releases = json!({"tag-regex": "v[0-9]+\\.[0-9]+"});
        assert!(e.filter(&releases).needs_data());
        assert!(e.should_perform(&pushed(&["v1.2"]), &releases));
        assert!(e.should_perform(&pushed(&["latest", "v1.2"]), &releases), "any tag");
        assert!(!e.should_perform(&pushed(&["v1.2-rc1"]), &releases), "the whole tag");
        assert!(!e.should_perform(&pushed(&["latest"]), &releases));
        assert!(!e.should_perform(&json!({}), &releases));
        assert!(e.should_perform(&pushed(&["latest"]), &json!({"tag-regex": ""})));
        assert_eq!(
            e.validate_config(&json!({"tag-regex": "("}), Reach::Repository)
                .unwrap_err()
                .field,
            "tag-regex"
        );
        assert_eq!(
            e.validate_config(&json!({"tag-regex": 5}), Reach::Repository)
                .unwrap_err()
                .field,
            "tag-regex"
        );
        assert!(
            EventKind::BuildSuccess
                .validate_config(&json!({"tag-regex": "("}), Reach::Repository)
                .is_ok(),
            "another event's key is kept and ignored, as Quay does with unknown keys"
        );
    }

    #[test]
    fn filters_that_need_no_data_let_every_occurrence_through() {
        let configs = [
            json!({}),
            json!({"ref-regex": ""}),
            json!({"ref-regex": null}),
            json!({"level": null}),
            json!({"ref-regex": "refs/heads/x"}),
            json!({"tag-regex": "v.*"}),
            json!({"level": 1}),
            json!({"days": 3}),
        ];
        let datas = [
            json!({}),
            json!({"trigger_metadata": {"ref": "refs/tags/v1"}}),
            json!({"vulnerability": {"priority": "Low"}}),
        ];
        for e in EventKind::all() {
            for cfg in &configs {
                if !e.filter(cfg).needs_data() {
                    for d in &datas {
                        assert!(e.should_perform(d, cfg), "{} with {cfg} and {d}", e.name());
                    }
                }
            }
        }
        assert!(
            EventKind::BuildSuccess
                .filter(&json!({"ref-regex": "refs/heads/x"}))
                .needs_data()
        );
        assert!(EventKind::VulnerabilityFound.filter(&json!({"level": 1})).needs_data());
        let broken = EventKind::RepoPush.filter(&json!({"tag-regex": "("}));
        assert!(
            broken.needs_data() && !broken.passes(&json!({"updated_tags": ["v1"]})),
            "a pattern that no longer compiles lets nothing through"
        );
    }

    #[test]
    fn vulnerability_level_filter_and_sample() {
        let e = EventKind::VulnerabilityFound;
        let crit = json!({"vulnerability": {"priority": "Critical"}});
        let low = json!({"vulnerability": {"priority": "Low"}});
        assert!(e.should_perform(&json!({}), &json!({})));
        assert!(!e.should_perform(&json!({}), &json!({"level": 3})));
        assert!(e.should_perform(&crit, &json!({"level": 3})));
        assert!(e.should_perform(&low, &json!({"level": "3"})));
        assert!(!e.should_perform(&low, &json!({"level": 1})));
        // The new-index marker no longer bypasses the level.
        let marked = json!({"vulnerable_index_report_created": "true", "vulnerability": {"priority": "Low"}});
        assert!(!e.should_perform(&marked, &json!({"level": 1})));
        for bad in [
            json!({"level": 6}),
            json!({"level": "high"}),
            json!({"level": -1}),
            json!({"level": 2.5}),
        ] {
            assert_eq!(
                e.validate_config(&bad, Reach::Repository).unwrap_err().field,
                "level",
                "{bad}"
            );
        }
        assert!(e.validate_config(&json!({"level": "0"}), Reach::Repository).is_ok());
        let sample = e.sample(&ctx(), &json!({"level": 2}), 0.0);
        assert_eq!(sample["vulnerability"]["priority"], "Medium");
        assert_eq!(e.level(&sample), Level::Warning);
        assert_eq!(
            e.summary(&sample),
            "Medium vulnerability detected in repository acme/web in 5 tags"
        );
        assert_eq!(
            e.sample(&ctx(), &json!({}), 0.0)["vulnerability"]["priority"],
            "Critical"
        );
    }

    #[test]
    fn build_payloads() {
        let tags = vec!["master".to_owned(), "latest".to_owned()];
        let meta = json!({"ref": "refs/heads/master", "commit": "abc1234def"});
        let facts = BuildFacts {
            build_id: "b-1",
            build_name: "abc1234",
            docker_tags: &tags,
            trigger_id: Some("t-1"),
            trigger_kind: Some("github"),
            trigger_metadata: Some(&meta),
            ..BuildFacts::default()
        };
        let q = build_queued(&ctx(), &facts);
        assert_eq!(q["homepage"], "https://quay.example.com/repository/acme/web/build/b-1");
        assert_eq!(q["repo"], "web");
        assert_eq!(q["trigger_manual"], false);
        assert!(q.get("build_name").is_none());
        let digests = vec!["sha256:m".to_owned()];
        let done = build_update(
            &ctx(),
            &BuildFacts {
                image_id: Some("sha256:c"),
                manifest_digests: &digests,
                ..facts.clone()
            },
        );
        assert_eq!(done["build_name"], "abc1234");
        assert_eq!(done["manifest_digests"], json!(["sha256:m"]));
        assert!(done.get("error_message").is_none());
        let failed = build_update(
            &ctx(),
            &BuildFacts {
                error_message: Some("boom"),
                docker_tags: &[],
                trigger_id: None,
                trigger_kind: None,
                trigger_metadata: None,
                ..facts
            },
        );
        assert_eq!(failed["error_message"], "boom");
        assert_eq!(failed["docker_tags"], json!(["latest"]));
        assert_eq!(failed["trigger_metadata"], json!({}));
        assert!(failed.get("image_id").is_none());
        assert_eq!(
            EventKind::BuildFailure.summary(&failed),
            "Build failure for repository acme/web [b-1]"
        );
    }

    #[test]
    fn vulnerability_payloads_single_and_summary() {
        let e = EventKind::VulnerabilityFound;
        let v = |id: &str, p: &str| json!({"id": id, "priority": p, "link": "https://x", "has_fix": true, "description": "d"});
        let tags: Vec<String> = (0..150).map(|i| format!("t{i}")).collect();
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let one = vulnerability_found(&ctx(), &tags, v("CVE-1", "High"));
        assert_eq!(one["tags"].as_array().map(Vec::len), Some(100));
        assert_eq!(one["vulnerability"]["id"], "CVE-1");
        assert_eq!(
            e.summary(&one),
            "High vulnerability detected in repository acme/web in 100 tags"
        );
        let list = [v("A", "High"), v("B", "High"), v("C", "Low")];
        let many = vulnerabilities_found(&ctx(), &["latest"], &list);
        assert_eq!(many["vulnerability"]["id"], "A", "the most severe stands for the list");
        assert_eq!(
            e.summary(&many),
            "2 High and 1 more vulnerabilities were detected in repository acme/web in 1 tags"
        );
        // The level filter reads the most severe entry.
        assert!(e.should_perform(&many, &json!({"level": 1})));
        assert!(!e.should_perform(&many, &json!({"level": 0})));
    }

    #[test]
    fn expiry_days_and_samples() {
        let e = EventKind::ImageExpiry;
        assert!(e.validate_config(&json!({"days": 5}), Reach::Repository).is_ok());
        for bad in [json!({}), json!({"days": 0}), json!({"days": "x"}), json!({"days": -2})] {
            assert_eq!(
                e.validate_config(&bad, Reach::Repository).unwrap_err().field,
                "days",
                "{bad}"
            );
        }
        let s = e.sample(&ctx(), &json!({"days": 5}), 0.0);
        assert_eq!(
            (s["expiring_in"].as_str(), s["days"].as_u64()),
            (Some("5 days"), Some(5))
        );
        let b = EventKind::BuildFailure.sample(&ctx(), &json!({}), 1.5);
        assert_eq!(
            b["homepage"],
            "https://quay.example.com/repository/acme/web/build/fake-build-id"
        );
        assert_eq!(b["trigger_metadata"]["commit_info"]["date"], 1.5);
        assert_eq!(b["error_message"], "This is a fake error message");
        assert_eq!(
            EventKind::BuildFailure.summary(&b),
            "Build failure for repository acme/web [fake-bu]"
        );
        assert_eq!(EventKind::BuildFailure.level(&b), Level::Error);
        let m = EventKind::MirrorFailed.sample(&ctx(), &json!({}), 0.0);
        assert_eq!(
            EventKind::MirrorFailed.summary(&m),
            "Repository Mirror failed for TEST NOTIFICATION"
        );
        assert!(
            EventKind::RepoPush
                .validate_config(&json!([]), Reach::Repository)
                .is_err()
        );
    }

    #[test]
    fn repository_regex_is_namespace_wide_and_matches_the_whole_name() {
        let e = EventKind::RepoPush;
        let cfg = json!({"repository-regex": "team/.+|web", "tag-regex": "v.*"});
        assert!(e.validate_config(&cfg, Reach::Namespace).is_ok());
        let refused = e.validate_config(&cfg, Reach::Repository).unwrap_err();
        assert_eq!(refused.field, "repository-regex");
        assert!(refused.to_string().contains("namespace-wide"), "{refused}");
        assert!(
            e.validate_config(&json!({"repository-regex": null}), Reach::Repository)
                .is_ok()
        );
        for bad in [json!({"repository-regex": "("}), json!({"repository-regex": 3})] {
            assert_eq!(
                e.validate_config(&bad, Reach::Namespace).unwrap_err().field,
                "repository-regex"
            );
        }
        let at = |name: &'static str, tag: &str| {
            let place = RepoContext { name, ..TEST_PLACE };
            repo_push(&place, &[tag], &["sha256:00"])
        };
        let filter = e.filter(&cfg);
        assert!(filter.needs_data());
        assert!(filter.passes(&at("web", "v1")));
        assert!(filter.passes(&at("team/app", "v1")));
        assert!(
            !filter.passes(&at("web", "latest")),
            "the event's own filter still applies"
        );
        assert!(!filter.passes(&at("webapp", "v1")), "a whole-name match");
        assert!(!filter.passes(&at("other", "v1")));
        assert!(
            EventKind::RepoCreated
                .filter(&json!({"repository-regex": ""}))
                .passes(&at("x", "y"))
        );
        assert!(
            !EventKind::RepoCreated
                .filter(&json!({"repository-regex": "("}))
                .passes(&at("x", "y"))
        );
    }

    #[test]
    fn repository_events_are_namespace_only_with_their_own_payload() {
        assert!(EventKind::RepoCreated.namespace_only() && EventKind::RepoDeleted.namespace_only());
        assert_eq!(EventKind::all().iter().filter(|e| e.namespace_only()).count(), 2);
        let change = RepositoryChange {
            visibility: "public",
            performer: Some("alice"),
        };
        let d = repository_changed(&TEST_PLACE, &change);
        assert_eq!(d["repository"], "acme/web");
        assert_eq!(d["namespace"], "acme");
        assert_eq!(d["name"], "web");
        assert_eq!(d["visibility"], "public");
        assert_eq!(d["performer"], "alice");
        assert_eq!(EventKind::RepoCreated.summary(&d), "Repository acme/web created");
        assert_eq!(EventKind::RepoDeleted.summary(&d), "Repository acme/web deleted");
        assert_eq!(EventKind::RepoDeleted.level(&d), Level::Warning);
        assert_eq!(EventKind::parse("repo_deleted"), Ok(EventKind::RepoDeleted));
    }

    #[test]
    fn a_namespace_wide_notification_is_reported_disabled_with_the_namespace_block() {
        let about = DisabledNotification {
            uuid: "u",
            title: "All pushes",
            event: "repo_push",
            method: "webhook",
            target: "https://ci.example.com/***",
            reason: "gone",
        };
        let place = NamespaceContext {
            hostname: "b.example",
            scheme: "https",
            namespace: "acme",
            organization: true,
        };
        let d = namespace_notification_disabled(&place, &about);
        assert_eq!(d["homepage"], "https://b.example/organization/acme");
        assert_eq!((d.get("repository"), &d["namespace"]), (None, &json!("acme")));
        assert_eq!(
            EventKind::NotificationDisabled.summary(&d),
            "Notification All pushes of namespace acme was disabled"
        );
        let text = crate::message::to_text(&crate::message::segments(EventKind::NotificationDisabled, &d, None));
        assert!(
            text.contains("of namespace acme (https://b.example/organization/acme)"),
            "{text}"
        );
        let user = NamespaceContext {
            organization: false,
            ..place
        };
        assert_eq!(user.block()["homepage"], "https://b.example/user/acme");
    }
}
