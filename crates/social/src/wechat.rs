//! `wechat`: WeChat sign-in (微信登录) for websites, through the WeChat Open Platform.
//!
//! Two variants, chosen by the entry's `scope`: `snsapi_login` (the default) is the website QR
//! login at `open.weixin.qq.com/connect/qrconnect` for a 网站应用; `snsapi_userinfo` is the
//! in-WeChat browser sign-in at `open.weixin.qq.com/connect/oauth2/authorize` for an Official
//! Account (服务号). Both take `appid` (not `client_id`) and end in `#wechat_redirect`.
//!
//! The rest is WeChat's own dialect: the code is exchanged with a **GET** carrying `appid` and
//! `secret`, the profile is read with the token **in the query** next to the `openid`, and
//! every error comes with **HTTP 200** as `{errcode, errmsg}`. There is no email and no phone.
//! The subject is the `unionid` when WeChat sends one (the same person across one company's
//! website, apps and mini programs, once they are bound to an Open Platform account) and the
//! per-app `openid` otherwise; `subject_source: openid` always uses the `openid`, and
//! `subject_source: unionid` requires the `unionid`.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, required_text, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const QR_URL: &str = "https://open.weixin.qq.com/connect/qrconnect";
const IN_WECHAT_URL: &str = "https://open.weixin.qq.com/connect/oauth2/authorize";
const API_ORIGIN: &str = "https://api.weixin.qq.com";
const TOKEN_PATH: &str = "/sns/oauth2/access_token";
const USERINFO_PATH: &str = "/sns/userinfo";
const ENVELOPE: (&str, &str, &str) = ("WeChat", "errcode", "errmsg");
const TOKEN_ENDPOINT: &str = "WeChat sns/oauth2/access_token";
const USERINFO_ENDPOINT: &str = "WeChat sns/userinfo";

/// Which id is the subject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SubjectSource {
    /// `unionid` when WeChat sends one, else `openid` (the default).
    UnionOrOpen,
    /// Always the per-app `openid`.
    OpenId,
    /// Always the `unionid`; a sign-in without one is refused.
    UnionId,
}

pub struct Wechat {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    scope: &'static str,
    subject: SubjectSource,
    token_url: String,
    userinfo_url: String,
}

impl Wechat {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        let scope = match cfg.scope.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [] | ["snsapi_login"] => "snsapi_login",
            ["snsapi_userinfo"] => "snsapi_userinfo",
            _ => {
                return Err((
                    "scope".into(),
                    format!(
                        "`{}` is not a WeChat sign-in scope: use [snsapi_login] (website QR login, the default) or [snsapi_userinfo] (inside WeChat, with an Official Account's appid)",
                        cfg.scope.join(",")
                    ),
                ));
            }
        };
        let subject = match cfg.subject_source.as_str() {
            "" => SubjectSource::UnionOrOpen,
            "openid" | "open_id" => SubjectSource::OpenId,
            "unionid" | "union_id" => SubjectSource::UnionId,
            other => {
                return Err((
                    "subject_source".into(),
                    format!(
                        "`{other}` is not a WeChat subject source: leave it out (unionid when WeChat sends one, else openid), or use `openid` (always the per-app id) or `unionid` (always the Open Platform id)"
                    ),
                ));
            }
        };
        oauth2::require_secret(
            &cfg,
            ": the AppSecret from the WeChat Open Platform (open.weixin.qq.com → 管理中心 → 网站应用)",
        )?;
        let default_auth = if scope == "snsapi_login" {
            QR_URL
        } else {
            IN_WECHAT_URL
        };
        Ok(Arc::new(Wechat {
            auth_url: endpoint(&cfg.auth_url, "", default_auth, ""),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, API_ORIGIN, TOKEN_PATH),
            userinfo_url: endpoint(
                &cfg.userinfo_url,
                &cfg.api_base_url,
                API_ORIGIN,
                USERINFO_PATH,
            ),
            scope,
            subject,
            cfg,
            http,
        }))
    }
}

/// The mapper's claims from `sns/userinfo` (and the token answer's ids where the profile
/// lacks them), and the subject `source` picks.
pub fn claims(
    token: &Value,
    user: &Value,
    source: SubjectSource,
) -> Result<(String, Value), UpstreamError> {
    let id = |k: &str| {
        user.get(k)
            .and_then(subject_string)
            .or_else(|| token.get(k).and_then(subject_string))
    };
    let openid = id("openid").ok_or_else(|| UpstreamError::Missing {
        endpoint: USERINFO_ENDPOINT.into(),
        what: "the user's `openid`".into(),
    })?;
    let unionid = id("unionid");
    let subject = match (source, &unionid) {
        (SubjectSource::OpenId, _) | (SubjectSource::UnionOrOpen, None) => openid.clone(),
        (_, Some(u)) => u.clone(),
        (SubjectSource::UnionId, None) => {
            return Err(UpstreamError::Missing {
                endpoint: USERINFO_ENDPOINT.into(),
                what: "a `unionid` (subject_source: unionid; bind the app to your WeChat Open Platform account)".into(),
            });
        }
    };
    let mut c = Map::new();
    c.insert("iss".into(), "https://open.weixin.qq.com".into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "nickname", text(user, "nickname"));
    put_text(&mut c, "picture", text(user, "headimgurl"));
    // WeChat: 1 male, 2 female, 0 not given (always 0 since October 2021).
    let gender = match user.get("sex").and_then(Value::as_i64) {
        Some(1) => Some("male"),
        Some(2) => Some("female"),
        _ => None,
    };
    put_text(&mut c, "gender", gender);
    let mut raw = user.as_object().cloned().unwrap_or_default();
    raw.insert("openid".into(), openid.into());
    if let Some(u) = unionid {
        raw.insert("unionid".into(), u.into());
    }
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Wechat {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// WeChat has no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let mut url = oauth2::authorization_url(
            &self.auth_url,
            [
                ("appid", self.cfg.client_id.as_str()),
                ("redirect_uri", req.redirect_uri),
                ("response_type", "code"),
                ("scope", self.scope),
                ("state", req.state),
            ],
        )?;
        // WeChat documents the fragment as part of the URL.
        url.set_fragment(Some("wechat_redirect"));
        Ok(url)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        _req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        // WeChat takes only a GET with the secret in the query (it has no other form).
        let rb = self.http.client().get(&self.token_url).query(&[
            ("appid", self.cfg.client_id.as_str()),
            ("secret", self.cfg.client_secret.as_str()),
            ("code", code),
            ("grant_type", "authorization_code"),
        ]);
        let token = oauth2::exchange_enveloped(&self.http, TOKEN_ENDPOINT, rb, ENVELOPE).await?;
        let access = token.access_token.as_str();
        let openid = required_text(&token.raw, "openid", TOKEN_ENDPOINT)?;
        let rb = self.http.client().get(&self.userinfo_url).query(&[
            ("access_token", access),
            ("openid", openid),
            ("lang", "zh_CN"),
        ]);
        let user = oauth2::call_enveloped(&self.http, USERINFO_ENDPOINT, rb, ENVELOPE).await?;
        if text(&user, "openid").is_some_and(|o| o != openid) {
            return Err(UpstreamError::Missing {
                endpoint: USERINFO_ENDPOINT.into(),
                what: format!("the user of the token (openid {openid})"),
            });
        }
        let (subject, claims) = claims(&token.raw, &user, self.subject)?;
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

    fn user() -> Value {
        json!({"openid": "o-1", "nickname": "张伟", "sex": 0, "province": "", "city": "",
            "country": "", "headimgurl": "https://thirdwx.qlogo.cn/mmopen/x/132",
            "privilege": [], "unionid": "u-1"})
    }

    #[test]
    fn unionid_is_the_subject_when_sent_unless_openid_is_asked_for() {
        let token = json!({"access_token": "t", "openid": "o-1", "unionid": "u-1"});
        let (sub, c) = claims(&token, &user(), SubjectSource::UnionOrOpen).unwrap();
        assert_eq!(sub, "u-1");
        assert_eq!(c["nickname"], "张伟");
        assert_eq!(c["picture"], "https://thirdwx.qlogo.cn/mmopen/x/132");
        assert!(c.get("gender").is_none(), "0 is not given");
        assert!(c.get("email").is_none());
        assert_eq!(c["raw_claims"]["openid"], "o-1");
        assert_eq!(c["raw_claims"]["unionid"], "u-1");
        let (sub, _) = claims(&token, &user(), SubjectSource::OpenId).unwrap();
        assert_eq!(sub, "o-1");
        let (sub, _) = claims(&token, &user(), SubjectSource::UnionId).unwrap();
        assert_eq!(sub, "u-1");
    }

    #[test]
    fn without_unionid_the_openid_or_a_refusal() {
        let mut u = user();
        u.as_object_mut().unwrap().remove("unionid");
        let token = json!({"openid": "o-1"});
        let (sub, c) = claims(&token, &u, SubjectSource::UnionOrOpen).unwrap();
        assert_eq!(sub, "o-1");
        assert!(c["raw_claims"].get("unionid").is_none());
        assert!(claims(&token, &u, SubjectSource::UnionId).is_err());
        // The token answer's unionid counts when the profile lacks it.
        let token = json!({"openid": "o-1", "unionid": "u-9"});
        assert_eq!(
            claims(&token, &u, SubjectSource::UnionOrOpen).unwrap().0,
            "u-9"
        );
        assert!(claims(&json!({}), &json!({"nickname": "x"}), SubjectSource::OpenId).is_err());
    }

    #[test]
    fn scope_and_subject_source_are_checked_at_start() {
        let cfg = |scope: Value, source: &str| -> ProviderConfig {
            serde_json::from_value(json!({"id": "wx", "provider": "wechat",
                "client_id": "wx1", "client_secret": "s", "scope": scope,
                "subject_source": source}))
            .unwrap()
        };
        let http = || Upstream::new().unwrap();
        assert!(Wechat::make(cfg(json!([]), ""), http()).is_ok());
        assert!(Wechat::make(cfg(json!(["snsapi_userinfo"]), "openid"), http()).is_ok());
        let bad = Wechat::make(cfg(json!(["snsapi_base"]), ""), http());
        assert_eq!(bad.err().map(|e| e.0).as_deref(), Some("scope"));
        let bad = Wechat::make(cfg(json!([]), "email"), http());
        assert_eq!(bad.err().map(|e| e.0).as_deref(), Some("subject_source"));
    }
}
