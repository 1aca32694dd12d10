//! Authentication: passwords, robot tokens and access tokens into a [`Principal`]; and Docker's
//! registry token flow (`/v2/auth`), which signs short-lived JWTs granting only what the caller may do.
//!
//! Registry tokens are HS256 JWTs signed with a key kept in the database (`instance_secret`), so that
//! every instance sharing the database issues and accepts the same tokens.

use std::collections::BTreeSet;

use base64::Engine;
use berth_core::{AccountKind, RepoPath, RepoRole, ScopeSet};
use berth_store::{Store, accounts, secrets, tokens};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::passwords::Checked;
use crate::secret::{random_token, same_secret, token_hash};
use crate::{App, AppError, Caller, Principal, Result};

/// The username that says "the password is an access token" (Quay's convention).
pub const OAUTH_TOKEN_USERNAME: &str = "$oauthtoken";
const ISSUER: &str = "berth";

/// The key that signs registry tokens.
pub struct RegistryKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl RegistryKey {
    /// Loads the instance key, creating it (sealed) on first use.
    pub async fn load(store: &Store, keyring: &crate::sealing::Keyring) -> Result<RegistryKey> {
        let purpose = crate::sealing::Purpose::InstanceSecret;
        let mut tx = store.begin().await?;
        let candidate = keyring.seal(
            purpose,
            &base64::engine::general_purpose::STANDARD.encode(random_token(64)),
        )?;
        let stored = secrets::get_or_insert(&mut tx, secrets::REGISTRY_TOKEN_KEY, candidate.as_stored()).await?;
        tx.commit().await?;
        let stored = keyring.open(purpose, &secrets::Sealed::from_stored(stored))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(stored)
            .map_err(|e| AppError::Internal(format!("stored registry key: {e}")))?;
        Ok(RegistryKey {
            encoding: EncodingKey::from_secret(&raw),
            decoding: DecodingKey::from_secret(&raw),
        })
    }
}

/// One grant inside a registry token (Docker's `access` claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository path, or `catalog`.
    pub name: String,
    /// Granted actions: `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    nbf: i64,
    iat: i64,
    jti: String,
    access: Vec<AccessGrant>,
    /// Set in tokens issued to a build's push credential: the repository it builds for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    build_repo: Option<i64>,
}

/// A signed registry token and what it grants.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// What it grants.
    pub access: Vec<AccessGrant>,
}

/// A verified registry token.
#[derive(Debug, Clone)]
pub struct RegistryGrant {
    /// The account name, empty for anonymous.
    pub subject: String,
    /// What it grants.
    pub access: Vec<AccessGrant>,
    /// The repository of the build whose credential it was issued to.
    pub build_repo: Option<berth_core::RepoId>,
}

impl RegistryGrant {
    /// Whether the token grants `action` on repository `name`.
    pub fn allows(&self, name: &str, action: &str) -> bool {
        self.access
            .iter()
            .any(|g| g.kind == "repository" && g.name == name && g.actions.iter().any(|a| a == action || a == "*"))
    }
}

/// A parsed `scope` parameter of `/v2/auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedScope {
    /// `repository` or `registry`.
    pub kind: String,
    /// The resource name.
    pub name: String,
    /// Requested actions.
    pub actions: Vec<String>,
}

impl RequestedScope {
    /// Parses `type:name:actions`; the name may itself contain `:` only for non-repository types.
    pub fn parse(s: &str) -> Result<RequestedScope> {
        let bad = || AppError::invalid(format!("invalid scope '{s}': expected type:name:actions"));
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
        if kind.is_empty() || name.is_empty() {
            return Err(bad());
        }
        let actions = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(RequestedScope {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions,
        })
    }
}

/// The principal of an authenticated account; `scopes` is `None` for unscoped credentials.
pub(crate) fn principal(account: berth_store::accounts::AccountRow, scopes: Option<ScopeSet>) -> Principal {
    Principal {
        id: account.id,
        name: account.name,
        kind: account.kind,
        superuser: account.superuser,
        scopes,
        build_repo: None,
    }
}

/// How long after its expiry (or before its start) a registry token is still accepted.
const TOKEN_LEEWAY_SECS: u64 = 5;

impl App {
    /// Authenticates HTTP Basic credentials: a user's password, a robot's token, or an access token
    /// with the username `$oauthtoken`. `client` is the caller's address, which failed checks are
    /// counted against (with the user name); password checks are bounded and may answer 429.
    pub async fn authenticate_basic(
        &self,
        username: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Principal> {
        let bad = || AppError::BadCredentials("Invalid Username or Password".into());
        if username == OAUTH_TOKEN_USERNAME {
            return self.authenticate_token(password).await;
        }
        if username == crate::builds::BUILD_USERNAME {
            return self.authenticate_build(password).await;
        }
        let mut conn = self.store.conn().await?;
        let account = accounts::by_name(&mut conn, username).await?;
        drop(conn);
        let ok = match account.as_ref().map(|a| a.kind) {
            Some(AccountKind::Robot) => {
                let token = match account.as_ref().and_then(|a| a.robot_token.as_ref()) {
                    Some(sealed) => Some(self.keyring.open(crate::sealing::Purpose::RobotToken, sealed)?),
                    None => None,
                };
                let ok = token.is_some_and(|t| same_secret(&t, password));
                if !ok {
                    self.passwords.count_cheap_failure(username, client)?;
                }
                ok
            }
            kind => {
                // Unknown users, organizations and users without a password are checked against
                // a dummy hash, so that they cost what a real user costs.
                let stored = account
                    .as_ref()
                    .filter(|_| kind == Some(AccountKind::User))
                    .and_then(|a| a.password_hash.as_deref());
                self.passwords.check(username, password, stored, client).await? == Checked::Match
            }
        };
        match account {
            Some(account) if ok => Ok(principal(account, None)),
            _ => Err(bad()),
        }
    }

    /// Authenticates an access token (`Authorization: Bearer`).
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal> {
        let bad = || AppError::BadCredentials("Invalid access token".into());
        let mut conn = self.store.conn().await?;
        let row = tokens::by_hash(&mut conn, &token_hash(token)).await?.ok_or_else(bad)?;
        if row.expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(AppError::BadCredentials("Access token expired".into()));
        }
        let account = accounts::by_id(&mut conn, row.account_id).await?.ok_or_else(bad)?;
        let scopes = ScopeSet::parse(&row.scopes).map_err(|e| AppError::Internal(format!("stored scopes: {e}")))?;
        Ok(principal(account, Some(scopes)))
    }

    /// Creates an access token for `account` and returns it; only its hash is stored.
    pub async fn create_access_token(
        &self,
        account_name: &str,
        scopes: ScopeSet,
        description: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<String> {
        let mut tx = self.store.begin().await?;
        let account = accounts::by_name(&mut tx, account_name)
            .await?
            .filter(|a| a.kind == AccountKind::User)
            .ok_or_else(|| AppError::NotFound(format!("no user named '{account_name}'")))?;
        let token = random_token(40);
        tokens::insert(
            &mut tx,
            account.id,
            &token_hash(&token),
            &scopes.to_text(),
            description,
            expires_at,
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Issues a registry token for `service` granting, for each requested scope, the requested
    /// actions the caller is allowed. Actions it may not have are silently left out, as Docker's
    /// token spec requires; a malformed scope is a 400.
    pub async fn issue_registry_token(&self, caller: &Caller, service: &str, scopes: &[String]) -> Result<IssuedToken> {
        let mut access: Vec<AccessGrant> = Vec::new();
        for raw in scopes {
            for part in raw.split(' ').filter(|p| !p.is_empty()) {
                let req = RequestedScope::parse(part)?;
                let allowed = self.allowed_registry_actions(caller, &req).await?;
                let granted: Vec<String> = req
                    .actions
                    .iter()
                    .filter(|a| allowed.contains(a.as_str()))
                    .cloned()
                    .collect();
                access.push(AccessGrant {
                    kind: req.kind,
                    name: req.name,
                    actions: granted,
                });
            }
        }
        let now = Utc::now();
        let ttl = i64::try_from(self.settings.registry_token_ttl.as_secs()).unwrap_or(3600);
        let claims = Claims {
            iss: ISSUER.into(),
            sub: caller.account().map(|p| p.name.clone()).unwrap_or_default(),
            aud: service.to_owned(),
            exp: now.timestamp() + ttl,
            nbf: now.timestamp() - 5,
            iat: now.timestamp(),
            jti: random_token(24),
            access: access.clone(),
            build_repo: caller.account().and_then(|p| p.build_repo).map(|r| r.0),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.registry_key.encoding)
            .map_err(|e| AppError::Internal(format!("signing registry token: {e}")))?;
        Ok(IssuedToken {
            token,
            expires_in: ttl,
            issued_at: now,
            access,
        })
    }

    /// Verifies a registry token issued by any instance sharing this database.
    pub fn verify_registry_token(&self, token: &str) -> Result<RegistryGrant> {
        let mut v = Validation::new(Algorithm::HS256);
        // A few seconds for clocks that differ between instances, not the library's minute.
        v.leeway = TOKEN_LEEWAY_SECS;
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[self.settings.server_hostname.as_str()]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.registry_key.decoding, &v)
            .map_err(|e| AppError::BadCredentials(format!("invalid registry token: {e}")))?;
        Ok(RegistryGrant {
            subject: data.claims.sub,
            access: data.claims.access,
            build_repo: data.claims.build_repo.map(berth_core::RepoId),
        })
    }

    async fn allowed_registry_actions(&self, caller: &Caller, req: &RequestedScope) -> Result<BTreeSet<&'static str>> {
        let mut allowed = BTreeSet::new();
        match req.kind.as_str() {
            "repository" => {
                let Ok(path) = RepoPath::parse(&req.name) else {
                    return Ok(allowed);
                };
                match self.repo_role_by_path(caller, &path).await? {
                    Some(role) => {
                        allowed.insert("pull");
                        if role >= RepoRole::Write {
                            allowed.insert("push");
                        }
                        if role >= RepoRole::Admin {
                            allowed.extend(["delete", "*"]);
                        }
                    }
                    None if self.repo_exists(&path).await? => {}
                    None => {
                        // Pushing to a repository that does not exist yet creates it.
                        if self.may_create_in(caller, path.namespace.as_str()).await? {
                            allowed.extend(["pull", "push"]);
                        }
                    }
                }
            }
            "registry" if req.name == "catalog" && caller.account().is_some() => {
                allowed.insert("*");
            }
            _ => {}
        }
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        let s = RequestedScope::parse("repository:acme/team/app:pull,push").unwrap();
        assert_eq!((s.kind.as_str(), s.name.as_str()), ("repository", "acme/team/app"));
        assert_eq!(s.actions, vec!["pull", "push"]);
        let s = RequestedScope::parse("registry:catalog:*").unwrap();
        assert_eq!(s.actions, vec!["*"]);
        assert!(RequestedScope::parse("repository").is_err());
        assert!(RequestedScope::parse(":x:pull").is_err());
    }
}
