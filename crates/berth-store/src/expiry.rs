//! Announcements of expiring tags: which tags of a `repo_image_expiry` notification's scope expire
//! within its window and were not yet announced to it at that expiry time, and the notices that
//! record an announcement (written with its delivery, so none is lost and none repeats; a tag
//! whose expiry moves is announced again).

use berth_core::RepoId;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::db::{Exec, Tx, run};
use crate::notifications::NotificationScope;

/// A tag that expires soon, with its repository.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExpiringTag {
    /// The repository.
    #[sqlx(try_from = "i64")]
    pub repository_id: RepoId,
    /// The tag.
    pub tag: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// The tags in `scope` (a repository, or every repository of a namespace) that expire after
/// `now` and no later than `until`, not yet announced to notification `notification` at their
/// expiry time; by repository, then soonest first.
pub async fn unannounced(
    ex: &mut impl Exec,
    notification: i64,
    scope: NotificationScope,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ExpiringTag>> {
    macro_rules! select {
        ($holder:literal) => {
            concat!(
                "SELECT t.repository_id, t.name AS tag, t.expires_at FROM tag t ",
                $holder,
                " AND t.expires_at IS NOT NULL AND t.expires_at > $2 AND t.expires_at <= $3 \
                 AND NOT EXISTS (SELECT 1 FROM expiry_notice e WHERE e.notification_id = $4 \
                 AND e.repository_id = t.repository_id AND e.tag = t.name AND e.expires_at = t.expires_at) \
                 ORDER BY t.repository_id, t.expires_at, t.name"
            )
        };
    }
    let (sql, id) = match scope {
        NotificationScope::Repository(r) => (select!("WHERE t.repository_id = $1"), r.0),
        NotificationScope::Namespace(a) => (
            select!("JOIN repository r ON r.id = t.repository_id WHERE r.namespace_id = $1"),
            a.0,
        ),
    };
    Ok(run!(ex, c => sqlx::query_as::<_, ExpiringTag>(sql)
        .bind(id).bind(now).bind(until).bind(notification).fetch_all(c).await)?)
}

/// Records that `tags` were announced to notification `notification`.
pub async fn record_notices(tx: &mut Tx, notification: i64, tags: &[ExpiringTag]) -> Result<()> {
    let sql = "INSERT INTO expiry_notice (notification_id, repository_id, tag, expires_at) VALUES ($1, $2, $3, $4) \
               ON CONFLICT DO NOTHING";
    for t in tags {
        run!(tx, c => sqlx::query(sql).bind(notification).bind(t.repository_id.0).bind(&t.tag).bind(t.expires_at)
            .execute(c).await.map(|r| r.rows_affected()))?;
    }
    Ok(())
}
