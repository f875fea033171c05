//! `vk`: VK's legacy OAuth (`oauth.vk.com` + the `api.vk.com` method API).
//!
//! VK is not OpenID Connect: the token answer has no id_token, the **email arrives in the token
//! answer** (when the `email` scope was granted), and the profile comes from `users.get`, which
//! reports failures as `{"error": {"error_code", "error_msg"}}` with **HTTP 200**. Those quirks
//! are all this file knows; timeouts, size caps and OAuth error answers are the shared
//! [`Upstream`]'s.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::provider::{AuthRequest, Callback, Profile, Provider, Tokens};
use crate::upstream::{Upstream, UpstreamError, oauth_error, required_text, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://oauth.vk.com/authorize";
const TOKEN_URL: &str = "https://oauth.vk.com/access_token";
const API_ORIGIN: &str = "https://api.vk.com";
const USERS_GET_PATH: &str = "/method/users.get";
/// The API version Tessera speaks; VK refuses method calls without one.
pub const API_VERSION: &str = "5.131";
/// The profile fields `users.get` returns only when asked for.
const FIELDS: &str = "photo_200,sex,bdate,screen_name";

/// An endpoint: the configured full URL, else the documented path below `api_base_url` (which
/// replaces the provider's origin, for private deployments and tests), else the default.
pub(crate) fn endpoint(full: &str, api_base_url: &str, default_origin: &str, path: &str) -> String {
    if !full.is_empty() {
        full.to_string()
    } else if !api_base_url.is_empty() {
        format!("{}{path}", api_base_url.trim_end_matches('/'))
    } else {
        format!("{default_origin}{path}")
    }
}

/// `sex` in VK's APIs: 1 female, 2 male, 0 (or anything else) not given.
pub(crate) fn gender(sex: Option<&Value>) -> Option<&'static str> {
    match sex.and_then(Value::as_i64) {
        Some(1) => Some("female"),
        Some(2) => Some("male"),
        _ => None,
    }
}

pub struct Vk {
    cfg: ProviderConfig,
    http: Upstream,
}

impl Vk {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        if cfg.client_secret.trim().is_empty() {
            return Err((
                "client_secret".into(),
                "client_secret is required for `vk` providers: the app's \"Protected key\" (Защищённый ключ) from the VK app settings".into(),
            ));
        }
        Ok(Arc::new(Vk { cfg, http }))
    }

    fn users_get_url(&self) -> String {
        endpoint(
            &self.cfg.userinfo_url,
            &self.cfg.api_base_url,
            API_ORIGIN,
            USERS_GET_PATH,
        )
    }
}

/// Turns VK's token answer and `users.get` profile into the mapper's claims. The email comes
/// from the token answer: `users.get` never has it. VK does not say whether it is verified, so
/// `email_verified` stays absent.
pub fn claims(token: &Value, user: &Value, issuer: &str) -> Result<(String, Value), UpstreamError> {
    let subject =
        user.get("id")
            .and_then(subject_string)
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: "VK users.get".into(),
                what: "the user's `id`".into(),
            })?;
    let s = |k: &str| text(user, k);
    let mut c = Map::new();
    c.insert("iss".into(), issuer.into());
    c.insert("sub".into(), subject.clone().into());
    let mut put = |k: &str, v: Option<&str>| put_text(&mut c, k, v);
    put("given_name", s("first_name"));
    put("family_name", s("last_name"));
    put("picture", s("photo_200"));
    put("nickname", s("screen_name"));
    // VK's `bdate` as given: `D.M.YYYY`, or `D.M` when the user hides the year.
    put("birthdate", s("bdate"));
    put("gender", gender(user.get("sex")));
    put("email", text(token, "email"));
    let raw = user.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

/// `users.get` reports errors with HTTP 200; they become an [`UpstreamError::OAuth`] whose
/// message carries VK's own `error_msg` (e.g. "User authorization failed: …").
fn api_error(v: &Value) -> Option<UpstreamError> {
    let e = v.get("error")?;
    let code = e
        .get("error_code")
        .map(|c| c.to_string())
        .unwrap_or_else(|| "?".into());
    let msg = e
        .get("error_msg")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_end_matches('.');
    Some(UpstreamError::OAuth {
        endpoint: "VK users.get".into(),
        error: format!("VK API error {code}"),
        description: msg.chars().take(300).collect(),
    })
}

#[async_trait::async_trait]
impl Provider for Vk {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// VK's legacy OAuth has no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let auth = if self.cfg.auth_url.is_empty() {
            AUTH_URL
        } else {
            &self.cfg.auth_url
        };
        let mut url = Url::parse(auth).map_err(|e| UpstreamError::Missing {
            endpoint: "configuration".into(),
            what: format!("a valid auth_url ({e})"),
        })?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", req.redirect_uri)
            .append_pair("response_type", "code")
            // VK takes a comma-separated list (or a bit mask).
            .append_pair("scope", &self.cfg.scope.join(","))
            .append_pair("state", req.state)
            .append_pair("v", API_VERSION);
        Ok(url)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = self.code(cb).ok_or_else(|| {
            UpstreamError::Callback("the upstream sent no authorization code".into())
        })?;
        let token_url = if self.cfg.token_url.is_empty() {
            TOKEN_URL
        } else {
            &self.cfg.token_url
        };
        // VK takes the client credentials as parameters, not HTTP Basic. POST keeps the secret
        // and the code out of URLs that proxies log.
        let form = [
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("code", code),
        ];
        let rb = self.http.client().post(token_url).form(&form);
        let token = self.http.json("VK token endpoint", rb).await?;
        if let Some(e) = oauth_error("VK token endpoint", &token) {
            return Err(e);
        }
        let access = required_text(&token, "access_token", "VK token endpoint")?;
        let users_get = self.users_get_url();
        let rb = self.http.client().post(&users_get).form(&[
            ("fields", FIELDS),
            ("access_token", access),
            ("v", API_VERSION),
        ]);
        let answer = self.http.json("VK users.get", rb).await?;
        if let Some(e) = api_error(&answer) {
            return Err(e);
        }
        let user = answer
            .get("response")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .filter(|u| u.is_object())
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: "VK users.get".into(),
                what: "a `response` with the signed-in user".into(),
            })?;
        let (subject, claims) = claims(&token, user, &users_get)?;
        // The profile must be the user the code was issued for.
        if let Some(uid) = token.get("user_id").and_then(subject_string)
            && uid != subject
        {
            return Err(UpstreamError::Missing {
                endpoint: "VK users.get".into(),
                what: format!("the user of the token (user_id {uid}, profile id {subject})"),
            });
        }
        Ok(Profile {
            subject,
            claims,
            tokens: Tokens {
                access_token: Some(access.to_string()),
                refresh_token: None,
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
    fn profile_and_token_answer_become_claims() {
        let token = json!({"access_token": "t", "expires_in": 86400, "user_id": 100001, "email": "ivan@example.ru"});
        let user = json!({"id": 100001, "first_name": "Иван", "last_name": "Петров",
            "photo_200": "https://pp.userapi.com/a.jpg", "sex": 2, "bdate": "12.4.1990",
            "screen_name": "ivan_petrov", "can_access_closed": true});
        let (sub, c) = claims(&token, &user, "https://api.vk.com/method/users.get").unwrap();
        assert_eq!(sub, "100001", "numeric id as a plain string");
        assert_eq!(c["sub"], "100001");
        assert_eq!(c["given_name"], "Иван");
        assert_eq!(c["family_name"], "Петров");
        assert_eq!(c["last_name"], "Петров");
        assert_eq!(c["picture"], "https://pp.userapi.com/a.jpg");
        assert_eq!(c["gender"], "male");
        assert_eq!(c["birthdate"], "12.4.1990");
        assert_eq!(c["nickname"], "ivan_petrov");
        assert_eq!(c["email"], "ivan@example.ru", "email from the token answer");
        assert!(
            c.get("email_verified").is_none(),
            "VK does not vouch for it"
        );
        assert_eq!(c["raw_claims"]["can_access_closed"], true);
    }

    #[test]
    fn gender_codes_and_missing_email() {
        let token = json!({"access_token": "t", "user_id": 7});
        let female = json!({"id": 7, "first_name": "Мария", "last_name": "С", "sex": 1});
        let (_, c) = claims(&token, &female, "x").unwrap();
        assert_eq!(c["gender"], "female");
        assert!(c.get("email").is_none(), "absent, not null");
        let unknown = json!({"id": 7, "first_name": "A", "last_name": "B", "sex": 0});
        let (_, c) = claims(&token, &unknown, "x").unwrap();
        assert!(c.get("gender").is_none());
        assert!(claims(&token, &json!({"first_name": "A"}), "x").is_err());
    }

    #[test]
    fn http_200_api_errors_are_errors() {
        let e = api_error(&json!({"error": {"error_code": 5,
            "error_msg": "User authorization failed: invalid access_token (4)."}}))
        .unwrap();
        let msg = e.user_message("VK");
        assert!(
            msg.contains("User authorization failed: invalid access_token (4)"),
            "{msg}"
        );
        assert!(msg.contains("VK API error 5"), "{msg}");
        assert!(api_error(&json!({"response": []})).is_none());
    }

    #[test]
    fn endpoints_follow_overrides() {
        assert_eq!(
            endpoint("", "", API_ORIGIN, USERS_GET_PATH),
            "https://api.vk.com/method/users.get"
        );
        assert_eq!(
            endpoint("", "http://127.0.0.1:9/", API_ORIGIN, USERS_GET_PATH),
            "http://127.0.0.1:9/method/users.get"
        );
        assert_eq!(
            endpoint(
                "http://x/u",
                "http://127.0.0.1:9",
                API_ORIGIN,
                USERS_GET_PATH
            ),
            "http://x/u"
        );
    }
}
