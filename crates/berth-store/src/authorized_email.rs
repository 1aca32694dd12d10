//! Addresses authorized to receive a repository's e-mail notifications. A row is created when an
//! admin asks for authorization and confirmed when the address's owner opens the link; the
//! confirmation code is stored only as a hash and expires.

use berth_core::RepoId;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::db::{Exec, Tx, run};

/// One row of `repo_authorized_email`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthorizedEmailRow {
    /// Its id.
    pub id: i64,
    /// The repository.
    #[sqlx(try_from = "i64")]
    pub repo_id: RepoId,
    /// The address.
    pub email: String,
    /// Whether the owner of the address confirmed it.
    pub confirmed: bool,
    /// Until when the current code confirms.
    pub code_expires_at: DateTime<Utc>,
    /// When it was confirmed.
    pub confirmed_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, repo_id, email, confirmed, code_expires_at, confirmed_at"
    };
}

/// The authorization of `email` for a repository, confirmed or not.
pub async fn get(ex: &mut impl Exec, repo: RepoId, email: &str) -> Result<Option<AuthorizedEmailRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM repo_authorized_email WHERE repo_id = $1 AND email = $2"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, AuthorizedEmailRow>(sql).bind(repo.0).bind(email).fetch_optional(c).await)?)
}

/// The authorization a confirmation code (its hash) belongs to.
pub async fn by_code(ex: &mut impl Exec, code_hash: &str) -> Result<Option<AuthorizedEmailRow>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM repo_authorized_email WHERE code_hash = $1"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, AuthorizedEmailRow>(sql).bind(code_hash).fetch_optional(c).await)?)
}

/// Creates a pending authorization, or gives a pending one a new code. A confirmed one is left as
/// it is. Returns the row.
pub async fn request(
    tx: &mut Tx,
    repo: RepoId,
    email: &str,
    code_hash: &str,
    expires: DateTime<Utc>,
) -> Result<AuthorizedEmailRow> {
    let sql = "INSERT INTO repo_authorized_email (repo_id, email, code_hash, code_expires_at) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (repo_id, email) DO UPDATE SET code_hash = excluded.code_hash, \
               code_expires_at = excluded.code_expires_at WHERE NOT repo_authorized_email.confirmed";
    run!(tx, c => sqlx::query(sql).bind(repo.0).bind(email).bind(code_hash).bind(expires)
        .execute(c).await.map(|r| r.rows_affected()))?;
    get(tx, repo, email)
        .await?
        .ok_or_else(|| crate::StoreError::Corrupt("authorized e-mail row vanished inside its transaction".into()))
}

/// Confirms an authorization.
pub async fn confirm(tx: &mut Tx, id: i64, now: DateTime<Utc>) -> Result<()> {
    let sql = "UPDATE repo_authorized_email SET confirmed = TRUE, confirmed_at = $2 WHERE id = $1";
    run!(tx, c => sqlx::query(sql).bind(id).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Revokes an authorization. Returns whether there was one.
pub async fn delete(tx: &mut Tx, repo: RepoId, email: &str) -> Result<bool> {
    let sql = "DELETE FROM repo_authorized_email WHERE repo_id = $1 AND email = $2";
    let n = run!(tx, c => sqlx::query(sql).bind(repo.0).bind(email).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
