//! The validation error of the domain model. Each variant names the thing that was wrong, so that
//! outer layers can turn it into a 400 that tells the caller which field to fix.

/// A value that does not satisfy the domain's grammar or rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A field holds a value outside its grammar; `field` names it, `reason` says why.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl CoreError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The name of the offending field.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Invalid { field, .. } => field,
        }
    }
}
