//! Accounts: users, organizations and robots share one table and one namespace of names.

use berth_core::{AccountId, AccountKind};
use chrono::{DateTime, Utc};

use crate::Result;
use crate::db::{Exec, Tx, run};

/// One row of `account`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    /// Its id.
    #[sqlx(try_from = "i64")]
    pub id: AccountId,
    /// Username, organization name, or robot full name (`ns+short`).
    pub name: String,
    /// User, organization or robot.
    #[sqlx(try_from = "String")]
    pub kind: AccountKind,
    /// Contact address (users; optional for organizations; never for robots).
    pub email: Option<String>,
    /// Argon2 PHC string (users only).
    pub password_hash: Option<String>,
    /// Whether the user is a superuser.
    pub superuser: bool,
    /// For robots, the namespace that owns them.
    pub robot_owner_id: Option<i64>,
    /// For robots, their token, sealed.
    pub robot_token: Option<crate::secrets::Sealed>,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What [`insert`] needs.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    /// See [`AccountRow::name`].
    pub name: &'a str,
    /// See [`AccountRow::kind`].
    pub kind: AccountKind,
    /// See [`AccountRow::email`].
    pub email: Option<&'a str>,
    /// See [`AccountRow::password_hash`].
    pub password_hash: Option<&'a str>,
    /// See [`AccountRow::superuser`].
    pub superuser: bool,
    /// See [`AccountRow::robot_owner_id`].
    pub robot_owner: Option<AccountId>,
    /// See [`AccountRow::robot_token`].
    pub robot_token: Option<&'a crate::secrets::Sealed>,
    /// See [`AccountRow::description`].
    pub description: &'a str,
}

/// The columns of [`AccountRow`], for `concat!`.
macro_rules! account_columns {
    () => {
        "id, name, kind, email, password_hash, superuser, robot_owner_id, robot_token, description, created_at"
    };
}

/// Inserts an account; a taken name or e-mail is a [`crate::StoreError::Conflict`].
pub async fn insert(tx: &mut Tx, a: &NewAccount<'_>) -> Result<AccountRow> {
    let sql = concat!(
        "INSERT INTO account (name, kind, email, password_hash, superuser, robot_owner_id, robot_token, description, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
        account_columns!()
    );
    let row = run!(tx, c => sqlx::query_as::<_, AccountRow>(sql)
        .bind(a.name)
        .bind(a.kind.as_str())
        .bind(a.email)
        .bind(a.password_hash)
        .bind(a.superuser)
        .bind(a.robot_owner.map(|o| o.0))
        .bind(a.robot_token)
        .bind(a.description)
        .bind(Utc::now())
        .fetch_one(c)
        .await)?;
    Ok(row)
}

/// Finds an account by exact name.
pub async fn by_name(ex: &mut impl Exec, name: &str) -> Result<Option<AccountRow>> {
    let sql = concat!("SELECT ", account_columns!(), " FROM account WHERE name = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, AccountRow>(sql).bind(name).fetch_optional(c).await)?)
}

/// Finds an account by id.
pub async fn by_id(ex: &mut impl Exec, id: AccountId) -> Result<Option<AccountRow>> {
    let sql = concat!("SELECT ", account_columns!(), " FROM account WHERE id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, AccountRow>(sql).bind(id.0).fetch_optional(c).await)?)
}

/// Finds an account by e-mail address.
pub async fn by_email(ex: &mut impl Exec, email: &str) -> Result<Option<AccountRow>> {
    let sql = concat!("SELECT ", account_columns!(), " FROM account WHERE email = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, AccountRow>(sql).bind(email).fetch_optional(c).await)?)
}

/// How many user accounts exist (organizations and robots excluded).
pub async fn count_users(ex: &mut impl Exec) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM account WHERE kind = 'user'";
    Ok(run!(ex, c => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await)?)
}

/// The robots owned by a namespace, by name.
pub async fn robots_of(ex: &mut impl Exec, owner: AccountId) -> Result<Vec<AccountRow>> {
    let sql = concat!(
        "SELECT ",
        account_columns!(),
        " FROM account WHERE robot_owner_id = $1 ORDER BY name"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, AccountRow>(sql).bind(owner.0).fetch_all(c).await)?)
}

/// Escapes `%`, `_` and the backslash so that `text` matches itself in a `LIKE … ESCAPE` pattern.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Users whose name starts with `prefix` and, when `robots_of` names a namespace, its robots whose
/// short name does: by name, at most `limit` (Quay's entity search).
pub async fn matching(
    ex: &mut impl Exec,
    prefix: &str,
    robots_of: Option<(AccountId, &str)>,
    limit: i64,
) -> Result<Vec<AccountRow>> {
    let sql = concat!(
        "SELECT ",
        account_columns!(),
        " FROM account WHERE (kind = 'user' AND name LIKE $1 ESCAPE '\\') \
         OR (kind = 'robot' AND robot_owner_id = $2 AND name LIKE $3 ESCAPE '\\') ORDER BY name LIMIT $4"
    );
    let users = format!("{}%", like_literal(prefix));
    let (owner, robots) = match robots_of {
        Some((id, namespace)) => (
            Some(id.0),
            format!("{}+{}%", like_literal(namespace), like_literal(prefix)),
        ),
        None => (None, String::new()),
    };
    Ok(
        run!(ex, c => sqlx::query_as::<_, AccountRow>(sql).bind(&users).bind(owner).bind(&robots).bind(limit).fetch_all(c).await)?,
    )
}

/// Deletes an account and, through cascades, everything it owns. Returns whether it existed.
pub async fn delete(tx: &mut Tx, id: AccountId) -> Result<bool> {
    let sql = "DELETE FROM account WHERE id = $1";
    let done = run!(tx, c => sqlx::query(sql).bind(id.0).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}
