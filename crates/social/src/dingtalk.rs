//! `dingtalk`: DingTalk's (钉钉) OAuth 2.0 sign-in for third-party websites.
//!
//! DingTalk looks like OAuth but differs in the details this file exists for: the callback's
//! code is called `authCode`, the token request is JSON with camelCase keys (no form, no
//! `redirect_uri`), the access token travels in an `x-acs-dingtalk-access-token` header, and
//! errors are `{code, message, requestid}` with HTTP 4xx rather than OAuth's `error`. There is
//! no id_token, nonce or PKCE; the only scopes are `openid` and `corpid`.

use crate::claims::{normalize_claims, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, excerpt};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use url::Url;

pub const AUTH_URL: &str = "https://login.dingtalk.com/oauth2/auth";
pub const API_BASE_URL: &str = "https://api.dingtalk.com";
pub const TOKEN_PATH: &str = "/v1.0/oauth2/userAccessToken";
pub const USER_PATH: &str = "/v1.0/contact/users/me";

pub struct Dingtalk {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    user_url: String,
    scope: String,
    union_id: bool,
}

impl Dingtalk {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        // DingTalk knows exactly two scopes; anything else is refused by its consent page, so
        // refuse it here, at start, where the administrator sees it.
        let mut scopes: Vec<&str> = cfg.scope.iter().map(String::as_str).collect();
        scopes.sort_unstable();
        scopes.dedup();
        let scope = match scopes.as_slice() {
            [] | ["openid"] => "openid",
            ["corpid", "openid"] => "openid corpid",
            _ => {
                return Err((
                    "scope".into(),
                    format!(
                        "DingTalk scopes are `openid` or `openid corpid`, not `{}`",
                        cfg.scope.join(" ")
                    ),
                ));
            }
        };
        let union_id = oauth2::union_id_subject(&cfg, "DingTalk")?;
        oauth2::require_secret(&cfg, " (the app's AppSecret / Client Secret)")?;
        let api = endpoint("", &cfg.api_base_url, API_BASE_URL, "");
        Ok(Arc::new(Dingtalk {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, "", &api, TOKEN_PATH),
            user_url: endpoint(&cfg.userinfo_url, "", &api, USER_PATH),
            scope: scope.into(),
            union_id,
            cfg,
            http,
        }))
    }
}

/// A DingTalk error answer (`{code, message, requestid}`) as an [`UpstreamError::OAuth`], so the
/// user reads DingTalk's own reason; any other non-2xx answer is a plain status error.
pub fn error_of(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (
        v.get("code").and_then(Value::as_str),
        v.get("message").and_then(Value::as_str),
    ) {
        (Some(code), message) if !code.is_empty() => UpstreamError::OAuth {
            endpoint: endpoint.to_string(),
            error: code.to_string(),
            description: message.unwrap_or_default().chars().take(300).collect(),
        },
        _ => UpstreamError::Status {
            endpoint: endpoint.to_string(),
            status,
            excerpt: excerpt(body),
        },
    }
}

/// The mapper's claims from `/v1.0/contact/users/me` (and the token answer's `corpId`).
pub fn claims_of(
    user: &Map<String, Value>,
    union_id: bool,
    corp_id: Option<&str>,
) -> (Option<String>, Value) {
    let s = |k: &str| {
        user.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .map(String::from)
    };
    let subject = user
        .get(if union_id { "unionId" } else { "openId" })
        .and_then(subject_string);
    let mut c = Map::new();
    if let Some(sub) = &subject {
        c.insert("sub".into(), json!(sub));
    }
    if let Some(nick) = s("nick") {
        c.insert("name".into(), json!(nick));
        c.insert("nickname".into(), json!(nick));
    }
    if let Some(p) = s("avatarUrl") {
        c.insert("picture".into(), json!(p));
    }
    // DingTalk does not say whether the email is verified: `email_verified` stays absent.
    if let Some(e) = s("email") {
        c.insert("email".into(), json!(e));
    }
    if let Some(mobile) = s("mobile") {
        let cc = s("stateCode").unwrap_or_else(|| "86".into());
        c.insert(
            "phone_number".into(),
            json!(format!("+{}{mobile}", cc.trim_start_matches('+'))),
        );
    }
    let mut raw = user.clone();
    if let Some(corp) = corp_id {
        raw.insert("corpId".into(), json!(corp));
    }
    (subject, normalize_claims(&c, Some(&raw)))
}

#[async_trait::async_trait]
impl Provider for Dingtalk {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        oauth2::authorization_url(
            &self.auth_url,
            [
                ("client_id", self.cfg.client_id.as_str()),
                ("redirect_uri", req.redirect_uri),
                ("response_type", "code"),
                ("scope", &self.scope),
                ("state", req.state),
                ("prompt", "consent"),
            ],
        )
    }

    /// DingTalk calls the code `authCode`; `code` is accepted too.
    fn code<'c>(&self, cb: &'c Callback) -> Option<&'c str> {
        cb.get("authCode").or_else(|| cb.get("code"))
    }

    async fn exchange(
        &self,
        cb: &Callback,
        _req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(
            self.code(cb),
            "DingTalk sent no authorization code (`authCode`)",
        )?;
        let body = json!({
            "clientId": self.cfg.client_id,
            "clientSecret": self.cfg.client_secret,
            "code": code,
            "grantType": "authorization_code",
        });
        let t = oauth2::exchange_code(
            &self.http,
            "token endpoint",
            self.http.client().post(&self.token_url).json(&body),
            error_of,
            "accessToken",
        )
        .await?;
        let user = oauth2::call(
            &self.http,
            "user endpoint",
            self.http
                .client()
                .get(&self.user_url)
                .header("x-acs-dingtalk-access-token", &t.access_token)
                .header("accept", "application/json"),
            error_of,
        )
        .await?;
        let user = oauth2::object(user, "user endpoint")?;
        let (subject, claims) = claims_of(&user, self.union_id, t.text("corpId"));
        let subject = subject.ok_or_else(|| UpstreamError::Missing {
            endpoint: "user endpoint".into(),
            what: if self.union_id {
                "a unionId"
            } else {
                "an openId"
            }
            .into(),
        })?;
        Ok(Profile {
            subject,
            claims,
            tokens: t.tokens(Some("refreshToken"), None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Map<String, Value> {
        json!({
            "nick": "张伟", "avatarUrl": "https://static.example/a.png", "mobile": "13800138000",
            "openId": "open-1", "unionId": "union-1", "email": "zhangwei@example.cn", "stateCode": "86"
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    #[test]
    fn claims_follow_the_dingtalk_profile() {
        let (sub, c) = claims_of(&user(), false, Some("ding-corp"));
        assert_eq!(sub.as_deref(), Some("open-1"));
        assert_eq!(c["sub"], "open-1");
        assert_eq!(c["name"], "张伟");
        assert_eq!(c["nickname"], "张伟");
        assert_eq!(c["picture"], "https://static.example/a.png");
        assert_eq!(c["email"], "zhangwei@example.cn");
        assert!(c.get("email_verified").is_none(), "DingTalk never says so");
        assert_eq!(c["phone_number"], "+8613800138000");
        assert_eq!(c["raw_claims"]["unionId"], "union-1");
        assert_eq!(c["raw_claims"]["corpId"], "ding-corp");
    }

    #[test]
    fn union_id_subject_and_absent_fields() {
        let mut u = user();
        u.insert("email".into(), json!(""));
        u.remove("mobile");
        let (sub, c) = claims_of(&u, true, None);
        assert_eq!(sub.as_deref(), Some("union-1"));
        assert!(c.get("email").is_none(), "an empty email is no email");
        assert!(c.get("phone_number").is_none());
        assert!(c["raw_claims"].get("corpId").is_none());
    }

    #[test]
    fn error_bodies_become_readable_errors() {
        let e = error_of(
            "token endpoint",
            400,
            br#"{"code":"invalidClientSecret","message":"bad secret","requestid":"r1"}"#,
        );
        assert!(
            matches!(&e, UpstreamError::OAuth { error, description, .. } if error == "invalidClientSecret" && description == "bad secret"),
            "{e:?}"
        );
        let e = error_of("token endpoint", 502, b"<html>bad gateway</html>");
        assert!(matches!(e, UpstreamError::Status { status: 502, .. }));
    }

    #[test]
    fn only_openid_and_corpid_scopes_are_accepted() {
        let cfg = |scope: &[&str]| -> ProviderConfig {
            serde_json::from_value(json!({
                "id": "d", "provider": "dingtalk", "client_id": "c", "client_secret": "s",
                "scope": scope,
            }))
            .expect("a valid provider entry")
        };
        for ok in [&[][..], &["openid"], &["corpid", "openid"]] {
            assert!(
                Dingtalk::make(cfg(ok), Upstream::new().expect("an HTTP client")).is_ok(),
                "{ok:?}"
            );
        }
        match Dingtalk::make(
            cfg(&["openid", "contact"]),
            Upstream::new().expect("an HTTP client"),
        ) {
            Err((key, msg)) => {
                assert_eq!(key, "scope");
                assert!(msg.contains("openid corpid"), "{msg}");
            }
            Ok(_) => panic!("`contact` accepted"),
        }
    }
}
