//! `kakao`: Kakao Login (카카오 로그인): OAuth 2.0 at `kauth.kakao.com/oauth/authorize`, the
//! token at `kauth.kakao.com/oauth/token`, the user at `kapi.kakao.com/v2/user/me`. Kratos has
//! no Kakao type.
//!
//! `client_id` is the app's REST API key; `client_secret` is optional (Kakao checks one only
//! when the app turned "Client Secret" on, and then it is required). Consent items are chosen in
//! Kakao's console; `scope`, comma-separated, asks for more. Token errors are RFC 6749's with
//! Kakao's own `error_code` (`KOE320` for a used or unknown code, `KOE010` for bad client
//! credentials). The user's `id` (a 64-bit number) is the subject; the email is
//! `kakao_account.email`, and **`email_verified` is true only when Kakao says the address is
//! both valid and verified** (`is_email_valid`, `is_email_verified`); the picture is left out
//! when it is Kakao's default image.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://kauth.kakao.com/oauth/authorize";
const KAUTH_ORIGIN: &str = "https://kauth.kakao.com";
const API_ORIGIN: &str = "https://kapi.kakao.com";
const TOKEN_PATH: &str = "/oauth/token";
const ME_PATH: &str = "/v2/user/me";
/// The issuer given to Kakao's claims (Kakao's OpenID Connect issuer).
pub const ISSUER: &str = "https://kauth.kakao.com";
const ENDPOINT: &str = "Kakao v2/user/me";

pub struct Kakao {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    me_url: String,
}

impl Kakao {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        Ok(Arc::new(Kakao {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, KAUTH_ORIGIN, TOKEN_PATH),
            me_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, API_ORIGIN, ME_PATH),
            cfg,
            http,
        }))
    }
}

/// The Kakao API's own error shape (`{"msg", "code"}` with a 4xx).
fn api_error(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("code").is_some() && v.get("msg").is_some() => UpstreamError::OAuth {
            endpoint: endpoint.to_string(),
            error: format!("code {}", v["code"]),
            description: text(&v, "msg").unwrap_or_default().to_string(),
        },
        _ => oauth_or_status(endpoint, status, body),
    }
}

/// `v2/user/me` as the mapper's claims.
pub fn claims(me: &Value) -> Result<(String, Value), UpstreamError> {
    let subject = me
        .get("id")
        .and_then(subject_string)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: ENDPOINT.into(),
            what: "the user's `id`".into(),
        })?;
    let account = me.get("kakao_account").cloned().unwrap_or(Value::Null);
    let profile = account.get("profile").cloned().unwrap_or(Value::Null);
    let flag = |v: &Value, k: &str| v.get(k).and_then(Value::as_bool) == Some(true);
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    let nickname = text(&profile, "nickname")
        .or_else(|| me.get("properties").and_then(|p| text(p, "nickname")));
    put_text(&mut c, "nickname", nickname);
    put_text(&mut c, "name", text(&account, "name").or(nickname));
    if let Some(email) = text(&account, "email") {
        c.insert("email".into(), email.into());
        let verified = flag(&account, "is_email_valid") && flag(&account, "is_email_verified");
        c.insert("email_verified".into(), verified.into());
    }
    if !flag(&profile, "is_default_image") {
        put_text(&mut c, "picture", text(&profile, "profile_image_url"));
    }
    let raw = me.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Kakao {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or("", ",");
        let mut pairs = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("response_type", "code"),
            ("state", req.state),
        ];
        if !scope.is_empty() {
            pairs.push(("scope", scope.as_str()));
        }
        oauth2::authorization_url(&self.auth_url, pairs)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "Kakao sent no authorization code")?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("code", code),
        ];
        if !self.cfg.client_secret.is_empty() {
            form.push(("client_secret", self.cfg.client_secret.as_str()));
        }
        let rb = self.http.client().post(&self.token_url).form(&form);
        let token = oauth2::exchange_code(
            &self.http,
            "Kakao token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let rb = self
            .http
            .client()
            .get(&self.me_url)
            .bearer_auth(&token.access_token);
        let me = oauth2::call(&self.http, ENDPOINT, rb, api_error).await?;
        let (subject, claims) = claims(&me)?;
        Ok(Profile {
            subject,
            claims,
            tokens: token.tokens(Some("refresh_token"), Some("id_token")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_user_becomes_claims_and_only_a_valid_verified_email_counts() {
        let me = json!({"id": 3_142_592_653_u64, "connected_at": "2026-01-01T00:00:00Z",
            "properties": {"nickname": "이반"},
            "kakao_account": {"profile": {"nickname": "Иван", "is_default_image": false,
                "profile_image_url": "http://k.kakaocdn.net/img.jpg"},
                "has_email": true, "is_email_valid": true, "is_email_verified": true,
                "email": "ivan@kakao.com"}});
        let (sub, c) = claims(&me).unwrap();
        assert_eq!(sub, "3142592653");
        assert_eq!(c["nickname"], "Иван");
        assert_eq!(c["email_verified"], true);
        assert_eq!(c["picture"], "http://k.kakaocdn.net/img.jpg");
        let mut m = me.clone();
        m["kakao_account"]["is_email_verified"] = false.into();
        m["kakao_account"]["profile"]["is_default_image"] = true.into();
        let (_, c) = claims(&m).unwrap();
        assert_eq!(c["email_verified"], false);
        assert!(c.get("picture").is_none(), "Kakao's default image");
        let mut m = me;
        m["kakao_account"]["is_email_valid"] = false.into();
        assert_eq!(claims(&m).unwrap().1["email_verified"], false);
        assert!(claims(&json!({"kakao_account": {}})).is_err());
    }

    #[test]
    fn api_errors_are_read() {
        let e = api_error(
            "me",
            401,
            br#"{"msg":"this access token does not exist","code":-401}"#,
        );
        assert!(
            e.to_string().contains("this access token does not exist"),
            "{e}"
        );
    }
}
