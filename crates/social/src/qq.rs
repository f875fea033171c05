//! `qq`: QQ sign-in (QQ互联, `graph.qq.com`).
//!
//! QQ's dialect, all of it read by the shared plumbing ([`oauth2::call_enveloped`]): the token
//! call is a GET whose success answer is **form-encoded text** (`access_token=…&expires_in=…`)
//! and whose errors are **JSONP** (`callback( {"error":100020,…} );`); the person's id comes from
//! `/oauth2.0/me`, also JSONP, which names the app the token belongs to (`client_id`, checked);
//! the profile (`/user/get_user_info`) reports errors as `{ret≠0, msg}` with HTTP 200. There is no
//! email. The subject is the per-app `openid`; `subject_source: union_id` asks `/me` for the
//! `unionid` (`unionid=1`, which QQ grants on application) and uses it.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, required_text, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const API_ORIGIN: &str = "https://graph.qq.com";
const AUTHORIZE_PATH: &str = "/oauth2.0/authorize";
const TOKEN_PATH: &str = "/oauth2.0/token";
const ME_PATH: &str = "/oauth2.0/me";
const USER_INFO_PATH: &str = "/user/get_user_info";
const TOKEN_ENDPOINT: &str = "QQ oauth2.0/token";
const ME_ENDPOINT: &str = "QQ oauth2.0/me";
const USER_INFO_ENDPOINT: &str = "QQ user/get_user_info";
const OAUTH_ENVELOPE: (&str, &str, &str) = ("QQ", "error", "error_description");

pub struct Qq {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    me_url: String,
    user_info_url: String,
    union_id: bool,
}

impl Qq {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        let union_id = oauth2::union_id_subject(&cfg, "QQ")?;
        oauth2::require_secret(
            &cfg,
            ": the APP Key from QQ互联 (connect.qq.com → 应用管理)",
        )?;
        let api = |path| endpoint("", &cfg.api_base_url, API_ORIGIN, path);
        Ok(Arc::new(Qq {
            auth_url: endpoint(&cfg.auth_url, "", API_ORIGIN, AUTHORIZE_PATH),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, API_ORIGIN, TOKEN_PATH),
            me_url: api(ME_PATH),
            user_info_url: endpoint(
                &cfg.userinfo_url,
                &cfg.api_base_url,
                API_ORIGIN,
                USER_INFO_PATH,
            ),
            union_id,
            cfg,
            http,
        }))
    }
}

/// The mapper's claims from `get_user_info` and `/me`'s ids, and the subject.
pub fn claims(me: &Value, user: &Value, union_id: bool) -> Result<(String, Value), UpstreamError> {
    let id = |k: &str| me.get(k).and_then(subject_string);
    let key = if union_id { "unionid" } else { "openid" };
    let subject = id(key).ok_or_else(|| UpstreamError::Missing {
        endpoint: ME_ENDPOINT.into(),
        what: format!("the user's `{key}`"),
    })?;
    let mut c = Map::new();
    c.insert("iss".into(), API_ORIGIN.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "nickname", text(user, "nickname"));
    // The 100×100 avatar when QQ has one, else the 40×40 one.
    put_text(
        &mut c,
        "picture",
        text(user, "figureurl_qq_2").or_else(|| text(user, "figureurl_qq_1")),
    );
    let gender = match text(user, "gender") {
        Some("男") => Some("male"),
        Some("女") => Some("female"),
        _ => None,
    };
    put_text(&mut c, "gender", gender);
    let mut raw = user.as_object().cloned().unwrap_or_default();
    for k in ["openid", "unionid"] {
        if let Some(v) = id(k) {
            raw.insert(k.into(), v.into());
        }
    }
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Qq {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// QQ has no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        // Comma-separated; `get_user_info` is what sign-in needs.
        let scope = self.cfg.scope_or("get_user_info", ",");
        oauth2::authorization_url(
            &self.auth_url,
            [
                ("response_type", "code"),
                ("client_id", self.cfg.client_id.as_str()),
                ("redirect_uri", req.redirect_uri),
                ("state", req.state),
                ("scope", &scope),
            ],
        )
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        // QQ takes only a GET with the key in the query.
        let rb = self.http.client().get(&self.token_url).query(&[
            ("grant_type", "authorization_code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
        ]);
        let token =
            oauth2::exchange_enveloped(&self.http, TOKEN_ENDPOINT, rb, OAUTH_ENVELOPE).await?;
        let access = token.access_token.as_str();
        let mut q = vec![("access_token", access)];
        if self.union_id {
            q.push(("unionid", "1"));
        }
        let rb = self.http.client().get(&self.me_url).query(&q);
        let me = oauth2::call_enveloped(&self.http, ME_ENDPOINT, rb, OAUTH_ENVELOPE).await?;
        oauth2::issued_to(&me, &self.cfg.client_id, ME_ENDPOINT)?;
        let openid = required_text(&me, "openid", ME_ENDPOINT)?;
        let rb = self.http.client().get(&self.user_info_url).query(&[
            ("access_token", access),
            ("oauth_consumer_key", self.cfg.client_id.as_str()),
            ("openid", openid),
        ]);
        let user = oauth2::call_enveloped(&self.http, USER_INFO_ENDPOINT, rb, ("QQ", "ret", "msg"))
            .await?;
        let (subject, claims) = claims(&me, &user, self.union_id)?;
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
    fn openid_or_unionid_and_the_profile() {
        let me = json!({"client_id": "101", "openid": "OPEN", "unionid": "UNION"});
        let user = json!({"ret": 0, "msg": "", "nickname": "小明", "gender": "男",
            "figureurl_qq_1": "http://q/40", "figureurl_qq_2": "http://q/100"});
        let (sub, c) = claims(&me, &user, false).unwrap();
        assert_eq!(sub, "OPEN");
        assert_eq!(c["nickname"], "小明");
        assert_eq!(c["gender"], "male");
        assert_eq!(c["picture"], "http://q/100");
        assert_eq!(c["raw_claims"]["unionid"], "UNION");
        assert!(c.get("email").is_none());
        assert_eq!(claims(&me, &user, true).unwrap().0, "UNION");
        let small = json!({"nickname": "x", "figureurl_qq_1": "http://q/40", "gender": "女"});
        let (_, c) = claims(&me, &small, false).unwrap();
        assert_eq!(
            (c["picture"].as_str(), c["gender"].as_str()),
            (Some("http://q/40"), Some("female"))
        );
        assert!(
            claims(&json!({"openid": "o"}), &user, true).is_err(),
            "no unionid"
        );
    }
}
