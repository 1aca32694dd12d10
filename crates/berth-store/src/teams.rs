//! Teams of organizations and their members.

use berth_core::{AccountId, TeamId, TeamRole};
use chrono::{DateTime, Utc};

use crate::Result;
use crate::accounts::AccountRow;
use crate::db::{Exec, Tx, run};

/// One row of `team`, with its member count.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    /// Its id.
    #[sqlx(try_from = "i64")]
    pub id: TeamId,
    /// The organization.
    #[sqlx(try_from = "i64")]
    pub org_id: AccountId,
    /// Unique within the organization.
    pub name: String,
    /// Member, creator or admin.
    #[sqlx(try_from = "String")]
    pub role: TeamRole,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// How many accounts belong to it.
    pub member_count: i64,
}

macro_rules! team_select {
    () => {
        "SELECT t.id, t.org_id, t.name, t.role, t.description, t.created_at, \
     (SELECT COUNT(*) FROM team_member m WHERE m.team_id = t.id) AS member_count FROM team t"
    };
}

/// Finds a team of an organization by name.
pub async fn by_name(ex: &mut impl Exec, org: AccountId, name: &str) -> Result<Option<TeamRow>> {
    let sql = concat!(team_select!(), " WHERE t.org_id = $1 AND t.name = $2");
    Ok(run!(ex, c => sqlx::query_as::<_, TeamRow>(sql).bind(org.0).bind(name).fetch_optional(c).await)?)
}

/// The teams of an organization, by name.
pub async fn of_org(ex: &mut impl Exec, org: AccountId) -> Result<Vec<TeamRow>> {
    let sql = concat!(team_select!(), " WHERE t.org_id = $1 ORDER BY t.name");
    Ok(run!(ex, c => sqlx::query_as::<_, TeamRow>(sql).bind(org.0).fetch_all(c).await)?)
}

/// The teams of `org` that `account` belongs to.
pub async fn of_member_in_org(ex: &mut impl Exec, account: AccountId, org: AccountId) -> Result<Vec<TeamRow>> {
    let sql = concat!(
        team_select!(),
        " JOIN team_member tm ON tm.team_id = t.id WHERE tm.account_id = $1 AND t.org_id = $2 ORDER BY t.name"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, TeamRow>(sql).bind(account.0).bind(org.0).fetch_all(c).await)?)
}

/// Every team `account` belongs to, in any organization.
pub async fn of_member(ex: &mut impl Exec, account: AccountId) -> Result<Vec<TeamRow>> {
    let sql = concat!(
        team_select!(),
        " JOIN team_member tm ON tm.team_id = t.id WHERE tm.account_id = $1 ORDER BY t.name"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, TeamRow>(sql).bind(account.0).fetch_all(c).await)?)
}

/// Creates a team, or updates the role and description of an existing one. Returns the row and
/// whether it was created.
pub async fn upsert(
    tx: &mut Tx,
    org: AccountId,
    name: &str,
    role: TeamRole,
    description: &str,
) -> Result<(TeamRow, bool)> {
    let existing = by_name(tx, org, name).await?;
    let sql = if existing.is_some() {
        "UPDATE team SET role = $3, description = $4 WHERE org_id = $1 AND name = $2"
    } else {
        "INSERT INTO team (org_id, name, role, description, created_at) VALUES ($1, $2, $3, $4, $5)"
    };
    run!(tx, c => sqlx::query(sql)
        .bind(org.0)
        .bind(name)
        .bind(role.as_str())
        .bind(description)
        .bind(Utc::now())
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    let row = by_name(tx, org, name)
        .await?
        .ok_or_else(|| crate::StoreError::Corrupt("team vanished".into()))?;
    Ok((row, existing.is_none()))
}

/// Deletes a team. Returns whether it existed.
pub async fn delete(tx: &mut Tx, team: TeamId) -> Result<bool> {
    let done = run!(tx, c => sqlx::query("DELETE FROM team WHERE id = $1").bind(team.0).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Adds a member; adding one twice is not an error.
pub async fn add_member(tx: &mut Tx, team: TeamId, account: AccountId) -> Result<()> {
    let sql = "INSERT INTO team_member (team_id, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
    run!(tx, c => sqlx::query(sql).bind(team.0).bind(account.0).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Removes a member. Returns whether it was one.
pub async fn remove_member(tx: &mut Tx, team: TeamId, account: AccountId) -> Result<bool> {
    let sql = "DELETE FROM team_member WHERE team_id = $1 AND account_id = $2";
    let done =
        run!(tx, c => sqlx::query(sql).bind(team.0).bind(account.0).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// The members of a team, by name.
pub async fn members(ex: &mut impl Exec, team: TeamId) -> Result<Vec<AccountRow>> {
    let sql = "SELECT a.id, a.name, a.kind, a.email, a.password_hash, a.superuser, a.robot_owner_id, \
               a.robot_token, a.description, a.created_at \
               FROM account a JOIN team_member m ON m.account_id = a.id WHERE m.team_id = $1 ORDER BY a.name";
    Ok(run!(ex, c => sqlx::query_as::<_, AccountRow>(sql).bind(team.0).fetch_all(c).await)?)
}

/// The users in the admin teams of an organization (its administrators), by name.
pub async fn org_admins(ex: &mut impl Exec, org: AccountId) -> Result<Vec<AccountRow>> {
    let sql = "SELECT DISTINCT a.id, a.name, a.kind, a.email, a.password_hash, a.superuser, a.robot_owner_id, \
               a.robot_token, a.description, a.created_at \
               FROM account a JOIN team_member m ON m.account_id = a.id JOIN team t ON t.id = m.team_id \
               WHERE t.org_id = $1 AND t.role = 'admin' AND a.kind = 'user' ORDER BY a.name";
    Ok(run!(ex, c => sqlx::query_as::<_, AccountRow>(sql).bind(org.0).fetch_all(c).await)?)
}
