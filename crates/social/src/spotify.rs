//! `spotify`: Spotify (OAuth 2.0 at `accounts.spotify.com/authorize`, the token at
//! `accounts.spotify.com/api/token`, the user at `api.spotify.com/v1/me`), the type Kratos calls
//! `spotify`, so a Kratos configuration naming it starts unchanged.
//!
//! Plain OAuth 2.0 with RFC 6749 errors at the token endpoint (client authenticated with HTTP
//! Basic, as Spotify's guide shows), PKCE S256 (which Spotify supports for every app), no
//! id_token. The profile's `id` is the subject; `display_name` the name, the first of `images`
//! the picture. Spotify says the account's `email` (with `user-read-email`) is **not
//! verified**, so `email_verified` is never set. As Kratos does, a sign-in whose token lacks a
//! scope the entry asked for is refused. The Web API's own errors are
//! `{"error": {"status", "message"}}`.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, excerpt, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://accounts.spotify.com/authorize";
const ACCOUNTS_ORIGIN: &str = "https://accounts.spotify.com";
const API_ORIGIN: &str = "https://api.spotify.com";
const TOKEN_PATH: &str = "/api/token";
const ME_PATH: &str = "/v1/me";
/// The issuer given to Spotify's claims.
pub const ISSUER: &str = "https://accounts.spotify.com";
const ENDPOINT: &str = "Spotify v1/me";
const DEFAULT_SCOPE: &str = "user-read-email user-read-private";

pub struct Spotify {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    me_url: String,
}

impl Spotify {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the app's Client secret at developer.spotify.com/dashboard (Settings → Basic Information)",
        )?;
        Ok(Arc::new(Spotify {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(
                &cfg.token_url,
                &cfg.api_base_url,
                ACCOUNTS_ORIGIN,
                TOKEN_PATH,
            ),
            me_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, API_ORIGIN, ME_PATH),
            cfg,
            http,
        }))
    }
}

/// The Web API's error shape, `{"error": {"status", "message"}}` with a 4xx.
fn web_api_error(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.get("message")?.as_str().map(str::to_string));
    match message {
        Some(m) => UpstreamError::Status {
            endpoint: endpoint.to_string(),
            status,
            excerpt: m,
        },
        None => oauth_or_status(endpoint, status, body),
    }
}

/// `v1/me` as the mapper's claims.
pub fn claims(me: &Value) -> Result<(String, Value), UpstreamError> {
    let subject = me
        .get("id")
        .and_then(subject_string)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: ENDPOINT.into(),
            what: format!("the user's `id` ({})", excerpt(me.to_string().as_bytes())),
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "name", text(me, "display_name"));
    put_text(&mut c, "email", text(me, "email"));
    let picture = me
        .get("images")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|i| text(i, "url"));
    put_text(&mut c, "picture", picture);
    put_text(
        &mut c,
        "profile",
        me.get("external_urls").and_then(|u| text(u, "spotify")),
    );
    let raw = me.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Spotify {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(self.cfg.pkce != crate::config::Pkce::Never)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or(DEFAULT_SCOPE, " ");
        let challenge = pkce_challenge(req.code_verifier);
        let mut pairs = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", req.redirect_uri),
            ("scope", scope.as_str()),
            ("state", req.state),
        ];
        if self.uses_pkce().await? {
            pairs.push(("code_challenge_method", "S256"));
            pairs.push(("code_challenge", challenge.as_str()));
        }
        oauth2::authorization_url(&self.auth_url, pairs)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "Spotify sent no authorization code")?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
        ];
        if self.uses_pkce().await? {
            form.push(("code_verifier", req.code_verifier));
        }
        let rb = self
            .http
            .client()
            .post(&self.token_url)
            .basic_auth(&self.cfg.client_id, Some(&self.cfg.client_secret))
            .form(&form);
        let token = oauth2::exchange_code(
            &self.http,
            "Spotify token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let asked = self.cfg.scope_or(DEFAULT_SCOPE, " ");
        let granted: Vec<&str> = token.text("scope").unwrap_or_default().split(' ').collect();
        if let Some(missing) = asked
            .split(' ')
            .filter(|s| !s.is_empty())
            .find(|s| !granted.contains(s))
        {
            return Err(UpstreamError::Callback(format!(
                "Spotify did not grant the permission `{missing}` this site asks for; sign in again and allow it"
            )));
        }
        let rb = self
            .http
            .client()
            .get(&self.me_url)
            .bearer_auth(&token.access_token);
        let me = oauth2::call(&self.http, ENDPOINT, rb, web_api_error).await?;
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
    fn the_profile_becomes_claims_and_the_email_is_never_verified() {
        let me = json!({"id": "smedjan", "display_name": "Иван Петров",
            "email": "ivan@example.ru", "country": "RU", "product": "premium",
            "images": [{"url": "https://i.scdn.co/image/ab67", "height": 300, "width": 300}],
            "external_urls": {"spotify": "https://open.spotify.com/user/smedjan"}});
        let (sub, c) = claims(&me).unwrap();
        assert_eq!(sub, "smedjan");
        assert_eq!(c["name"], "Иван Петров");
        assert_eq!(c["email"], "ivan@example.ru");
        assert!(c.get("email_verified").is_none());
        assert_eq!(c["picture"], "https://i.scdn.co/image/ab67");
        assert_eq!(c["raw_claims"]["product"], "premium");
        let (_, c) = claims(&json!({"id": "x", "images": [], "display_name": null})).unwrap();
        assert!(c.get("picture").is_none() && c.get("name").is_none());
        assert!(claims(&json!({"display_name": "x"})).is_err());
    }

    #[test]
    fn web_api_errors_are_read() {
        let e = web_api_error(
            "me",
            401,
            br#"{"error": {"status": 401, "message": "Invalid access token"}}"#,
        );
        assert!(e.to_string().contains("Invalid access token"), "{e}");
    }
}
