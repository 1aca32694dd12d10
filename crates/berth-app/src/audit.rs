//! Audit entries: written by every state-changing use case inside its own transaction, read back per
//! repository. Kind names are Quay's (`create_repo`, `change_repo_permission`, …).

use berth_core::{AccountId, RepoId, RepoRole};
use berth_store::Tx;
use berth_store::audit::{self, NewEntry};
use chrono::{DateTime, Utc};

use crate::{App, Ctx, Result};

/// The most entries one page returns.
pub const PAGE_SIZE: i64 = 100;

/// Appends an audit entry for the caller of `ctx`.
pub(crate) async fn record(
    tx: &mut Tx,
    ctx: &Ctx,
    kind: &str,
    namespace: Option<AccountId>,
    repository: Option<RepoId>,
    metadata: serde_json::Value,
) -> Result<()> {
    let performer = ctx.caller.account().map(|p| (p.id, p.name.as_str()));
    let entry = NewEntry {
        kind,
        namespace,
        repository,
        performer,
        ip: ctx.ip.as_deref(),
        metadata,
    };
    audit::insert(tx, &entry).await?;
    Ok(())
}

/// One audit entry as the API shows it.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Its id, which orders entries and serves as the paging cursor.
    pub id: i64,
    /// Quay's kind name.
    pub kind: String,
    /// Who did it: name and whether it is a robot; `None` for the system.
    pub performer: Option<(String, bool)>,
    /// The caller's address.
    pub ip: Option<String>,
    /// Kind-specific details.
    pub metadata: serde_json::Value,
    /// When it happened.
    pub datetime: DateTime<Utc>,
}

/// A page of entries and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct LogPage {
    /// Entries, newest first.
    pub entries: Vec<LogEntry>,
    /// Pass as `next_page` to get older entries; `None` when there are none.
    pub next_page: Option<String>,
}

impl App {
    /// The audit log of a repository (admin only), newest first.
    pub async fn repo_logs(&self, ctx: &Ctx, namespace: &str, name: &str, next_page: Option<&str>) -> Result<LogPage> {
        let (repo, _) = self.repo_access(&ctx.caller, namespace, name, RepoRole::Admin).await?;
        let before = parse_cursor(next_page)?;
        let mut conn = self.store.conn().await?;
        let rows = audit::of_repository(&mut conn, repo.id, before, PAGE_SIZE + 1).await?;
        Ok(page_of(rows))
    }

    /// The audit log of an organization (organization admin), newest first: every entry in its
    /// namespace, its repositories' included.
    pub async fn org_logs(&self, ctx: &Ctx, org: &str, next_page: Option<&str>) -> Result<LogPage> {
        let before = parse_cursor(next_page)?;
        let mut conn = self.store.conn().await?;
        let org = self.admin_org(&mut conn, &ctx.caller, org).await?;
        let rows = audit::of_namespace(&mut conn, org.id, before, PAGE_SIZE + 1).await?;
        Ok(page_of(rows))
    }
}

fn parse_cursor(next_page: Option<&str>) -> Result<Option<i64>> {
    match next_page {
        None | Some("") => Ok(None),
        Some(p) => p
            .parse::<i64>()
            .map(Some)
            .map_err(|_| crate::AppError::invalid(format!("invalid next_page: '{p}'"))),
    }
}

fn page_of(rows: Vec<audit::EntryRow>) -> LogPage {
    let page = usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    let more = rows.len() > page;
    let entries: Vec<LogEntry> = rows
        .into_iter()
        .take(page)
        .map(|r| LogEntry {
            id: r.id,
            kind: r.kind,
            performer: r
                .performer_name
                .map(|n| (n, r.performer_kind.as_deref() == Some("robot"))),
            ip: r.ip,
            metadata: r.metadata.0,
            datetime: r.created_at,
        })
        .collect();
    let next_page = if more {
        entries.last().map(|e| e.id.to_string())
    } else {
        None
    };
    LogPage { entries, next_page }
}
