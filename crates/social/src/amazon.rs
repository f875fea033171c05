//! `amazon`: Login with Amazon (the browser at `www.amazon.com/ap/oa`, the token at
//! `api.amazon.com/auth/o2/token`, the person at `api.amazon.com/user/profile`), the type
//! Kratos calls `amazon`, so a Kratos configuration naming it starts unchanged.
//!
//! Plain OAuth 2.0, no id_token and no discovery. As Kratos does, only Amazon's three profile
//! scopes are accepted (`profile`, `profile:user_id`, `postal_code`; anything else stops the
//! start, where Kratos refuses it at the first sign-in). PKCE is sent only with `pkce: force`
//! (Kratos refuses `auto`, since nothing can be discovered; Tessera reads `auto` as "no").
//! The client id and secret go in the token request's form, as Amazon's guide shows; the
//! profile call carries the token as Bearer and as `x-amz-access-token`, as Kratos sends it.
//!
//! `user_id` (`amzn1.account.…`) is the subject. Amazon sends **no email-verified flag**, so
//! `email_verified` is never set (Kratos leaves it false too); `postal_code` goes to `zoneinfo`
//! as Kratos puts it, and stays in `raw_claims`. Errors are RFC 6749's `{error,
//! error_description}` at both endpoints and are shown with Amazon's own words.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, excerpt, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://www.amazon.com/ap/oa";
const API_ORIGIN: &str = "https://api.amazon.com";
const TOKEN_PATH: &str = "/auth/o2/token";
const PROFILE_PATH: &str = "/user/profile";
/// The issuer given to Amazon's claims (Kratos uses the token URL).
pub const ISSUER: &str = "https://api.amazon.com/auth/o2/token";
const TOKEN_ENDPOINT: &str = "Amazon token endpoint";
const ENDPOINT: &str = "Amazon user/profile";
const DEFAULT_SCOPE: &str = "profile";
/// The only scopes Login with Amazon knows (Kratos's list).
const SCOPES: [&str; 3] = ["profile", "profile:user_id", "postal_code"];

pub struct Amazon {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    profile_url: String,
}

impl Amazon {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the security profile's Client Secret at developer.amazon.com (Login with Amazon → Web Settings)",
        )?;
        if let Some(s) = cfg.scope.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err((
                "scope".into(),
                format!(
                    "`{s}` is not a Login with Amazon scope: use {}",
                    SCOPES.join(", ")
                ),
            ));
        }
        Ok(Arc::new(Amazon {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, API_ORIGIN, TOKEN_PATH),
            profile_url: endpoint(
                &cfg.userinfo_url,
                &cfg.api_base_url,
                API_ORIGIN,
                PROFILE_PATH,
            ),
            cfg,
            http,
        }))
    }
}

/// `user/profile` as the mapper's claims.
pub fn claims(p: &Value) -> Result<(String, Value), UpstreamError> {
    let subject =
        p.get("user_id")
            .and_then(subject_string)
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: ENDPOINT.into(),
                what: format!(
                    "the user's `user_id` ({})",
                    excerpt(p.to_string().as_bytes())
                ),
            })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "name", text(p, "name"));
    // Amazon says nothing about whether the address was confirmed: no `email_verified`.
    put_text(&mut c, "email", text(p, "email"));
    put_text(&mut c, "zoneinfo", text(p, "postal_code"));
    let raw = p.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Amazon {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(self.cfg.pkce == crate::config::Pkce::Force)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or(DEFAULT_SCOPE, " ");
        let challenge = pkce_challenge(req.code_verifier);
        let mut pairs = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("scope", scope.as_str()),
            ("response_type", "code"),
            ("redirect_uri", req.redirect_uri),
            ("state", req.state),
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
        let code = oauth2::from_callback(self.code(cb), "Amazon sent no authorization code")?;
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
        let rb = self
            .http
            .client()
            .get(&self.profile_url)
            .bearer_auth(&token.access_token)
            .header("x-amz-access-token", &token.access_token);
        let profile = oauth2::call(&self.http, ENDPOINT, rb, oauth_or_status).await?;
        let (subject, claims) = claims(&profile)?;
        Ok(Profile {
            subject,
            claims,
            tokens: token.tokens(Some("refresh_token"), None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_profile_becomes_claims_and_the_email_is_never_verified() {
        let p = json!({"user_id": "amzn1.account.AGZ3XK7Q2LMN4", "name": "Иван Петров",
            "email": "ivan@example.ru", "postal_code": "101000"});
        let (sub, c) = claims(&p).unwrap();
        assert_eq!(sub, "amzn1.account.AGZ3XK7Q2LMN4");
        assert_eq!(c["email"], "ivan@example.ru");
        assert!(c.get("email_verified").is_none(), "{c}");
        assert_eq!(c["zoneinfo"], "101000");
        assert_eq!(c["raw_claims"]["postal_code"], "101000");
        assert!(claims(&json!({"name": "x"})).is_err());
    }
}
