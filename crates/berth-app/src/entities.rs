//! Quay's entity search (`GET /api/v1/entities/{prefix}`): the users, robots, teams and
//! organization whose names start with a prefix, as clients use it to pick notification targets,
//! permission holders and namespaces.

use berth_core::{AccountKind, TeamRole};
use berth_store::accounts::{self, AccountRow};
use berth_store::teams::{self, TeamRow};

use crate::{App, Caller, Result};

/// Most users and robots one search returns (Quay's limit).
const MAX_USERS: i64 = 10;

/// What to search for.
#[derive(Debug, Clone, Default)]
pub struct EntityQuery {
    /// The name prefix (lowercased, spaces dropped, as Quay does).
    pub prefix: String,
    /// The namespace the search is made for: its robots are included for its members (or for the
    /// user it names, when that is the caller), its teams and itself on request.
    pub namespace: String,
    /// Include the namespace's matching teams (members only).
    pub include_teams: bool,
    /// Include the namespace itself when its name matches (its admins only).
    pub include_orgs: bool,
}

/// One result.
#[derive(Debug, Clone)]
pub enum Entity {
    /// A team of the namespace.
    Team(TeamRow),
    /// A user or robot; `is_org_member` is set when the namespace is an organization.
    Account {
        /// The user or robot.
        account: AccountRow,
        /// Whether it is in one of the organization's teams (robots of it always are).
        is_org_member: Option<bool>,
    },
    /// The organization itself.
    Org(AccountRow),
}

impl App {
    /// Searches users, robots, teams and the organization by name prefix, for a signed-in caller.
    /// Teams first, then users and robots by name, then the organization, as Quay orders them.
    pub async fn search_entities(&self, caller: &Caller, q: &EntityQuery) -> Result<Vec<Entity>> {
        let me = caller.principal()?;
        let prefix: String = q
            .prefix
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase();
        let mut conn = self.store.conn().await?;
        let namespace = match q.namespace.as_str() {
            "" => None,
            name => accounts::by_name(&mut conn, name).await?,
        };
        let superuser = me.acts_as_superuser();
        let mut found = Vec::new();
        let mut robots_of = None;
        // The organization searched in, and whether the caller administers it.
        let mut org = None;
        match &namespace {
            Some(ns) if ns.kind == AccountKind::Organization => {
                let role = self.org_role(&mut conn, caller, ns.id).await?;
                if role.is_some() || superuser {
                    robots_of = Some((ns.id, ns.name.as_str()));
                    if q.include_teams {
                        let teams = teams::of_org(&mut conn, ns.id).await?;
                        found.extend(
                            teams
                                .into_iter()
                                .filter(|t| t.name.starts_with(&prefix))
                                .map(Entity::Team),
                        );
                    }
                }
                org = Some((ns, superuser || role == Some(TeamRole::Admin)));
            }
            Some(ns) if ns.kind == AccountKind::User && ns.id == me.id => {
                robots_of = Some((ns.id, ns.name.as_str()));
            }
            _ => {}
        }
        for account in accounts::matching(&mut conn, &prefix, robots_of, MAX_USERS).await? {
            let is_org_member = match org {
                None => None,
                Some(_) if account.kind == AccountKind::Robot => Some(true),
                Some((o, _)) => Some(!teams::of_member_in_org(&mut conn, account.id, o.id).await?.is_empty()),
            };
            found.push(Entity::Account { account, is_org_member });
        }
        if let Some((o, admin)) = org
            && admin
            && q.include_orgs
            && o.name.starts_with(&prefix)
        {
            found.push(Entity::Org(o.clone()));
        }
        Ok(found)
    }
}
