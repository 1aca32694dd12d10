//! Repositories: who may see and do what (the one place permission facts are gathered), creation,
//! listing, deletion, settings, and explicit permissions for users, robots and teams.

use berth_core::{
    Access, AccountId, AccountKind, AccountName, RepoAccessFacts, RepoName, RepoPath, RepoRole, Scope, TeamName,
    TeamRole, Visibility, effective_repo_role,
};
use berth_notify::EventKind;
use berth_store::accounts::{self, AccountRow};
use berth_store::repos::{self, RepoRow};
use berth_store::{Exec, teams};
use serde_json::json;

use crate::audit::record;
use crate::{App, AppError, Caller, Ctx, Result};

/// What [`App::create_repo`] needs.
#[derive(Debug, Clone)]
pub struct NewRepo {
    /// The owning user or organization.
    pub namespace: String,
    /// The name inside the namespace.
    pub name: String,
    /// Public or private.
    pub visibility: Visibility,
    /// Free text.
    pub description: String,
}

/// A repository with the caller's role on it.
#[derive(Debug, Clone)]
pub struct RepoWithRole {
    /// The repository.
    pub repo: RepoRow,
    /// The caller's effective role.
    pub role: RepoRole,
}

/// An explicit grant to a user or robot, as the permissions API shows it.
#[derive(Debug, Clone)]
pub struct UserPermission {
    /// The account's name.
    pub name: String,
    /// Whether it is a robot.
    pub is_robot: bool,
    /// The granted role.
    pub role: RepoRole,
    /// Whether the account belongs to a team of the repository's organization.
    pub is_org_member: bool,
}

/// An explicit grant to a team.
#[derive(Debug, Clone)]
pub struct TeamPermission {
    /// The team's name.
    pub name: String,
    /// The granted role.
    pub role: RepoRole,
}

/// Whose view of the repositories a caller has, as `App::repo_role` decides it for one
/// repository (`effective_repo_role`): public repositories to everyone; the rest only to a
/// credential that may read repositories at all.
pub(crate) fn viewer(caller: &Caller) -> repos::Viewer {
    match caller.account() {
        None => repos::Viewer::Public,
        Some(p) if p.scopes.is_some_and(|s| s.repo_cap().is_none()) => repos::Viewer::Public,
        Some(p) => match p.build_repo {
            Some(only) => repos::Viewer::Repository(only),
            None if p.acts_as_superuser() => repos::Viewer::Everything,
            None => repos::Viewer::Account(p.id),
        },
    }
}

impl App {
    /// The caller's strongest team role in organization `org`, if any.
    pub(crate) async fn org_role(
        &self,
        ex: &mut impl Exec,
        caller: &Caller,
        org: AccountId,
    ) -> Result<Option<TeamRole>> {
        let Some(p) = caller.account() else {
            return Ok(None);
        };
        Ok(teams::of_member_in_org(ex, p.id, org)
            .await?
            .iter()
            .map(|t| t.role)
            .max())
    }

    /// The caller's effective role on a repository, `None` if it may not see it.
    pub(crate) async fn repo_role(
        &self,
        ex: &mut impl Exec,
        caller: &Caller,
        repo: &RepoRow,
    ) -> Result<Option<RepoRole>> {
        let public = repo.visibility == Visibility::Public;
        let Some(p) = caller.account() else {
            return Ok(public.then_some(RepoRole::Read));
        };
        if let Some(only) = p.build_repo {
            return Ok(if only == repo.id {
                Some(RepoRole::Write)
            } else {
                public.then_some(RepoRole::Read)
            });
        }
        let facts = RepoAccessFacts {
            public,
            superuser: p.acts_as_superuser(),
            owns_namespace: p.kind == AccountKind::User && p.id == repo.namespace_id,
            org_role: self.org_role(ex, caller, repo.namespace_id).await?,
            explicit: repos::explicit_roles(ex, repo.id, p.id).await?.into_iter().max(),
        };
        Ok(effective_repo_role(&facts, p.scopes))
    }

    /// The caller's role on the repository at `path`, `None` if it does not exist or is hidden.
    pub async fn repo_role_by_path(&self, caller: &Caller, path: &RepoPath) -> Result<Option<RepoRole>> {
        let mut conn = self.store.conn().await?;
        match repos::by_path(&mut conn, path.namespace.as_str(), path.name.as_str()).await? {
            Some(repo) => self.repo_role(&mut conn, caller, &repo).await,
            None => Ok(None),
        }
    }

    /// Whether a repository exists at `path` (for internal decisions only; never tell callers).
    pub(crate) async fn repo_exists(&self, path: &RepoPath) -> Result<bool> {
        let mut conn = self.store.conn().await?;
        Ok(repos::by_path(&mut conn, path.namespace.as_str(), path.name.as_str())
            .await?
            .is_some())
    }

    /// Whether the caller may create repositories in `namespace`: its own user namespace, an
    /// organization where it is in an admin or creator team, or anywhere as a superuser; a token
    /// additionally needs `repo:create`.
    pub async fn may_create_in(&self, caller: &Caller, namespace: &str) -> Result<bool> {
        let Some(p) = caller.account() else {
            return Ok(false);
        };
        if !p.allows(Scope::RepoCreate) {
            return Ok(false);
        }
        let mut conn = self.store.conn().await?;
        let Some(ns) = accounts::by_name(&mut conn, namespace).await? else {
            return Ok(false);
        };
        Ok(match ns.kind {
            AccountKind::Robot => false,
            _ if p.acts_as_superuser() => true,
            AccountKind::User => p.kind == AccountKind::User && p.id == ns.id,
            AccountKind::Organization => self
                .org_role(&mut conn, caller, ns.id)
                .await?
                .is_some_and(|r| r >= TeamRole::Creator),
        })
    }

    /// Loads a repository and checks that the caller has `need` on it. A repository the caller may
    /// not see answers exactly like a missing one: 401 to anonymous callers, 404 to others.
    pub async fn repo_access(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        need: RepoRole,
    ) -> Result<(RepoRow, RepoRole)> {
        let mut conn = self.store.conn().await?;
        let repo = repos::by_path(&mut conn, namespace, name).await?;
        let role = match &repo {
            Some(r) => self.repo_role(&mut conn, caller, r).await?,
            None => None,
        };
        match (Access::check(role, need), repo, role) {
            (Access::Granted, Some(repo), Some(role)) => Ok((repo, role)),
            (_, _, _) if caller.account().is_none() => Err(AppError::Unauthenticated),
            (Access::Forbidden, _, _) => Err(AppError::forbidden()),
            _ => Err(AppError::not_found()),
        }
    }

    /// Creates a repository. In an organization, a creator who is not an organization admin is
    /// granted `admin` on it, as Quay does.
    pub async fn create_repo(&self, ctx: &Ctx, new: &NewRepo) -> Result<RepoRow> {
        let ns_name = AccountName::parse(&new.namespace)
            .map_err(|e| AppError::invalid(e.to_string().replace("invalid name", "invalid namespace")))?;
        let name = RepoName::parse(&new.name)?;
        let p = ctx.caller.principal()?;
        if !self.may_create_in(&ctx.caller, ns_name.as_str()).await? {
            return Err(AppError::forbidden());
        }
        let mut tx = self.store.begin().await?;
        let ns = accounts::by_name(&mut tx, ns_name.as_str())
            .await?
            .ok_or_else(AppError::not_found)?;
        if repos::by_path(&mut tx, ns_name.as_str(), name.as_str())
            .await?
            .is_some()
        {
            return Err(AppError::Conflict("Repository already exists".into()));
        }
        let repo = repos::insert(&mut tx, ns.id, name.as_str(), new.visibility, &new.description).await?;
        if ns.kind == AccountKind::Organization && !p.acts_as_superuser() {
            let role = self.org_role(&mut tx, &ctx.caller, ns.id).await?;
            if role != Some(TeamRole::Admin) {
                repos::set_user_role(&mut tx, repo.id, p.id, RepoRole::Admin).await?;
            }
        }
        let meta = json!({"repo": repo.name, "namespace": repo.namespace});
        record(&mut tx, ctx, "create_repo", Some(ns.id), Some(repo.id), meta).await?;
        self.raise_repository_change(&mut tx, ctx, &repo, EventKind::RepoCreated)
            .await?;
        tx.commit().await?;
        Ok(repo)
    }

    /// The repositories the caller can see: those of `namespace`, or every public one.
    pub async fn list_repos(
        &self,
        caller: &Caller,
        namespace: Option<&str>,
        public: bool,
    ) -> Result<Vec<RepoWithRole>> {
        let mut conn = self.store.conn().await?;
        let candidates = match namespace {
            Some(ns) => match accounts::by_name(&mut conn, ns).await? {
                Some(a) => repos::of_namespace(&mut conn, a.id).await?,
                None => Vec::new(),
            },
            None if public => repos::public(&mut conn, 1000).await?,
            None => {
                return Err(AppError::invalid("You must specify either a namespace or public=true"));
            }
        };
        let mut out = Vec::with_capacity(candidates.len());
        for repo in candidates {
            if let Some(role) = self.repo_role(&mut conn, caller, &repo).await? {
                out.push(RepoWithRole { repo, role });
            }
        }
        Ok(out)
    }

    /// Raises `repo_created` or `repo_deleted` in `tx` (namespace-wide notifications only).
    async fn raise_repository_change(
        &self,
        tx: &mut berth_store::Tx,
        ctx: &Ctx,
        repo: &RepoRow,
        event: EventKind,
    ) -> Result<()> {
        let performer = ctx.caller.account();
        let change = berth_notify::events::RepositoryChange {
            visibility: repo.visibility.as_str(),
            performer: performer.map(|p| p.name.as_str()),
        };
        let data =
            berth_notify::events::repository_changed(&crate::events::repo_context(&self.settings, repo), &change);
        self.raise(tx, repo, event.name(), &data, performer).await?;
        Ok(())
    }

    /// Deletes a repository (admin).
    pub async fn delete_repo(&self, ctx: &Ctx, namespace: &str, name: &str) -> Result<()> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Admin).await?;
        let mut tx = self.store.begin().await?;
        // Raised first: its deliveries belong to namespace-wide notifications, which outlive it.
        self.raise_repository_change(&mut tx, ctx, &repo, EventKind::RepoDeleted)
            .await?;
        repos::delete(&mut tx, repo.id).await?;
        let meta = json!({"repo": repo.name, "namespace": repo.namespace});
        record(
            &mut tx,
            ctx,
            "delete_repo",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes the description (write).
    pub async fn set_repo_description(&self, ctx: &Ctx, namespace: &str, name: &str, description: &str) -> Result<()> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Write).await?;
        let mut tx = self.store.begin().await?;
        repos::set_description(&mut tx, repo.id, description).await?;
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "description": description});
        record(
            &mut tx,
            ctx,
            "set_repo_description",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes a repository's state (admin), as Quay's `changestate` does: `NORMAL`, `READ_ONLY`
    /// (no writes at all) or `MIRROR` (only its mirror's sync writes).
    pub async fn set_repo_state(&self, ctx: &Ctx, namespace: &str, name: &str, state: &str) -> Result<RepoRow> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Admin).await?;
        let state = berth_core::RepoState::parse(state).map_err(|e| AppError::invalid_field("state", e.to_string()))?;
        let mut tx = self.store.begin().await?;
        repos::set_state(&mut tx, repo.id, state).await?;
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "state_changed": state.as_str()});
        record(
            &mut tx,
            ctx,
            "change_repo_state",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        let repo = repos::by_id(&mut tx, repo.id).await?.ok_or_else(AppError::not_found)?;
        tx.commit().await?;
        Ok(repo)
    }

    /// Changes the visibility (admin).
    pub async fn set_repo_visibility(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        visibility: Visibility,
    ) -> Result<()> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Admin).await?;
        let mut tx = self.store.begin().await?;
        repos::set_visibility(&mut tx, repo.id, visibility).await?;
        let meta = json!({"repo": repo.name, "namespace": repo.namespace, "visibility": visibility.as_str()});
        record(
            &mut tx,
            ctx,
            "change_repo_visibility",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The explicit grants to users and robots (admin).
    pub async fn user_permissions(&self, caller: &Caller, namespace: &str, name: &str) -> Result<Vec<UserPermission>> {
        let (repo, _) = self.repo_access(caller, namespace, name, RepoRole::Admin).await?;
        let mut conn = self.store.conn().await?;
        let grants = repos::user_grants(&mut conn, repo.id).await?;
        let mut out = Vec::with_capacity(grants.len());
        for g in grants {
            let is_org_member = !teams::of_member_in_org(&mut conn, g.account_id, repo.namespace_id)
                .await?
                .is_empty();
            out.push(UserPermission {
                name: g.name,
                is_robot: g.kind == AccountKind::Robot,
                role: g.role,
                is_org_member,
            });
        }
        Ok(out)
    }

    /// One user's or robot's explicit grant (admin); 400 when there is none, as Quay answers.
    pub async fn user_permission(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        username: &str,
    ) -> Result<UserPermission> {
        self.user_permissions(caller, namespace, name)
            .await?
            .into_iter()
            .find(|p| p.name == username)
            .ok_or_else(|| {
                AppError::invalid(format!(
                    "User {username} does not have permission for repo {namespace}/{name}"
                ))
            })
    }

    /// Grants `role` to a user or robot (admin). Robots may only be granted repositories of their own
    /// namespace.
    pub async fn set_user_permission(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        username: &str,
        role: RepoRole,
    ) -> Result<UserPermission> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Admin).await?;
        let mut tx = self.store.begin().await?;
        let account = grantee(&mut tx, username).await?;
        if account.kind == AccountKind::Robot && account.robot_owner_id != Some(repo.namespace_id.0) {
            return Err(AppError::invalid(format!(
                "Cannot add robot {username} from another namespace"
            )));
        }
        repos::set_user_role(&mut tx, repo.id, account.id, role).await?;
        let meta =
            json!({"username": account.name, "repo": repo.name, "namespace": repo.namespace, "role": role.as_str()});
        record(
            &mut tx,
            ctx,
            "change_repo_permission",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        let is_org_member = !teams::of_member_in_org(&mut tx, account.id, repo.namespace_id)
            .await?
            .is_empty();
        tx.commit().await?;
        Ok(UserPermission {
            name: account.name,
            is_robot: account.kind == AccountKind::Robot,
            role,
            is_org_member,
        })
    }

    /// Removes a user's or robot's grant (admin).
    pub async fn delete_user_permission(&self, ctx: &Ctx, namespace: &str, name: &str, username: &str) -> Result<()> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Admin).await?;
        let mut tx = self.store.begin().await?;
        let account = grantee(&mut tx, username).await?;
        if !repos::delete_user_role(&mut tx, repo.id, account.id).await? {
            return Err(AppError::invalid(format!(
                "User {username} does not have permission for repo {namespace}/{name}"
            )));
        }
        let meta = json!({"username": account.name, "repo": repo.name, "namespace": repo.namespace});
        record(
            &mut tx,
            ctx,
            "delete_repo_permission",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The explicit grants to teams (admin).
    pub async fn team_permissions(&self, caller: &Caller, namespace: &str, name: &str) -> Result<Vec<TeamPermission>> {
        let (repo, _) = self.repo_access(caller, namespace, name, RepoRole::Admin).await?;
        let mut conn = self.store.conn().await?;
        Ok(repos::team_grants(&mut conn, repo.id)
            .await?
            .into_iter()
            .map(|g| TeamPermission {
                name: g.name,
                role: g.role,
            })
            .collect())
    }

    /// Grants `role` to a team of the repository's organization (admin).
    pub async fn set_team_permission(
        &self,
        ctx: &Ctx,
        namespace: &str,
        name: &str,
        team: &str,
        role: RepoRole,
    ) -> Result<TeamPermission> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Admin).await?;
        let team_name = TeamName::parse(team)?;
        let mut tx = self.store.begin().await?;
        let t = teams::by_name(&mut tx, repo.namespace_id, team_name.as_str())
            .await?
            .ok_or_else(|| AppError::invalid(format!("Unknown team: {team}")))?;
        repos::set_team_role(&mut tx, repo.id, t.id, role).await?;
        let meta = json!({"team": t.name, "repo": repo.name, "namespace": repo.namespace, "role": role.as_str()});
        record(
            &mut tx,
            ctx,
            "change_repo_permission",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        Ok(TeamPermission { name: t.name, role })
    }

    /// Removes a team's grant (admin).
    pub async fn delete_team_permission(&self, ctx: &Ctx, namespace: &str, name: &str, team: &str) -> Result<()> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Admin).await?;
        let mut tx = self.store.begin().await?;
        let t = teams::by_name(&mut tx, repo.namespace_id, team)
            .await?
            .ok_or_else(|| AppError::invalid(format!("Unknown team: {team}")))?;
        if !repos::delete_team_role(&mut tx, repo.id, t.id).await? {
            return Err(AppError::invalid(format!(
                "Team {team} does not have permission for repo {namespace}/{name}"
            )));
        }
        let meta = json!({"team": t.name, "repo": repo.name, "namespace": repo.namespace});
        record(
            &mut tx,
            ctx,
            "delete_repo_permission",
            Some(repo.namespace_id),
            Some(repo.id),
            meta,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A user or robot that may receive a grant; organizations may not.
async fn grantee(ex: &mut impl Exec, username: &str) -> Result<AccountRow> {
    accounts::by_name(ex, username)
        .await?
        .filter(|a| a.kind != AccountKind::Organization)
        .ok_or_else(|| AppError::invalid(format!("Invalid username: {username}")))
}
