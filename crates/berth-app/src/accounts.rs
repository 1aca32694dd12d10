//! Users, organizations, teams and robots: first-run initialization, user creation, the signed-in
//! user's view, organization and team administration, and robot accounts with their tokens.

use berth_core::{AccountKind, AccountName, Email, RobotName, RobotShortName, Scope, ScopeSet, TeamName, TeamRole};
use berth_store::accounts::{self, AccountRow, NewAccount};
use berth_store::teams::{self, TeamRow};
use berth_store::{Exec, Tx, secrets};
use serde_json::json;

use crate::audit::record;
use crate::sealing::Purpose;
use crate::secret::{check_password, hash_password, random_token};
use crate::{App, AppError, Caller, Ctx, Result};

/// What [`App::create_user`] needs.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The username.
    pub username: String,
    /// The e-mail address, if any.
    pub email: Option<String>,
    /// The password.
    pub password: String,
    /// Whether the user is a superuser.
    pub superuser: bool,
}

/// The signed-in account and the organizations it belongs to.
#[derive(Debug, Clone)]
pub struct UserInfo {
    /// The account.
    pub account: AccountRow,
    /// Organizations where it is in a team, with whether it administers them.
    pub organizations: Vec<(AccountRow, bool)>,
}

/// An organization as the caller may see it.
#[derive(Debug, Clone)]
pub struct OrgInfo {
    /// The organization.
    pub org: AccountRow,
    /// Whether the caller administers it.
    pub is_admin: bool,
    /// Whether the caller is in one of its teams.
    pub is_member: bool,
    /// Its teams, shown to members and admins only.
    pub teams: Option<Vec<TeamRow>>,
}

/// A robot account and its token (Quay returns robot tokens, so they are sealed, not hashed).
#[derive(Debug, Clone)]
pub struct Robot {
    /// The account.
    pub account: AccountRow,
    /// Its token, the password it signs in with.
    pub token: String,
}

/// A namespace the caller must administer: an organization (by name; its admins, scope
/// `org:admin`) or the calling user's own namespace (scope `user:admin`). Where robots and
/// namespace-wide notifications live.
#[derive(Debug, Clone, Copy)]
pub enum AdminNamespace<'a> {
    /// An organization.
    Org(&'a str),
    /// The calling user.
    CurrentUser,
}

const INITIALIZED_MARKER: &str = "initialized_by";

impl App {
    /// Creates a user without a permission check: for the CLI and for use cases that checked first.
    pub async fn create_user(&self, ctx: &Ctx, new: &NewUser) -> Result<AccountRow> {
        let mut tx = self.store.begin().await?;
        let row = self.insert_user(&mut tx, ctx, new).await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn insert_user(&self, tx: &mut Tx, ctx: &Ctx, new: &NewUser) -> Result<AccountRow> {
        let name = AccountName::parse(&new.username)
            .map_err(|e| AppError::invalid(e.to_string().replace("invalid name", "invalid username")))?;
        let email = new.email.as_deref().map(Email::parse).transpose()?;
        check_password(&new.password)?;
        ensure_name_free(tx, name.as_str()).await?;
        ensure_email_free(tx, email.as_ref()).await?;
        let hash = hash_password(new.password.clone()).await?;
        let row = accounts::insert(
            tx,
            &NewAccount {
                name: name.as_str(),
                kind: AccountKind::User,
                email: email.as_ref().map(Email::as_str),
                password_hash: Some(&hash),
                superuser: new.superuser,
                robot_owner: None,
                robot_token: None,
                description: "",
            },
        )
        .await?;
        record(
            tx,
            ctx,
            "user_create",
            Some(row.id),
            None,
            json!({"username": row.name, "superuser": new.superuser}),
        )
        .await?;
        Ok(row)
    }

    /// First-run set-up: creates the first user, a superuser, on an instance with no users, and
    /// optionally an access token with every scope. Refused once any user exists.
    pub async fn initialize(&self, ctx: &Ctx, new: NewUser, want_token: bool) -> Result<(AccountRow, Option<String>)> {
        if new.email.is_none() {
            return Err(AppError::invalid("invalid email: an e-mail address is required"));
        }
        let mut tx = self.store.begin().await?;
        let empty = accounts::count_users(&mut tx).await? == 0;
        // The marker makes concurrent initializations on PostgreSQL race safely: one insert wins.
        if !empty || !secrets::insert_if_absent(&mut tx, INITIALIZED_MARKER, &new.username).await? {
            return Err(AppError::invalid("Cannot initialize user in a non-empty database"));
        }
        let row = self
            .insert_user(&mut tx, ctx, &NewUser { superuser: true, ..new })
            .await?;
        tx.commit().await?;
        let token = match want_token {
            true => Some(
                self.create_access_token(&row.name, ScopeSet::all(), "initial superuser token", None)
                    .await?,
            ),
            false => None,
        };
        Ok((row, token))
    }

    /// Superusers create users; the generated password is returned once.
    pub async fn superuser_create_user(
        &self,
        ctx: &Ctx,
        username: &str,
        email: Option<&str>,
    ) -> Result<(AccountRow, String)> {
        let p = ctx.caller.user_with(Scope::SuperUser)?;
        if !p.acts_as_superuser() {
            return Err(AppError::forbidden());
        }
        let password = random_token(24);
        let new = NewUser {
            username: username.into(),
            email: email.map(Into::into),
            password: password.clone(),
            superuser: false,
        };
        Ok((self.create_user(ctx, &new).await?, password))
    }

    /// The signed-in account (scope `user:read`).
    pub async fn user_info(&self, caller: &Caller) -> Result<UserInfo> {
        let p = caller.principal()?;
        if p.scopes.is_some_and(|s| !s.allows_user_read()) {
            return Err(AppError::forbidden());
        }
        let mut conn = self.store.conn().await?;
        let account = accounts::by_id(&mut conn, p.id)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let mut organizations: Vec<(AccountRow, bool)> = Vec::new();
        for t in teams::of_member(&mut conn, p.id).await? {
            match organizations.iter_mut().find(|(o, _)| o.id == t.org_id) {
                Some((_, admin)) => *admin |= t.role == TeamRole::Admin,
                None => {
                    if let Some(org) = accounts::by_id(&mut conn, t.org_id).await? {
                        organizations.push((org, t.role == TeamRole::Admin));
                    }
                }
            }
        }
        organizations.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(UserInfo { account, organizations })
    }

    /// Whether `name` is a user or an organization (robots are no namespace of their own), for
    /// the pages that show a namespace to any signed-in caller, as Quay's user and organization
    /// pages do; the repositories shown are still only those the caller may see.
    pub async fn namespace_kind(&self, caller: &Caller, name: &str) -> Result<AccountKind> {
        caller.principal()?;
        let mut conn = self.store.conn().await?;
        match accounts::by_name(&mut conn, name).await? {
            Some(a) if a.kind != AccountKind::Robot => Ok(a.kind),
            _ => Err(AppError::NotFound(format!("No user or organization named '{name}'"))),
        }
    }

    /// Creates an organization; the creator becomes a member of its `owners` admin team.
    pub async fn create_org(&self, ctx: &Ctx, name: &str, email: Option<&str>) -> Result<AccountRow> {
        let p = ctx.caller.user_with(Scope::UserAdmin)?.clone();
        let name = AccountName::parse(name)?;
        let email = email.filter(|e| !e.is_empty()).map(Email::parse).transpose()?;
        let mut tx = self.store.begin().await?;
        ensure_name_free(&mut tx, name.as_str()).await?;
        ensure_email_free(&mut tx, email.as_ref()).await?;
        let org = accounts::insert(
            &mut tx,
            &NewAccount {
                name: name.as_str(),
                kind: AccountKind::Organization,
                email: email.as_ref().map(Email::as_str),
                password_hash: None,
                superuser: false,
                robot_owner: None,
                robot_token: None,
                description: "",
            },
        )
        .await?;
        let (owners, _) = teams::upsert(&mut tx, org.id, "owners", TeamRole::Admin, "").await?;
        teams::add_member(&mut tx, owners.id, p.id).await?;
        record(
            &mut tx,
            ctx,
            "org_create",
            Some(org.id),
            None,
            json!({"namespace": org.name, "email": org.email}),
        )
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    /// An organization as the caller may see it: anyone sees its name, members see its teams.
    pub async fn org_info(&self, caller: &Caller, name: &str) -> Result<OrgInfo> {
        let mut conn = self.store.conn().await?;
        let org = org_by_name(&mut conn, name).await?;
        let role = self.org_role(&mut conn, caller, org.id).await?;
        let superuser = caller.account().is_some_and(|p| p.acts_as_superuser());
        let is_admin = superuser || role == Some(TeamRole::Admin);
        let is_member = role.is_some();
        let teams = if is_member || superuser {
            Some(teams::of_org(&mut conn, org.id).await?)
        } else {
            None
        };
        Ok(OrgInfo {
            org,
            is_admin,
            is_member,
            teams,
        })
    }

    /// Loads an organization the caller administers (scope `org:admin`): 401, 404 or 403 otherwise.
    pub(crate) async fn admin_org(&self, ex: &mut impl Exec, caller: &Caller, name: &str) -> Result<AccountRow> {
        let p = caller.user_with(Scope::OrgAdmin)?;
        let org = org_by_name(ex, name).await?;
        if p.acts_as_superuser() || self.org_role(ex, caller, org.id).await? == Some(TeamRole::Admin) {
            Ok(org)
        } else {
            Err(AppError::forbidden())
        }
    }

    /// Creates a team or changes its role and description (organization admin).
    pub async fn put_team(
        &self,
        ctx: &Ctx,
        org: &str,
        team: &str,
        role: TeamRole,
        description: Option<&str>,
    ) -> Result<TeamRow> {
        let team_name = TeamName::parse(team)?;
        let mut tx = self.store.begin().await?;
        let org = self.admin_org(&mut tx, &ctx.caller, org).await?;
        let existing = teams::by_name(&mut tx, org.id, team_name.as_str()).await?;
        let desc = description
            .map(str::to_owned)
            .or_else(|| existing.as_ref().map(|t| t.description.clone()))
            .unwrap_or_default();
        let (row, created) = teams::upsert(&mut tx, org.id, team_name.as_str(), role, &desc).await?;
        if existing.as_ref().is_some_and(|t| t.role == TeamRole::Admin) && role != TeamRole::Admin {
            keep_an_admin(
                &mut tx,
                &org,
                &format!("Making team {} a {} team", row.name, role.as_str()),
            )
            .await?;
        }
        let base = json!({"team": row.name, "namespace": org.name});
        if created {
            record(&mut tx, ctx, "org_create_team", Some(org.id), None, base).await?;
        } else if let Some(old) = existing {
            if old.role != role {
                let meta = json!({"team": row.name, "namespace": org.name, "role": role.as_str()});
                record(&mut tx, ctx, "org_set_team_role", Some(org.id), None, meta).await?;
            }
            if old.description != desc {
                let meta = json!({"team": row.name, "namespace": org.name, "description": desc});
                record(&mut tx, ctx, "org_set_team_description", Some(org.id), None, meta).await?;
            }
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes a team (organization admin). The last admin team cannot be deleted: the organization
    /// would be left with nobody to administer it.
    pub async fn delete_team(&self, ctx: &Ctx, org: &str, team: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let org = self.admin_org(&mut tx, &ctx.caller, org).await?;
        let t = team_by_name(&mut tx, &org, team).await?;
        if t.role == TeamRole::Admin {
            let admin_teams = teams::of_org(&mut tx, org.id)
                .await?
                .iter()
                .filter(|x| x.role == TeamRole::Admin)
                .count();
            if admin_teams <= 1 {
                return Err(AppError::invalid(format!(
                    "Cannot delete team {team}: it is the last admin team of {}",
                    org.name
                )));
            }
        }
        teams::delete(&mut tx, t.id).await?;
        if t.role == TeamRole::Admin {
            keep_an_admin(&mut tx, &org, &format!("Deleting team {team}")).await?;
        }
        record(
            &mut tx,
            ctx,
            "org_delete_team",
            Some(org.id),
            None,
            json!({"team": t.name, "namespace": org.name}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a user, or a robot of the organization, to a team (organization admin).
    pub async fn add_team_member(&self, ctx: &Ctx, org: &str, team: &str, member: &str) -> Result<AccountRow> {
        let mut tx = self.store.begin().await?;
        let org = self.admin_org(&mut tx, &ctx.caller, org).await?;
        let t = team_by_name(&mut tx, &org, team).await?;
        let account = accounts::by_name(&mut tx, member)
            .await?
            .filter(|a| a.kind != AccountKind::Organization)
            .ok_or_else(|| AppError::invalid(format!("Unknown user or robot: {member}")))?;
        if account.kind == AccountKind::Robot && account.robot_owner_id != Some(org.id.0) {
            return Err(AppError::invalid(format!(
                "Cannot add robot {member} from another namespace"
            )));
        }
        teams::add_member(&mut tx, t.id, account.id).await?;
        let meta = json!({"member": account.name, "team": t.name, "namespace": org.name});
        record(&mut tx, ctx, "org_add_team_member", Some(org.id), None, meta).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// Removes a member from a team (organization admin).
    pub async fn remove_team_member(&self, ctx: &Ctx, org: &str, team: &str, member: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let org = self.admin_org(&mut tx, &ctx.caller, org).await?;
        let t = team_by_name(&mut tx, &org, team).await?;
        let account = accounts::by_name(&mut tx, member).await?;
        let removed = match &account {
            Some(a) => teams::remove_member(&mut tx, t.id, a.id).await?,
            None => false,
        };
        if !removed {
            return Err(AppError::invalid(format!("{member} is not a member of team {team}")));
        }
        if t.role == TeamRole::Admin {
            keep_an_admin(&mut tx, &org, &format!("Removing {member} from team {team}")).await?;
        }
        let meta = json!({"member": member, "team": t.name, "namespace": org.name});
        record(&mut tx, ctx, "org_remove_team_member", Some(org.id), None, meta).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A team's members, visible to organization admins and to the team's own members. Returns the
    /// team, its members and whether the caller may edit it.
    pub async fn team_members(
        &self,
        caller: &Caller,
        org: &str,
        team: &str,
    ) -> Result<(TeamRow, Vec<AccountRow>, bool)> {
        let p = caller.principal()?;
        let mut conn = self.store.conn().await?;
        let org = org_by_name(&mut conn, org).await?;
        let t = team_by_name(&mut conn, &org, team).await?;
        let members = teams::members(&mut conn, t.id).await?;
        let can_edit = p.allows(Scope::OrgAdmin)
            && (p.acts_as_superuser() || self.org_role(&mut conn, caller, org.id).await? == Some(TeamRole::Admin));
        if !can_edit && !members.iter().any(|m| m.id == p.id) {
            return Err(AppError::forbidden());
        }
        Ok((t, members, can_edit))
    }

    /// Resolves a robot owner to its namespace account, checking the caller may manage its robots.
    pub(crate) async fn admin_namespace(
        &self,
        ex: &mut impl Exec,
        caller: &Caller,
        owner: AdminNamespace<'_>,
    ) -> Result<AccountRow> {
        match owner {
            AdminNamespace::Org(org) => self.admin_org(ex, caller, org).await,
            AdminNamespace::CurrentUser => {
                let p = caller.user_with(Scope::UserAdmin)?;
                accounts::by_id(ex, p.id).await?.ok_or(AppError::Unauthenticated)
            }
        }
    }

    /// Creates a robot with a fresh token.
    pub async fn create_robot(
        &self,
        ctx: &Ctx,
        owner: AdminNamespace<'_>,
        short: &str,
        description: &str,
    ) -> Result<Robot> {
        let short = RobotShortName::parse(short)?;
        let mut tx = self.store.begin().await?;
        let ns = self.admin_namespace(&mut tx, &ctx.caller, owner).await?;
        let name = RobotName::new(AccountName::parse(&ns.name)?, short).full();
        if accounts::by_name(&mut tx, &name).await?.is_some() {
            return Err(AppError::Conflict(format!("Existing robot with name: {name}")));
        }
        let token = random_token(64).to_ascii_uppercase();
        let sealed = self.keyring.seal(Purpose::RobotToken, &token)?;
        let row = accounts::insert(
            &mut tx,
            &NewAccount {
                name: &name,
                kind: AccountKind::Robot,
                email: None,
                password_hash: None,
                superuser: false,
                robot_owner: Some(ns.id),
                robot_token: Some(&sealed),
                description,
            },
        )
        .await?;
        record(
            &mut tx,
            ctx,
            "create_robot",
            Some(ns.id),
            None,
            json!({"robot": name, "namespace": ns.name}),
        )
        .await?;
        tx.commit().await?;
        Ok(Robot { account: row, token })
    }

    /// A robot with its token.
    pub async fn get_robot(&self, caller: &Caller, owner: AdminNamespace<'_>, short: &str) -> Result<Robot> {
        let mut conn = self.store.conn().await?;
        let ns = self.admin_namespace(&mut conn, caller, owner).await?;
        let row = robot_by_short(&mut conn, &ns, short).await?;
        self.robot_of(row)
    }

    /// The robots of a namespace, with their tokens.
    pub async fn list_robots(&self, caller: &Caller, owner: AdminNamespace<'_>) -> Result<Vec<Robot>> {
        let mut conn = self.store.conn().await?;
        let ns = self.admin_namespace(&mut conn, caller, owner).await?;
        let rows = accounts::robots_of(&mut conn, ns.id).await?;
        rows.into_iter().map(|r| self.robot_of(r)).collect()
    }

    /// A robot's row with its token opened.
    fn robot_of(&self, account: AccountRow) -> Result<Robot> {
        let token = match &account.robot_token {
            Some(sealed) => self.keyring.open(Purpose::RobotToken, sealed)?,
            None => String::new(),
        };
        Ok(Robot { account, token })
    }

    /// Deletes a robot, its grants and its team memberships.
    pub async fn delete_robot(&self, ctx: &Ctx, owner: AdminNamespace<'_>, short: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let ns = self.admin_namespace(&mut tx, &ctx.caller, owner).await?;
        let robot = robot_by_short(&mut tx, &ns, short).await?;
        accounts::delete(&mut tx, robot.id).await?;
        record(
            &mut tx,
            ctx,
            "delete_robot",
            Some(ns.id),
            None,
            json!({"robot": robot.name, "namespace": ns.name}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn ensure_name_free(ex: &mut impl Exec, name: &str) -> Result<()> {
    if accounts::by_name(ex, name).await?.is_some() {
        return Err(AppError::Conflict(
            "A user or organization with this name already exists".into(),
        ));
    }
    Ok(())
}

async fn ensure_email_free(ex: &mut impl Exec, email: Option<&Email>) -> Result<()> {
    if let Some(e) = email
        && accounts::by_email(ex, e.as_str()).await?.is_some()
    {
        return Err(AppError::Conflict(format!("The email address {e} is already used")));
    }
    Ok(())
}

async fn org_by_name(ex: &mut impl Exec, name: &str) -> Result<AccountRow> {
    accounts::by_name(ex, name)
        .await?
        .filter(|a| a.kind == AccountKind::Organization)
        .ok_or_else(AppError::not_found)
}

async fn team_by_name(ex: &mut impl Exec, org: &AccountRow, team: &str) -> Result<TeamRow> {
    teams::by_name(ex, org.id, team)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("Unknown team: {team}")))
}

async fn robot_by_short(ex: &mut impl Exec, ns: &AccountRow, short: &str) -> Result<AccountRow> {
    let name = format!("{}+{short}", ns.name);
    accounts::by_name(ex, &name)
        .await?
        .filter(|a| a.kind == AccountKind::Robot)
        .ok_or_else(|| AppError::NotFound(format!("Could not find robot with specified username: {name}")))
}

/// Refuses a change (already made in `tx`, which is then dropped, not committed) that leaves the
/// organization with no user in an admin team: nobody but a superuser could administer it.
async fn keep_an_admin(tx: &mut Tx, org: &AccountRow, change: &str) -> Result<()> {
    if teams::org_admins(tx, org.id).await?.is_empty() {
        return Err(AppError::invalid(format!(
            "{change} would leave organization {} with no administrator; make another user an admin first",
            org.name
        )));
    }
    Ok(())
}
