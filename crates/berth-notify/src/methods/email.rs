//! E-mail: one address, which the application checks is authorized for the repository, at
//! creation and again at every delivery. The message itself is built by `mail`.

use serde_json::{Value, json};

use super::{ConfigError, Method, MethodKind, required};
use crate::outbound::{Destination, Endpoints, Target};

/// An e-mail notification's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// The address (`email`).
    pub address: String,
}

impl Method for EmailConfig {
    const KIND: MethodKind = MethodKind::Email;
    const FORM_KEYS: &'static [&'static str] = &["email"];

    fn read(config: &Value) -> Result<Self, ConfigError> {
        Ok(EmailConfig {
            address: required(config, "email", "Missing e-mail address")?,
        })
    }

    fn to_json(&self) -> Value {
        json!({"email": self.address})
    }

    fn summary(&self) -> String {
        self.address.clone()
    }

    fn destination(&self, _: &Endpoints) -> Destination {
        Destination::named("mail")
    }

    fn delivers(&self, _: &Endpoints) -> Result<Target, String> {
        Ok(Target::Mail {
            to: self.address.clone(),
        })
    }
}
