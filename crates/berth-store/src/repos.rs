//! Repositories and the explicit permissions granted on them to users, robots and teams.

use berth_core::{AccountId, RepoId, RepoRole, TeamId, Visibility};
use chrono::{DateTime, Utc};

use crate::Result;
use crate::db::{Exec, Tx, run};

/// One row of `repository`, with its namespace's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RepoRow {
    /// Its id.
    #[sqlx(try_from = "i64")]
    pub id: RepoId,
    /// The owning user or organization.
    #[sqlx(try_from = "i64")]
    pub namespace_id: AccountId,
    /// The owner's name.
    pub namespace: String,
    /// Whether the owner is a user or an organization.
    #[sqlx(try_from = "String")]
    pub namespace_kind: berth_core::AccountKind,
    /// The name inside the namespace.
    pub name: String,
    /// Public or private.
    #[sqlx(try_from = "String")]
    pub visibility: Visibility,
    /// Free text.
    pub description: String,
    /// Who may write to it.
    #[sqlx(try_from = "String")]
    pub state: berth_core::RepoState,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

macro_rules! repo_select {
    () => {
        "SELECT r.id, r.namespace_id, a.name AS namespace, a.kind AS namespace_kind, r.name, r.visibility, r.description, \
     r.state, r.created_at FROM repository r JOIN account a ON a.id = r.namespace_id"
    };
}

/// Creates a repository; an existing name is a [`crate::StoreError::Conflict`].
pub async fn insert(
    tx: &mut Tx,
    namespace: AccountId,
    name: &str,
    visibility: Visibility,
    description: &str,
) -> Result<RepoRow> {
    let sql = "INSERT INTO repository (namespace_id, name, visibility, description, created_at) \
               VALUES ($1, $2, $3, $4, $5) RETURNING id";
    let id = run!(tx, c => sqlx::query_scalar::<_, i64>(sql)
        .bind(namespace.0)
        .bind(name)
        .bind(visibility.as_str())
        .bind(description)
        .bind(Utc::now())
        .fetch_one(c)
        .await)?;
    by_id(tx, RepoId(id))
        .await?
        .ok_or_else(|| crate::StoreError::Corrupt("repository vanished".into()))
}

/// Finds a repository by id.
pub async fn by_id(ex: &mut impl Exec, id: RepoId) -> Result<Option<RepoRow>> {
    let sql = concat!(repo_select!(), " WHERE r.id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, RepoRow>(sql).bind(id.0).fetch_optional(c).await)?)
}

/// Finds a repository by namespace name and repository name.
pub async fn by_path(ex: &mut impl Exec, namespace: &str, name: &str) -> Result<Option<RepoRow>> {
    let sql = concat!(repo_select!(), " WHERE a.name = $1 AND r.name = $2");
    Ok(run!(ex, c => sqlx::query_as::<_, RepoRow>(sql).bind(namespace).bind(name).fetch_optional(c).await)?)
}

/// The repositories of a namespace, by name.
pub async fn of_namespace(ex: &mut impl Exec, namespace: AccountId) -> Result<Vec<RepoRow>> {
    let sql = concat!(repo_select!(), " WHERE r.namespace_id = $1 ORDER BY r.name");
    Ok(run!(ex, c => sqlx::query_as::<_, RepoRow>(sql).bind(namespace.0).fetch_all(c).await)?)
}

/// Every public repository, by namespace and name, at most `limit`.
pub async fn public(ex: &mut impl Exec, limit: i64) -> Result<Vec<RepoRow>> {
    let sql = concat!(
        repo_select!(),
        " WHERE r.visibility = 'public' ORDER BY a.name, r.name LIMIT $1"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, RepoRow>(sql).bind(limit).fetch_all(c).await)?)
}

/// Changes the description.
pub async fn set_description(tx: &mut Tx, id: RepoId, description: &str) -> Result<()> {
    let sql = "UPDATE repository SET description = $2 WHERE id = $1";
    run!(tx, c => sqlx::query(sql).bind(id.0).bind(description).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Changes the state (who may write to it).
pub async fn set_state(tx: &mut Tx, id: RepoId, state: berth_core::RepoState) -> Result<()> {
    let sql = "UPDATE repository SET state = $2 WHERE id = $1";
    run!(tx, c => sqlx::query(sql).bind(id.0).bind(state.as_str()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Changes the visibility.
pub async fn set_visibility(tx: &mut Tx, id: RepoId, visibility: Visibility) -> Result<()> {
    let sql = "UPDATE repository SET visibility = $2 WHERE id = $1";
    run!(tx, c => sqlx::query(sql).bind(id.0).bind(visibility.as_str()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Deletes a repository and its permissions. Returns whether it existed.
pub async fn delete(tx: &mut Tx, id: RepoId) -> Result<bool> {
    let done = run!(tx, c => sqlx::query("DELETE FROM repository WHERE id = $1").bind(id.0).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Grants `role` to an account (user or robot), replacing any earlier grant.
pub async fn set_user_role(tx: &mut Tx, repo: RepoId, account: AccountId, role: RepoRole) -> Result<()> {
    let sql = "INSERT INTO repo_user_permission (repository_id, account_id, role) VALUES ($1, $2, $3) \
               ON CONFLICT (repository_id, account_id) DO UPDATE SET role = excluded.role";
    run!(tx, c => sqlx::query(sql).bind(repo.0).bind(account.0).bind(role.as_str()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Grants `role` to a team, replacing any earlier grant.
pub async fn set_team_role(tx: &mut Tx, repo: RepoId, team: TeamId, role: RepoRole) -> Result<()> {
    let sql = "INSERT INTO repo_team_permission (repository_id, team_id, role) VALUES ($1, $2, $3) \
               ON CONFLICT (repository_id, team_id) DO UPDATE SET role = excluded.role";
    run!(tx, c => sqlx::query(sql).bind(repo.0).bind(team.0).bind(role.as_str()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Removes an account's grant. Returns whether there was one.
pub async fn delete_user_role(tx: &mut Tx, repo: RepoId, account: AccountId) -> Result<bool> {
    let sql = "DELETE FROM repo_user_permission WHERE repository_id = $1 AND account_id = $2";
    let done =
        run!(tx, c => sqlx::query(sql).bind(repo.0).bind(account.0).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Removes a team's grant. Returns whether there was one.
pub async fn delete_team_role(tx: &mut Tx, repo: RepoId, team: TeamId) -> Result<bool> {
    let sql = "DELETE FROM repo_team_permission WHERE repository_id = $1 AND team_id = $2";
    let done = run!(tx, c => sqlx::query(sql).bind(repo.0).bind(team.0).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// One explicit grant to an account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserGrant {
    /// The account's id.
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    /// Its name.
    pub name: String,
    /// User or robot.
    #[sqlx(try_from = "String")]
    pub kind: berth_core::AccountKind,
    /// The granted role.
    #[sqlx(try_from = "String")]
    pub role: RepoRole,
}

/// One explicit grant to a team.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamGrant {
    /// The team's id.
    #[sqlx(try_from = "i64")]
    pub team_id: TeamId,
    /// Its name.
    pub name: String,
    /// The granted role.
    #[sqlx(try_from = "String")]
    pub role: RepoRole,
}

/// The explicit grants to accounts on a repository, by name.
pub async fn user_grants(ex: &mut impl Exec, repo: RepoId) -> Result<Vec<UserGrant>> {
    let sql = "SELECT a.id AS account_id, a.name, a.kind, p.role FROM repo_user_permission p \
               JOIN account a ON a.id = p.account_id WHERE p.repository_id = $1 ORDER BY a.name";
    Ok(run!(ex, c => sqlx::query_as::<_, UserGrant>(sql).bind(repo.0).fetch_all(c).await)?)
}

/// The explicit grants to teams on a repository, by name.
pub async fn team_grants(ex: &mut impl Exec, repo: RepoId) -> Result<Vec<TeamGrant>> {
    let sql = "SELECT t.id AS team_id, t.name, p.role FROM repo_team_permission p \
               JOIN team t ON t.id = p.team_id WHERE p.repository_id = $1 ORDER BY t.name";
    Ok(run!(ex, c => sqlx::query_as::<_, TeamGrant>(sql).bind(repo.0).fetch_all(c).await)?)
}

/// Every role explicitly granted to `account` on `repo`, directly or through its teams.
pub async fn explicit_roles(ex: &mut impl Exec, repo: RepoId, account: AccountId) -> Result<Vec<RepoRole>> {
    let sql = "SELECT role FROM repo_user_permission WHERE repository_id = $1 AND account_id = $2 \
               UNION ALL \
               SELECT p.role FROM repo_team_permission p JOIN team_member m ON m.team_id = p.team_id \
               WHERE p.repository_id = $1 AND m.account_id = $2";
    let rows = run!(ex, c => sqlx::query_scalar::<_, String>(sql).bind(repo.0).bind(account.0).fetch_all(c).await)?;
    rows.iter()
        .map(|r| RepoRole::parse(r).map_err(|e| crate::StoreError::Corrupt(e.to_string())))
        .collect()
}

/// Whose view of the repositories [`visible_paths`] and [`visible`] list, as the application
/// resolved it. Every viewer sees the public repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Nobody in particular: the public repositories only.
    Public,
    /// Every repository (a superuser whose credential may read repositories).
    Everything,
    /// An account: also the repositories of its own (user) namespace, of the organizations where
    /// one of its teams is `admin`, and those granted to it or to one of its teams.
    Account(AccountId),
    /// Also this one repository (a build's credential).
    Repository(RepoId),
}

/// The condition on `r` (a repository) and `a` (its namespace) that is true for what a viewer
/// may see, given the placeholders of [`Viewer::binds`]: everything, the one repository, the
/// account.
macro_rules! visible_to {
    ($everything:literal, $repo:literal, $account:literal) => {
        concat!(
            "(r.visibility = 'public' OR ",
            $everything,
            " OR r.id = ",
            $repo,
            " OR (r.namespace_id = ",
            $account,
            " AND a.kind = 'user')",
            " OR r.namespace_id IN (SELECT t.org_id FROM team t JOIN team_member m ON m.team_id = t.id",
            " WHERE m.account_id = ",
            $account,
            " AND t.role = 'admin')",
            " OR r.id IN (SELECT repository_id FROM repo_user_permission WHERE account_id = ",
            $account,
            ")",
            " OR r.id IN (SELECT p.repository_id FROM repo_team_permission p",
            " JOIN team_member m ON m.team_id = p.team_id WHERE m.account_id = ",
            $account,
            "))"
        )
    };
}

impl Viewer {
    /// What `visible_to!`'s placeholders are bound to: everything, the one repository, the
    /// account (ids are positive: -1 matches nothing).
    fn binds(self) -> (bool, i64, i64) {
        match self {
            Viewer::Public => (false, -1, -1),
            Viewer::Everything => (true, -1, -1),
            Viewer::Account(a) => (false, -1, a.0),
            Viewer::Repository(r) => (false, r.0, -1),
        }
    }
}

/// The paths (`namespace/name`) of the repositories `viewer` may see, in namespace and name
/// order, after the repository `after` (namespace, name) when given, at most `limit`. One
/// statement, so that a catalog of many repositories costs one indexed scan rather than a check
/// per repository.
pub async fn visible_paths(
    ex: &mut impl Exec,
    viewer: Viewer,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<String>> {
    let sql = concat!(
        "SELECT a.name || '/' || r.name FROM repository r JOIN account a ON a.id = r.namespace_id \
         WHERE (a.name > $1 OR (a.name = $1 AND r.name > $2)) AND ",
        visible_to!("$3", "$4", "$5"),
        " ORDER BY a.name, r.name LIMIT $6"
    );
    let (ns, name) = after.unwrap_or(("", ""));
    let (everything, repo, account) = viewer.binds();
    Ok(run!(ex, c => sqlx::query_scalar::<_, String>(sql)
        .bind(ns).bind(name).bind(everything).bind(repo).bind(account).bind(limit)
        .fetch_all(c).await)?)
}

/// The repositories `viewer` may see, by namespace and name.
pub async fn visible(ex: &mut impl Exec, viewer: Viewer) -> Result<Vec<RepoRow>> {
    let sql = concat!(
        repo_select!(),
        " WHERE ",
        visible_to!("$1", "$2", "$3"),
        " ORDER BY a.name, r.name"
    );
    let (everything, repo, account) = viewer.binds();
    Ok(run!(ex, c => sqlx::query_as::<_, RepoRow>(sql)
        .bind(everything).bind(repo).bind(account)
        .fetch_all(c).await)?)
}
