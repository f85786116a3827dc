//! The one error type of the API and its mapping to PocketBase's error JSON.
//!
//! Every handler returns `Result<_, ApiError>`; `ApiError::into_body` is the
//! only place that turns an error into `{status, message, data}`. Internal
//! errors are logged with their detail and answered with a generic message.

use serde_json::{json, Map, Value};

/// Field-level validation failures: field name → (code, message).
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(pub Map<String, Value>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.add_params(field, code, message, Value::Null);
    }
    /// A field error with PocketBase's `params` (omitted when null).
    pub fn add_params(
        &mut self,
        field: &str,
        code: &str,
        message: impl Into<String>,
        params: Value,
    ) {
        let mut v = json!({"code": code, "message": sentence(message.into())});
        if !params.is_null() {
            v["params"] = params;
        }
        self.0.insert(field.to_string(), v);
    }
    /// Nested errors (e.g. `fields.0.name`): inserts an already shaped object.
    pub fn add_nested(&mut self, field: &str, value: Value) {
        self.0.insert(field.to_string(), value);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// PocketBase's field messages: capitalized, ending with a period.
fn sentence(mut m: String) -> String {
    if let Some(first) = m.chars().next() {
        if first.is_lowercase() {
            m = first.to_uppercase().collect::<String>() + &m[first.len_utf8()..];
        }
    }
    if !m.ends_with('.') {
        m.push('.');
    }
    m
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with a message and optional field errors.
    #[error("bad request: {message}")]
    BadRequest { message: String, data: FieldErrors },
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("payload too large")]
    TooLarge(String),
    #[error("too many requests")]
    TooManyRequests { message: String, retry_after: u64 },
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// Logged with detail, answered as a generic 500 (or 400 in PocketBase's
    /// manner where the caller chooses so).
    #[error("internal: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            data: FieldErrors::new(),
        }
    }
    pub fn validation(message: impl Into<String>, data: FieldErrors) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            data,
        }
    }
    pub fn not_found() -> Self {
        ApiError::NotFound("The requested resource wasn't found.".into())
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal(detail.to_string())
    }
    pub fn superusers_only() -> Self {
        ApiError::Forbidden("Only superusers can perform this action.".into())
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::TooLarge(_) => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::NotImplemented(_) => 501,
            ApiError::Unavailable(_) => 503,
        }
    }

    /// The PocketBase error JSON body.
    pub fn to_body(&self) -> Value {
        let (message, data) = match self {
            ApiError::BadRequest { message, data } => (message.clone(), data.clone().into_value()),
            ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::TooLarge(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Unavailable(m)
            | ApiError::NotImplemented(m) => (m.clone(), json!({})),
            ApiError::TooManyRequests { message, .. } => (message.clone(), json!({})),
            ApiError::MethodNotAllowed => ("Method Not Allowed".into(), json!({})),
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    "Something went wrong while processing your request.".into(),
                    json!({}),
                )
            }
        };
        json!({"status": self.status(), "message": message, "data": data})
    }
}
