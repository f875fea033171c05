//! `weibo`: Sina Weibo (新浪微博) sign-in through the Weibo Open Platform (`api.weibo.com`).
//!
//! OAuth 2.0 with Weibo's own answers: the code is exchanged with a form POST at
//! `oauth2/access_token` (client credentials in the body), whose answer carries the person's
//! `uid` (as text) next to the token and a deprecated `remind_in`; the profile is
//! `2/users/show.json?access_token&uid`. Errors are `{error, error_code, request}` with Weibo's
//! five-digit codes (21325 code used or expired, 21323 bad client, 21332 token invalid). The
//! subject is `idstr`, the text form of the 64-bit `id` (the number would lose digits in
//! JavaScript-style readers). Weibo shares no email with ordinary apps.

use crate::claims::{normalize_claims, put_text};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://api.weibo.com/oauth2/authorize";
const API_ORIGIN: &str = "https://api.weibo.com";
const ENVELOPE: (&str, &str, &str) = ("Weibo", "error_code", "error");
const TOKEN_ENDPOINT: &str = "Weibo oauth2/access_token";
const USER_ENDPOINT: &str = "Weibo users/show";
/// The issuer given to Weibo's claims.
pub const ISSUER: &str = "https://weibo.com";

pub struct Weibo {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    user_url: String,
}

impl Weibo {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the App Secret from open.weibo.com (我的应用 → 应用信息 → 基本信息)",
        )?;
        Ok(Arc::new(Weibo {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(
                &cfg.token_url,
                &cfg.api_base_url,
                API_ORIGIN,
                "/oauth2/access_token",
            ),
            user_url: endpoint(
                &cfg.userinfo_url,
                &cfg.api_base_url,
                API_ORIGIN,
                "/2/users/show.json",
            ),
            cfg,
            http,
        }))
    }
}

/// `users/show`'s answer as the mapper's claims.
pub fn claims(user: &Value) -> Result<(String, Value), UpstreamError> {
    let subject = text(user, "idstr")
        .map(String::from)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: USER_ENDPOINT.into(),
            what: "the user's `idstr`".into(),
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "nickname", text(user, "screen_name"));
    put_text(&mut c, "name", text(user, "name"));
    put_text(
        &mut c,
        "picture",
        text(user, "avatar_hd").or_else(|| text(user, "avatar_large")),
    );
    // Weibo: "m", "f", "n" (not given).
    let gender = match text(user, "gender") {
        Some("m") => Some("male"),
        Some("f") => Some("female"),
        _ => None,
    };
    put_text(&mut c, "gender", gender);
    if let Some(domain) = text(user, "profile_url") {
        c.insert(
            "profile".into(),
            format!("https://weibo.com/{domain}").into(),
        );
    }
    let raw = user.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Weibo {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// Weibo documents no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope.join(",");
        let mut pairs = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("response_type", "code"),
            ("state", req.state),
        ];
        // Without `scope`, Weibo grants the basic read access every app has.
        if !scope.is_empty() {
            pairs.push(("scope", &scope));
        }
        oauth2::authorization_url(&self.auth_url, pairs)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        let rb = self.http.client().post(&self.token_url).form(&[
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
        ]);
        let token = oauth2::exchange_enveloped(&self.http, TOKEN_ENDPOINT, rb, ENVELOPE).await?;
        let uid = token
            .text("uid")
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: TOKEN_ENDPOINT.into(),
                what: "the user's `uid`".into(),
            })?
            .to_string();
        let rb = self.http.client().get(&self.user_url).query(&[
            ("access_token", token.access_token.as_str()),
            ("uid", uid.as_str()),
        ]);
        let user = oauth2::call_enveloped(&self.http, USER_ENDPOINT, rb, ENVELOPE).await?;
        let (subject, claims) = claims(&user)?;
        if subject != uid {
            return Err(UpstreamError::Missing {
                endpoint: USER_ENDPOINT.into(),
                what: format!("the user of the token (uid {uid}, profile {subject})"),
            });
        }
        Ok(Profile {
            subject,
            claims,
            tokens: token.tokens(None, None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_show_becomes_claims_with_the_text_id() {
        let user = json!({"id": 5187664653001234567_u64, "idstr": "5187664653001234567",
            "screen_name": "小明同学", "name": "小明同学", "gender": "m",
            "profile_url": "u/5187664653001234567",
            "avatar_large": "https://tvax1.sinaimg.cn/crop.0.0.180.180.180/x.jpg",
            "avatar_hd": "https://tvax1.sinaimg.cn/crop.0.0.1024.1024.1024/x.jpg"});
        let (sub, c) = claims(&user).unwrap();
        assert_eq!(sub, "5187664653001234567");
        assert_eq!(c["nickname"], "小明同学");
        assert_eq!(c["gender"], "male");
        assert_eq!(
            c["picture"],
            "https://tvax1.sinaimg.cn/crop.0.0.1024.1024.1024/x.jpg"
        );
        assert_eq!(c["profile"], "https://weibo.com/u/5187664653001234567");
        assert!(c.get("email").is_none());
        assert!(
            claims(&json!({"id": 1})).is_err(),
            "the number alone is not trusted"
        );
    }
}
