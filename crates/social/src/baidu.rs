//! `baidu`: Baidu account (百度帐号) sign-in through Baidu's OAuth 2.0 (`openapi.baidu.com`).
//!
//! The code is exchanged at `oauth/2.0/token` with the client credentials in the query of a
//! GET, as Baidu's own examples do; errors there are RFC 6749's `{error, error_description}`.
//! The person is read from the REST API `rest/2.0/passport/users/getInfo?access_token`, whose
//! errors come with HTTP 200 as `{error_code, error_msg}` (110 invalid token, 111 expired).
//! The subject is the per-app `openid` (Baidu replaced its numeric `uid` with it); the
//! `username` is masked (`t***t`), the avatar an id (`portrait`) turned into a URL. No email.

use crate::claims::{normalize_claims, put_text};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://openapi.baidu.com/oauth/2.0/authorize";
const API_ORIGIN: &str = "https://openapi.baidu.com";
const ENVELOPE: (&str, &str, &str) = ("Baidu", "error_code", "error_msg");
const TOKEN_ENDPOINT: &str = "Baidu oauth/2.0/token";
const USER_ENDPOINT: &str = "Baidu passport/users/getInfo";
/// Where Baidu serves avatars by `portrait` id.
const PORTRAIT_URL: &str = "https://himg.bdimg.com/sys/portrait/item";
/// The issuer given to Baidu's claims.
pub const ISSUER: &str = "https://openapi.baidu.com";

pub struct Baidu {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    user_url: String,
}

impl Baidu {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the app's Secret Key from the Baidu developer console (百度开放平台 → 应用 → 基本信息)",
        )?;
        Ok(Arc::new(Baidu {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(
                &cfg.token_url,
                &cfg.api_base_url,
                API_ORIGIN,
                "/oauth/2.0/token",
            ),
            user_url: endpoint(
                &cfg.userinfo_url,
                &cfg.api_base_url,
                API_ORIGIN,
                "/rest/2.0/passport/users/getInfo",
            ),
            cfg,
            http,
        }))
    }
}

/// `users/getInfo`'s answer as the mapper's claims.
pub fn claims(user: &Value) -> Result<(String, Value), UpstreamError> {
    let subject = text(user, "openid")
        .map(String::from)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: USER_ENDPOINT.into(),
            what: "the user's `openid`".into(),
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "nickname", text(user, "username"));
    if let Some(p) = text(user, "portrait") {
        c.insert("picture".into(), format!("{PORTRAIT_URL}/{p}").into());
    }
    // Baidu: "1" male, "0" female.
    let gender = match text(user, "sex") {
        Some("1") => Some("male"),
        Some("0") => Some("female"),
        _ => None,
    };
    put_text(&mut c, "gender", gender);
    put_text(
        &mut c,
        "birthdate",
        text(user, "birthday").filter(|b| *b != "0000-00-00"),
    );
    let raw = user.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Baidu {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// Baidu documents no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or("basic", " ");
        oauth2::authorization_url(
            &self.auth_url,
            [
                ("response_type", "code"),
                ("client_id", self.cfg.client_id.as_str()),
                ("redirect_uri", req.redirect_uri),
                ("scope", &scope),
                ("display", "page"),
                ("state", req.state),
            ],
        )
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        let rb = self.http.client().get(&self.token_url).query(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("redirect_uri", req.redirect_uri),
        ]);
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
            .get(&self.user_url)
            .query(&[("access_token", token.access_token.as_str())]);
        let user = oauth2::call_enveloped(&self.http, USER_ENDPOINT, rb, ENVELOPE).await?;
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
    fn get_info_becomes_claims() {
        let user = json!({"openid": "oKx9c3f1", "username": "t***t",
            "portrait": "e2c1776c31393837313031319605", "sex": "1",
            "birthday": "0000-00-00"});
        let (sub, c) = claims(&user).unwrap();
        assert_eq!(sub, "oKx9c3f1");
        assert_eq!(c["nickname"], "t***t");
        assert_eq!(
            c["picture"],
            "https://himg.bdimg.com/sys/portrait/item/e2c1776c31393837313031319605"
        );
        assert_eq!(c["gender"], "male");
        assert!(c.get("birthdate").is_none(), "0000-00-00 is not a date");
        assert!(c.get("email").is_none());
        assert!(
            claims(&json!({"uid": "1"})).is_err(),
            "the legacy uid is not used"
        );
    }
}
