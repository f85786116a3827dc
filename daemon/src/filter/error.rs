//! The one error type of the filter language.
//!
//! `Display` carries the detail (for logs and tests); [`FilterError::public_message`]
//! is what a client sees, worded as PocketBase answers: every invalid filter,
//! rule or sort is a 400 "Something went wrong while processing your
//! request.", and `@request.*`/`@collection.*` in a non-superuser's
//! `filter`/`sort` is a 403 "Only superusers can filter by @request.".

use crate::error::ApiError;

/// PocketBase's answer to any invalid filter or sort (400).
pub const GENERIC_MESSAGE: &str = "Something went wrong while processing your request.";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// The text does not parse. `pos` is a byte offset into the input.
    #[error("parse error at byte {pos}: {message}")]
    Parse { pos: usize, message: String },
    /// An identifier that names no field, collection or macro.
    #[error("unknown field {field:?}: {message}")]
    UnknownField { field: String, message: String },
    /// Superuser-only: `@request.*`/`@collection.*` in a client filter or
    /// sort (403). The message is PocketBase's, ready for the client.
    #[error("{0}")]
    Forbidden(String),
    /// A hidden field, or a relation into a collection whose list rule is
    /// superusers-only, used by a non-superuser.
    #[error("non-filterable field {field:?}: {message}")]
    NotFilterable { field: String, message: String },
    /// Over one of the limits (length, expressions, nesting, sort terms).
    #[error("too complex: {0}")]
    TooComplex(String),
    /// Anything else that makes the expression meaningless (bad function
    /// arguments, unknown modifier, invalid sort field...).
    #[error("invalid filter: {0}")]
    Invalid(String),
}

impl FilterError {
    pub(crate) fn parse(pos: usize, message: impl Into<String>) -> Self {
        FilterError::Parse {
            pos,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        FilterError::Invalid(message.into())
    }

    pub(crate) fn unknown(field: &str, message: impl Into<String>) -> Self {
        FilterError::UnknownField {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn hidden(field: &str, message: impl Into<String>) -> Self {
        FilterError::NotFilterable {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The superuser-only error for a forbidden prefix (`@request.` or
    /// `@collection.`).
    pub fn forbidden_prefix(prefix: &str) -> Self {
        FilterError::Forbidden(format!("Only superusers can filter by {prefix}"))
    }

    /// HTTP status PocketBase answers with.
    pub fn status(&self) -> u16 {
        match self {
            FilterError::Forbidden(_) => 403,
            _ => 400,
        }
    }

    /// What the client sees (PocketBase's wording); the detail stays in logs.
    pub fn public_message(&self) -> &str {
        match self {
            FilterError::Forbidden(m) => m,
            _ => GENERIC_MESSAGE,
        }
    }
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        match e {
            FilterError::Forbidden(m) => ApiError::Forbidden(m),
            other => {
                tracing::debug!(error = %other, "invalid filter");
                ApiError::bad(GENERIC_MESSAGE)
            }
        }
    }
}
