//! `x`: X (formerly Twitter) through **OAuth 2.0 with PKCE**: the browser at
//! `x.com/i/oauth2/authorize`, the token at `api.x.com/2/oauth2/token`, the person at
//! `api.x.com/2/users/me`.
//!
//! Kratos's `x` speaks **OAuth 1.0a** (request token, `api.twitter.com/oauth/authenticate`,
//! `1.1/account/verify_credentials.json`) with the app's API Key and Secret. Tessera uses X's
//! OAuth 2.0 instead, so the same entry needs the app's *OAuth 2.0* Client ID and Secret in
//! `client_id` and `client_secret`; the subject is the same numeric user id (Kratos's
//! `id_str`, API v2's `data.id`), so identities made by Kratos keep signing in.
//!
//! PKCE (S256) is mandatory at X and always sent. A confidential client authenticates with
//! HTTP Basic; an entry without `client_secret` is a public client (X's "Native App" type)
//! and sends `client_id` in the form. The token's `scope` (space-separated) must hold every
//! scope the entry asked for. The email comes from the user field `confirmed_email`, which X
//! returns only with the `users.email` scope and only for a confirmed address, so it is
//! marked verified. Token errors are RFC 6749's; API v2 errors are problem details
//! (`{"title", "detail", "status"}`).

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, excerpt, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://x.com/i/oauth2/authorize";
const API_ORIGIN: &str = "https://api.x.com";
const TOKEN_PATH: &str = "/2/oauth2/token";
const ME_PATH: &str = "/2/users/me";
/// The issuer given to X's claims.
pub const ISSUER: &str = "https://x.com";
const TOKEN_ENDPOINT: &str = "X token endpoint";
const ENDPOINT: &str = "X 2/users/me";
/// `users.read` needs `tweet.read` beside it (X's scope rules); `users.email` adds the
/// confirmed address.
const DEFAULT_SCOPE: &str = "tweet.read users.read users.email";
const EMAIL_SCOPE: &str = "users.email";

pub struct X {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    me_url: String,
}

impl X {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        if cfg.pkce == crate::config::Pkce::Never {
            return Err((
                "pkce".into(),
                "X requires PKCE for OAuth 2.0: remove `pkce: never`".into(),
            ));
        }
        Ok(Arc::new(X {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, API_ORIGIN, TOKEN_PATH),
            me_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, API_ORIGIN, ME_PATH),
            cfg,
            http,
        }))
    }

    fn scope(&self) -> String {
        self.cfg.scope_or(DEFAULT_SCOPE, " ")
    }
}

/// API v2's problem details (`{"title", "detail", "status", "type"}`), else OAuth 2.0's.
fn api_error(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    let v = serde_json::from_slice::<Value>(body).ok();
    match v.as_ref().and_then(|v| Some((text(v, "title")?, v))) {
        Some((title, v)) => UpstreamError::Status {
            endpoint: endpoint.to_string(),
            status,
            excerpt: format!("{title}: {}", text(v, "detail").unwrap_or_default()),
        },
        None => oauth_or_status(endpoint, status, body),
    }
}

/// `2/users/me`'s `data` as the mapper's claims.
pub fn claims(me: &Value) -> Result<(String, Value), UpstreamError> {
    let data = me.get("data").filter(|d| d.is_object());
    let subject = data
        .and_then(|d| d.get("id"))
        .and_then(subject_string)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: ENDPOINT.into(),
            what: format!(
                "the user's `data.id` ({})",
                excerpt(me.to_string().as_bytes())
            ),
        })?;
    let d = data.cloned().unwrap_or_default();
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "name", text(&d, "name"));
    put_text(&mut c, "preferred_username", text(&d, "username"));
    put_text(&mut c, "nickname", text(&d, "username"));
    put_text(&mut c, "picture", text(&d, "profile_image_url"));
    if let Some(u) = text(&d, "username") {
        c.insert("profile".into(), format!("https://x.com/{u}").into());
    }
    if let Some(email) = text(&d, "confirmed_email") {
        // X returns only a confirmed address under this field.
        c.insert("email".into(), email.into());
        c.insert("email_verified".into(), true.into());
    }
    let raw = d.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for X {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(true)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.scope();
        let challenge = pkce_challenge(req.code_verifier);
        oauth2::authorization_url(
            &self.auth_url,
            [
                ("response_type", "code"),
                ("client_id", self.cfg.client_id.as_str()),
                ("redirect_uri", req.redirect_uri),
                ("scope", scope.as_str()),
                ("state", req.state),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "X sent no authorization code")?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
            ("code_verifier", req.code_verifier),
            ("client_id", self.cfg.client_id.as_str()),
        ];
        let mut rb = self.http.client().post(&self.token_url).form(&form);
        if !self.cfg.client_secret.is_empty() {
            rb = rb.basic_auth(&self.cfg.client_id, Some(&self.cfg.client_secret));
        }
        let token = oauth2::exchange_code(
            &self.http,
            TOKEN_ENDPOINT,
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let asked = self.scope();
        let granted: Vec<&str> = token.text("scope").unwrap_or_default().split(' ').collect();
        if let Some(missing) = asked
            .split(' ')
            .filter(|s| !s.is_empty())
            .find(|s| !granted.contains(s))
        {
            return Err(UpstreamError::Callback(format!(
                "X did not grant the permission `{missing}` this site asks for; sign in again and allow it"
            )));
        }
        let mut fields = String::from("id,name,username,profile_image_url");
        if asked.split(' ').any(|s| s == EMAIL_SCOPE) {
            fields.push_str(",confirmed_email");
        }
        let rb = self
            .http
            .client()
            .get(&self.me_url)
            .query(&[("user.fields", fields.as_str())])
            .bearer_auth(&token.access_token);
        let me = oauth2::call(&self.http, ENDPOINT, rb, api_error).await?;
        let (subject, claims) = claims(&me)?;
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
    fn the_user_becomes_claims_and_only_a_confirmed_email_is_taken() {
        let me = json!({"data": {"id": "1449712345678901234", "name": "Иван Петров",
            "username": "ivanpetrov", "confirmed_email": "ivan@example.ru",
            "profile_image_url": "https://pbs.twimg.com/profile_images/1/a_normal.jpg"}});
        let (sub, c) = claims(&me).unwrap();
        assert_eq!(sub, "1449712345678901234");
        assert_eq!(c["preferred_username"], "ivanpetrov");
        assert_eq!(c["profile"], "https://x.com/ivanpetrov");
        assert_eq!(
            (c["email"].as_str(), c["email_verified"].as_bool()),
            (Some("ivan@example.ru"), Some(true))
        );
        let (_, c) = claims(&json!({"data": {"id": "7", "username": "m"}})).unwrap();
        assert!(
            c.get("email").is_none() && c.get("email_verified").is_none(),
            "{c}"
        );
        assert!(claims(&json!({"errors": [{"title": "Not Found Error"}]})).is_err());
    }

    #[test]
    fn problem_details_are_read() {
        let e = api_error(
            "me",
            401,
            br#"{"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}"#,
        );
        assert!(e.to_string().contains("Unauthorized: Unauthorized"), "{e}");
        let e = api_error(
            "t",
            400,
            br#"{"error": "invalid_request", "error_description": "x"}"#,
        );
        assert!(matches!(e, UpstreamError::OAuth { .. }), "{e}");
    }
}
