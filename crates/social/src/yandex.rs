//! `yandex`: Yandex ID (`oauth.yandex.ru` + `login.yandex.ru/info`), the type Kratos calls
//! `yandex`, so a Kratos configuration naming it starts unchanged.
//!
//! Yandex is plain OAuth 2.0 with a proprietary profile call: the token endpoint speaks RFC 6749
//! (`{error, error_description}` with HTTP 400) and takes PKCE, and the user comes from
//! `login.yandex.ru/info`, which wants the token under the **`OAuth`** authorization scheme
//! (not `Bearer`). Its answer has no email-verified flag (`default_email` is the account's own
//! mailbox or an address the user added; Yandex does not say which), the avatar is an id
//! (`default_avatar_id`) to be turned into a URL unless `is_avatar_empty`, and it names the
//! app the token was issued to (`client_id`), which must be ours. The claims are Kratos's.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::{Pkce, ProviderConfig};
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://oauth.yandex.ru/authorize";
const TOKEN_URL: &str = "https://oauth.yandex.ru/token";
const API_ORIGIN: &str = "https://login.yandex.ru";
const INFO_PATH: &str = "/info";
/// The issuer Kratos gives Yandex's claims.
pub const ISSUER: &str = "https://login.yandex.ru/info";
/// Where Yandex serves avatars by id; `islands-200` is the 200×200 size.
const AVATAR_URL: &str = "https://avatars.yandex.net/get-yapic";
const ENDPOINT: &str = "Yandex login.yandex.ru/info";

pub struct Yandex {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    info_url: String,
}

impl Yandex {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the app's \"Client secret\" (Client secret / Пароль приложения) at oauth.yandex.ru",
        )?;
        Ok(Arc::new(Yandex {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, "", TOKEN_URL, ""),
            info_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, API_ORIGIN, INFO_PATH),
            cfg,
            http,
        }))
    }
}

/// `login.yandex.ru/info`'s answer as the mapper's claims (Kratos's set: `given_name`,
/// `family_name`, `email` ← `default_email`, `phone_number` ← `default_phone.number`,
/// `gender` ← `sex`, `birthdate` ← `birthday`, `picture` from the avatar id; plus `name` and
/// `preferred_username` ← `login`). No `email_verified`: Yandex does not say.
pub fn claims(info: &Value) -> Result<(String, Value), UpstreamError> {
    let subject =
        info.get("id")
            .and_then(subject_string)
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: ENDPOINT.into(),
                what: "the user's `id`".into(),
            })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    for (claim, key) in [
        ("given_name", "first_name"),
        ("family_name", "last_name"),
        ("name", "real_name"),
        ("preferred_username", "login"),
        ("email", "default_email"),
        ("gender", "sex"),
        ("birthdate", "birthday"),
    ] {
        put_text(&mut c, claim, text(info, key));
    }
    if info.get("is_avatar_empty").and_then(Value::as_bool) != Some(true)
        && let Some(id) = text(info, "default_avatar_id")
    {
        c.insert(
            "picture".into(),
            format!("{AVATAR_URL}/{id}/islands-200").into(),
        );
    }
    put_text(
        &mut c,
        "phone_number",
        info.get("default_phone").and_then(|p| text(p, "number")),
    );
    let raw = info.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Yandex {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// Yandex accepts PKCE S256; it is sent unless the entry says `pkce: never`.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(self.cfg.pkce != Pkce::Never)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope.join(" ");
        let challenge = pkce_challenge(req.code_verifier);
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("state", req.state),
        ];
        // Without `scope`, Yandex grants the rights chosen in the app's settings.
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
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        if self.uses_pkce().await? {
            form.push(("code_verifier", req.code_verifier));
        }
        // HTTP Basic, which Yandex documents first; the ids are hex, so no encoding issue.
        let rb = self
            .http
            .client()
            .post(&self.token_url)
            .basic_auth(&self.cfg.client_id, Some(&self.cfg.client_secret))
            .form(&form);
        let token = oauth2::exchange_code(
            &self.http,
            "Yandex token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        // The `OAuth` scheme keeps the token out of the URL (Kratos's `?oauth_token=` puts it
        // in every proxy log).
        let rb = self
            .http
            .client()
            .get(&self.info_url)
            .query(&[("format", "json")])
            .header(
                reqwest::header::AUTHORIZATION,
                format!("OAuth {}", token.access_token),
            );
        let info = oauth2::call(&self.http, ENDPOINT, rb, oauth_or_status).await?;
        oauth2::issued_to(&info, &self.cfg.client_id, ENDPOINT)?;
        let (subject, claims) = claims(&info)?;
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
    fn info_becomes_kratos_claims() {
        let info = json!({"id": "1000034426", "login": "ivan.petrov", "client_id": "c",
            "first_name": "Иван", "last_name": "Петров", "real_name": "Иван Петров",
            "default_email": "ivan.petrov@yandex.ru", "emails": ["ivan.petrov@yandex.ru"],
            "default_avatar_id": "131652443", "is_avatar_empty": false, "sex": "male",
            "birthday": "1990-04-12", "default_phone": {"id": 1, "number": "+79990000001"},
            "psuid": "1.AAc"});
        let (sub, c) = claims(&info).unwrap();
        assert_eq!(sub, "1000034426");
        assert_eq!(c["iss"], ISSUER);
        assert_eq!(c["given_name"], "Иван");
        assert_eq!(c["last_name"], "Петров");
        assert_eq!(c["name"], "Иван Петров");
        assert_eq!(c["preferred_username"], "ivan.petrov");
        assert_eq!(c["email"], "ivan.petrov@yandex.ru");
        assert!(c.get("email_verified").is_none(), "Yandex does not say");
        assert_eq!(
            c["picture"],
            "https://avatars.yandex.net/get-yapic/131652443/islands-200"
        );
        assert_eq!(c["phone_number"], "+79990000001");
        assert_eq!(c["gender"], "male");
        assert_eq!(c["birthdate"], "1990-04-12");
        assert_eq!(c["raw_claims"]["psuid"], "1.AAc");
        assert_eq!(c["raw_claims"]["client_id"], "c");
    }

    #[test]
    fn an_empty_avatar_and_missing_fields_stay_absent() {
        let info = json!({"id": 7, "login": "m", "default_avatar_id": "0/0-0",
            "is_avatar_empty": true});
        let (sub, c) = claims(&info).unwrap();
        assert_eq!(sub, "7");
        assert!(c.get("picture").is_none(), "{c}");
        assert!(c.get("email").is_none() && c.get("phone_number").is_none());
        assert!(claims(&json!({"login": "x"})).is_err(), "no id");
        assert!(claims(&json!({"id": ""})).is_err(), "empty id");
    }
}
