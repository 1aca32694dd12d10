//! Web UI sessions: signing in with a password (users only; robots and tokens are for machines),
//! the caller behind a session cookie, the form token that guards every state-changing form
//! (CSRF), and signing out. Cookie tokens are stored hashed.

use berth_core::AccountKind;
use berth_store::{accounts, sessions};
use chrono::Utc;

use crate::secret::{random_token, token_hash};
use crate::{App, AppError, Caller, Result};

/// How long a session lasts.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::days(7);

/// A new session: the cookie's token and the form token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Goes into the `HttpOnly` cookie.
    pub token: String,
    /// Goes into every form.
    pub csrf: String,
}

/// The caller behind a session, with the session's form token.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    /// The signed-in user.
    pub caller: Caller,
    /// The form token of this session.
    pub csrf: String,
}

impl App {
    /// Signs a user in with a password.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<NewSession> {
        let p = self.authenticate_basic(username, password, client).await?;
        if p.kind != AccountKind::User {
            return Err(AppError::BadCredentials(
                "Robot accounts cannot sign in to the web interface".into(),
            ));
        }
        let new = NewSession {
            token: random_token(40),
            csrf: random_token(32),
        };
        let mut tx = self.store.begin().await?;
        sessions::delete_expired(&mut tx, Utc::now()).await?;
        sessions::insert(
            &mut tx,
            &token_hash(&new.token),
            p.id.0,
            &new.csrf,
            Utc::now() + SESSION_TTL,
        )
        .await?;
        tx.commit().await?;
        Ok(new)
    }

    /// The caller behind a session token; `None` when it is unknown or expired.
    pub async fn session_caller(&self, token: &str) -> Result<Option<SessionCaller>> {
        let mut conn = self.store.conn().await?;
        let Some(s) = sessions::live(&mut conn, &token_hash(token), Utc::now()).await? else {
            return Ok(None);
        };
        let Some(account) = accounts::by_id(&mut conn, berth_core::AccountId(s.account_id)).await? else {
            return Ok(None);
        };
        Ok(Some(SessionCaller {
            caller: Caller::Account(crate::auth::principal(account, None)),
            csrf: s.csrf,
        }))
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        sessions::delete(&mut tx, &token_hash(token)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether no user exists yet (first-run set-up).
    pub async fn needs_setup(&self) -> Result<bool> {
        Ok(accounts::count_users(&mut self.store.conn().await?).await? == 0)
    }

    /// The repositories the caller can see, optionally those whose `namespace/name` contains
    /// `query`, by path.
    pub async fn visible_repos(&self, caller: &Caller, query: &str) -> Result<Vec<crate::repos::RepoWithRole>> {
        let mut conn = self.store.conn().await?;
        let needle = query.trim().to_ascii_lowercase();
        let mut out = Vec::new();
        // Only what the caller may see is read; each one's role is then asked for the page.
        for repo in berth_store::repos::visible(&mut conn, crate::repos::viewer(caller)).await? {
            let path = format!("{}/{}", repo.namespace, repo.name);
            if !needle.is_empty() && !path.to_ascii_lowercase().contains(&needle) {
                continue;
            }
            if let Some(role) = self.repo_role(&mut conn, caller, &repo).await? {
                out.push(crate::repos::RepoWithRole { repo, role });
            }
        }
        out.sort_by(|a, b| (&a.repo.namespace, &a.repo.name).cmp(&(&b.repo.namespace, &b.repo.name)));
        Ok(out)
    }
}
