//! `naver`: Naver Login (네이버 로그인): OAuth 2.0 at `nid.naver.com/oauth2.0/authorize`, the
//! token at `nid.naver.com/oauth2.0/token`, the member profile at
//! `openapi.naver.com/v1/nid/me`.
//!
//! Naver's quirks: the token endpoint answers its errors with **HTTP 200** and
//! `{error, error_description}` (a reused code is `invalid_request` "no valid data in session"),
//! and wants the `state` again; `expires_in` is a string. The profile is wrapped:
//! `{resultcode: "00", message: "success", response: {…}}`, any other `resultcode` being an
//! error (`024` "Authentication failed"). The subject is `response.id`, which Naver issues per
//! app; `email` comes without any verified flag, so `email_verified` is never set. There are no
//! scopes: what the app may read is chosen in Naver's developer console and agreed to by the
//! person.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, excerpt, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://nid.naver.com/oauth2.0/authorize";
const NID_ORIGIN: &str = "https://nid.naver.com";
const API_ORIGIN: &str = "https://openapi.naver.com";
const TOKEN_PATH: &str = "/oauth2.0/token";
const ME_PATH: &str = "/v1/nid/me";
/// The issuer given to Naver's claims.
pub const ISSUER: &str = "https://nid.naver.com";
const ENDPOINT: &str = "Naver v1/nid/me";

pub struct Naver {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    me_url: String,
}

impl Naver {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the application's Client Secret at developers.naver.com (Application → 내 애플리케이션)",
        )?;
        Ok(Arc::new(Naver {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, NID_ORIGIN, TOKEN_PATH),
            me_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, API_ORIGIN, ME_PATH),
            cfg,
            http,
        }))
    }
}

/// The profile API's envelope: `response` when `resultcode` is `"00"`, else Naver's error.
pub fn unwrap_profile(v: &Value) -> Result<&Value, UpstreamError> {
    let code = v.get("resultcode").and_then(Value::as_str).unwrap_or("");
    if code != "00" {
        return Err(UpstreamError::OAuth {
            endpoint: ENDPOINT.into(),
            error: if code.is_empty() {
                "no resultcode".into()
            } else {
                format!("resultcode {code}")
            },
            description: text(v, "message").unwrap_or_default().to_string(),
        });
    }
    v.get("response")
        .filter(|r| r.is_object())
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: ENDPOINT.into(),
            what: format!("`response` ({})", excerpt(v.to_string().as_bytes())),
        })
}

/// A non-2xx answer of the profile API (`{resultcode, message}` with HTTP 401).
fn profile_error(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.get("resultcode").is_some() => match unwrap_profile(&v) {
            Err(e) => e,
            Ok(_) => oauth_or_status(endpoint, status, body),
        },
        _ => oauth_or_status(endpoint, status, body),
    }
}

/// The profile's `response` as the mapper's claims.
pub fn claims(r: &Value) -> Result<(String, Value), UpstreamError> {
    let subject = r
        .get("id")
        .and_then(subject_string)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: ENDPOINT.into(),
            what: "the member's `id`".into(),
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "name", text(r, "name"));
    put_text(&mut c, "nickname", text(r, "nickname"));
    put_text(&mut c, "email", text(r, "email"));
    put_text(&mut c, "picture", text(r, "profile_image"));
    put_text(&mut c, "phone_number", text(r, "mobile_e164"));
    let raw = r.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Naver {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(false)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        oauth2::authorization_url(
            &self.auth_url,
            vec![
                ("response_type", "code"),
                ("client_id", self.cfg.client_id.as_str()),
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
        let code = oauth2::from_callback(self.code(cb), "Naver sent no authorization code")?;
        let rb = self.http.client().post(&self.token_url).form(&[
            ("grant_type", "authorization_code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("code", code),
            ("state", req.state),
        ]);
        // `call` reads `{error, error_description}` whatever the status: Naver sends it with 200.
        let token = oauth2::exchange_code(
            &self.http,
            "Naver token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let rb = self
            .http
            .client()
            .get(&self.me_url)
            .bearer_auth(&token.access_token);
        let v = oauth2::call(&self.http, ENDPOINT, rb, profile_error).await?;
        let (subject, claims) = claims(unwrap_profile(&v)?)?;
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
    fn the_wrapped_profile_becomes_claims() {
        let v = json!({"resultcode": "00", "message": "success", "response": {
            "id": "32742776", "nickname": "OpenAPI", "name": "오픈 API",
            "email": "openapi@naver.com", "gender": "F", "age": "40-49",
            "birthday": "10-01", "profile_image": "https://ssl.pstatic.net/static/pwe/address/nodata_33x33.gif"}});
        let (sub, c) = claims(unwrap_profile(&v).unwrap()).unwrap();
        assert_eq!(sub, "32742776");
        assert_eq!(c["name"], "오픈 API");
        assert_eq!(c["nickname"], "OpenAPI");
        assert_eq!(c["email"], "openapi@naver.com");
        assert!(c.get("email_verified").is_none());
        assert_eq!(c["raw_claims"]["age"], "40-49");
    }

    #[test]
    fn a_resultcode_other_than_00_is_naver_s_error() {
        let e = unwrap_profile(&json!({"resultcode": "024", "message": "Authentication failed"}))
            .err()
            .unwrap();
        assert_eq!(e.user_code(), "upstream_refused");
        assert!(e.to_string().contains("resultcode 024"), "{e}");
        assert!(
            unwrap_profile(&json!({"resultcode": "00"})).is_err(),
            "no response"
        );
        let e = profile_error(
            "me",
            401,
            br#"{"resultcode":"024","message":"Authentication failed"}"#,
        );
        assert!(e.to_string().contains("Authentication failed"), "{e}");
    }
}
