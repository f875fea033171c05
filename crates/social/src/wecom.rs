//! `wecom`: WeCom (企业微信) web login for a corp's self-built app (自建应用).
//!
//! WeCom is not OAuth 2.0 with a per-user token. The browser goes to the web login page
//! (`login.work.weixin.qq.com/wwlogin/sso/login`, `login_type=CorpApp`, `appid` = the corp id,
//! `agentid` = the app's AgentId) and comes back with a `code`. The code is spent at the
//! *user* call, with the **app's** token: `cgi-bin/gettoken?corpid&corpsecret` gives an access
//! token for the app (valid two hours, cached here, since WeCom rate-limits fetching it per
//! login), `cgi-bin/auth/getuserinfo?access_token&code` says who signed in (`userid` for a
//! member, only `openid` for a non-member, and a `user_ticket` when the person agreed to share
//! private data), and the contact API (`cgi-bin/user/get`) gives the member's name.
//! `cgi-bin/auth/getuserdetail` with the user ticket gives email, mobile and avatar, which
//! `user/get` leaves out for apps created after 2022-06-20; WeCom issues the ticket only to the
//! in-app sign-in with `scope: [snsapi_privateinfo]` (`open.weixin.qq.com/connect/oauth2/authorize`
//! inside the WeCom app's browser), never to web login. Every error comes with **HTTP 200**
//! as `{errcode, errmsg}`.
//!
//! The subject is `<corpid>:<userid>`: a `userid` is unique only within one corp, and an entry
//! moved to another corp must not sign its people into the first corp's identities. The corp
//! id is in `raw_claims.corpid` for organization rules. Non-members are refused: a corp login
//! is for the corp's members.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, Tokens};
use crate::upstream::{Upstream, UpstreamError, required_text, text};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

const AUTH_URL: &str = "https://login.work.weixin.qq.com/wwlogin/sso/login";
/// Sign-in inside the WeCom app's browser (the UA says `wxwork`).
const IN_APP_URL: &str = "https://open.weixin.qq.com/connect/oauth2/authorize";
const API_ORIGIN: &str = "https://qyapi.weixin.qq.com";
const ENVELOPE: (&str, &str, &str) = ("WeCom", "errcode", "errmsg");
const TOKEN_ENDPOINT: &str = "WeCom cgi-bin/gettoken";
const USERINFO_ENDPOINT: &str = "WeCom cgi-bin/auth/getuserinfo";
const USER_ENDPOINT: &str = "WeCom cgi-bin/user/get";
const DETAIL_ENDPOINT: &str = "WeCom cgi-bin/auth/getuserdetail";
/// The issuer given to WeCom's claims.
pub const ISSUER: &str = "https://qyapi.weixin.qq.com";
/// WeCom's codes for an app token that is invalid (40014) or expired (42001): the cached token
/// is dropped and fetched again once.
const STALE_TOKEN: [&str; 2] = ["WeCom error 40014", "WeCom error 42001"];
/// Kept a little shorter than WeCom's `expires_in`, so a token is never used at its very end.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

pub struct Wecom {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    /// `None`: web login; else the in-app OAuth scope.
    scope: Option<&'static str>,
    api: String,
    /// The app token and when it stops being used.
    app_token: Mutex<Option<(String, Instant)>>,
}

impl Wecom {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        if cfg.wecom_agent_id.trim().is_empty() {
            return Err((
                "wecom_agent_id".into(),
                "wecom_agent_id is required for `wecom` providers: the AgentId of the self-built app (WeCom admin console → 应用管理 → the app)".into(),
            ));
        }
        let scope = match cfg.scope.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [] => None,
            ["snsapi_base"] => Some("snsapi_base"),
            ["snsapi_privateinfo"] => Some("snsapi_privateinfo"),
            _ => {
                return Err((
                    "scope".into(),
                    format!(
                        "`{}` is not a WeCom sign-in scope: leave `scope` out for web login (QR code or the WeCom desktop app, in any browser), or use [snsapi_base] or [snsapi_privateinfo] (sign-in inside the WeCom app's browser; snsapi_privateinfo asks the member to share email, mobile and avatar)",
                        cfg.scope.join(",")
                    ),
                ));
            }
        };
        oauth2::require_secret(
            &cfg,
            ": the self-built app's Secret (WeCom admin console → 应用管理 → the app → Secret)",
        )?;
        Ok(Arc::new(Wecom {
            auth_url: endpoint(
                &cfg.auth_url,
                "",
                if scope.is_none() {
                    AUTH_URL
                } else {
                    IN_APP_URL
                },
                "",
            ),
            scope,
            api: endpoint("", &cfg.api_base_url, API_ORIGIN, ""),
            app_token: Mutex::new(None),
            cfg,
            http,
        }))
    }

    /// The app's access token: the cached one while it is fresh, else a new one.
    async fn app_token(&self, fresh: bool) -> Result<String, UpstreamError> {
        if !fresh
            && let Ok(cache) = self.app_token.lock()
            && let Some((t, until)) = cache.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let rb = self
            .http
            .client()
            .get(format!("{}/cgi-bin/gettoken", self.api))
            .query(&[
                ("corpid", self.cfg.client_id.as_str()),
                ("corpsecret", self.cfg.client_secret.as_str()),
            ]);
        let answer = oauth2::exchange_enveloped(&self.http, TOKEN_ENDPOINT, rb, ENVELOPE).await?;
        let lifetime = answer
            .raw
            .get("expires_in")
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .unwrap_or_default()
            .saturating_sub(TOKEN_MARGIN);
        if let Ok(mut cache) = self.app_token.lock() {
            *cache = Some((answer.access_token.clone(), Instant::now() + lifetime));
        }
        Ok(answer.access_token)
    }

    /// `getuserinfo` with the cached app token, and once more with a new one when WeCom says
    /// the cached one is invalid or expired (rotated secret, token fetched elsewhere).
    async fn who(&self, code: &str) -> Result<(String, Value), UpstreamError> {
        let mut fresh = false;
        loop {
            let token = self.app_token(fresh).await?;
            let rb = self
                .http
                .client()
                .get(format!("{}/cgi-bin/auth/getuserinfo", self.api))
                .query(&[("access_token", token.as_str()), ("code", code)]);
            match oauth2::call_enveloped(&self.http, USERINFO_ENDPOINT, rb, ENVELOPE).await {
                Err(UpstreamError::OAuth { ref error, .. })
                    if !fresh && STALE_TOKEN.contains(&error.as_str()) =>
                {
                    fresh = true;
                }
                Err(e) => return Err(e),
                Ok(v) => return Ok((token, v)),
            }
        }
    }
}

/// WeCom's mobile numbers are Chinese numbers without a country code unless they carry one.
fn e164(mobile: &str) -> String {
    if mobile.starts_with('+') {
        mobile.to_string()
    } else {
        format!("+86{mobile}")
    }
}

/// The mapper's claims from the contact API's `user` and the ticket's `detail` (which wins:
/// it has what `user/get` no longer returns), for a member of `corpid`.
pub fn claims(
    corpid: &str,
    userid: &str,
    user: &Value,
    detail: &Value,
) -> Result<(String, Value), UpstreamError> {
    if userid.is_empty() {
        return Err(UpstreamError::Missing {
            endpoint: USERINFO_ENDPOINT.into(),
            what: "the member's `userid`".into(),
        });
    }
    let field = |k: &str| text(detail, k).or_else(|| text(user, k));
    let subject = format!("{corpid}:{userid}");
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "name", field("name"));
    put_text(&mut c, "preferred_username", Some(userid));
    // `email` is the address the admin or the member set; `biz_mail` the corp mailbox.
    put_text(
        &mut c,
        "email",
        field("email").or_else(|| field("biz_mail")),
    );
    put_text(&mut c, "picture", field("avatar"));
    put_text(&mut c, "phone_number", field("mobile").map(e164).as_deref());
    // WeCom: "1" male, "2" female, "0" not set.
    let gender = match detail
        .get("gender")
        .or_else(|| user.get("gender"))
        .and_then(subject_string)
        .as_deref()
    {
        Some("1") => Some("male"),
        Some("2") => Some("female"),
        _ => None,
    };
    put_text(&mut c, "gender", gender);
    let mut raw = user.as_object().cloned().unwrap_or_default();
    for (k, v) in detail.as_object().into_iter().flatten() {
        raw.insert(k.clone(), v.clone());
    }
    raw.remove("errcode");
    raw.remove("errmsg");
    raw.insert("userid".into(), userid.into());
    raw.insert("corpid".into(), corpid.into());
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Wecom {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// WeCom has no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let Some(scope) = self.scope else {
            return oauth2::authorization_url(
                &self.auth_url,
                [
                    ("login_type", "CorpApp"),
                    ("appid", self.cfg.client_id.as_str()),
                    ("agentid", self.cfg.wecom_agent_id.as_str()),
                    ("redirect_uri", req.redirect_uri),
                    ("state", req.state),
                ],
            );
        };
        let mut url = oauth2::authorization_url(
            &self.auth_url,
            [
                ("appid", self.cfg.client_id.as_str()),
                ("redirect_uri", req.redirect_uri),
                ("response_type", "code"),
                ("scope", scope),
                ("state", req.state),
                ("agentid", self.cfg.wecom_agent_id.as_str()),
            ],
        )?;
        // As WeChat's, WeCom's in-app authorization URL ends in this fragment.
        url.set_fragment(Some("wechat_redirect"));
        Ok(url)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        _req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        let (token, who) = self.who(code).await?;
        let Some(userid) = text(&who, "userid") else {
            // A non-member (a WeChat user outside the corp) has only an `openid`.
            return Err(UpstreamError::Missing {
                endpoint: USERINFO_ENDPOINT.into(),
                what: "a member of the enterprise (WeCom identified someone outside it)".into(),
            });
        };
        let rb = self
            .http
            .client()
            .get(format!("{}/cgi-bin/user/get", self.api))
            .query(&[("access_token", token.as_str()), ("userid", userid)]);
        let user = oauth2::call_enveloped(&self.http, USER_ENDPOINT, rb, ENVELOPE).await?;
        if text(&user, "userid").is_some_and(|u| u != userid) {
            return Err(UpstreamError::Missing {
                endpoint: USER_ENDPOINT.into(),
                what: format!("the member who signed in (userid {userid})"),
            });
        }
        let detail = match text(&who, "user_ticket") {
            Some(ticket) => {
                let rb = self
                    .http
                    .client()
                    .post(format!("{}/cgi-bin/auth/getuserdetail", self.api))
                    .query(&[("access_token", token.as_str())])
                    .json(&json!({ "user_ticket": ticket }));
                let d = oauth2::call_enveloped(&self.http, DETAIL_ENDPOINT, rb, ENVELOPE).await?;
                required_text(&d, "userid", DETAIL_ENDPOINT).and_then(|u| {
                    if u == userid {
                        Ok(())
                    } else {
                        Err(UpstreamError::Missing {
                            endpoint: DETAIL_ENDPOINT.into(),
                            what: format!("the member who signed in (userid {userid})"),
                        })
                    }
                })?;
                d
            }
            None => Value::Null,
        };
        let (subject, claims) = claims(&self.cfg.client_id, userid, &user, &detail)?;
        // The app token is the corp's, not the person's: nothing to keep.
        Ok(Profile {
            subject,
            claims,
            tokens: Tokens::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_and_ticket_become_claims_scoped_by_corp() {
        let user = json!({"errcode": 0, "errmsg": "ok", "userid": "zhangsan", "name": "张三",
            "department": [1, 2], "position": "工程师", "status": 1});
        let detail = json!({"errcode": 0, "errmsg": "ok", "userid": "zhangsan", "gender": "1",
            "avatar": "https://wework.qpic.cn/x/0", "mobile": "13800000000",
            "email": "", "biz_mail": "zhangsan@corp.example"});
        let (sub, c) = claims("ww1", "zhangsan", &user, &detail).unwrap();
        assert_eq!(sub, "ww1:zhangsan");
        assert_eq!(c["name"], "张三");
        assert_eq!(
            c["email"], "zhangsan@corp.example",
            "biz_mail when no email"
        );
        assert!(
            c.get("email_verified").is_none(),
            "admin-managed, not verified"
        );
        assert_eq!(c["phone_number"], "+8613800000000");
        assert_eq!(c["gender"], "male");
        assert_eq!(c["picture"], "https://wework.qpic.cn/x/0");
        assert_eq!(c["raw_claims"]["corpid"], "ww1");
        assert_eq!(c["raw_claims"]["position"], "工程师");
        assert!(c["raw_claims"].get("errcode").is_none());
    }

    #[test]
    fn without_a_ticket_only_the_contact_data_and_no_empty_userid() {
        let user = json!({"userid": "li", "name": "李四", "email": "li@corp.example",
            "mobile": "+85291234567"});
        let (sub, c) = claims("ww2", "li", &user, &Value::Null).unwrap();
        assert_eq!(sub, "ww2:li");
        assert_eq!(c["email"], "li@corp.example");
        assert_eq!(c["phone_number"], "+85291234567");
        assert!(c.get("gender").is_none() && c.get("picture").is_none());
        assert!(claims("ww2", "", &user, &Value::Null).is_err());
    }

    #[test]
    fn agent_id_secret_and_scope_are_checked_at_start() {
        let cfg = |agent: &str, secret: &str, scope: Value| -> ProviderConfig {
            serde_json::from_value(json!({"id": "wecom", "provider": "wecom",
                "client_id": "ww1", "client_secret": secret, "wecom_agent_id": agent,
                "scope": scope}))
            .unwrap()
        };
        let http = || Upstream::new().unwrap();
        assert!(Wecom::make(cfg("1000002", "s", json!([])), http()).is_ok());
        assert!(Wecom::make(cfg("1000002", "s", json!(["snsapi_privateinfo"])), http()).is_ok());
        let key = |r: Result<Arc<dyn Provider>, (String, String)>| r.err().map(|e| e.0);
        assert_eq!(
            key(Wecom::make(cfg("", "s", json!([])), http())).as_deref(),
            Some("wecom_agent_id")
        );
        assert_eq!(
            key(Wecom::make(cfg("1", "", json!([])), http())).as_deref(),
            Some("client_secret")
        );
        assert_eq!(
            key(Wecom::make(cfg("1", "s", json!(["snsapi_login"])), http())).as_deref(),
            Some("scope")
        );
    }
}
