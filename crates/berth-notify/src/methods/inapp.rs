//! The in-app bell (`quay_notification`): a user, an organization's admins or a team's members,
//! resolved by the application when a delivery writes its bell rows.

use serde_json::{Value, json};

use super::{ConfigError, Method, MethodKind};
use crate::outbound::{Destination, Endpoints, Target as Delivers};

/// Who receives an in-app notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One user.
    User(String),
    /// The admins of an organization (which must be the repository's namespace).
    Org(String),
    /// The members of a team of the repository's organization.
    Team(String),
}

impl Target {
    /// Quay's `kind` (`user`, `org`, `team`).
    pub fn kind(&self) -> &'static str {
        match self {
            Target::User(_) => "user",
            Target::Org(_) => "org",
            Target::Team(_) => "team",
        }
    }

    /// The user's, organization's or team's name.
    pub fn name(&self) -> &str {
        match self {
            Target::User(n) | Target::Org(n) | Target::Team(n) => n,
        }
    }

    /// The target of Quay's `kind` (`user`, `org`, `team`) named `name`; `None` for another kind.
    pub fn of(kind: &str, name: String) -> Option<Target> {
        match kind {
            "user" => Some(Target::User(name)),
            "org" => Some(Target::Org(name)),
            "team" => Some(Target::Team(name)),
            _ => None,
        }
    }

    /// `kind:name`, as the UI's target choice spells it; `None` for anything else.
    pub fn parse_choice(choice: &str) -> Option<Target> {
        let (kind, name) = choice.split_once(':')?;
        Target::of(kind, name.to_owned())
    }
}

/// An in-app notification's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InAppConfig {
    /// Who receives it (`target`).
    pub target: Target,
}

impl Method for InAppConfig {
    const KIND: MethodKind = MethodKind::QuayNotification;
    /// The form's target choice, `kind:name`.
    const FORM_KEYS: &'static [&'static str] = &["target"];

    fn read(config: &Value) -> Result<Self, ConfigError> {
        let missing = || ConfigError::at("target", "Missing target");
        let target = config
            .get("target")
            .and_then(Value::as_object)
            .filter(|t| !t.is_empty())
            .ok_or_else(missing)?;
        let kind = target.get("kind").and_then(Value::as_str).ok_or_else(missing)?;
        let name = target
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let target = Target::of(kind, name).ok_or_else(|| {
            ConfigError::at(
                "target",
                format!("Unknown target kind '{kind}': must be user, org or team"),
            )
        })?;
        Ok(InAppConfig { target })
    }

    fn to_json(&self) -> Value {
        json!({"target": {"kind": self.target.kind(), "name": self.target.name()}})
    }

    fn summary(&self) -> String {
        format!("{} {}", self.target.kind(), self.target.name())
    }

    fn destination(&self, _: &Endpoints) -> Destination {
        Destination::named("in-app")
    }

    fn delivers(&self, _: &Endpoints) -> Result<Delivers, String> {
        Ok(Delivers::InApp(self.target.clone()))
    }
}
