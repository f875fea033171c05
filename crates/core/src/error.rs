//! The domain's error type. Every failure a caller can cause names what went wrong and how to fix
//! it in `reason`; the HTTP layer maps each kind to one status code in one place.

use serde_json::Value;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, Copy)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    PayloadTooLarge,
    /// The route exists but not for this HTTP method (answered by the router itself).
    MethodNotAllowed,
    UnsupportedMediaType,
    UnprocessableEntity,
    /// A rate limit was reached (HTTP 429); `retry_after` says for how long.
    TooManyRequests,
    Unavailable,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct Error {
    pub kind: ErrorKind,
    /// Kratos's machine-readable error id (e.g. `session_inactive`), when it has one.
    pub id: Option<&'static str>,
    pub reason: String,
    pub details: Value,
    /// Seconds after which the same request may succeed (`Retry-After`), for limits and
    /// overload.
    pub retry_after: Option<std::num::NonZeroU32>,
}

impl Error {
    pub fn new(kind: ErrorKind, reason: impl Into<String>) -> Self {
        Error {
            kind,
            id: None,
            reason: reason.into(),
            details: Value::Null,
            retry_after: None,
        }
    }
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        let secs = u32::try_from(seconds.max(1)).unwrap_or(u32::MAX);
        self.retry_after = std::num::NonZeroU32::new(secs);
        self
    }
    pub fn with_id(mut self, id: &'static str) -> Self {
        self.id = Some(id);
        self
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, reason)
    }
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, reason)
    }
    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, reason)
    }
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, reason)
    }
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, reason)
    }
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, reason)
    }
    /// No valid session in the request (Kratos `session_inactive`).
    pub fn no_session() -> Self {
        Self::new(
            ErrorKind::Unauthorized,
            "No valid session credentials found in the request.",
        )
        .with_id("session_inactive")
    }
    pub fn session_already_available() -> Self {
        Self::bad_request("A valid session was detected and thus this flow cannot be started. Sign out first or use the `refresh` parameter to re-authenticate.")
            .with_id("session_already_available")
    }
    pub fn csrf_violation() -> Self {
        Self::forbidden("The request was rejected to protect you from Cross-Site-Request-Forgery (CSRF) which could cause account takeover, leaking personal information, and other serious security issues. Reload the form and submit it again from the same browser.")
            .with_id("security_csrf_violation")
    }
    pub fn flow_expired(flow_id: &str, expired_at: &str) -> Self {
        Self::new(
            ErrorKind::Gone,
            format!("The self-service flow expired at {expired_at}. Start a new flow and submit it again."),
        )
        .with_id("self_service_flow_expired")
        .with_details(serde_json::json!({ "since": expired_at, "flow_id": flow_id }))
    }
    pub fn flow_not_found(flow_id: &str) -> Self {
        Self::not_found(format!(
            "The flow `{flow_id}` does not exist. It may have been completed already: start a new flow."
        ))
        .with_id("self_service_flow_not_found")
    }
    pub fn invalid_uuid(what: &str, value: &str) -> Self {
        Self::bad_request(format!(
            "`{value}` is not a valid {what}: expected a UUID such as 9f425a8d-7efc-4768-8f23-7647a74fdf13."
        ))
    }
}
