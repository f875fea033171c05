//! `odnoklassniki`: OK.ru (Одноклассники) sign-in.
//!
//! OAuth 2.0 at `connect.ok.ru/oauth/authorize` (scopes **semicolon**-separated, `GET_EMAIL`
//! only once OK's support granted it) and `api.ok.ru/oauth/token.do` (the parameters in the
//! query string of a POST, as OK documents them). The person is read from OK's REST API,
//! `api.ok.ru/fb.do?method=users.getCurrentUser`, which wants every call **signed**: next to
//! the access token go the application's public key (`application_key`) and
//! `sig = md5(sorted "k=v" of every parameter but access_token and sig, joined without
//! separators + md5(access_token + secret key))`, in lowercase hex. API errors come with
//! HTTP 200 as `{error_code, error_msg, error_data}`. The subject is OK's `uid`; the email (with
//! `GET_EMAIL`) has no verified flag.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, oauth_or_status, text};
use md5::{Digest, Md5};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://connect.ok.ru/oauth/authorize";
const API_ORIGIN: &str = "https://api.ok.ru";
const ENVELOPE: (&str, &str, &str) = ("OK", "error_code", "error_msg");
const TOKEN_ENDPOINT: &str = "OK oauth/token.do";
const USER_ENDPOINT: &str = "OK users.getCurrentUser";
/// The issuer given to OK's claims.
pub const ISSUER: &str = "https://ok.ru";
/// What users.getCurrentUser is asked for (`email` needs `GET_EMAIL`).
const FIELDS: &str = "uid,name,first_name,last_name,gender,birthday,locale,pic_3,email";

pub struct Odnoklassniki {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    api_url: String,
}

impl Odnoklassniki {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        if cfg.odnoklassniki_application_key.trim().is_empty() {
            return Err((
                "odnoklassniki_application_key".into(),
                "odnoklassniki_application_key is required for `odnoklassniki` providers: the application's public key (Публичный ключ приложения) from OK's e-mail after registering the app, or the app's settings at ok.ru/app/<id>".into(),
            ));
        }
        if let Some(bad) = cfg.scope.iter().find(|s| s.contains([';', ',', ' '])) {
            return Err((
                "scope".into(),
                format!(
                    "`{bad}`: give OK's permissions one per list item (Tessera joins them with `;`), e.g. [VALUABLE_ACCESS, GET_EMAIL]"
                ),
            ));
        }
        oauth2::require_secret(
            &cfg,
            ": the application's secret key (Секретный ключ приложения)",
        )?;
        Ok(Arc::new(Odnoklassniki {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(
                &cfg.token_url,
                &cfg.api_base_url,
                API_ORIGIN,
                "/oauth/token.do",
            ),
            api_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, API_ORIGIN, "/fb.do"),
            cfg,
            http,
        }))
    }
}

fn md5_hex(data: &str) -> String {
    Md5::digest(data.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// OK's signature of an API call: `params` are every parameter but `access_token` and `sig`.
pub fn signature(params: &[(&str, &str)], access_token: &str, secret_key: &str) -> String {
    let mut sorted: Vec<_> = params.to_vec();
    sorted.sort();
    let joined: String = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    md5_hex(&format!(
        "{joined}{}",
        md5_hex(&format!("{access_token}{secret_key}"))
    ))
}

/// users.getCurrentUser's answer as the mapper's claims (`gender` is OK's `male`/`female`,
/// `birthday` `YYYY-MM-DD`, `pic_3` the largest square picture).
pub fn claims(user: &Value) -> Result<(String, Value), UpstreamError> {
    let subject =
        user.get("uid")
            .and_then(subject_string)
            .ok_or_else(|| UpstreamError::Missing {
                endpoint: USER_ENDPOINT.into(),
                what: "the user's `uid`".into(),
            })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    for (claim, key) in [
        ("name", "name"),
        ("given_name", "first_name"),
        ("family_name", "last_name"),
        ("email", "email"),
        ("birthdate", "birthday"),
        ("locale", "locale"),
        ("picture", "pic_3"),
    ] {
        put_text(&mut c, claim, text(user, key));
    }
    let gender = text(user, "gender").filter(|g| ["male", "female"].contains(g));
    put_text(&mut c, "gender", gender);
    let raw = user.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Odnoklassniki {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// OK documents no PKCE.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or("VALUABLE_ACCESS", ";");
        oauth2::authorization_url(
            &self.auth_url,
            [
                ("client_id", self.cfg.client_id.as_str()),
                ("scope", &scope),
                ("response_type", "code"),
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
        // OK documents the parameters in the query string of the POST.
        let rb = self.http.client().post(&self.token_url).query(&[
            ("code", code),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("grant_type", "authorization_code"),
        ]);
        let token = oauth2::exchange_code(
            &self.http,
            TOKEN_ENDPOINT,
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let params = [
            (
                "application_key",
                self.cfg.odnoklassniki_application_key.as_str(),
            ),
            ("fields", FIELDS),
            ("format", "json"),
            ("method", "users.getCurrentUser"),
        ];
        let sig = signature(&params, &token.access_token, &self.cfg.client_secret);
        let rb = self
            .http
            .client()
            .get(&self.api_url)
            .query(&params)
            .query(&[
                ("access_token", token.access_token.as_str()),
                ("sig", sig.as_str()),
            ]);
        let user = oauth2::call_enveloped(&self.http, USER_ENDPOINT, rb, ENVELOPE).await?;
        let (subject, claims) = claims(&user)?;
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
    fn the_signature_is_oks_md5_over_sorted_params_and_the_session_secret() {
        // Worked by hand: md5("tokensecret") = session secret; then over the sorted pairs.
        let session = md5_hex("tokensecret");
        let expected = md5_hex(&format!(
            "application_key=CBAformat=jsonmethod=users.getCurrentUser{session}"
        ));
        let sig = signature(
            &[
                ("method", "users.getCurrentUser"),
                ("format", "json"),
                ("application_key", "CBA"),
            ],
            "token",
            "secret",
        );
        assert_eq!(sig, expected);
        assert_eq!(sig.len(), 32);
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_ne!(sig, signature(&[("format", "json")], "token", "secret"));
        assert_ne!(
            sig,
            signature(
                &[
                    ("method", "users.getCurrentUser"),
                    ("format", "json"),
                    ("application_key", "CBA"),
                ],
                "token",
                "other-secret",
            )
        );
    }

    #[test]
    fn current_user_becomes_claims() {
        let user = json!({"uid": "574893018273", "name": "Иван Петров", "first_name": "Иван",
            "last_name": "Петров", "gender": "male", "birthday": "1985-03-14", "locale": "ru",
            "pic_3": "https://i.mycdn.me/i?r=x", "email": "ivan@ok.example"});
        let (sub, c) = claims(&user).unwrap();
        assert_eq!(sub, "574893018273");
        assert_eq!(c["given_name"], "Иван");
        assert_eq!(c["email"], "ivan@ok.example");
        assert!(c.get("email_verified").is_none());
        assert_eq!(c["gender"], "male");
        assert_eq!(c["picture"], "https://i.mycdn.me/i?r=x");
        assert!(claims(&json!({"name": "x"})).is_err());
    }

    #[test]
    fn application_key_secret_and_scope_are_checked_at_start() {
        let cfg = |key: &str, secret: &str, scope: Value| -> ProviderConfig {
            serde_json::from_value(json!({"id": "ok", "provider": "odnoklassniki",
                "client_id": "512000000001", "client_secret": secret,
                "odnoklassniki_application_key": key, "scope": scope}))
            .unwrap()
        };
        let http = || Upstream::new().unwrap();
        let key = |r: Result<Arc<dyn Provider>, (String, String)>| r.err().map(|e| e.0);
        assert!(Odnoklassniki::make(cfg("CBA", "s", json!(["VALUABLE_ACCESS"])), http()).is_ok());
        assert_eq!(
            key(Odnoklassniki::make(cfg("", "s", json!([])), http())).as_deref(),
            Some("odnoklassniki_application_key")
        );
        assert_eq!(
            key(Odnoklassniki::make(cfg("CBA", "", json!([])), http())).as_deref(),
            Some("client_secret")
        );
        assert_eq!(
            key(Odnoklassniki::make(
                cfg("CBA", "s", json!(["VALUABLE_ACCESS;GET_EMAIL"])),
                http()
            ))
            .as_deref(),
            Some("scope")
        );
    }
}
