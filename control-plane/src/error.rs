//! Typed errors of the control plane, each with a stable code (the `extensions.code` of GraphQL
//! errors and the `error.code` of the distribution endpoints).

use paved_model::{CompileError, Diagnostic, ModelError};

/// Why an operation of the control plane failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The intent does not decode or breaks a rule; nothing was stored.
    #[error("{0}")]
    InvalidIntent(ModelError),
    /// The intents do not compile together (two apps claim the same host and path, ...).
    #[error("{0}")]
    Compile(CompileError),
    /// An argument is malformed or out of bounds.
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials were presented.
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// The caller is authenticated but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The named thing does not exist (or the caller may not see it).
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Issuing or loading a certificate failed.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A bug or a broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code of this error: `INVALID_INTENT`, `CONFLICT`, `BAD_REQUEST`,
    /// `UNAUTHENTICATED`, `FORBIDDEN`, `NOT_FOUND` or `INTERNAL`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidIntent(_) => "INVALID_INTENT",
            Error::Compile(CompileError::InvalidIntent { .. }) => "INVALID_INTENT",
            Error::Compile(CompileError::RouteConflict { .. } | CompileError::DuplicateApp(_)) => {
                "CONFLICT"
            }
            Error::Compile(CompileError::InvalidSnapshot(_)) => "INVALID_CONFIG",
            Error::BadRequest(_) => "BAD_REQUEST",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Conflict(_) => "CONFLICT",
            Error::Database(_) | Error::Tls(_) | Error::Internal(_) => "INTERNAL",
        }
    }

    /// The diagnostics of an invalid intent (file, line, column, field, message).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            Error::InvalidIntent(e) => e.diagnostics(),
            Error::Compile(CompileError::InvalidIntent { error, .. }) => error.diagnostics(),
            _ => &[],
        }
    }

    /// Whether the message may be shown to the caller; internal errors are logged and replaced
    /// by a generic message so that database details do not leak.
    pub fn is_internal(&self) -> bool {
        self.code() == "INTERNAL"
    }

    /// The message shown to callers.
    pub fn public_message(&self) -> String {
        if self.is_internal() {
            "internal error (see the control plane's log)".to_string()
        } else {
            self.to_string()
        }
    }

    /// The diagnostics as JSON objects `{source, field, line, column, message}`.
    pub fn diagnostics_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.diagnostics()
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "source": d.source,
                        "field": d.field,
                        "line": d.location.map(|l| l.line),
                        "column": d.location.map(|l| l.column),
                        "message": d.message,
                    })
                })
                .collect(),
        )
    }

    /// Logs internal errors (with their detail) once, where they are turned into responses.
    pub fn log_if_internal(&self) {
        if self.is_internal() {
            tracing::error!(error = %self, "control plane internal error");
        }
    }
}

impl From<CompileError> for Error {
    fn from(e: CompileError) -> Self {
        Error::Compile(e)
    }
}
