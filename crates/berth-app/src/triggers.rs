//! Build triggers as use cases: create (Berth addition; Quay creates them through OAuth flows),
//! activate with a configuration, list, show, delete, start by hand, and the webhook that starts
//! builds from pushes. Repository admins manage triggers; the webhook authenticates by the
//! trigger's secret as each service signs (see [`crate::trigger_payload`]).

use berth_store::builds::{self as store, NewBuild, TriggerRow};
use berth_store::repos;
use regex::Regex;
use serde_json::{Value, json};

use crate::builds::layout;
use crate::sealing::Purpose;
use crate::trigger_payload::{self as payload, Push};
use crate::{App, AppError, Ctx, Result};

/// What a trigger webhook did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// A build was queued.
    Queued(String),
    /// Nothing to build, and why.
    Ignored(String),
}

/// A webhook request as the HTTP layer received it.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest<'a> {
    /// `X-GitHub-Event`.
    pub github_event: Option<&'a str>,
    /// `X-Hub-Signature-256`.
    pub github_signature: Option<&'a str>,
    /// `X-Gitlab-Event`.
    pub gitlab_event: Option<&'a str>,
    /// `X-Gitlab-Token`.
    pub gitlab_token: Option<&'a str>,
    /// The password of HTTP Basic auth, or a `token` query parameter (custom triggers).
    pub custom_secret: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// A trigger named by a webhook, found and (for GitLab and custom triggers) authenticated before
/// the webhook's body is read.
#[derive(Debug)]
pub struct WebhookTarget {
    trigger: TriggerRow,
}

fn webhook_denied() -> AppError {
    AppError::Forbidden("the webhook's signature or token does not match the trigger's secret".into())
}

/// How a manual run names what to build.
#[derive(Debug, Clone, Default)]
pub struct ManualRun {
    /// A branch to build at its current head.
    pub branch_name: Option<String>,
    /// A tag to build.
    pub tag_name: Option<String>,
    /// A commit to build (with `branch_name`/`tag_name` for the ref, else the default branch).
    pub commit_sha: Option<String>,
}

/// Checks that `service` is one triggers know.
fn check_service(service: &str) -> Result<()> {
    if payload::SERVICES.contains(&service) {
        Ok(())
    } else {
        Err(AppError::invalid(format!(
            "unknown trigger service '{service}'; use one of {}",
            payload::SERVICES.join(", ")
        )))
    }
}

/// Checks and normalises a trigger configuration.
fn checked_config(config: &Value) -> Result<Value> {
    let obj = config
        .as_object()
        .ok_or_else(|| AppError::invalid("config must be a JSON object"))?;
    let source = obj
        .get("build_source")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| AppError::invalid("config.build_source (the git URL to clone) is required"))?;
    if source.starts_with('-') || source.chars().any(char::is_whitespace) {
        return Err(AppError::invalid(format!(
            "config.build_source '{source}' is not a git URL"
        )));
    }
    let (dockerfile, context) = layout(
        None,
        obj.get("dockerfile_path").and_then(Value::as_str),
        obj.get("context").and_then(Value::as_str),
    )
    .map_err(|e| AppError::invalid(format!("config: {e}")))?;
    if let Some(re) = obj
        .get("branchtag_regex")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        Regex::new(re).map_err(|e| AppError::invalid(format!("config.branchtag_regex is not a valid regex: {e}")))?;
    }
    if let Some(t) = obj.get("tag_templates")
        && !t.as_array().is_some_and(|l| l.iter().all(Value::is_string))
    {
        return Err(AppError::invalid("config.tag_templates must be a list of strings"));
    }
    for flag in ["default_tag_from_ref", "latest_for_default_branch"] {
        if obj.get(flag).is_some_and(|v| !v.is_boolean()) {
            return Err(AppError::invalid(format!("config.{flag} must be true or false")));
        }
    }
    let mut out = config.clone();
    out["dockerfile_path"] = json!(dockerfile);
    out["context"] = json!(context);
    Ok(out)
}

/// The default branch in a `git ls-remote --symref` listing (`master` when it names none).
fn default_branch_in(listing: &str) -> String {
    listing
        .lines()
        .find_map(|l| {
            l.strip_prefix("ref: refs/heads/")
                .and_then(|rest| rest.split('\t').next())
        })
        .unwrap_or("master")
        .to_owned()
}

/// The commit of ref `r` in a `git ls-remote` listing.
fn commit_in(listing: &str, r: &str) -> Option<String> {
    listing
        .lines()
        .filter(|l| !l.starts_with("ref: "))
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, name)| *name == r)
        .map(|(sha, _)| sha.to_owned())
}

/// Whether the trigger's `branchtag_regex` lets a ref build (full match on `heads/x`/`tags/x`).
fn ref_allowed(config: &Value, r: &str) -> bool {
    match config["branchtag_regex"].as_str().filter(|s| !s.is_empty()) {
        Some(re) => Regex::new(&format!("^(?:{re})$")).is_ok_and(|re| re.is_match(payload::ref_for_filter(r))),
        None => true,
    }
}

impl App {
    async fn trigger_of(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        uuid: &str,
    ) -> Result<(berth_store::repos::RepoRow, TriggerRow)> {
        let repo = self.admin_repo(&ctx.caller, namespace, name).await?;
        let t = store::trigger(&mut self.store.conn().await?, repo.id, uuid)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no trigger {uuid} in {namespace}/{name}")))?;
        Ok((repo, t))
    }

    /// Creates an inactive trigger for `service` (repository `admin`), with a fresh webhook secret.
    pub async fn create_trigger(&self, ctx: &Ctx, namespace: &str, name: &str, service: &str) -> Result<TriggerRow> {
        let repo = self.admin_repo(&ctx.caller, namespace, name).await?;
        check_service(service)?;
        let mut tx = self.store.begin().await?;
        let t = self.insert_trigger(&mut tx, ctx, &repo, service).await?;
        tx.commit().await?;
        Ok(t)
    }

    /// Creates a trigger for `service` and activates it with `config` (repository `admin`), in one
    /// transaction: a refused configuration leaves no trigger behind (the UI's "Add trigger").
    pub async fn add_trigger(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        service: &str,
        config: &Value,
    ) -> Result<TriggerRow> {
        let repo = self.admin_repo(&ctx.caller, namespace, name).await?;
        check_service(service)?;
        let config = checked_config(config)?;
        let mut tx = self.store.begin().await?;
        let t = self.insert_trigger(&mut tx, ctx, &repo, service).await?;
        self.activate_in(&mut tx, ctx, &repo, &t, &config).await?;
        tx.commit().await?;
        Ok(store::trigger(&mut self.store.conn().await?, repo.id, &t.uuid)
            .await?
            .unwrap_or(t))
    }

    /// Inserts an inactive trigger with a fresh, sealed webhook secret, and its audit entry.
    async fn insert_trigger(
        &self,
        tx: &mut berth_store::Tx,
        ctx: &Ctx,
        repo: &berth_store::repos::RepoRow,
        service: &str,
    ) -> Result<TriggerRow> {
        let p = ctx.caller.principal()?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let secret = self
            .keyring
            .seal(Purpose::TriggerSecret, &crate::secret::random_token(40))?;
        let t = store::insert_trigger(tx, &uuid, repo.id, service, &secret, p.id.0).await?;
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "trigger_id": uuid, "service": service});
        crate::audit::record(
            tx,
            ctx,
            "add_repo_trigger",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        Ok(t)
    }

    /// Activates a trigger with its configuration (repository `admin`).
    pub async fn activate_trigger(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        uuid: &str,
        config: &Value,
    ) -> Result<TriggerRow> {
        let (repo, t) = self.trigger_of(ctx, namespace, name, uuid).await?;
        let config = checked_config(config)?;
        let mut tx = self.store.begin().await?;
        self.activate_in(&mut tx, ctx, &repo, &t, &config).await?;
        tx.commit().await?;
        Ok(store::trigger(&mut self.store.conn().await?, repo.id, uuid)
            .await?
            .unwrap_or(t))
    }

    /// Activates `t` with a checked configuration, and its audit entry, in `tx`.
    async fn activate_in(
        &self,
        tx: &mut berth_store::Tx,
        ctx: &Ctx,
        repo: &berth_store::repos::RepoRow,
        t: &TriggerRow,
        config: &Value,
    ) -> Result<()> {
        store::activate_trigger(tx, t.id, config).await?;
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "trigger_id": t.uuid, "service": t.service});
        crate::audit::record(
            tx,
            ctx,
            "setup_repo_trigger",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        Ok(())
    }

    /// The triggers of a repository (repository `admin`).
    pub async fn list_triggers(&self, ctx: &Ctx, namespace: &str, name: &str) -> Result<Vec<TriggerRow>> {
        let repo = self.admin_repo(&ctx.caller, namespace, name).await?;
        Ok(store::triggers(&mut self.store.conn().await?, repo.id).await?)
    }

    /// One trigger (repository `admin`).
    pub async fn get_trigger(&self, ctx: &Ctx, namespace: &str, name: &str, uuid: &str) -> Result<TriggerRow> {
        Ok(self.trigger_of(ctx, namespace, name, uuid).await?.1)
    }

    /// Deletes a trigger (repository `admin`); its builds stay.
    pub async fn delete_trigger(&self, ctx: &Ctx, namespace: &str, name: &str, uuid: &str) -> Result<()> {
        let (repo, t) = self.trigger_of(ctx, namespace, name, uuid).await?;
        let mut tx = self.store.begin().await?;
        store::delete_trigger(&mut tx, t.id).await?;
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "trigger_id": uuid, "service": t.service});
        crate::audit::record(
            &mut tx,
            ctx,
            "delete_repo_trigger",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a trigger's build by hand (repository `admin`, as Quay): a branch or tag at its
    /// current head (resolved with `git ls-remote`), or a given commit.
    pub async fn start_trigger(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        uuid: &str,
        run: &ManualRun,
    ) -> Result<store::BuildRow> {
        self.builds_enabled()?;
        let (repo, t) = self.trigger_of(ctx, namespace, name, uuid).await?;
        if !t.activated {
            return Err(AppError::invalid("the trigger is not activated"));
        }
        if run.branch_name.is_some() && run.tag_name.is_some() {
            return Err(AppError::invalid("give branch_name or tag_name, not both"));
        }
        let source = t.config.0["build_source"].as_str().unwrap_or_default().to_owned();
        // One `git ls-remote --symref` names the default branch and every ref's commit. Without a
        // ref or a commit the listing is needed; with both it only fills `default_branch`.
        let listing = match self.ls_remote(&source, &["--symref"]).await {
            Ok(l) => Some(l),
            Err(_) if run.commit_sha.is_some() && (run.branch_name.is_some() || run.tag_name.is_some()) => None,
            Err(e) => return Err(e),
        };
        let default_branch = listing.as_deref().map(default_branch_in).unwrap_or_default();
        let r = match (&run.branch_name, &run.tag_name) {
            (Some(b), _) => format!("refs/heads/{b}"),
            (None, Some(tag)) => format!("refs/tags/{tag}"),
            (None, None) => format!("refs/heads/{default_branch}"),
        };
        let commit = match &run.commit_sha {
            Some(c) => c.clone(),
            None => commit_in(listing.as_deref().unwrap_or_default(), &r)
                .ok_or_else(|| AppError::invalid(format!("{r} does not exist in {source}")))?,
        };
        let body = json!({"commit": commit, "ref": r, "default_branch": default_branch});
        let meta = match payload::custom(&body, &source).map_err(AppError::invalid)? {
            Push::Build(m) => m,
            Push::Ignore(why) => return Err(AppError::invalid(why)),
        };
        let p = ctx.caller.principal()?;
        self.queue_trigger_build(ctx, &repo, &t, meta, Some(&p.name), Some(p.id.0))
            .await
    }

    /// Runs `git ls-remote` against a trigger's source.
    async fn ls_remote(&self, source: &str, args: &[&str]) -> Result<String> {
        let out = tokio::process::Command::new("git")
            .arg("ls-remote")
            .args(args)
            .arg("--")
            .arg(source)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .await
            .map_err(|e| AppError::Unavailable(format!("could not run git: {e}")))?;
        if !out.status.success() {
            return Err(AppError::invalid(format!(
                "git ls-remote {source} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Queues the build of a push for a trigger.
    async fn queue_trigger_build(
        &self,
        ctx: &Ctx,
        repo: &berth_store::repos::RepoRow,
        t: &TriggerRow,
        meta: Value,
        manual_user: Option<&str>,
        performer: Option<i64>,
    ) -> Result<store::BuildRow> {
        let config = &t.config.0;
        let tags = payload::tags_for(config, &meta);
        let commit = meta["commit"].as_str().unwrap_or_default().to_owned();
        let source = berth_core::BuildSource::Git {
            url: config["build_source"].as_str().unwrap_or_default().to_owned(),
            commit,
        };
        let display = meta["commit_info"]["short_sha"].as_str().unwrap_or_default().to_owned();
        let new = NewBuild {
            uuid: &uuid::Uuid::new_v4().to_string(),
            repo: repo.id,
            display_name: &display,
            docker_tags: &tags,
            source: &source,
            dockerfile_path: config["dockerfile_path"].as_str().unwrap_or("Dockerfile"),
            context: config["context"].as_str().unwrap_or_default(),
            trigger_id: Some(t.id),
            trigger_metadata: &meta,
            manual_user,
            performer_id: performer.or(t.connected_user_id),
        };
        self.queue_build(ctx, repo, &new, Some(t)).await
    }

    /// A trigger's webhook secret, opened (trigger views show it to the repository's admins).
    pub fn trigger_secret(&self, t: &TriggerRow) -> Result<String> {
        self.keyring.open(Purpose::TriggerSecret, &t.secret)
    }

    /// Finds the trigger a webhook names and, for GitLab and custom triggers, checks its token,
    /// all before the body is read. Builds off is 503; an unknown trigger 404; a wrong token 403.
    pub async fn webhook_target(&self, uuid: &str, req: &WebhookRequest<'_>) -> Result<WebhookTarget> {
        self.builds_enabled()?;
        let t = store::trigger_any(&mut self.store.conn().await?, uuid)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no trigger {uuid}")))?;
        let secret = self.trigger_secret(&t)?;
        let secret_ok = match t.service.as_str() {
            // GitHub signs the body: checked once it is read.
            "github" => true,
            "gitlab" => payload::secret_ok(&secret, req.gitlab_token),
            _ => payload::secret_ok(&secret, req.custom_secret),
        };
        if !secret_ok {
            return Err(webhook_denied());
        }
        Ok(WebhookTarget { trigger: t })
    }

    /// Handles a webhook's body for a trigger found by [`App::webhook_target`]: checks GitHub's
    /// signature, maps the push (malformed is 400), applies the branch/tag filter and queues the
    /// build.
    pub async fn trigger_webhook(&self, target: WebhookTarget, req: &WebhookRequest<'_>) -> Result<WebhookOutcome> {
        let t = target.trigger;
        let uuid = t.uuid.clone();
        if t.service == "github"
            && !payload::github_signature_ok(&self.trigger_secret(&t)?, req.body, req.github_signature)
        {
            return Err(webhook_denied());
        }
        let body: Value =
            serde_json::from_slice(req.body).map_err(|e| AppError::invalid(format!("the body is not JSON: {e}")))?;
        let source = t.config.0["build_source"].as_str().unwrap_or_default().to_owned();
        let push = match t.service.as_str() {
            "github" => payload::github(req.github_event.unwrap_or("push"), &body),
            "gitlab" => payload::gitlab(req.gitlab_event.unwrap_or("Push Hook"), &body),
            _ => payload::custom(&body, &source),
        }
        .map_err(AppError::invalid)?;
        if !t.activated {
            return Ok(WebhookOutcome::Ignored("the trigger is not activated".into()));
        }
        let meta = match push {
            Push::Build(m) => m,
            Push::Ignore(why) => return Ok(WebhookOutcome::Ignored(why)),
        };
        let r = meta["ref"].as_str().unwrap_or_default();
        if !ref_allowed(&t.config.0, r) {
            return Ok(WebhookOutcome::Ignored(format!(
                "{r} does not match the trigger's branchtag_regex"
            )));
        }
        let repo = repos::by_id(&mut self.store.conn().await?, t.repository_id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no trigger {uuid}")))?;
        let build = self
            .queue_trigger_build(&Ctx::system(), &repo, &t, meta, None, None)
            .await?;
        Ok(WebhookOutcome::Queued(build.uuid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked() {
        let ok = checked_config(
            &json!({"build_source": "file:///src", "dockerfile_path": "/app/Dockerfile", "context": "/app"}),
        )
        .unwrap();
        assert_eq!(ok["dockerfile_path"], "app/Dockerfile");
        assert_eq!(ok["context"], "app");
        for (bad, why) in [
            (json!([]), "JSON object"),
            (json!({}), "build_source"),
            (json!({"build_source": "--upload-pack=evil"}), "not a git URL"),
            (
                json!({"build_source": "u", "dockerfile_path": "../x"}),
                "leaves the build context",
            ),
            (json!({"build_source": "u", "branchtag_regex": "(("}), "branchtag_regex"),
            (json!({"build_source": "u", "tag_templates": "x"}), "tag_templates"),
            (
                json!({"build_source": "u", "latest_for_default_branch": "yes"}),
                "latest_for_default_branch",
            ),
        ] {
            let e = checked_config(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn ls_remote_listings() {
        let listing = "ref: refs/heads/main\tHEAD\nabc123\tHEAD\nabc123\trefs/heads/main\ndef456\trefs/tags/v1\n";
        assert_eq!(default_branch_in(listing), "main");
        assert_eq!(default_branch_in(""), "master");
        assert_eq!(commit_in(listing, "refs/tags/v1").as_deref(), Some("def456"));
        assert_eq!(commit_in(listing, "refs/heads/nope"), None);
    }

    #[test]
    fn branch_tag_filter_is_anchored() {
        let c = json!({"branchtag_regex": "heads/(master|release-.*)"});
        assert!(ref_allowed(&c, "refs/heads/master"));
        assert!(ref_allowed(&c, "refs/heads/release-1"));
        assert!(!ref_allowed(&c, "refs/heads/master-old"));
        assert!(!ref_allowed(&c, "refs/tags/v1"));
        assert!(ref_allowed(&json!({}), "refs/tags/v1"));
    }
}
