//! What every provider type implements. Flow logic (state, PKCE verifier storage, continuity,
//! mapping, linking) is the engine's; a provider only knows its upstream.

use crate::config::ProviderConfig;
use crate::upstream::UpstreamError;
use serde_json::Value;
use std::collections::HashMap;
use url::Url;

/// The per-attempt values the engine generated and stored with the state.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    pub state: &'a str,
    /// OIDC `nonce`; providers without id_tokens ignore it.
    pub nonce: &'a str,
    /// PKCE verifier; the provider sends its S256 challenge when it uses PKCE.
    pub code_verifier: &'a str,
    /// `{public base_url}/self-service/methods/oidc/callback/{id}`.
    pub redirect_uri: &'a str,
}

/// Everything the upstream sent to the callback (query or `form_post` body).
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub params: HashMap<String, String>,
}

impl Callback {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tokens {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

/// Who the upstream says signed in.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Stable upstream subject (`<provider id>:<subject>` is the credential identifier).
    pub subject: String,
    /// The mapper's `claims` (standard keys + `raw_claims`).
    pub claims: Value,
    pub tokens: Tokens,
}

/// An upstream answer that may be accepted once only (see [`Provider::single_use`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SingleUse {
    /// What identifies the answer (Telegram's `hash`); the engine records it per provider.
    pub key: String,
    /// Unix milliseconds until which the answer could still be accepted, so until which the
    /// record must be kept.
    pub until_ms: i64,
}

/// See [`Provider::expected_callback_issuer`].
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackIssuer {
    pub issuer: String,
    pub required: bool,
}

#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn config(&self) -> &ProviderConfig;

    /// Whether a PKCE verifier is used for this provider (decided per attempt because `auto`
    /// depends on the upstream's discovery document).
    async fn uses_pkce(&self) -> Result<bool, UpstreamError>;

    /// Where to send the browser.
    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError>;

    /// RFC 9207: the issuer the `iss` callback parameter must equal, and whether the upstream
    /// promised to send it (`authorization_response_iss_parameter_supported`), in which case a
    /// callback without it is refused.
    async fn expected_callback_issuer(&self) -> Option<CallbackIssuer> {
        None
    }

    /// The authorization code in a callback (DingTalk calls it `authCode`).
    fn code<'c>(&self, cb: &'c Callback) -> Option<&'c str> {
        cb.get("code")
    }

    /// The name under which the upstream returns its answer in the callback URL's *fragment*
    /// (Telegram's Login Widget redirect appends `#tgAuthResult=…`). Browsers never send a
    /// fragment, so the callback answers such a provider with a small page whose script posts
    /// the fragment's value back under this name, with the query's `state`. `None` (every
    /// OAuth provider): the answer is in the query or a `form_post` body.
    fn fragment_param(&self) -> Option<&'static str> {
        None
    }

    /// For an answer that carries no single-use code of the upstream's (Telegram's signed
    /// result can be replayed as is while it is fresh): what identifies it, so the engine
    /// accepts it once. Asked only after [`Provider::exchange`] accepted `cb`.
    fn single_use(&self, _cb: &Callback) -> Option<SingleUse> {
        None
    }

    /// Exchanges the code and reads the user.
    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError>;
}

/// PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pkce_challenge_matches_rfc7636_appendix_b() {
        assert_eq!(
            super::pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
