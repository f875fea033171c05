//! The domain's error type. Every failure a caller can cause names what went wrong and how to fix
//! it in `reason`; the HTTP layer maps each kind to one status code in one place.

use serde_json::Value;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in the few classes a caller reacts to differently. The server maps each to
/// one HTTP status (`server/src/error.rs`); the names follow HTTP's because Kratos's clients
/// tell errors apart by those statuses.
#[derive(Debug, Clone, PartialEq, Eq, Copy, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// Kratos's machine-readable error ids (the `error.id` of its JSON), and Tessera's own in the
/// same style. Code matches on the variant; only [`ErrorId::as_str`] produces the wire string.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorId {
    /// The browser must go elsewhere (upstream) to finish the flow.
    BrowserLocationChangeRequired,
    /// An identifier or address already belongs to another identity.
    IdentityConflict,
    /// An OpenID Provider app's metadata is not valid (admin API).
    InvalidClientMetadata,
    /// A `page_token` that this server did not issue.
    InvalidPageToken,
    /// A per-instance limit was reached.
    RateLimited,
    /// The admin API refused a request from a browser page.
    SecurityCrossSiteRequest,
    /// The CSRF token or cookie is missing or belongs to another browser.
    SecurityCsrfViolation,
    /// The admin API refused a request for another host.
    SecurityHostMismatch,
    /// The flow or session belongs to another identity.
    SecurityIdentityMismatch,
    /// A native app's sign-in cannot be handed back (no token exchange).
    SelfServiceAppHandoffImpossible,
    /// A stored error with no more specific id.
    SelfServiceError,
    /// No stored error with this id.
    SelfServiceErrorNotFound,
    /// The flow was completed already (flows are single-use).
    SelfServiceFlowCompleted,
    /// The flow is switched off in the configuration.
    SelfServiceFlowDisabled,
    /// The flow (or the sign-in attempt) expired.
    SelfServiceFlowExpired,
    /// A link decision on a flow with no account link to confirm.
    SelfServiceFlowLinkMissing,
    /// No flow with this id (of this kind).
    SelfServiceFlowNotFound,
    /// `return_to` is not in `selfservice.allowed_return_urls`.
    SelfServiceFlowReturnToForbidden,
    /// Linking in settings needs the session that started the flow.
    SelfServiceOidcLinkSession,
    /// The callback came from a browser without the attempt's continuity cookie.
    SelfServiceOidcOtherBrowser,
    /// The provider of the attempt is no longer configured.
    SelfServiceOidcProviderGone,
    /// The callback came for another provider than the attempt's.
    SelfServiceOidcProviderMismatch,
    /// The `state` is unknown, expired or already used.
    SelfServiceOidcStateInvalid,
    /// Too many failed sign-ins for this identifier or address.
    SelfServiceRateLimited,
    /// The password-hashing queue is full.
    ServerBusy,
    /// A session exists, so a new login or registration cannot start.
    SessionAlreadyAvailable,
    /// No valid session in the request.
    SessionInactive,
    /// The session is too old for a privileged change: sign in again.
    SessionRefreshRequired,
    /// The session must be at aal2 (the identity has a second factor): complete it.
    SessionAal2Required,
    /// No session for these token-exchange codes.
    SessionTokenExchangeNotFound,
    /// An OAuth 2.0 `error` code of the OpenID Provider, shown as the id on the admin API.
    OAuth(OAuthCode),
}

impl ErrorId {
    /// Every id with a fixed wire string (for tests and documentation).
    pub const ALL: &'static [ErrorId] = &[
        ErrorId::BrowserLocationChangeRequired,
        ErrorId::IdentityConflict,
        ErrorId::InvalidClientMetadata,
        ErrorId::InvalidPageToken,
        ErrorId::RateLimited,
        ErrorId::SecurityCrossSiteRequest,
        ErrorId::SecurityCsrfViolation,
        ErrorId::SecurityHostMismatch,
        ErrorId::SecurityIdentityMismatch,
        ErrorId::SelfServiceAppHandoffImpossible,
        ErrorId::SelfServiceError,
        ErrorId::SelfServiceErrorNotFound,
        ErrorId::SelfServiceFlowCompleted,
        ErrorId::SelfServiceFlowDisabled,
        ErrorId::SelfServiceFlowExpired,
        ErrorId::SelfServiceFlowLinkMissing,
        ErrorId::SelfServiceFlowNotFound,
        ErrorId::SelfServiceFlowReturnToForbidden,
        ErrorId::SelfServiceOidcLinkSession,
        ErrorId::SelfServiceOidcOtherBrowser,
        ErrorId::SelfServiceOidcProviderGone,
        ErrorId::SelfServiceOidcProviderMismatch,
        ErrorId::SelfServiceOidcStateInvalid,
        ErrorId::SelfServiceRateLimited,
        ErrorId::ServerBusy,
        ErrorId::SessionAlreadyAvailable,
        ErrorId::SessionInactive,
        ErrorId::SessionRefreshRequired,
        ErrorId::SessionAal2Required,
        ErrorId::SessionTokenExchangeNotFound,
    ];

    /// The id as Kratos's JSON carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorId::BrowserLocationChangeRequired => "browser_location_change_required",
            ErrorId::IdentityConflict => "identity_conflict",
            ErrorId::InvalidClientMetadata => "invalid_client_metadata",
            ErrorId::InvalidPageToken => "invalid_page_token",
            ErrorId::RateLimited => "rate_limited",
            ErrorId::SecurityCrossSiteRequest => "security_cross_site_request",
            ErrorId::SecurityCsrfViolation => "security_csrf_violation",
            ErrorId::SecurityHostMismatch => "security_host_mismatch",
            ErrorId::SecurityIdentityMismatch => "security_identity_mismatch",
            ErrorId::SelfServiceAppHandoffImpossible => "self_service_app_handoff_impossible",
            ErrorId::SelfServiceError => "self_service_error",
            ErrorId::SelfServiceErrorNotFound => "self_service_error_not_found",
            ErrorId::SelfServiceFlowCompleted => "self_service_flow_completed",
            ErrorId::SelfServiceFlowDisabled => "self_service_flow_disabled",
            ErrorId::SelfServiceFlowExpired => "self_service_flow_expired",
            ErrorId::SelfServiceFlowLinkMissing => "self_service_flow_link_missing",
            ErrorId::SelfServiceFlowNotFound => "self_service_flow_not_found",
            ErrorId::SelfServiceFlowReturnToForbidden => "self_service_flow_return_to_forbidden",
            ErrorId::SelfServiceOidcLinkSession => "self_service_oidc_link_session",
            ErrorId::SelfServiceOidcOtherBrowser => "self_service_oidc_other_browser",
            ErrorId::SelfServiceOidcProviderGone => "self_service_oidc_provider_gone",
            ErrorId::SelfServiceOidcProviderMismatch => "self_service_oidc_provider_mismatch",
            ErrorId::SelfServiceOidcStateInvalid => "self_service_oidc_state_invalid",
            ErrorId::SelfServiceRateLimited => "self_service_rate_limited",
            ErrorId::ServerBusy => "server_busy",
            ErrorId::SessionAlreadyAvailable => "session_already_available",
            ErrorId::SessionInactive => "session_inactive",
            ErrorId::SessionRefreshRequired => "session_refresh_required",
            ErrorId::SessionAal2Required => "session_aal2_required",
            ErrorId::SessionTokenExchangeNotFound => "session_token_exchange_not_found",
            ErrorId::OAuth(code) => code.as_str(),
        }
    }

    /// Reads a wire id back (stored errors); `None` for ids this version does not know.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|id| id.as_str() == s)
    }
}

/// The OAuth 2.0 / OpenID Connect `error` codes (RFC 6749 §4.1.2.1 and §5.2, RFC 6750, RFC 7591,
/// OIDC Core §3.1.2.6) and the OpenID Provider's own `not_found` and `conflict` of its admin API.
/// Fieldless, so that [`Error`] stays small.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OAuthCode {
    AccessDenied,
    Conflict,
    ConsentRequired,
    InsufficientScope,
    InteractionRequired,
    InvalidClient,
    InvalidClientMetadata,
    InvalidGrant,
    InvalidRedirectUri,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    LoginRequired,
    NotFound,
    RequestNotSupported,
    ServerError,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
}

impl OAuthCode {
    pub const ALL: &'static [OAuthCode] = &[
        OAuthCode::AccessDenied,
        OAuthCode::Conflict,
        OAuthCode::ConsentRequired,
        OAuthCode::InsufficientScope,
        OAuthCode::InteractionRequired,
        OAuthCode::InvalidClient,
        OAuthCode::InvalidClientMetadata,
        OAuthCode::InvalidGrant,
        OAuthCode::InvalidRedirectUri,
        OAuthCode::InvalidRequest,
        OAuthCode::InvalidScope,
        OAuthCode::InvalidToken,
        OAuthCode::LoginRequired,
        OAuthCode::NotFound,
        OAuthCode::RequestNotSupported,
        OAuthCode::ServerError,
        OAuthCode::TemporarilyUnavailable,
        OAuthCode::UnauthorizedClient,
        OAuthCode::UnsupportedGrantType,
        OAuthCode::UnsupportedResponseType,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OAuthCode::AccessDenied => "access_denied",
            OAuthCode::Conflict => "conflict",
            OAuthCode::ConsentRequired => "consent_required",
            OAuthCode::InsufficientScope => "insufficient_scope",
            OAuthCode::InteractionRequired => "interaction_required",
            OAuthCode::InvalidClient => "invalid_client",
            OAuthCode::InvalidClientMetadata => "invalid_client_metadata",
            OAuthCode::InvalidGrant => "invalid_grant",
            OAuthCode::InvalidRedirectUri => "invalid_redirect_uri",
            OAuthCode::InvalidRequest => "invalid_request",
            OAuthCode::InvalidScope => "invalid_scope",
            OAuthCode::InvalidToken => "invalid_token",
            OAuthCode::LoginRequired => "login_required",
            OAuthCode::NotFound => "not_found",
            OAuthCode::RequestNotSupported => "request_not_supported",
            OAuthCode::ServerError => "server_error",
            OAuthCode::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthCode::UnauthorizedClient => "unauthorized_client",
            OAuthCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthCode::UnsupportedResponseType => "unsupported_response_type",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorId::parse(&s).unwrap_or(ErrorId::SelfServiceError))
    }
}

/// A user-facing error kept for the error page (`GET /self-service/errors?id=`), as Kratos keeps
/// them for browser flows that cannot go on. Stored as `{id, kind, reason, message}`; the HTTP
/// `code` and `status` of the Kratos error object are added by the server when it is read.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredError {
    pub id: ErrorId,
    pub kind: ErrorKind,
    /// For the log and API callers.
    pub reason: String,
    /// For the person reading the error page.
    pub message: String,
}

impl StoredError {
    /// The stored form of a refused request: its reason is also its message.
    pub fn from_error(err: &Error) -> Self {
        StoredError {
            id: err.id.unwrap_or(ErrorId::SelfServiceError),
            kind: err.kind,
            reason: err.reason.clone(),
            message: err.reason.clone(),
        }
    }
}

impl serde::Serialize for ErrorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct Error {
    pub kind: ErrorKind,
    /// Kratos's machine-readable error id (e.g. `session_inactive`), when it has one.
    pub id: Option<ErrorId>,
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
    pub fn with_id(mut self, id: ErrorId) -> Self {
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
        .with_id(ErrorId::SessionInactive)
    }
    pub fn session_already_available() -> Self {
        Self::bad_request("A valid session was detected and thus this flow cannot be started. Sign out first or use the `refresh` parameter to re-authenticate.")
            .with_id(ErrorId::SessionAlreadyAvailable)
    }
    pub fn csrf_violation() -> Self {
        Self::forbidden("The request was rejected to protect you from Cross-Site-Request-Forgery (CSRF) which could cause account takeover, leaking personal information, and other serious security issues. Reload the form and submit it again from the same browser.")
            .with_id(ErrorId::SecurityCsrfViolation)
    }
    pub fn flow_expired(flow_id: &str, expired_at: &str) -> Self {
        Self::new(
            ErrorKind::Gone,
            format!("The self-service flow expired at {expired_at}. Start a new flow and submit it again."),
        )
        .with_id(ErrorId::SelfServiceFlowExpired)
        .with_details(serde_json::json!({ "since": expired_at, "flow_id": flow_id }))
    }
    pub fn flow_not_found(flow_id: &str) -> Self {
        Self::not_found(format!(
            "The flow `{flow_id}` does not exist. It may have been completed already: start a new flow."
        ))
        .with_id(ErrorId::SelfServiceFlowNotFound)
    }
    pub fn invalid_uuid(what: &str, value: &str) -> Self {
        Self::bad_request(format!(
            "`{value}` is not a valid {what}: expected a UUID such as 9f425a8d-7efc-4768-8f23-7647a74fdf13."
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_ids_are_distinct_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for id in ErrorId::ALL {
            let s = id.as_str();
            assert!(seen.insert(s), "duplicate wire id {s}");
            // Digits too: Kratos's `session_aal2_required`.
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{s}"
            );
            assert_eq!(ErrorId::parse(s), Some(*id));
            assert_eq!(serde_json::to_value(id).unwrap(), serde_json::json!(s));
        }
        assert_eq!(ErrorId::parse("no_such_id"), None);
        for code in OAuthCode::ALL {
            assert_eq!(OAuthCode::parse(code.as_str()), Some(*code));
            assert_eq!(ErrorId::OAuth(*code).as_str(), code.as_str());
        }
        // Error stays small enough to return by value everywhere (clippy's result_large_err).
        assert!(std::mem::size_of::<Error>() < 128);
    }
}
