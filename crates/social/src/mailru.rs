//! `mailru`: Mail.ru sign-in (VK's "Mail ID", `oauth.mail.ru`).
//!
//! Plain OAuth 2.0 with a proprietary profile call: the code is exchanged at
//! `oauth.mail.ru/token` (form, client credentials as HTTP Basic), and the person is read from
//! `oauth.mail.ru/userinfo` with the token **in the query** (`access_token=`). Errors are
//! `{error, error_code, error_description}`; the answer names the app the token belongs to
//! (`client_id`), which must be ours. The subject is the numeric `id` (goth's choice; the email
//! can change); the email is the person's Mail.ru mailbox, without a verified flag.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const ORIGIN: &str = "https://oauth.mail.ru";
const ENDPOINT: &str = "Mail.ru userinfo";

pub struct Mailru {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    userinfo_url: String,
}

impl Mailru {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(&cfg, ": the app's Secret (Секрет) at o2.mail.ru/app")?;
        Ok(Arc::new(Mailru {
            auth_url: endpoint(&cfg.auth_url, &cfg.api_base_url, ORIGIN, "/login"),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, ORIGIN, "/token"),
            userinfo_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, ORIGIN, "/userinfo"),
            cfg,
            http,
        }))
    }
}

/// `userinfo`'s answer as the mapper's claims. `gender` is `m`/`f`; `birthday` is `DD.MM.YYYY`
/// as Mail.ru writes it.
pub fn claims(user: &Value, issuer: &str) -> Result<(String, Value), UpstreamError> {
    let subject =
        user.get("id")
            .and_then(subject_string)
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: ENDPOINT.into(),
                what: "the user's `id`".into(),
            })?;
    let mut c = Map::new();
    c.insert("iss".into(), issuer.into());
    c.insert("sub".into(), subject.clone().into());
    for (claim, key) in [
        ("email", "email"),
        ("name", "name"),
        ("given_name", "first_name"),
        ("family_name", "last_name"),
        ("nickname", "nickname"),
        ("picture", "image"),
        ("birthdate", "birthday"),
        ("locale", "locale"),
    ] {
        put_text(&mut c, claim, text(user, key));
    }
    let gender = match text(user, "gender") {
        Some("m") => Some("male"),
        Some("f") => Some("female"),
        _ => None,
    };
    put_text(&mut c, "gender", gender);
    let raw = user.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Mailru {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// Mail.ru documents no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or("userinfo", " ");
        oauth2::authorization_url(
            &self.auth_url,
            [
                ("client_id", self.cfg.client_id.as_str()),
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
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "the upstream sent no authorization code")?;
        let rb = self
            .http
            .client()
            .post(&self.token_url)
            .basic_auth(&self.cfg.client_id, Some(&self.cfg.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", req.redirect_uri),
            ]);
        let token = oauth2::exchange_code(
            &self.http,
            "Mail.ru token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let rb = self
            .http
            .client()
            .get(&self.userinfo_url)
            .query(&[("access_token", token.access_token.as_str())]);
        let user = oauth2::call(&self.http, ENDPOINT, rb, oauth_or_status).await?;
        oauth2::issued_to(&user, &self.cfg.client_id, ENDPOINT)?;
        let (subject, claims) = claims(&user, &self.userinfo_url)?;
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
    fn userinfo_becomes_claims() {
        let user = json!({"id": "1234567890123456789", "client_id": "c", "email": "olga@mail.ru",
            "name": "Ольга Иванова", "first_name": "Ольга", "last_name": "Иванова",
            "nickname": "olga", "gender": "f", "birthday": "01.02.1991", "locale": "ru_RU",
            "image": "https://filin.mail.ru/pic?email=olga@mail.ru"});
        let (sub, c) = claims(&user, "https://oauth.mail.ru/userinfo").unwrap();
        assert_eq!(sub, "1234567890123456789");
        assert_eq!(c["email"], "olga@mail.ru");
        assert!(c.get("email_verified").is_none());
        assert_eq!(c["given_name"], "Ольга");
        assert_eq!(c["gender"], "female");
        assert_eq!(c["birthdate"], "01.02.1991");
        assert_eq!(c["picture"], "https://filin.mail.ru/pic?email=olga@mail.ru");
        assert_eq!(c["raw_claims"]["client_id"], "c");
        assert!(
            claims(&json!({"email": "x@mail.ru"}), "x").is_err(),
            "no id"
        );
    }
}
