//! `GET /api/v1/entities/{prefix}`: Quay's entity search, in Quay's shape (`results` of teams,
//! users and robots, and the organization).

use axum::Json;
use axum::extract::{Path, Query, State};
use berth_app::AppError;
use berth_app::entities::{Entity, EntityQuery};
use berth_core::AccountKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Avatar, avatar, avatar_kind};
use crate::HttpState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiCtx;

pub(crate) fn router() -> OpenApiRouter<HttpState> {
    OpenApiRouter::new().routes(routes!(search_entities))
}

/// Query of `GET /api/v1/entities/{prefix}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct EntitiesQuery {
    /// The namespace the search is for: its robots (for members), teams and itself.
    pub namespace: Option<String>,
    /// Include the namespace's matching teams (`true`/`false`, default false).
    #[serde(rename = "includeTeams")]
    #[param(rename = "includeTeams")]
    pub include_teams: Option<String>,
    /// Include the organization itself when its name matches and the caller administers it.
    #[serde(rename = "includeOrgs")]
    #[param(rename = "includeOrgs")]
    pub include_orgs: Option<String>,
}

/// One result of an entity search.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntityOut {
    /// The user, robot (`ns+short`), team or organization name.
    pub name: String,
    /// `user` (robots too, with `is_robot`), `team` or `org`.
    pub kind: String,
    /// For users and robots: whether it is a robot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_robot: Option<bool>,
    /// Whether it belongs to the organization searched in (always true for teams and the org).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_org_member: Option<bool>,
    /// Its avatar.
    pub avatar: Avatar,
}

/// Answer of `GET /api/v1/entities/{prefix}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntitiesOut {
    /// Teams, then users and robots by name, then the organization.
    pub results: Vec<EntityOut>,
}

/// Reads one of Quay's boolean query flags.
fn flag(name: &str, value: Option<&str>) -> Result<bool, AppError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(other) => Err(AppError::invalid(format!(
            "invalid {name}: '{other}' is not one of: true, false"
        ))),
    }
}

impl From<Entity> for EntityOut {
    fn from(e: Entity) -> EntityOut {
        match e {
            Entity::Team(t) => EntityOut {
                avatar: avatar(&t.name, "team"),
                name: t.name,
                kind: "team".into(),
                is_robot: None,
                is_org_member: Some(true),
            },
            Entity::Account { account, is_org_member } => EntityOut {
                avatar: avatar(&account.name, avatar_kind(account.kind)),
                is_robot: Some(account.kind == AccountKind::Robot),
                name: account.name,
                kind: "user".into(),
                is_org_member,
            },
            Entity::Org(o) => EntityOut {
                avatar: avatar(&o.name, "org"),
                name: o.name,
                kind: "org".into(),
                is_robot: None,
                is_org_member: Some(true),
            },
        }
    }
}

/// Users, robots, teams and the organization whose names start with `prefix` (signed-in callers).
#[utoipa::path(get, path = "/api/v1/entities/{prefix}", tag = "user", operation_id = "getMatchingEntities",
    params(("prefix" = String, Path, description = "The start of the names to find"), EntitiesQuery),
    responses((status = 200, body = EntitiesOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn search_entities(
    State(s): State<HttpState>,
    ApiCtx(ctx): ApiCtx,
    Path(prefix): Path<String>,
    Query(q): Query<EntitiesQuery>,
) -> ApiResult<Json<EntitiesOut>> {
    let query = EntityQuery {
        prefix,
        namespace: q.namespace.unwrap_or_default(),
        include_teams: flag("includeTeams", q.include_teams.as_deref())?,
        include_orgs: flag("includeOrgs", q.include_orgs.as_deref())?,
    };
    let found = s.app.search_entities(&ctx.caller, &query).await?;
    Ok(Json(EntitiesOut {
        results: found.into_iter().map(Into::into).collect(),
    }))
}
