//! `vkid`: VK ID (`id.vk.com`), VK's current sign-in, an OAuth 2.1 server.
//!
//! Its quirks over plain OAuth 2.0: PKCE S256 is mandatory; the callback carries a `device_id`
//! that must be sent back with the code (VK binds the code to the device that signed in), as
//! must the `state`; the client authenticates by PKCE alone (no client secret in the
//! exchange); and the profile comes from `POST /oauth2/user_info` with the access token in the
//! form body. The id_token VK ID returns is kept (with `store_tokens`) but the claims come
//! from `user_info`, which has the fields a mapper needs.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::provider::{AuthRequest, Callback, Profile, Provider, Tokens, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, oauth_error, required_text, text};
use crate::vk::{endpoint, gender};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const ORIGIN: &str = "https://id.vk.com";
const AUTHORIZE_PATH: &str = "/authorize";
const TOKEN_PATH: &str = "/oauth2/auth";
const USER_INFO_PATH: &str = "/oauth2/user_info";

pub struct VkId {
    cfg: ProviderConfig,
    http: Upstream,
}

impl VkId {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        Ok(Arc::new(VkId { cfg, http }))
    }

    fn url(&self, full: &str, path: &str) -> String {
        endpoint(full, &self.cfg.api_base_url, ORIGIN, path)
    }

    /// Reads a JSON answer; VK ID may report `{error, error_description}` with any status.
    async fn call(
        &self,
        what: &str,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<Value, UpstreamError> {
        let v = self
            .http
            .json(what, self.http.client().post(url).form(form))
            .await?;
        match oauth_error(what, &v) {
            Some(e) => Err(e),
            None => Ok(v),
        }
    }
}

/// Turns `user_info`'s `user` object into the mapper's claims. VK ID's `verified` is about the
/// profile, not the email, so `email_verified` stays absent; it is in `raw_claims`.
pub fn claims(user: &Value, issuer: &str) -> Result<(String, Value), UpstreamError> {
    let subject = user
        .get("user_id")
        .and_then(subject_string)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: "VK ID user_info".into(),
            what: "the user's `user_id`".into(),
        })?;
    let s = |k: &str| text(user, k);
    let mut c = Map::new();
    c.insert("iss".into(), issuer.into());
    c.insert("sub".into(), subject.clone().into());
    let mut put = |k: &str, v: Option<&str>| put_text(&mut c, k, v);
    put("given_name", s("first_name"));
    put("family_name", s("last_name"));
    put("picture", s("avatar"));
    put("email", s("email"));
    // VK ID's `birthday` as given (`DD.MM.YYYY`).
    put("birthdate", s("birthday"));
    put("gender", gender(user.get("sex")));
    // VK ID sends the number without `+` (`79991234567`); OIDC's phone_number is E.164.
    let phone = s("phone").map(|p| {
        if p.starts_with('+') {
            p.to_string()
        } else {
            format!("+{p}")
        }
    });
    put("phone_number", phone.as_deref());
    let raw = user.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for VkId {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// VK ID refuses authorization requests without PKCE S256.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(true)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let auth = self.url(&self.cfg.auth_url, AUTHORIZE_PATH);
        let mut url = Url::parse(&auth).map_err(|e| UpstreamError::Missing {
            endpoint: "configuration".into(),
            what: format!("a valid authorization URL ({e})"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.cfg.client_id)
                .append_pair("redirect_uri", req.redirect_uri)
                .append_pair("state", req.state)
                .append_pair("code_challenge", &pkce_challenge(req.code_verifier))
                .append_pair("code_challenge_method", "S256");
            // Space-separated, e.g. `vkid.personal_info email phone`; VK ID's default without it
            // is `vkid.personal_info`.
            if !self.cfg.scope.is_empty() {
                q.append_pair("scope", &self.cfg.scope.join(" "));
            }
        }
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
        let device_id = cb.get("device_id").ok_or_else(|| {
            UpstreamError::Callback("VK ID sent no `device_id` with the code".into())
        })?;
        let token_url = self.url(&self.cfg.token_url, TOKEN_PATH);
        let token = self
            .call(
                "VK ID token endpoint",
                &token_url,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("code_verifier", req.code_verifier),
                    ("client_id", &self.cfg.client_id),
                    ("device_id", device_id),
                    ("redirect_uri", req.redirect_uri),
                    ("state", req.state),
                ],
            )
            .await?;
        let s = |k: &str| text(&token, k);
        let access = required_text(&token, "access_token", "VK ID token endpoint")?;
        let user_info_url = self.url(&self.cfg.userinfo_url, USER_INFO_PATH);
        let info = self
            .call(
                "VK ID user_info",
                &user_info_url,
                &[("client_id", &self.cfg.client_id), ("access_token", access)],
            )
            .await?;
        let user =
            info.get("user")
                .filter(|u| u.is_object())
                .ok_or_else(|| UpstreamError::Missing {
                    endpoint: "VK ID user_info".into(),
                    what: "a `user` object".into(),
                })?;
        let (subject, claims) = claims(user, &self.url("", ""))?;
        // The profile must be the user the code was issued for.
        if let Some(uid) = token.get("user_id").and_then(subject_string)
            && uid != subject
        {
            return Err(UpstreamError::Missing {
                endpoint: "VK ID user_info".into(),
                what: format!("the user of the token (user_id {uid}, profile {subject})"),
            });
        }
        Ok(Profile {
            subject,
            claims,
            tokens: Tokens {
                access_token: Some(access.to_string()),
                refresh_token: s("refresh_token").map(String::from),
                id_token: s("id_token").map(String::from),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_info_becomes_claims() {
        let user = json!({"user_id": "1234567890", "first_name": "Иван", "last_name": "Петров",
            "avatar": "https://id.vk.com/a.jpg", "email": "ivan@example.ru", "phone": "79991234567",
            "sex": 2, "birthday": "12.04.1990", "verified": true});
        let (sub, c) = claims(&user, "https://id.vk.com").unwrap();
        assert_eq!(sub, "1234567890");
        assert_eq!(c["given_name"], "Иван");
        assert_eq!(c["family_name"], "Петров");
        assert_eq!(c["picture"], "https://id.vk.com/a.jpg");
        assert_eq!(c["email"], "ivan@example.ru");
        assert!(c.get("email_verified").is_none());
        assert_eq!(c["phone_number"], "+79991234567");
        assert_eq!(c["gender"], "male");
        assert_eq!(c["birthdate"], "12.04.1990");
        assert_eq!(c["raw_claims"]["verified"], true);
    }

    #[test]
    fn numeric_ids_female_and_missing_fields() {
        let user =
            json!({"user_id": 42, "first_name": "Мария", "last_name": "С", "sex": 1, "email": ""});
        let (sub, c) = claims(&user, "x").unwrap();
        assert_eq!(sub, "42");
        assert_eq!(c["gender"], "female");
        assert!(c.get("email").is_none(), "an empty email is no email");
        assert!(c.get("phone_number").is_none());
        assert!(claims(&json!({"first_name": "A"}), "x").is_err());
    }
}
