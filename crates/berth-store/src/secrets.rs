//! Secrets in the database: instance-wide ones that every process sharing the database agrees on
//! (the key that signs registry tokens), the [`Sealed`] form every stored secret takes, and the
//! list of columns that hold sealed values, for re-encryption.

use crate::Result;
use crate::db::{Exec, Tx, run};

/// A secret as stored: encrypted by the application (`berth-app`'s sealing), or, for rows written
/// before encryption existed, the plain value. The store never looks inside.
#[derive(Clone, PartialEq, Eq, sqlx::Type)]
#[sqlx(transparent)]
pub struct Sealed(String);

impl Sealed {
    /// Wraps a stored value.
    pub fn from_stored(value: String) -> Sealed {
        Sealed(value)
    }

    /// The stored text.
    pub fn as_stored(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(…)")
    }
}

/// The name of the key that signs registry tokens.
pub const REGISTRY_TOKEN_KEY: &str = "registry_token_hs256";

/// A column holding sealed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    /// `account.robot_token`.
    RobotToken,
    /// `repository_notification.secret`.
    NotificationSecret,
    /// `repository_notification.previous_secret`.
    PreviousNotificationSecret,
    /// `build_trigger.secret`.
    TriggerSecret,
    /// `repository_mirror.password`.
    MirrorPassword,
    /// `instance_secret.value` of [`REGISTRY_TOKEN_KEY`] (the other names are markers, not
    /// secrets).
    InstanceSecret,
}

impl SealedColumn {
    /// Every column that holds sealed values.
    pub const ALL: [SealedColumn; 6] = [
        SealedColumn::RobotToken,
        SealedColumn::NotificationSecret,
        SealedColumn::PreviousNotificationSecret,
        SealedColumn::TriggerSecret,
        SealedColumn::MirrorPassword,
        SealedColumn::InstanceSecret,
    ];

    /// (select of `key, value` for the non-null values, update by key). The instance secret's
    /// select takes its name as `$1`.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            SealedColumn::RobotToken => (
                "SELECT CAST(id AS TEXT), robot_token FROM account WHERE robot_token IS NOT NULL",
                "UPDATE account SET robot_token = $2 WHERE CAST(id AS TEXT) = $1",
            ),
            SealedColumn::NotificationSecret => (
                "SELECT CAST(id AS TEXT), secret FROM repository_notification WHERE secret IS NOT NULL",
                "UPDATE repository_notification SET secret = $2 WHERE CAST(id AS TEXT) = $1",
            ),
            SealedColumn::PreviousNotificationSecret => (
                "SELECT CAST(id AS TEXT), previous_secret FROM repository_notification WHERE previous_secret IS NOT NULL",
                "UPDATE repository_notification SET previous_secret = $2 WHERE CAST(id AS TEXT) = $1",
            ),
            SealedColumn::TriggerSecret => (
                "SELECT CAST(id AS TEXT), secret FROM build_trigger",
                "UPDATE build_trigger SET secret = $2 WHERE CAST(id AS TEXT) = $1",
            ),
            SealedColumn::MirrorPassword => (
                "SELECT CAST(repository_id AS TEXT), password FROM repository_mirror WHERE password IS NOT NULL",
                "UPDATE repository_mirror SET password = $2 WHERE CAST(repository_id AS TEXT) = $1",
            ),
            SealedColumn::InstanceSecret => (
                "SELECT name, value FROM instance_secret WHERE name = $1",
                "UPDATE instance_secret SET value = $2 WHERE name = $1",
            ),
        }
    }
}

/// Every value of `column`, with the key of its row.
pub async fn sealed_values(ex: &mut impl Exec, column: SealedColumn) -> Result<Vec<(String, Sealed)>> {
    let (select, _) = column.sql();
    Ok(match column {
        SealedColumn::InstanceSecret => {
            run!(ex, c => sqlx::query_as::<_, (String, Sealed)>(select).bind(REGISTRY_TOKEN_KEY).fetch_all(c).await)?
        }
        _ => run!(ex, c => sqlx::query_as::<_, (String, Sealed)>(select).fetch_all(c).await)?,
    })
}

/// Replaces one value of `column`.
pub async fn replace_sealed(tx: &mut Tx, column: SealedColumn, key: &str, value: &Sealed) -> Result<()> {
    let (_, update) = column.sql();
    run!(tx, c => sqlx::query(update).bind(key).bind(value).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Returns the secret called `name`, storing `candidate` first if there is none yet. When several
/// processes race, the first insert wins and all of them return its value.
pub async fn get_or_insert(tx: &mut Tx, name: &str, candidate: &str) -> Result<String> {
    let insert = "INSERT INTO instance_secret (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
    run!(tx, c => sqlx::query(insert).bind(name).bind(candidate).execute(c).await.map(|r| r.rows_affected()))?;
    get(tx, name)
        .await?
        .ok_or_else(|| crate::StoreError::Corrupt(format!("secret {name} vanished")))
}

/// Reads the secret called `name`.
pub async fn get(ex: &mut impl Exec, name: &str) -> Result<Option<String>> {
    let sql = "SELECT value FROM instance_secret WHERE name = $1";
    Ok(run!(ex, c => sqlx::query_scalar::<_, String>(sql).bind(name).fetch_optional(c).await)?)
}

/// Stores `value` under `name` unless the name is taken. Returns whether this call stored it: a
/// portable "first one wins" marker that works the same on both backends.
pub async fn insert_if_absent(tx: &mut Tx, name: &str, value: &str) -> Result<bool> {
    let sql = "INSERT INTO instance_secret (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
    let n = run!(tx, c => sqlx::query(sql).bind(name).bind(value).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
