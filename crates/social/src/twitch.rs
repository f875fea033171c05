//! `twitch`: Twitch's OpenID Connect (issuer `https://id.twitch.tv/oauth2`: discovery, the
//! authorize and token endpoints, RS256 id_tokens). Kratos has no Twitch type.
//!
//! OpenID Connect on the shared relying party ([`crate::oidc_rp`]) for discovery, the
//! authorization URL, the code redemption and the id_token's verification, with Twitch's
//! quirks handled here:
//!
//! - The token answer's **`scope` is a JSON array** (`["openid", "user:read:email"]`), which
//!   breaks clients that expect RFC 6749's space-separated string (oauth2-rs#269); it is read
//!   as an array (or a string), and a sign-in whose token lacks a scope the entry asked for is
//!   refused, naming it.
//! - The email, its verified flag, the picture and the display name are in the id_token only
//!   when asked for through OIDC's `claims` parameter; unless `requested_claims` says
//!   otherwise, Tessera asks for `email`, `email_verified`, `picture` and
//!   `preferred_username` there. `email` also needs the `user:read:email` scope (the default).
//! - The client secret goes in the form (`client_secret_post`), and token errors are Twitch's
//!   `{"status", "message"}` as well as RFC 6749's.
//! - Twitch requires apps to validate the access token (`GET /oauth2/validate`,
//!   `Authorization: OAuth <token>`); Tessera does so at sign-in and refuses a token Twitch
//!   says belongs to another `client_id` or another user than the id_token's `sub`. The
//!   answer's `login` (the lower-case account name) reaches the mapper as
//!   `raw_claims.login`.
//!
//! The subject is `sub`, the Twitch user id; `email_verified` is Twitch's boolean, and only
//! that marks the address verified.

use crate::claims::subject_string;
use crate::config::ProviderConfig;
use crate::oidc::Issuer;
use crate::oidc_rp::{ClientAuth, Rp};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
use serde_json::{Value, json};
use std::sync::Arc;
use url::Url;

/// Twitch's issuer.
pub const ISSUER: &str = "https://id.twitch.tv/oauth2";
const VALIDATE_ENDPOINT: &str = "Twitch token validation";
const DEFAULT_SCOPE: &str = "user:read:email";

pub struct Twitch {
    rp: Rp,
    /// `openid` and the configured (or default) scopes, space-separated.
    scope: String,
    /// The `claims` parameter Tessera adds ("" when the entry configures `requested_claims`,
    /// which the relying party sends itself).
    claims: String,
    validate_url: String,
}

impl Twitch {
    pub fn make(
        mut cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        crate::oauth2::require_secret(
            &cfg,
            ": the application's Client Secret (dev.twitch.tv/console/apps)",
        )?;
        if cfg.scope.is_empty() {
            cfg.scope = vec![DEFAULT_SCOPE.to_string()];
        }
        let issuer_url = match cfg.issuer_url.trim().trim_end_matches('/') {
            "" => ISSUER.to_string(),
            given => given.to_string(),
        };
        let claims = if cfg.requested_claims.is_null() {
            json!({"id_token": {"email": null, "email_verified": null, "picture": null,
                "preferred_username": null}})
            .to_string()
        } else {
            String::new()
        };
        let validate_url = format!("{issuer_url}/validate");
        let issuer = Issuer::new(&issuer_url, http.clone());
        let mut rp = Rp::new(cfg, http, issuer, "Twitch");
        rp.read_error = twitch_error;
        Ok(Arc::new(Twitch {
            scope: rp.scopes(),
            rp,
            claims,
            validate_url,
        }))
    }
}

/// The scopes a token answer grants: Twitch's array, or an RFC 6749 string.
pub fn granted_scopes(answer: &Value, key: &str) -> Vec<String> {
    match answer.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect(),
        _ => vec![],
    }
}

/// Twitch's error shape `{"status": 400, "message": "Invalid authorization code"}`, else
/// OAuth 2.0's.
fn twitch_error(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    let v = serde_json::from_slice::<Value>(body).ok();
    match v
        .as_ref()
        .filter(|v| v.get("error").is_none())
        .and_then(|v| text(v, "message"))
    {
        Some(m) => UpstreamError::OAuth {
            endpoint: endpoint.to_string(),
            error: format!("HTTP {status}"),
            description: m.chars().take(300).collect(),
        },
        None => oauth_or_status(endpoint, status, body),
    }
}

/// The validation answer must be about a token of this application (`client_id`) for the
/// person the id_token names (`user_id`).
pub fn check_validation(v: &Value, client_id: &str, subject: &str) -> Result<(), UpstreamError> {
    // A token Twitch does not vouch for as this application's, for this person, is not
    // believed: nothing about the sign-in is taken from it.
    let wrong = |detail: String| {
        Err(UpstreamError::Unverified {
            endpoint: VALIDATE_ENDPOINT.into(),
            detail,
        })
    };
    match v.get("client_id").and_then(subject_string) {
        Some(c) if c == client_id => {}
        other => {
            return wrong(format!(
                "the access token belongs to another application (client_id {})",
                other.as_deref().unwrap_or("(none)")
            ));
        }
    }
    match v.get("user_id").and_then(subject_string) {
        Some(u) if u == subject => Ok(()),
        other => wrong(format!(
            "the access token is another user's (user_id {}, the id_token's sub {subject})",
            other.as_deref().unwrap_or("(none)")
        )),
    }
}

#[async_trait::async_trait]
impl Provider for Twitch {
    fn config(&self) -> &ProviderConfig {
        &self.rp.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        self.rp.uses_pkce().await
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let extra: Vec<(&str, &str)> = if self.claims.is_empty() {
            vec![]
        } else {
            vec![("claims", self.claims.as_str())]
        };
        self.rp.authorization_url(req, &self.scope, &extra).await
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let r = self
            .rp
            .redeem(cb, req, ClientAuth::Post, &self.rp.cfg.client_secret)
            .await?;
        let granted = granted_scopes(&r.answer, "scope");
        if let Some(missing) = self
            .scope
            .split(' ')
            .find(|s| !s.is_empty() && !granted.iter().any(|g| g == s))
        {
            return Err(UpstreamError::Callback(format!(
                "Twitch did not grant the permission `{missing}` this site asks for; sign in again and allow it"
            )));
        }
        let d = self.rp.discovery().await?;
        let id_token = r.tokens.id_token.as_deref().unwrap_or_default();
        let mut claims = self.rp.verify(id_token, req.nonce, &[&d.issuer]).await?;
        let subject = claims
            .get("sub")
            .and_then(subject_string)
            .unwrap_or_default();
        let access = r.tokens.access_token.as_deref().unwrap_or_default();
        let rb = self
            .rp
            .http
            .client()
            .get(&self.validate_url)
            .header("authorization", format!("OAuth {access}"));
        let v = self
            .rp
            .http
            .json_with(VALIDATE_ENDPOINT, rb, twitch_error)
            .await?;
        check_validation(&v, &self.rp.cfg.client_id, &subject)?;
        if let Some(login) = text(&v, "login") {
            claims.insert("login".into(), login.into());
        }
        crate::claims::id_token_profile(claims, r.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_as_twitch_sends_them_and_as_rfc_6749_says() {
        assert_eq!(
            granted_scopes(&json!({"scope": ["openid", "user:read:email"]}), "scope"),
            ["openid", "user:read:email"]
        );
        assert_eq!(
            granted_scopes(&json!({"scope": "openid user:read:email"}), "scope").len(),
            2
        );
        assert!(granted_scopes(&json!({}), "scope").is_empty());
    }

    #[test]
    fn twitch_errors_are_read() {
        let e = twitch_error(
            "t",
            400,
            br#"{"status": 400, "message": "Invalid authorization code"}"#,
        );
        let m = e.user_message("Twitch");
        assert!(m.contains("HTTP 400 — Invalid authorization code"), "{m}");
        let e = twitch_error("t", 400, br#"{"error": "invalid_grant", "message": "x"}"#);
        assert!(e.to_string().contains("invalid_grant"), "{e}");
    }

    #[test]
    fn a_token_of_another_application_or_user_is_refused() {
        let v = json!({"client_id": "abc", "login": "ivan", "user_id": "141981764",
            "scopes": ["openid"], "expires_in": 5000});
        assert!(check_validation(&v, "abc", "141981764").is_ok());
        assert!(check_validation(&v, "other-app", "141981764").is_err());
        assert!(check_validation(&v, "abc", "52637281").is_err());
        assert!(check_validation(&json!({"user_id": "141981764"}), "abc", "141981764").is_err());
    }
}
