//! `line`: LINE Login v2.1 (the browser at `access.line.me/oauth2/v2.1/authorize`, the token
//! at `api.line.me/oauth2/v2.1/token`), the type Kratos calls `line`, so a Kratos
//! configuration naming it starts unchanged.
//!
//! LINE is OpenID Connect with one quirk: the id_tokens of web login are signed **HS256 with
//! the channel secret** and carry no `kid`, although LINE's discovery document lists only
//! ES256 (those are the LIFF and SDK tokens; Kratos asks for them with the undocumented
//! `id_token_key_type=JWK`). Tessera checks what LINE documents for web login: the signature
//! under this entry's channel secret (`client_secret`) with HS256 and nothing else, then
//! `iss` (`https://access.line.me`), `aud` (the channel ID, `client_id`), `exp`, `sub` and
//! the attempt's `nonce`, through the same claim rules as every other id_token
//! ([`crate::oidc::checked_claims`]). HMAC is accepted for this type only, and only under the
//! key the entry holds: a token another channel signed, or one naming another channel or
//! sign-in, is refused. The generic OIDC path keeps refusing HMAC-signed id_tokens.
//!
//! `openid` is always asked for; `profile` (the default, with `openid`) gives `name` and
//! `picture`; `email`, once the channel's email permission is approved and the person agrees,
//! gives `email`, in the id_token only. LINE sends **no `email_verified`**, so the email is
//! not marked verified (as with Kratos, whose claims are the same id_token's); a flag LINE
//! signed would be passed on as it is. The subject is `sub`, the LINE user ID (per provider
//! of channels). PKCE S256 is sent unless `pkce: never`. Errors are RFC 6749's. As with
//! Kratos, the issuer is fixed and an `issuer_url` is not read; `auth_url`, `token_url` and
//! `api_base_url` move the endpoints (for tests and the demo).

use crate::config::{Pkce, ProviderConfig};
use crate::oauth2::{self, endpoint};
use crate::oidc::Expect;
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://access.line.me/oauth2/v2.1/authorize";
const API_ORIGIN: &str = "https://api.line.me";
const TOKEN_PATH: &str = "/oauth2/v2.1/token";
/// LINE's issuer, the `iss` of its id_tokens.
pub const ISSUER: &str = "https://access.line.me";
const TOKEN_ENDPOINT: &str = "LINE token endpoint";
const DEFAULT_SCOPE: &str = "profile";

pub struct Line {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
}

impl Line {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the Channel secret of the LINE Login channel (LINE Developers Console, Basic settings), which also signs its id_tokens",
        )?;
        crate::jws::install();
        Ok(Arc::new(Line {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, API_ORIGIN, TOKEN_PATH),
            cfg,
            http,
        }))
    }

    /// The scopes asked for, space-separated, `openid` first.
    fn scope(&self) -> String {
        let configured = self.cfg.scope_or(DEFAULT_SCOPE, " ");
        let mut s: Vec<&str> = configured.split(' ').filter(|s| !s.is_empty()).collect();
        if !s.contains(&"openid") {
            s.insert(0, "openid");
        }
        s.join(" ")
    }
}

/// A web login id_token checked as LINE documents it: HS256 under `channel_secret`, issued by
/// LINE to `channel_id` for the sign-in that sent `nonce`.
pub fn verify_id_token(
    id_token: &str,
    channel_id: &str,
    channel_secret: &str,
    nonce: &str,
) -> Result<Map<String, Value>, UpstreamError> {
    let header = jsonwebtoken::decode_header(id_token)
        .map_err(|e| UpstreamError::IdToken(format!("not a signed JWT ({e})")))?;
    if header.alg != Algorithm::HS256 {
        return Err(UpstreamError::IdToken(format!(
            "signed with {:?}; LINE signs web login id_tokens with HS256 under the channel secret",
            header.alg
        )));
    }
    crate::oidc::checked_claims(
        id_token,
        &DecodingKey::from_secret(channel_secret.as_bytes()),
        Algorithm::HS256,
        &Expect {
            issuer: ISSUER,
            audiences: vec![channel_id.to_string()],
            client_id: channel_id,
            nonce,
        },
        &[ISSUER],
    )
}

#[async_trait::async_trait]
impl Provider for Line {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(self.cfg.pkce != Pkce::Never)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.scope();
        let challenge = pkce_challenge(req.code_verifier);
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("state", req.state),
            ("scope", scope.as_str()),
            ("nonce", req.nonce),
        ];
        if self.uses_pkce().await? {
            pairs.push(("code_challenge", challenge.as_str()));
            pairs.push(("code_challenge_method", "S256"));
        }
        oauth2::authorization_url(&self.auth_url, pairs)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "LINE sent no authorization code")?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
        ];
        if self.uses_pkce().await? {
            form.push(("code_verifier", req.code_verifier));
        }
        let rb = self.http.client().post(&self.token_url).form(&form);
        let token = oauth2::exchange_code(
            &self.http,
            TOKEN_ENDPOINT,
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let id_token = token
            .text("id_token")
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: TOKEN_ENDPOINT.into(),
                what: "an id_token (is `openid` among the scopes?)".into(),
            })?;
        let claims = verify_id_token(
            id_token,
            &self.cfg.client_id,
            &self.cfg.client_secret,
            req.nonce,
        )?;
        crate::claims::id_token_profile(
            claims,
            token.tokens(Some("refresh_token"), Some("id_token")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CHANNEL: &str = "1660000000";
    const SECRET: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

    fn sign(claims: &Value, alg: Algorithm, secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims() -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({"iss": ISSUER, "sub": "U4af4980629a1b2c3d4e5f6a7b8c9d0e1", "aud": CHANNEL,
            "exp": now + 3600, "iat": now, "nonce": "n-1", "amr": ["linesso"],
            "name": "Иван Петров", "email": "ivan@example.ru"})
    }

    #[test]
    fn a_web_login_id_token_is_verified_under_the_channel_secret() {
        let t = sign(&claims(), Algorithm::HS256, SECRET);
        let c = verify_id_token(&t, CHANNEL, SECRET, "n-1").unwrap();
        assert_eq!(c["sub"], "U4af4980629a1b2c3d4e5f6a7b8c9d0e1");
        assert!(c.get("email_verified").is_none(), "LINE sends no flag");
    }

    #[test]
    fn another_channels_secret_audience_nonce_issuer_or_algorithm_is_refused() {
        let other_secret = sign(&claims(), Algorithm::HS256, "another-channels-secret");
        let e = verify_id_token(&other_secret, CHANNEL, SECRET, "n-1").unwrap_err();
        assert!(e.to_string().contains("signature"), "{e}");
        assert!(
            verify_id_token(
                &sign(&claims(), Algorithm::HS256, SECRET),
                "1669999999",
                SECRET,
                "n-1"
            )
            .is_err()
        );
        assert!(
            verify_id_token(
                &sign(&claims(), Algorithm::HS256, SECRET),
                CHANNEL,
                SECRET,
                "n-2"
            )
            .is_err()
        );
        let mut c = claims();
        c["iss"] = "https://evil.example".into();
        assert!(
            verify_id_token(&sign(&c, Algorithm::HS256, SECRET), CHANNEL, SECRET, "n-1").is_err()
        );
        let e = verify_id_token(
            &sign(&claims(), Algorithm::HS512, SECRET),
            CHANNEL,
            SECRET,
            "n-1",
        )
        .unwrap_err();
        assert_eq!(e.user_code(), "upstream_unverified");
        assert!(e.to_string().contains("HS512"), "{e}");
    }
}
