//! `douyin`: Douyin (抖音) sign-in through the Douyin Open Platform (`open.douyin.com`).
//!
//! Douyin's OAuth names the client **`client_key`** (authorize and token call alike), and
//! answers with HTTP 200 whatever happened, the result **inside `data`**: the token call's
//! `{"data": {access_token, open_id, …, error_code, description}, "message"}` (an error is
//! `data.error_code ≠ 0`), the user call's `{"data": {open_id, union_id, nickname, avatar, …},
//! "err_no", "err_msg"}` (an error is `err_no ≠ 0`, or `data.error_code ≠ 0`). Both are form
//! POSTs. The subject is the per-app `open_id`, or with `subject_source: union_id` the
//! `union_id` shared by the apps of one developer account. No email.

use crate::claims::{normalize_claims, put_text};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint, errcode_error};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, required_text, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://open.douyin.com/platform/oauth/connect/";
const API_ORIGIN: &str = "https://open.douyin.com";
const TOKEN_ENDPOINT: &str = "Douyin oauth/access_token";
const USER_ENDPOINT: &str = "Douyin oauth/userinfo";
/// The issuer given to Douyin's claims.
pub const ISSUER: &str = "https://open.douyin.com";

pub struct Douyin {
    cfg: ProviderConfig,
    http: Upstream,
    union_id: bool,
    auth_url: String,
    token_url: String,
    user_url: String,
}

impl Douyin {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        let union_id = oauth2::union_id_subject(&cfg, "Douyin")?;
        oauth2::require_secret(
            &cfg,
            ": the app's Client Secret at developer.open-douyin.com (管理中心 → 应用详情)",
        )?;
        Ok(Arc::new(Douyin {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(
                &cfg.token_url,
                &cfg.api_base_url,
                API_ORIGIN,
                "/oauth/access_token/",
            ),
            user_url: endpoint(
                &cfg.userinfo_url,
                &cfg.api_base_url,
                API_ORIGIN,
                "/oauth/userinfo/",
            ),
            union_id,
            cfg,
            http,
        }))
    }

    /// A Douyin call: the answer's `data`, unless the envelope or `data` reports an error.
    async fn data(
        &self,
        endpoint: &str,
        rb: reqwest::RequestBuilder,
    ) -> Result<Value, UpstreamError> {
        let v = oauth2::call(&self.http, endpoint, rb, crate::upstream::oauth_or_status).await?;
        if let Some(e) = errcode_error(endpoint, &v, ("Douyin", "err_no", "err_msg")) {
            return Err(e);
        }
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        if let Some(e) = errcode_error(endpoint, &data, ("Douyin", "error_code", "description")) {
            return Err(e);
        }
        if !data.is_object() {
            return Err(UpstreamError::Missing {
                endpoint: endpoint.into(),
                what: "a `data` object".into(),
            });
        }
        Ok(data)
    }
}

/// `oauth/userinfo`'s `data` as the mapper's claims, with the subject the entry chose.
pub fn claims(user: &Value, union_id: bool) -> Result<(String, Value), UpstreamError> {
    let key = if union_id { "union_id" } else { "open_id" };
    let subject = text(user, key)
        .map(String::from)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: USER_ENDPOINT.into(),
            what: if union_id {
                "a `union_id` (subject_source: union_id; the app must belong to a verified developer account)".into()
            } else {
                "the user's `open_id`".into()
            },
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "nickname", text(user, "nickname"));
    put_text(&mut c, "picture", text(user, "avatar"));
    let mut raw = user.as_object().cloned().unwrap_or_default();
    raw.remove("error_code");
    raw.remove("description");
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Douyin {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// Douyin's web OAuth has no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or("user_info", ",");
        oauth2::authorization_url(
            &self.auth_url,
            [
                ("client_key", self.cfg.client_id.as_str()),
                ("response_type", "code"),
                ("scope", &scope),
                ("redirect_uri", req.redirect_uri),
                ("state", req.state),
            ],
        )
    }

    async fn exchange(
        &self,
        cb: &Callback,
        _req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        let rb = self.http.client().post(&self.token_url).form(&[
            ("client_key", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("code", code),
            ("grant_type", "authorization_code"),
        ]);
        let token = self.data(TOKEN_ENDPOINT, rb).await?;
        let access = required_text(&token, "access_token", TOKEN_ENDPOINT)?.to_string();
        let open_id = required_text(&token, "open_id", TOKEN_ENDPOINT)?.to_string();
        let rb = self.http.client().post(&self.user_url).form(&[
            ("access_token", access.as_str()),
            ("open_id", open_id.as_str()),
        ]);
        let user = self.data(USER_ENDPOINT, rb).await?;
        if text(&user, "open_id").is_some_and(|o| o != open_id) {
            return Err(UpstreamError::Missing {
                endpoint: USER_ENDPOINT.into(),
                what: format!("the user of the token (open_id {open_id})"),
            });
        }
        let (subject, claims) = claims(&user, self.union_id)?;
        Ok(Profile {
            subject,
            claims,
            tokens: crate::provider::Tokens {
                access_token: Some(access),
                refresh_token: text(&token, "refresh_token").map(String::from),
                id_token: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn userinfo_data_becomes_claims_with_either_id() {
        let user = json!({"open_id": "o-1", "union_id": "u-1", "nickname": "抖音用户",
            "avatar": "https://p3.douyinpic.com/aweme/100x100/x.jpeg", "e_account_role": "",
            "error_code": 0, "description": ""});
        let (sub, c) = claims(&user, false).unwrap();
        assert_eq!(sub, "o-1");
        assert_eq!(c["nickname"], "抖音用户");
        assert_eq!(
            c["picture"],
            "https://p3.douyinpic.com/aweme/100x100/x.jpeg"
        );
        assert!(c["raw_claims"].get("error_code").is_none());
        assert_eq!(claims(&user, true).unwrap().0, "u-1");
        assert!(claims(&json!({"open_id": "o-1"}), true).is_err());
    }
}
