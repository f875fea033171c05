//! `bitbucket`: Bitbucket Cloud (OAuth 2.0 at `bitbucket.org/site/oauth2/authorize`, the token
//! at `bitbucket.org/site/oauth2/access_token`, the account at `api.bitbucket.org/2.0/user`
//! and its addresses at `/2.0/user/emails`). Kratos has no Bitbucket type.
//!
//! The OAuth consumer's permissions decide what the token may read (`account` and `email` for
//! sign-in); the token request authenticates the consumer with HTTP Basic (key and secret). The
//! subject is the account's `uuid` without its braces (`{…}`). The email is the **primary**
//! address of `/2.0/user/emails`, and `email_verified` is its `is_confirmed`. API errors are
//! `{"type": "error", "error": {"message"}}`.

use crate::claims::{normalize_claims, put_text};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://bitbucket.org/site/oauth2/authorize";
const SITE_ORIGIN: &str = "https://bitbucket.org";
const API_ORIGIN: &str = "https://api.bitbucket.org";
const TOKEN_PATH: &str = "/site/oauth2/access_token";
const USER_PATH: &str = "/2.0/user";
const EMAILS_PATH: &str = "/2.0/user/emails";
/// The issuer given to Bitbucket's claims.
pub const ISSUER: &str = "https://bitbucket.org";
const ENDPOINT: &str = "Bitbucket 2.0/user";

pub struct Bitbucket {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    user_url: String,
    emails_url: String,
}

impl Bitbucket {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the OAuth consumer's Secret (Workspace settings → OAuth consumers)",
        )?;
        let api = |path: &str| endpoint("", &cfg.api_base_url, API_ORIGIN, path);
        Ok(Arc::new(Bitbucket {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, SITE_ORIGIN, TOKEN_PATH),
            user_url: if cfg.userinfo_url.is_empty() {
                api(USER_PATH)
            } else {
                cfg.userinfo_url.clone()
            },
            emails_url: api(EMAILS_PATH),
            cfg,
            http,
        }))
    }
}

/// The API's error shape, `{"type": "error", "error": {"message"}}`.
fn api_error(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| Some(v.get("error")?.get("message")?.as_str()?.to_string()));
    match message {
        Some(m) => UpstreamError::Status {
            endpoint: endpoint.to_string(),
            status,
            excerpt: m,
        },
        None => oauth_or_status(endpoint, status, body),
    }
}

/// `2.0/user` and `2.0/user/emails` as the mapper's claims.
pub fn claims(user: &Value, emails: &Value) -> Result<(String, Value), UpstreamError> {
    let subject = text(user, "uuid")
        .map(|u| u.trim_start_matches('{').trim_end_matches('}').to_string())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: ENDPOINT.into(),
            what: "the account's `uuid`".into(),
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "name", text(user, "display_name"));
    put_text(&mut c, "nickname", text(user, "nickname"));
    put_text(
        &mut c,
        "picture",
        user.get("links")
            .and_then(|l| l.get("avatar"))
            .and_then(|a| text(a, "href")),
    );
    let primary = emails
        .get("values")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|e| e.get("is_primary").and_then(Value::as_bool) == Some(true))
        });
    if let Some(e) = primary
        && let Some(address) = text(e, "email")
    {
        c.insert("email".into(), address.into());
        let confirmed = e.get("is_confirmed").and_then(Value::as_bool) == Some(true);
        c.insert("email_verified".into(), confirmed.into());
    }
    let raw = user.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Bitbucket {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        oauth2::authorization_url(
            &self.auth_url,
            vec![
                ("client_id", self.cfg.client_id.as_str()),
                ("response_type", "code"),
                ("redirect_uri", req.redirect_uri),
                ("state", req.state),
            ],
        )
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "Bitbucket sent no authorization code")?;
        let rb = self
            .http
            .client()
            .post(&self.token_url)
            .basic_auth(&self.cfg.client_id, Some(&self.cfg.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", req.redirect_uri),
            ]);
        let token = oauth2::exchange_code(
            &self.http,
            "Bitbucket token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let get = |url: &str| self.http.client().get(url).bearer_auth(&token.access_token);
        let user = oauth2::call(&self.http, ENDPOINT, get(&self.user_url), api_error).await?;
        let emails = oauth2::call(
            &self.http,
            "Bitbucket 2.0/user/emails",
            get(&self.emails_url),
            api_error,
        )
        .await?;
        let (subject, claims) = claims(&user, &emails)?;
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
    fn the_account_and_its_primary_address_become_claims() {
        let user = json!({"uuid": "{d301aafa-d676-4ee0-88be-962be7417567}",
            "account_id": "557058:3c0f9e1a", "nickname": "ivan_p", "display_name": "Иван Петров",
            "links": {"avatar": {"href": "https://avatar-management.example/ivan.png"}}});
        let emails = json!({"values": [
            {"email": "old@example.ru", "is_primary": false, "is_confirmed": true},
            {"email": "ivan@example.ru", "is_primary": true, "is_confirmed": true}]});
        let (sub, c) = claims(&user, &emails).unwrap();
        assert_eq!(sub, "d301aafa-d676-4ee0-88be-962be7417567");
        assert_eq!(c["email"], "ivan@example.ru");
        assert_eq!(c["email_verified"], true);
        assert_eq!(c["name"], "Иван Петров");
        assert_eq!(c["raw_claims"]["account_id"], "557058:3c0f9e1a");
        let emails =
            json!({"values": [{"email": "m@x.y", "is_primary": true, "is_confirmed": false}]});
        assert_eq!(claims(&user, &emails).unwrap().1["email_verified"], false);
        assert!(
            claims(&user, &json!({"values": []}))
                .unwrap()
                .1
                .get("email")
                .is_none()
        );
        assert!(claims(&json!({"uuid": "{}"}), &emails).is_err());
    }
}
