//! One error type for the whole server. Every GraphQL error leaves through
//! [`AppError::extend`], which sets the stable `extensions.code`.

use async_graphql::ErrorExtensions;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The account is disabled: refused sign-in and new sessions.
    #[error("this account is disabled")]
    AccountDisabled,
    /// Another account holds the email (`BAD_USER_INPUT` on `email`, with
    /// `reason: EMAIL_TAKEN`).
    #[error("a user with email {0} already exists")]
    EmailTaken(String),
    #[error("{message}")]
    BadInput {
        field: &'static str,
        message: String,
    },
    #[error("too many attempts; try again in {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("internal error (reference {correlation_id})")]
    Internal {
        #[source]
        source: anyhow::Error,
        /// Quoted to the client and logged with the detail, so an operator
        /// can find one from the other.
        correlation_id: uuid::Uuid,
    },
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput {
            field,
            message: message.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let source = err.into();
        let correlation_id = uuid::Uuid::new_v4();
        // Logged where it is made; clients only see the reference.
        tracing::error!(error = ?source, %correlation_id, "internal error");
        Self::Internal {
            source,
            correlation_id,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) | AppError::AccountDisabled => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadInput { .. } | AppError::EmailTaken(_) => "BAD_USER_INPUT",
            AppError::RateLimited { .. } => "RATE_LIMITED",
            AppError::Internal { .. } => "INTERNAL",
        }
    }

    /// The GraphQL error with its code; use as `.map_err(AppError::extend)`.
    pub fn extend(self) -> async_graphql::Error {
        ErrorExtensions::extend(&self)
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            match self {
                AppError::BadInput { field, .. } => ext.set("field", *field),
                AppError::AccountDisabled => ext.set("reason", "ACCOUNT_DISABLED"),
                AppError::EmailTaken(_) => {
                    ext.set("field", "email");
                    ext.set("reason", "EMAIL_TAKEN");
                }
                AppError::RateLimited { retry_after_secs } => {
                    ext.set("retryAfter", *retry_after_secs)
                }
                AppError::Internal { correlation_id, .. } => {
                    ext.set("correlationId", correlation_id.to_string())
                }
                _ => {}
            }
        })
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        AppError::internal(err)
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(err: sea_orm::TransactionError<AppError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => AppError::internal(db),
            sea_orm::TransactionError::Transaction(app) => app,
        }
    }
}

/// A missing or unusable bearer token.
pub const BAD_TOKEN: &str = "invalid or expired session token";
/// An operation that needs a signed-in caller.
pub const SIGN_IN_REQUIRED: &str = "sign in required";
