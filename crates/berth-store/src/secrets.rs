//! Instance-wide secrets kept in the database, so that every process sharing the database agrees on
//! them (for example the key that signs registry tokens).

use crate::Result;
use crate::db::{Exec, Tx, run};

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
