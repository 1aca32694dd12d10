//! OAuth-style access tokens. Only a SHA-256 hash of each token is stored; the token itself is shown
//! once, when it is created.

use berth_core::{AccountId, TokenId};
use chrono::{DateTime, Utc};

use crate::Result;
use crate::db::{Exec, Tx, run};

/// One row of `access_token`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    /// Its id.
    #[sqlx(try_from = "i64")]
    pub id: TokenId,
    /// The account it acts for.
    #[sqlx(try_from = "i64")]
    pub account_id: AccountId,
    /// Space-separated scopes.
    pub scopes: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Stores a new token by its hash.
pub async fn insert(
    tx: &mut Tx,
    account: AccountId,
    token_hash: &str,
    scopes: &str,
    description: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<TokenRow> {
    let sql = "INSERT INTO access_token (account_id, token_hash, scopes, description, created_at, expires_at) \
               VALUES ($1, $2, $3, $4, $5, $6) \
               RETURNING id, account_id, scopes, description, created_at, expires_at";
    Ok(run!(tx, c => sqlx::query_as::<_, TokenRow>(sql)
        .bind(account.0)
        .bind(token_hash)
        .bind(scopes)
        .bind(description)
        .bind(Utc::now())
        .bind(expires_at)
        .fetch_one(c)
        .await)?)
}

/// Finds a token by its hash.
pub async fn by_hash(ex: &mut impl Exec, token_hash: &str) -> Result<Option<TokenRow>> {
    let sql = "SELECT id, account_id, scopes, description, created_at, expires_at FROM access_token \
               WHERE token_hash = $1";
    Ok(run!(ex, c => sqlx::query_as::<_, TokenRow>(sql).bind(token_hash).fetch_optional(c).await)?)
}
