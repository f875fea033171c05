//! `vk`: VK's legacy OAuth (`oauth.vk.com` + the `api.vk.com` method API).
//!
//! VK is not OpenID Connect: the token answer has no id_token, the **email arrives in the token
//! answer** (when the `email` scope was granted), and the profile comes from `users.get`, which
//! reports failures as `{"error": {"error_code", "error_msg"}}` with **HTTP 200**. Those quirks
//! are all this file knows; timeouts, size caps and OAuth error answers are the shared
//! [`Upstream`]'s.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
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
        oauth2::require_secret(
            &cfg,
            ": the app's \"Protected key\" (Защищённый ключ) from the VK app settings",
        )?;
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

/// The mapper's claims from a VK profile (`users.get`'s user, VK ID's `user_info` user): the
/// subject under `subject_key`, `fields` as `(claim, key in the profile)`, `sex` as `gender`,
/// then `extra` claims from elsewhere. VK says nothing about an email's verification, so
/// `email_verified` stays absent; the whole profile is in `raw_claims`.
pub(crate) fn profile_claims(
    user: &Value,
    issuer: &str,
    (endpoint, subject_key): (&str, &str),
    fields: &[(&str, &str)],
    extra: &[(&str, Option<&str>)],
) -> Result<(String, Value), UpstreamError> {
    let subject = user
        .get(subject_key)
        .and_then(subject_string)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: endpoint.into(),
            what: format!("the user's `{subject_key}`"),
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), issuer.into());
    c.insert("sub".into(), subject.clone().into());
    for (claim, key) in fields {
        put_text(&mut c, claim, text(user, key));
    }
    put_text(&mut c, "gender", gender(user.get("sex")));
    for (claim, value) in extra {
        put_text(&mut c, claim, *value);
    }
    let raw = user.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

/// Turns VK's token answer and `users.get` profile into the mapper's claims. The email comes
/// from the token answer: `users.get` never has it.
pub fn claims(token: &Value, user: &Value, issuer: &str) -> Result<(String, Value), UpstreamError> {
    profile_claims(
        user,
        issuer,
        ("VK users.get", "id"),
        &[
            ("given_name", "first_name"),
            ("family_name", "last_name"),
            ("picture", "photo_200"),
            ("nickname", "screen_name"),
            // VK's `bdate` as given: `D.M.YYYY`, or `D.M` when the user hides the year.
            ("birthdate", "bdate"),
        ],
        &[("email", text(token, "email"))],
    )
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
        // VK takes a comma-separated scope list (or a bit mask).
        let scope = self.cfg.scope.join(",");
        oauth2::authorization_url(
            &endpoint(&self.cfg.auth_url, "", AUTH_URL, ""),
            [
                ("client_id", self.cfg.client_id.as_str()),
                ("redirect_uri", req.redirect_uri),
                ("response_type", "code"),
                ("scope", &scope),
                ("state", req.state),
                ("v", API_VERSION),
            ],
        )
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        // VK takes the client credentials as parameters, not HTTP Basic. POST keeps the secret
        // and the code out of URLs that proxies log.
        let form = [
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("code", code),
        ];
        let token_url = endpoint(&self.cfg.token_url, "", TOKEN_URL, "");
        let token = oauth2::exchange_code(
            &self.http,
            "VK token endpoint",
            self.http.client().post(token_url).form(&form),
            oauth_or_status,
            "access_token",
        )
        .await?;
        let users_get = self.users_get_url();
        let rb = self.http.client().post(&users_get).form(&[
            ("fields", FIELDS),
            ("access_token", token.access_token.as_str()),
            ("v", API_VERSION),
        ]);
        let answer = oauth2::call(&self.http, "VK users.get", rb, oauth_or_status).await?;
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
        let (subject, claims) = claims(&token.raw, user, &users_get)?;
        token.same_user(&subject, "VK users.get")?;
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
}
