//! The audit log: one row per state-changing operation, with Quay's kind names.

use berth_core::{AccountId, RepoId};
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::Result;
use crate::db::{Exec, Tx, run};

/// What [`insert`] needs.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// Quay's kind name, e.g. `create_repo`.
    pub kind: &'a str,
    /// The namespace the operation happened in.
    pub namespace: Option<AccountId>,
    /// The repository, when the operation concerns one.
    pub repository: Option<RepoId>,
    /// Who did it (none for the CLI and first-run set-up).
    pub performer: Option<(AccountId, &'a str)>,
    /// The caller's address.
    pub ip: Option<&'a str>,
    /// Kind-specific details.
    pub metadata: serde_json::Value,
}

/// One row of `audit_log`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    /// Its id; also the paging cursor.
    pub id: i64,
    /// Quay's kind name.
    pub kind: String,
    /// The performer's name when it was written.
    pub performer_name: Option<String>,
    /// The performer's kind, if the account still exists.
    pub performer_kind: Option<String>,
    /// The caller's address.
    pub ip: Option<String>,
    /// Kind-specific details.
    pub metadata: Json<serde_json::Value>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

/// Appends an entry.
pub async fn insert(tx: &mut Tx, e: &NewEntry<'_>) -> Result<()> {
    let sql = "INSERT INTO audit_log (kind, namespace_id, repository_id, performer_id, performer_name, ip, metadata, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    run!(tx, c => sqlx::query(sql)
        .bind(e.kind)
        .bind(e.namespace.map(|n| n.0))
        .bind(e.repository.map(|r| r.0))
        .bind(e.performer.map(|p| p.0.0))
        .bind(e.performer.map(|p| p.1))
        .bind(e.ip)
        .bind(Json(&e.metadata))
        .bind(Utc::now())
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// A repository's entries, newest first, older than `before` (an id) when given.
pub async fn of_repository(ex: &mut impl Exec, repo: RepoId, before: Option<i64>, limit: i64) -> Result<Vec<EntryRow>> {
    let sql = "SELECT l.id, l.kind, l.performer_name, a.kind AS performer_kind, l.ip, l.metadata, l.created_at \
               FROM audit_log l LEFT JOIN account a ON a.id = l.performer_id \
               WHERE l.repository_id = $1 AND ($2 IS NULL OR l.id < $2) ORDER BY l.id DESC LIMIT $3";
    Ok(run!(ex, c => sqlx::query_as::<_, EntryRow>(sql).bind(repo.0).bind(before).bind(limit).fetch_all(c).await)?)
}

/// A namespace's entries, newest first, older than `before` (an id) when given.
pub async fn of_namespace(
    ex: &mut impl Exec,
    namespace: AccountId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<EntryRow>> {
    let sql = "SELECT l.id, l.kind, l.performer_name, a.kind AS performer_kind, l.ip, l.metadata, l.created_at \
               FROM audit_log l LEFT JOIN account a ON a.id = l.performer_id \
               WHERE l.namespace_id = $1 AND ($2 IS NULL OR l.id < $2) ORDER BY l.id DESC LIMIT $3";
    Ok(run!(ex, c => sqlx::query_as::<_, EntryRow>(sql).bind(namespace.0).bind(before).bind(limit).fetch_all(c).await)?)
}
