//! The application error: a small, stable set of kinds that every surface maps to its own wire
//! format (Quay's error body, the OCI error envelope, CLI messages). Registry refusals are a
//! domain enum of their own (`registry::RegistryError`); their OCI wire codes live in berth-http.

use berth_core::CoreError;
use berth_store::StoreError;

/// What went wrong in a use case.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or breaks a rule (400); the message names the problem, and
    /// `field`, when known, is the input it is about (a form places the message beside it).
    #[error("{message}")]
    Invalid {
        /// The input the message is about (`url`, `title`, `ref-regex`, …), when there is one.
        field: Option<&'static str>,
        /// What is wrong.
        message: String,
    },
    /// The thing does not exist, or the caller may not know that it does (404).
    #[error("{0}")]
    NotFound(String),
    /// The operation needs a signed-in caller (401).
    #[error("Requires authentication")]
    Unauthenticated,
    /// The credentials given are wrong (401).
    #[error("{0}")]
    BadCredentials(String),
    /// The caller is known but lacks the permission or the token scope (403).
    #[error("{0}")]
    Forbidden(String),
    /// The operation conflicts with existing state, e.g. a taken name (400 in Quay's API).
    #[error("{0}")]
    Conflict(String),
    /// A dependency is temporarily unavailable; retrying may work (503).
    #[error("{0}")]
    Unavailable(String),
    /// A feature is not configured on this server; the message says what to set (503, shown).
    #[error("{0}")]
    NotConfigured(String),
    /// A server Berth depends on (an SMTP server) refused or failed; the message is ours, without
    /// the upstream's details, which go to the log (502).
    #[error("{0}")]
    Upstream(String),
    /// A registry operation refused, in the registry's terms (the `/v2` surface words it as an
    /// OCI error code and status).
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The request body is larger than the route accepts; the message names the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Too many requests of this kind; retry after `retry_after_secs` (429 with `Retry-After`).
    #[error("{message}")]
    TooManyRequests {
        /// What was limited.
        message: String,
        /// When to retry, in seconds.
        retry_after_secs: u64,
    },
    /// A bug or an unexpected failure; details go to the log, not to the caller (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// The standard 403.
    pub fn forbidden() -> Self {
        AppError::Forbidden("Unauthorized".into())
    }

    /// The standard 404.
    pub fn not_found() -> Self {
        AppError::NotFound("Not Found".into())
    }
}

impl AppError {
    /// A 400 about no field in particular.
    pub fn invalid(message: impl Into<String>) -> AppError {
        AppError::Invalid {
            field: None,
            message: message.into(),
        }
    }

    /// A 400 about one input, `field`.
    pub fn invalid_field(field: &'static str, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            field: Some(field),
            message: message.into(),
        }
    }
}

impl From<CoreError> for AppError {
    fn from(e: CoreError) -> Self {
        AppError::invalid(e.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AppError::Conflict(m),
            StoreError::Busy(m) => AppError::Unavailable(m),
            other => AppError::Internal(other.to_string()),
        }
    }
}
