//! `feishu` and `lark`: Feishu (飞书, feishu.cn) and Lark (larksuite.com) sign-in, through the
//! current authorization flow of the Feishu/Lark Open Platform. `lark` is the name Kratos uses
//! (for feishu.cn only); here both types reach both regions: the authorization host follows the
//! API host, so `api_base_url: https://open.larksuite.com` is all a Lark app needs.
//!
//! The dialect: the authorization page is `accounts.<region>/open-apis/authen/v1/authorize`
//! (PKCE S256), the code is exchanged at `open.<region>/open-apis/authen/v2/oauth/token` with a
//! **JSON** body (not a form), and answers carry Feishu's numeric `code` beside the OAuth fields
//! (`{code: 20003, error: "invalid_grant", error_description: …}` with HTTP 400; `code: 0` on
//! success). The person comes from `authen/v1/user_info` inside a `{code, msg, data}` envelope.
//! The subject is the per-app `open_id`, as in Kratos (`subject_source: union_id` for the
//! developer-wide `union_id`); the tenant (`tenant_key`) is in `raw_claims` for organization
//! rules. Feishu's emails and phone numbers are set by the tenant's administrators and not
//! verified by the person, so `email_verified` is never set.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::{Pkce, ProviderConfig};
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, text};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use url::Url;

const FEISHU_API: &str = "https://open.feishu.cn";
const FEISHU_ACCOUNTS: &str = "https://accounts.feishu.cn";
const LARK_API_HOST: &str = "open.larksuite.com";
const LARK_ACCOUNTS: &str = "https://accounts.larksuite.com";
const AUTHORIZE_PATH: &str = "/open-apis/authen/v1/authorize";
const TOKEN_PATH: &str = "/open-apis/authen/v2/oauth/token";
const USER_INFO_PATH: &str = "/open-apis/authen/v1/user_info";
const TOKEN_ENDPOINT: &str = "Feishu authen/v2/oauth/token";
const USER_INFO_ENDPOINT: &str = "Feishu authen/v1/user_info";

pub struct Feishu {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    user_info_url: String,
    union_id: bool,
}

impl Feishu {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        let union_id = oauth2::union_id_subject(&cfg, "Feishu")?;
        oauth2::require_secret(
            &cfg,
            ": the App Secret (开发者后台 → 凭证与基础信息 / Developer Console → Credentials & Basic Info)",
        )?;
        Ok(Arc::new(Feishu {
            auth_url: endpoint(
                &cfg.auth_url,
                "",
                accounts_origin(&cfg.api_base_url),
                AUTHORIZE_PATH,
            ),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, FEISHU_API, TOKEN_PATH),
            user_info_url: endpoint(
                &cfg.userinfo_url,
                &cfg.api_base_url,
                FEISHU_API,
                USER_INFO_PATH,
            ),
            union_id,
            cfg,
            http,
        }))
    }
}

/// Where the authorization page is: Lark's (`accounts.larksuite.com`) when the API is Lark's
/// (`api_base_url: https://open.larksuite.com`), else Feishu's.
pub fn accounts_origin(api_base_url: &str) -> &'static str {
    let lark = Url::parse(api_base_url)
        .ok()
        .is_some_and(|u| u.host_str() == Some(LARK_API_HOST));
    if lark { LARK_ACCOUNTS } else { FEISHU_ACCOUNTS }
}

/// The mapper's claims from `user_info`'s `data` (Kratos's `lark` set: `name`, `nickname` ←
/// `name`, `picture` ← `avatar_url`, `email`, `phone_number` ← `mobile`), and the subject.
pub fn claims(data: &Value, union_id: bool) -> Result<(String, Value), UpstreamError> {
    let key = if union_id { "union_id" } else { "open_id" };
    let subject = data
        .get(key)
        .and_then(subject_string)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: USER_INFO_ENDPOINT.into(),
            what: format!("the user's `{key}`"),
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), format!("{FEISHU_API}{USER_INFO_PATH}").into());
    c.insert("sub".into(), subject.clone().into());
    for (claim, k) in [
        ("name", "name"),
        ("nickname", "name"),
        ("picture", "avatar_url"),
        ("email", "email"),
        ("phone_number", "mobile"),
    ] {
        put_text(&mut c, claim, text(data, k));
    }
    let raw = data.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Feishu {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// Feishu takes PKCE S256; it is sent unless the entry says `pkce: never`.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(self.cfg.pkce != Pkce::Never)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope.join(" ");
        let challenge = pkce_challenge(req.code_verifier);
        let mut pairs = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("response_type", "code"),
            ("state", req.state),
        ];
        if !scope.is_empty() {
            pairs.push(("scope", &scope));
        }
        if self.uses_pkce().await? {
            pairs.push(("code_challenge", &challenge));
            pairs.push(("code_challenge_method", "S256"));
        }
        oauth2::authorization_url(&self.auth_url, pairs)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        let mut body = json!({
            "grant_type": "authorization_code",
            "client_id": self.cfg.client_id,
            "client_secret": self.cfg.client_secret,
            "code": code,
            "redirect_uri": req.redirect_uri,
        });
        if self.uses_pkce().await? {
            body["code_verifier"] = req.code_verifier.into();
        }
        let rb = self.http.client().post(&self.token_url).json(&body);
        let token = oauth2::exchange_enveloped(
            &self.http,
            TOKEN_ENDPOINT,
            rb,
            ("Feishu", "code", "error_description"),
        )
        .await?;
        let rb = self
            .http
            .client()
            .get(&self.user_info_url)
            .bearer_auth(&token.access_token);
        let answer = oauth2::call_enveloped(
            &self.http,
            USER_INFO_ENDPOINT,
            rb,
            ("Feishu", "code", "msg"),
        )
        .await?;
        let data = answer
            .get("data")
            .filter(|d| d.is_object())
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: USER_INFO_ENDPOINT.into(),
                what: "a `data` object with the user".into(),
            })?;
        let (subject, claims) = claims(data, self.union_id)?;
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

    #[test]
    fn user_info_becomes_kratos_lark_claims() {
        let data = json!({"name": "张伟", "en_name": "Zhang Wei", "avatar_url": "https://a/x.png",
            "open_id": "ou_1", "union_id": "on_1", "email": "zhangwei@example.cn",
            "enterprise_email": "zw@corp.example", "user_id": "5d9bdxxx", "mobile": "+8613800000000",
            "tenant_key": "2ed263bf32cf1651", "employee_no": "A01"});
        let (sub, c) = claims(&data, false).unwrap();
        assert_eq!(sub, "ou_1");
        assert_eq!(c["name"], "张伟");
        assert_eq!(c["nickname"], "张伟");
        assert_eq!(c["picture"], "https://a/x.png");
        assert_eq!(c["email"], "zhangwei@example.cn");
        assert!(c.get("email_verified").is_none(), "set by administrators");
        assert_eq!(c["phone_number"], "+8613800000000");
        assert_eq!(c["raw_claims"]["tenant_key"], "2ed263bf32cf1651");
        assert_eq!(claims(&data, true).unwrap().0, "on_1");
        assert!(claims(&json!({"name": "x"}), false).is_err());
    }

    #[test]
    fn the_region_follows_the_api_host() {
        let make = |base: &str, source: &str| {
            let cfg: ProviderConfig = serde_json::from_value(json!({"id": "f",
                "provider": "feishu", "client_id": "cli_1", "client_secret": "s",
                "api_base_url": base, "subject_source": source}))
            .unwrap();
            Feishu::make(cfg, Upstream::new().unwrap())
        };
        assert!(make("", "").is_ok());
        assert_eq!(accounts_origin(""), "https://accounts.feishu.cn");
        assert_eq!(
            accounts_origin("https://open.larksuite.com"),
            "https://accounts.larksuite.com"
        );
        assert_eq!(
            accounts_origin("http://127.0.0.1:9"),
            "https://accounts.feishu.cn"
        );
        assert!(make("https://open.larksuite.com", "union_id").is_ok());
        let bad = make("", "user_id");
        assert_eq!(bad.err().map(|e| e.0).as_deref(), Some("subject_source"));
    }
}
