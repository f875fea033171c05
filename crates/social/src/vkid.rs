//! `vkid`: VK ID (`id.vk.com`), VK's current sign-in, an OAuth 2.1 server.
//!
//! Its quirks over plain OAuth 2.0: PKCE S256 is mandatory; the callback carries a `device_id`
//! that must be sent back with the code (VK binds the code to the device that signed in), as
//! must the `state`; the client authenticates by PKCE alone (no client secret in the
//! exchange); and the profile comes from `POST /oauth2/user_info` with the access token in the
//! form body. The id_token VK ID returns is kept (with `store_tokens`) but the claims come
//! from `user_info`, which has the fields a mapper needs.

use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
use crate::vk::profile_claims;
use serde_json::Value;
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

    /// Posts a form; VK ID may report `{error, error_description}` with any status.
    fn post(&self, url: &str, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.http.client().post(url).form(form)
    }
}

/// Turns `user_info`'s `user` object into the mapper's claims. VK ID's `verified` is about the
/// profile, not the email, so `email_verified` stays absent; it is in `raw_claims`.
pub fn claims(user: &Value, issuer: &str) -> Result<(String, Value), UpstreamError> {
    // VK ID sends the number without `+` (`79991234567`); OIDC's phone_number is E.164.
    let phone = text(user, "phone").map(|p| {
        if p.starts_with('+') {
            p.to_string()
        } else {
            format!("+{p}")
        }
    });
    profile_claims(
        user,
        issuer,
        ("VK ID user_info", "user_id"),
        &[
            ("given_name", "first_name"),
            ("family_name", "last_name"),
            ("picture", "avatar"),
            ("email", "email"),
            // VK ID's `birthday` as given (`DD.MM.YYYY`).
            ("birthdate", "birthday"),
        ],
        &[("phone_number", phone.as_deref())],
    )
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
        let challenge = pkce_challenge(req.code_verifier);
        // Space-separated, e.g. `vkid.personal_info email phone`; VK ID's default without it
        // is `vkid.personal_info`.
        let scope = self.cfg.scope.join(" ");
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("state", req.state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        if !scope.is_empty() {
            pairs.push(("scope", &scope));
        }
        oauth2::authorization_url(&self.url(&self.cfg.auth_url, AUTHORIZE_PATH), pairs)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        let device_id = oauth2::from_callback(
            cb.get("device_id"),
            "VK ID sent no `device_id` with the code",
        )?;
        let token_url = self.url(&self.cfg.token_url, TOKEN_PATH);
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", req.code_verifier),
            ("client_id", &self.cfg.client_id),
            ("device_id", device_id),
            ("redirect_uri", req.redirect_uri),
            ("state", req.state),
        ];
        let token = oauth2::exchange_code(
            &self.http,
            "VK ID token endpoint",
            self.post(&token_url, &form),
            oauth_or_status,
            "access_token",
        )
        .await?;
        let user_info_url = self.url(&self.cfg.userinfo_url, USER_INFO_PATH);
        let form = [
            ("client_id", self.cfg.client_id.as_str()),
            ("access_token", &token.access_token),
        ];
        let info = oauth2::call(
            &self.http,
            "VK ID user_info",
            self.post(&user_info_url, &form),
            oauth_or_status,
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
        token.same_user(&subject, "VK ID user_info")?;
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
