//! `discord`: Discord (OAuth2 at `discord.com/oauth2/authorize`, the token at
//! `discord.com/api/oauth2/token`, the user at `discord.com/api/users/@me`), the type Kratos calls
//! `discord`, so a Kratos configuration naming it starts unchanged.
//!
//! Plain OAuth 2.0 with RFC 6749 errors at the token endpoint, no id_token. The user object's
//! `id` (a snowflake, as text) is the subject; `email` comes with the `email` scope, and
//! `verified` says whether Discord verified it (`email_verified`). As Kratos does, `name` is
//! `username#discriminator` (`alice#0` for accounts on the new unique usernames), `nickname` the
//! username, `picture` the CDN URL of the avatar hash; and a sign-in whose token lacks a scope
//! the entry asked for is refused (the person unticked it on Discord's consent page).

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://discord.com/oauth2/authorize";
const API_ORIGIN: &str = "https://discord.com";
const TOKEN_PATH: &str = "/api/oauth2/token";
const ME_PATH: &str = "/api/users/@me";
/// Where Discord serves avatars by user id and hash.
const CDN: &str = "https://cdn.discordapp.com/avatars";
/// The issuer given to Discord's claims.
pub const ISSUER: &str = "https://discord.com";
const ENDPOINT: &str = "Discord users/@me";

pub struct Discord {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    me_url: String,
}

impl Discord {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the application's Client Secret at discord.com/developers (OAuth2 → Client information)",
        )?;
        Ok(Arc::new(Discord {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, API_ORIGIN, TOKEN_PATH),
            me_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, API_ORIGIN, ME_PATH),
            cfg,
            http,
        }))
    }

    /// The scopes asked for: the entry's, else `identify email`.
    fn scopes(&self) -> Vec<String> {
        if self.cfg.scope.is_empty() {
            vec!["identify".into(), "email".into()]
        } else {
            self.cfg.scope.clone()
        }
    }
}

/// `users/@me` as the mapper's claims (Kratos's set).
pub fn claims(user: &Value) -> Result<(String, Value), UpstreamError> {
    let subject =
        user.get("id")
            .and_then(subject_string)
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: ENDPOINT.into(),
                what: "the user's `id`".into(),
            })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    if let Some(u) = text(user, "username") {
        let d = text(user, "discriminator").unwrap_or("0");
        c.insert("name".into(), format!("{u}#{d}").into());
        c.insert("nickname".into(), u.into());
    }
    put_text(&mut c, "email", text(user, "email"));
    if c.contains_key("email") {
        let verified = user.get("verified").and_then(Value::as_bool) == Some(true);
        c.insert("email_verified".into(), verified.into());
    }
    if let Some(hash) = text(user, "avatar") {
        c.insert(
            "picture".into(),
            format!("{CDN}/{subject}/{hash}.png").into(),
        );
    }
    put_text(&mut c, "locale", text(user, "locale"));
    let raw = user.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Discord {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.scopes().join(" ");
        oauth2::authorization_url(
            &self.auth_url,
            vec![
                ("response_type", "code"),
                ("client_id", self.cfg.client_id.as_str()),
                ("redirect_uri", req.redirect_uri),
                ("scope", &scope),
                ("state", req.state),
                // Kratos's choice: no consent page again once the person has authorized the app.
                ("prompt", "none"),
            ],
        )
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "Discord sent no authorization code")?;
        let rb = self.http.client().post(&self.token_url).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
        ]);
        let token = oauth2::exchange_code(
            &self.http,
            "Discord token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let granted: Vec<&str> = token.text("scope").unwrap_or_default().split(' ').collect();
        if let Some(missing) = self
            .scopes()
            .iter()
            .find(|s| !granted.contains(&s.as_str()))
        {
            return Err(UpstreamError::Callback(format!(
                "Discord did not grant the permission `{missing}` this site asks for; sign in again and leave it ticked"
            )));
        }
        let rb = self
            .http
            .client()
            .get(&self.me_url)
            .bearer_auth(&token.access_token);
        let user = oauth2::call(&self.http, ENDPOINT, rb, oauth_or_status).await?;
        let (subject, claims) = claims(&user)?;
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
    fn the_user_object_becomes_kratos_claims() {
        let u = json!({"id": "80351110224678912", "username": "ivan_petrov",
            "discriminator": "0", "global_name": "Иван Петров", "avatar": "8342729096ea3675442027381ff50dfe",
            "email": "ivan@example.ru", "verified": true, "locale": "ru", "mfa_enabled": false});
        let (sub, c) = claims(&u).unwrap();
        assert_eq!(sub, "80351110224678912");
        assert_eq!(c["name"], "ivan_petrov#0");
        assert_eq!(c["nickname"], "ivan_petrov");
        assert_eq!(c["email_verified"], true);
        assert_eq!(
            c["picture"],
            "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"
        );
        assert_eq!(c["raw_claims"]["global_name"], "Иван Петров");
        let (_, c) = claims(&json!({"id": "1", "username": "m", "email": "m@x.y", "verified": "true", "avatar": null})).unwrap();
        assert_eq!(c["email_verified"], false, "only a boolean true counts");
        assert!(c.get("picture").is_none());
        assert!(claims(&json!({"username": "x"})).is_err(), "no id");
    }
}
