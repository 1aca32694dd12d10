//! E-mail authorization for a repository's notifications (Quay's `authorizedemail` flow): a
//! repository admin asks for an address, Berth mails a confirmation link to it, and only once its
//! owner opens the link may `email` notifications of that repository target it.
//!
//! Better than Quay: confirmation codes are stored hashed and expire (`mail.authorization_ttl_secs`,
//! default 7 days), an authorization can be revoked, and the flow answers a clear 503 when no SMTP
//! server is configured instead of pretending to send.

use berth_core::Email;
use berth_notify::mail::{Mailer, authorization_mail};
use berth_notify::send::Outcome;
use berth_store::authorized_email::{self, AuthorizedEmailRow};
use berth_store::repos::RepoRow;
use chrono::{DateTime, Utc};

use crate::secret::{random_token, token_hash};
use crate::{AppError, Caller, Result};

/// An address's authorization for a repository, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedEmail {
    /// The address.
    pub email: String,
    /// The repository's namespace.
    pub namespace: String,
    /// The repository's name.
    pub repository: String,
    /// Whether the owner of the address confirmed it.
    pub confirmed: bool,
}

impl AuthorizedEmail {
    fn of(repo: &RepoRow, row: &AuthorizedEmailRow) -> Self {
        AuthorizedEmail {
            email: row.email.clone(),
            namespace: repo.namespace.clone(),
            repository: repo.name.clone(),
            confirmed: row.confirmed,
        }
    }
}

/// What opening a confirmation link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The address is now (or already was) authorized for the repository `namespace/name`.
    Confirmed {
        /// The address.
        email: String,
        /// The repository, `namespace/name`.
        repository: String,
    },
    /// No authorization has this code.
    Unknown,
    /// The code expired before it was used.
    Expired,
}

/// Length of confirmation codes (alphanumeric, about 190 bits).
const CODE_LEN: usize = 32;

fn not_authorized(email: &Email, repo: &RepoRow) -> AppError {
    AppError::NotFound(format!(
        "{email} is not authorized for {}/{}",
        repo.namespace, repo.name
    ))
}

fn parse_email(email: &str) -> Result<Email> {
    Email::parse(email).map_err(|e| AppError::invalid(format!("invalid e-mail address: {e}")))
}

impl crate::App {
    /// The mailer, or a 503 naming the missing configuration.
    pub(crate) fn mailer(&self) -> Result<&Mailer> {
        self.mailer
            .as_ref()
            .ok_or_else(|| AppError::NotConfigured("e-mail is not configured on this server (set mail.host)".into()))
    }

    /// The authorization of `email` for the repository (404 when it was never requested).
    pub async fn authorized_email(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        email: &str,
    ) -> Result<AuthorizedEmail> {
        let repo = self.admin_repo(caller, namespace, name).await?;
        let email = parse_email(email)?;
        let mut conn = self.store.conn().await?;
        let row = authorized_email::get(&mut conn, repo.id, email.as_str()).await?;
        row.map(|r| AuthorizedEmail::of(&repo, &r))
            .ok_or_else(|| not_authorized(&email, &repo))
    }

    /// Asks for `email` to be authorized: unless it already is, stores a fresh code and mails
    /// the confirmation link to the address.
    pub async fn authorize_email(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        email: &str,
    ) -> Result<AuthorizedEmail> {
        let repo = self.admin_repo(caller, namespace, name).await?;
        let email = parse_email(email)?;
        let mailer = self.mailer()?;
        {
            let mut conn = self.store.conn().await?;
            if let Some(row) = authorized_email::get(&mut conn, repo.id, email.as_str()).await?
                && row.confirmed
            {
                return Ok(AuthorizedEmail::of(&repo, &row));
            }
        }
        let code = random_token(CODE_LEN);
        let expires =
            Utc::now() + chrono::Duration::from_std(self.settings.email_code_ttl).unwrap_or(chrono::Duration::MAX);
        let row = {
            let mut tx = self.store.begin().await?;
            let row = authorized_email::request(&mut tx, repo.id, email.as_str(), &token_hash(&code), expires).await?;
            tx.commit().await?;
            row
        };
        if row.confirmed {
            // Confirmed between our read and write; nothing to send.
            return Ok(AuthorizedEmail::of(&repo, &row));
        }
        let link = format!("{}/authrepoemail?code={code}", self.settings.base_url());
        let mail = authorization_mail(
            "Berth",
            &format!("{}/{}", repo.namespace, repo.name),
            &link,
            &expires.format("%Y-%m-%d %H:%M UTC").to_string(),
        );
        match mailer.send(email.as_str(), &mail, None).await {
            Outcome::Delivered { .. } => {
                tracing::info!(repository = %format!("{}/{}", repo.namespace, repo.name), "sent e-mail authorization request");
                Ok(AuthorizedEmail::of(&repo, &row))
            }
            Outcome::Retryable { reason, .. } | Outcome::Permanent { reason, .. } => {
                tracing::warn!(error = %reason, "sending an e-mail authorization request failed");
                Err(AppError::Upstream(format!(
                    "could not send the verification mail to {email}: the mail server did not take it; try again later"
                )))
            }
        }
    }

    /// Revokes the authorization of `email`; `email` notifications to it then fail.
    pub async fn revoke_email(&self, caller: &Caller, namespace: &str, name: &str, email: &str) -> Result<()> {
        let repo = self.admin_repo(caller, namespace, name).await?;
        let email = parse_email(email)?;
        let mut tx = self.store.begin().await?;
        if !authorized_email::delete(&mut tx, repo.id, email.as_str()).await? {
            return Err(not_authorized(&email, &repo));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Opens a confirmation link (no caller needed: the code is the credential).
    pub async fn confirm_email(&self, code: &str) -> Result<Confirmation> {
        self.confirm_email_at(code, Utc::now()).await
    }

    /// [`Self::confirm_email`] at a given time (tests inject the clock).
    pub async fn confirm_email_at(&self, code: &str, now: DateTime<Utc>) -> Result<Confirmation> {
        let hash = token_hash(code);
        let mut tx = self.store.begin().await?;
        let Some(row) = authorized_email::by_code(&mut tx, &hash).await? else {
            return Ok(Confirmation::Unknown);
        };
        if !row.confirmed {
            if row.code_expires_at <= now {
                return Ok(Confirmation::Expired);
            }
            authorized_email::confirm(&mut tx, row.id, now).await?;
        }
        let repo = berth_store::repos::by_id(&mut tx, row.repo_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        tx.commit().await?;
        Ok(Confirmation::Confirmed {
            email: row.email,
            repository: format!("{}/{}", repo.namespace, repo.name),
        })
    }

    /// Whether `email` notifications of the repository may go to `email`.
    pub(crate) async fn email_is_authorized(
        &self,
        ex: &mut impl berth_store::db::Exec,
        repo: berth_core::RepoId,
        email: &str,
    ) -> Result<bool> {
        Ok(authorized_email::get(ex, repo, email)
            .await?
            .is_some_and(|r| r.confirmed))
    }
}
