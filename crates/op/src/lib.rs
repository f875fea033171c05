//! The OpenID Provider for apps (issue 6, seeds 001 and 002): apps (clients) and their
//! validation, authorization requests, who may use an app, per-app subjects, the grants
//! (authorization code with PKCE, implicit, refresh with rotation, client credentials), tokens,
//! and the signing keys behind the JWKS.
//!
//! Architecture invariant: no HTTP types here. The server's handlers parse a request into the
//! parameters this crate takes and shape its answers (`Authorize`, `TokenResponse`, [`OpError`])
//! into HTTP; every rule of the protocol (which redirect URI is allowed, which error goes back to
//! the app and which is shown to the user, single use of codes, refresh-token reuse detection)
//! lives here. Secrets (client secrets, codes, tokens) are stored only as SHA-256 hashes and
//! private keys only sealed with `secrets.cipher`. Data walks one way: provider → store.

pub mod api;
pub mod assertion;
pub mod assurance;
pub mod authorize;
pub mod backchannel;
pub mod client;
pub mod device;
pub mod dpop;
pub mod exchange;
pub mod jar;
pub mod keys;
pub mod logout;
pub mod membership;
pub mod registration;
pub mod subject;
pub mod token;
pub mod vocab;

use std::sync::Arc;
use tessera_config::OpSettings;
use tessera_core::crypto::Cipher;
use tessera_store::Store;

pub use api::{Api, ApiInput};
pub use authorize::{AuthParams, Authorize, ErrorPage, PageReason, Pushed, Reply};
pub use client::{AppType, Client, ClientInput};
pub use logout::{Logout, LogoutRequest};
pub use token::TokenResponse;
pub use vocab::{
    AuthMethod, GrantType, PkceMethod, Prompt, ResponseMode, ResponseType, SigningAlg, UnknownValue,
};

/// The error codes this provider answers with: RFC 6749 §4.1.2.1 and §5.2, OIDC Core
/// §3.1.2.6, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 8707 §2 and RFC 9101. What each means in HTTP (status,
/// headers) is decided by the server's one OAuth error renderer, not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    /// A bearer token that is unknown, expired or revoked (RFC 6750).
    InvalidToken,
    InsufficientScope,
    /// A `resource` that is malformed, unknown, not allowed to the app or not part of the
    /// grant (RFC 8707 §2).
    InvalidTarget,
    /// An app's registration metadata is refused (admin API, RFC 7591).
    InvalidClientMetadata,
    /// A signed request object (JAR, RFC 9101 §6.3) is malformed, unsigned or not the app's.
    InvalidRequestObject,
    /// A DPoP proof is malformed, unsigned, for another request, or replayed (RFC 9449 §5).
    InvalidDpopProof,
    /// A DPoP proof lacks the server's current nonce (RFC 9449 §8): retry with the one given.
    UseDpopNonce,
    /// Device flow (RFC 8628 §3.5): the user has not decided yet; poll again.
    AuthorizationPending,
    /// Device flow: polling faster than the interval; wait 5 s longer from now on.
    SlowDown,
    /// Device flow: the device code expired before the user decided.
    ExpiredToken,
    ServerError,
    TemporarilyUnavailable,
    /// `temporarily_unavailable` because the caller passed a rate limit (come back later).
    RateLimited,
    /// Not an OAuth code: an admin API lookup found nothing.
    NotFound,
    /// Not an OAuth code: an admin API write collides with an existing row.
    Conflict,
}

impl ErrorCode {
    /// The `error` value on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidRequestObject => "invalid_request_object",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::UseDpopNonce => "use_dpop_nonce",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::ExpiredToken => "expired_token",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable | ErrorCode::RateLimited => "temporarily_unavailable",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the OP's endpoints: a registered code and a description for the app's
/// developer (RFC 6749 §5.2 `error_description`). No HTTP status: the server maps codes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OpError {
    pub code: ErrorCode,
    pub description: String,
}

impl OpError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OpError {
            code,
            description: description.into(),
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidToken, d)
    }
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, d)
    }
    pub fn server_error(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServerError, d)
    }
}

impl From<tessera_core::Error> for OpError {
    fn from(e: tessera_core::Error) -> Self {
        use tessera_core::ErrorKind as K;
        let code = match e.kind {
            K::NotFound => ErrorCode::NotFound,
            K::Conflict => ErrorCode::Conflict,
            K::BadRequest | K::UnprocessableEntity => ErrorCode::InvalidRequest,
            K::Unavailable => ErrorCode::TemporarilyUnavailable,
            K::TooManyRequests => ErrorCode::RateLimited,
            K::Forbidden => ErrorCode::AccessDenied,
            K::Unauthorized
            | K::MethodNotAllowed
            | K::Gone
            | K::PayloadTooLarge
            | K::UnsupportedMediaType
            | K::Internal => ErrorCode::ServerError,
        };
        OpError::new(code, e.reason)
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// The provider: everything the OP endpoints need, shared by all requests.
#[derive(Clone)]
pub struct Provider {
    pub store: Store,
    pub cipher: Arc<Cipher>,
    pub settings: Arc<tessera_config::Settings>,
    /// `{public base_url}/oidc`, without a trailing slash.
    pub issuer: String,
    pub keys: Arc<keys::KeyCache>,
    /// Evaluates apps' claims mappers (the social sign-in sandbox).
    pub mappers: tessera_mapper::MapperPool,
    /// A short-lived per-process cache of apps (see [`client::ClientCache`]).
    pub(crate) clients: Arc<client::ClientCache>,
    /// MAC keys of self-contained client-credentials access tokens, derived from
    /// `secrets.cipher`; the first one signs (see `token.rs`).
    pub(crate) at_keys: Arc<Vec<[u8; 32]>>,
    /// Apps' claims mappers, compiled once per source (by SHA-256).
    pub(crate) mapper_cache:
        Arc<std::sync::Mutex<std::collections::HashMap<String, tessera_mapper::Mapper>>>,
    /// Trait paths read-only for self-service in every identity schema: the only traits an
    /// app's `sub` may be read from (see [`client::unstable_subject`]).
    pub read_only_traits: Arc<Vec<String>>,
}

impl Provider {
    pub fn new(
        settings: Arc<tessera_config::Settings>,
        store: Store,
        cipher: Arc<Cipher>,
        mappers: tessera_mapper::MapperPool,
        read_only_traits: Vec<String>,
    ) -> Provider {
        let issuer = format!(
            "{}/oidc",
            settings
                .serve
                .public_base_url
                .as_str()
                .trim_end_matches('/')
        );
        let at_keys = Arc::new(token::derive_keys(&settings.secrets.cipher));
        Provider {
            store,
            cipher,
            issuer,
            keys: Arc::new(keys::KeyCache::default()),
            settings,
            mappers,
            clients: Arc::new(client::ClientCache::default()),
            at_keys,
            mapper_cache: Arc::default(),
            read_only_traits: Arc::new(read_only_traits),
        }
    }

    pub fn op(&self) -> &OpSettings {
        &self.settings.op
    }

    /// `{issuer}/{path}`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.issuer)
    }

    /// The discovery document (OpenID Connect Discovery 1.0 §3) without what depends on the
    /// registered apps: the endpoints and fixed capabilities.
    pub fn discovery(&self) -> Discovery {
        let mut d = Discovery::new(&self.issuer);
        if self.registration_enabled() {
            d.registration_endpoint = Some(self.endpoint("reg"));
        }
        d
    }

    /// The discovery document as served: [`Provider::discovery`], plus the token-exchange
    /// grant (RFC 8693) while at least one app is allowed it, so discovery advertises exactly
    /// what some app can use.
    pub async fn discovery_now(&self) -> OpResult<Discovery> {
        let mut d = self.discovery();
        if self.token_exchange_enabled().await? {
            d.grant_types_supported.push(GrantType::TokenExchange);
        }
        Ok(d)
    }
}

/// Claims an id_token or userinfo answer can carry.
pub const CLAIMS_SUPPORTED: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "azp",
    "at_hash",
    "sid",
    "acr",
    "amr",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "picture",
    "phone_number",
];

/// The languages of the hosted pages (consent, the OP's errors, sign-out): the catalogues in
/// `server/src/ui/locales`.
pub const UI_LOCALES: &[&str] = &["en", "zh-CN", "ru"];

/// `public` (the default `id` subject) and `pairwise` (see [`subject`]).
pub const SUBJECT_TYPES: &[&str] = &["public", "pairwise"];

/// The discovery document (OpenID Connect Discovery 1.0 §3), derived from the vocabulary enums
/// and the constants above, so it can only advertise what the code accepts. Field order is the
/// JSON's.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub end_session_endpoint: String,
    pub revocation_endpoint: String,
    pub introspection_endpoint: String,
    /// RFC 8628 §4: the device grant's first step.
    pub device_authorization_endpoint: String,
    /// RFC 9126: always available; apps may be required to use it one by one
    /// (`require_pushed_authorization_requests` in their metadata), not all at once.
    pub pushed_authorization_request_endpoint: String,
    /// Only when dynamic client registration is enabled (RFC 7591 §3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    pub require_pushed_authorization_requests: bool,
    pub scopes_supported: &'static [&'static str],
    pub response_types_supported: &'static [ResponseType],
    pub response_modes_supported: &'static [ResponseMode],
    /// Every grant but token exchange, which is listed only while some app may use it
    /// ([`Provider::discovery_now`]).
    pub grant_types_supported: Vec<GrantType>,
    pub subject_types_supported: &'static [&'static str],
    pub id_token_signing_alg_values_supported: &'static [SigningAlg],
    pub token_endpoint_auth_methods_supported: &'static [AuthMethod],
    pub revocation_endpoint_auth_methods_supported: &'static [AuthMethod],
    pub introspection_endpoint_auth_methods_supported: Vec<AuthMethod>,
    /// What `private_key_jwt` assertions may be signed with (RFC 8414 §2: required when that
    /// method is offered).
    pub token_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    pub revocation_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    pub introspection_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    /// DPoP proofs (RFC 9449 §5.1); its presence says DPoP is supported.
    pub dpop_signing_alg_values_supported: &'static [&'static str],
    pub request_object_signing_alg_values_supported: &'static [&'static str],
    pub code_challenge_methods_supported: &'static [PkceMethod],
    /// Every authorization response carries `iss` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
    pub claims_supported: &'static [&'static str],
    /// The session levels `acr` takes and `acr_values` asks for ([`assurance`]).
    pub acr_values_supported: &'static [&'static str],
    pub claims_parameter_supported: bool,
    pub request_parameter_supported: bool,
    pub request_uri_parameter_supported: bool,
    pub ui_locales_supported: &'static [&'static str],
    /// Apps may register a `frontchannel_logout_uri` (OIDC Front-Channel Logout 1.0).
    pub frontchannel_logout_supported: bool,
    /// The iframe's URL carries `iss` and `sid` when the app asks for them.
    pub frontchannel_logout_session_supported: bool,
    pub backchannel_logout_supported: bool,
    /// Logout tokens always carry `sid` (OIDC Back-Channel Logout 1.0 §2.1).
    pub backchannel_logout_session_supported: bool,
}

impl Discovery {
    pub fn new(issuer: &str) -> Discovery {
        let endpoint = |path: &str| format!("{issuer}/{path}");
        Discovery {
            issuer: issuer.to_string(),
            authorization_endpoint: endpoint("auth"),
            token_endpoint: endpoint("token"),
            userinfo_endpoint: endpoint("me"),
            jwks_uri: endpoint("jwks"),
            end_session_endpoint: endpoint("session/end"),
            revocation_endpoint: endpoint("token/revocation"),
            introspection_endpoint: endpoint("token/introspection"),
            device_authorization_endpoint: endpoint("device/auth"),
            pushed_authorization_request_endpoint: endpoint("par"),
            registration_endpoint: None,
            require_pushed_authorization_requests: false,
            scopes_supported: client::KNOWN_SCOPES,
            response_types_supported: ResponseType::ALL,
            response_modes_supported: ResponseMode::ALL,
            grant_types_supported: GrantType::ALL
                .iter()
                .copied()
                .filter(|g| *g != GrantType::TokenExchange)
                .collect(),
            subject_types_supported: SUBJECT_TYPES,
            id_token_signing_alg_values_supported: SigningAlg::ALL,
            token_endpoint_auth_methods_supported: AuthMethod::ALL,
            revocation_endpoint_auth_methods_supported: AuthMethod::ALL,
            // Public apps cannot introspect.
            introspection_endpoint_auth_methods_supported: AuthMethod::ALL
                .iter()
                .copied()
                .filter(|m| m.is_confidential())
                .collect(),
            token_endpoint_auth_signing_alg_values_supported: assertion::ASSERTION_ALGS,
            revocation_endpoint_auth_signing_alg_values_supported: assertion::ASSERTION_ALGS,
            introspection_endpoint_auth_signing_alg_values_supported: assertion::ASSERTION_ALGS,
            dpop_signing_alg_values_supported: dpop::DPOP_ALGS,
            request_object_signing_alg_values_supported: jar::REQUEST_OBJECT_ALGS,
            code_challenge_methods_supported: PkceMethod::ALL,
            authorization_response_iss_parameter_supported: true,
            claims_supported: CLAIMS_SUPPORTED,
            acr_values_supported: assurance::ACR_VALUES_SUPPORTED,
            claims_parameter_supported: false,
            request_parameter_supported: true,
            request_uri_parameter_supported: false,
            ui_locales_supported: UI_LOCALES,
            frontchannel_logout_supported: true,
            frontchannel_logout_session_supported: true,
            backchannel_logout_supported: true,
            backchannel_logout_session_supported: true,
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    tessera_core::timefmt::now_ms()
}

pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The document as it was written by hand before it was derived from the enums: the wire
    /// stays the same, key order included.
    #[test]
    fn discovery_is_derived_from_the_vocabulary() {
        let d = serde_json::to_value(Discovery::new("https://id.example/oidc")).unwrap_or_default();
        let want = json!({
            "issuer": "https://id.example/oidc",
            "authorization_endpoint": "https://id.example/oidc/auth",
            "token_endpoint": "https://id.example/oidc/token",
            "userinfo_endpoint": "https://id.example/oidc/me",
            "jwks_uri": "https://id.example/oidc/jwks",
            "end_session_endpoint": "https://id.example/oidc/session/end",
            "revocation_endpoint": "https://id.example/oidc/token/revocation",
            "introspection_endpoint": "https://id.example/oidc/token/introspection",
            "device_authorization_endpoint": "https://id.example/oidc/device/auth",
            "pushed_authorization_request_endpoint": "https://id.example/oidc/par",
            "require_pushed_authorization_requests": false,
            "scopes_supported": ["openid", "profile", "email", "phone", "address", "offline_access"],
            "response_types_supported": ["code", "id_token", "id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
            "revocation_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
            "introspection_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
            "dpop_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
            "request_object_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid", "acr", "amr", "email", "email_verified", "name", "given_name", "family_name", "preferred_username", "picture", "phone_number"],
            "acr_values_supported": ["aal1", "aal2"],
            "claims_parameter_supported": false,
            "request_parameter_supported": true,
            "request_uri_parameter_supported": false,
            "ui_locales_supported": ["en", "zh-CN", "ru"],
            "frontchannel_logout_supported": true,
            "frontchannel_logout_session_supported": true,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        });
        assert_eq!(d, want);
        let keys = |v: &serde_json::Value| {
            v.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(keys(&d), keys(&want));
    }

    /// docs/apps/oidc.md describes the document field by field: a field added here without a
    /// row there fails this test.
    #[test]
    fn every_discovery_field_is_documented() {
        let doc = include_str!("../../../docs/apps/oidc.md");
        let mut d = Discovery::new("https://id.example/oidc");
        d.registration_endpoint = Some("https://id.example/oidc/reg".into());
        let v = serde_json::to_value(d).unwrap_or_default();
        let fields = v
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        assert!(fields.len() > 30, "{fields:?}");
        for f in fields {
            let row = format!("| `{f}`");
            let grouped = f.ends_with("_endpoint_auth_signing_alg_values_supported");
            assert!(
                doc.contains(&row)
                    || (grouped && doc.contains("(and `revocation_…`, `introspection_…`)")),
                "docs/apps/oidc.md has no row for the discovery field `{f}`"
            );
        }
    }

    /// Every value discovery lists parses back to the enum, and every enum value is listed.
    #[test]
    fn discovery_lists_every_enum_value_and_nothing_else() {
        let d = Discovery::new("https://id.example/oidc");
        let strs = |v: Vec<&'static str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
        for g in &d.grant_types_supported {
            assert_eq!(g.as_str().parse::<GrantType>().ok(), Some(*g));
        }
        // Token exchange is listed only while an app may use it (`discovery_now`).
        assert_eq!(d.grant_types_supported.len(), GrantType::ALL.len() - 1);
        assert!(!d.grant_types_supported.contains(&GrantType::TokenExchange));
        assert_eq!(
            strs(ResponseType::strs(d.response_types_supported)),
            strs(ResponseType::strs(ResponseType::ALL))
        );
        assert_eq!(
            strs(SigningAlg::strs(d.id_token_signing_alg_values_supported)),
            ["RS256", "ES256"]
        );
        // The token endpoint redeems every grant but the implicit one.
        for g in GrantType::ALL {
            assert_eq!(
                GrantType::TOKEN_ENDPOINT.contains(g),
                *g != GrantType::Implicit,
                "{g}"
            );
        }
        assert!(
            d.introspection_endpoint_auth_methods_supported
                .iter()
                .all(|m| m.is_confidential())
        );
    }
}
