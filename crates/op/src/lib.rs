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

pub mod authorize;
pub mod client;
pub mod keys;
pub mod subject;
pub mod token;

use std::sync::Arc;
use tessera_config::OpSettings;
use tessera_core::crypto::Cipher;
use tessera_store::Store;

pub use authorize::{AuthParams, Authorize, ErrorPage, Reply, ResponseMode};
pub use client::{AppType, Client, ClientInput};
pub use token::TokenResponse;

/// An error of the token, userinfo, revocation or introspection endpoints, or of the admin API,
/// in RFC 6749 §5.2 terms: `error` is the registered code, `status` the HTTP status it goes with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OpError {
    pub error: &'static str,
    pub description: String,
    pub status: u16,
}

impl OpError {
    pub fn new(error: &'static str, status: u16, description: impl Into<String>) -> Self {
        OpError {
            error,
            description: description.into(),
            status,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", 400, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", 401, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", 400, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new("unauthorized_client", 400, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new("invalid_scope", 400, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new("invalid_token", 401, d)
    }
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new("not_found", 404, d)
    }
    pub fn server_error(d: impl Into<String>) -> Self {
        Self::new("server_error", 500, d)
    }
}

impl From<tessera_core::Error> for OpError {
    fn from(e: tessera_core::Error) -> Self {
        use tessera_core::ErrorKind as K;
        match e.kind {
            K::NotFound => OpError::not_found(e.reason),
            K::Conflict => OpError::new("conflict", 409, e.reason),
            K::BadRequest | K::UnprocessableEntity => OpError::invalid_request(e.reason),
            K::Unavailable => OpError::new("temporarily_unavailable", 503, e.reason),
            K::TooManyRequests => OpError::new("temporarily_unavailable", 429, e.reason),
            K::Forbidden => OpError::new("access_denied", 403, e.reason),
            _ => OpError::server_error(e.reason),
        }
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
            settings.public_base_url.as_str().trim_end_matches('/')
        );
        let at_keys = Arc::new(token::derive_keys(&settings.cipher_secrets));
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

    /// The discovery document (OpenID Connect Discovery 1.0 §3).
    pub fn discovery(&self) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.issuer,
            "authorization_endpoint": self.endpoint("auth"),
            "token_endpoint": self.endpoint("token"),
            "userinfo_endpoint": self.endpoint("me"),
            "jwks_uri": self.endpoint("jwks"),
            "end_session_endpoint": self.endpoint("session/end"),
            "revocation_endpoint": self.endpoint("token/revocation"),
            "introspection_endpoint": self.endpoint("token/introspection"),
            "scopes_supported": client::KNOWN_SCOPES,
            "response_types_supported": ["code", "id_token", "id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            // Every authorization response carries `iss` (RFC 9207).
            "authorization_response_iss_parameter_supported": true,
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid", "email", "email_verified", "name", "given_name", "family_name", "preferred_username", "picture", "phone_number"],
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "ui_locales_supported": ["en", "zh-CN", "ru"],
            "frontchannel_logout_supported": false,
            "backchannel_logout_supported": false,
        })
    }
}

pub(crate) fn now_ms() -> i64 {
    tessera_core::timefmt::now_ms()
}

pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
