//! `patreon`: Patreon (OAuth 2.0 at `www.patreon.com/oauth2/authorize`, the token at
//! `www.patreon.com/api/oauth2/token`, the person at API v2's `identity`), the type Kratos calls
//! `patreon`, so a Kratos configuration naming it starts unchanged.
//!
//! Plain OAuth 2.0, no id_token, no PKCE (Patreon documents none); the client authenticates
//! with `client_id` and `client_secret` in the form. The identity endpoint speaks JSON:API:
//! attributes are sent only when asked for by name (`fields[user]=…`), the person is
//! `data` (`type: "user"`, its `id` the subject) and what `include` names comes beside it in
//! `included`. The email is there only with the `identity[email]` scope; Patreon says whether
//! it confirmed it (`is_email_verified`), and only a `true` there makes `email_verified` true
//! (Kratos does not ask for it, so its claims never say; a mapper that trusted an unconfirmed
//! Patreon address would let anyone claim it). Errors are JSON:API too:
//! `{"errors": [{"code_name", "detail", "status"}]}`.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError, excerpt, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const ORIGIN: &str = "https://www.patreon.com";
const AUTH_PATH: &str = "/oauth2/authorize";
const TOKEN_PATH: &str = "/api/oauth2/token";
/// The identity call, with the user fields the claims are made of.
const IDENTITY_PATH: &str = "/api/oauth2/v2/identity?fields%5Buser%5D=email,is_email_verified,first_name,last_name,full_name,image_url,url,vanity,created";
/// The issuer given to Patreon's claims (Kratos's).
pub const ISSUER: &str = "https://www.patreon.com/";
const ENDPOINT: &str = "Patreon identity endpoint";
const DEFAULT_SCOPE: &str = "identity identity[email]";

pub struct Patreon {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    identity_url: String,
}

impl Patreon {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the client's Client Secret at patreon.com/portal/registration/register-clients",
        )?;
        Ok(Arc::new(Patreon {
            auth_url: endpoint(&cfg.auth_url, &cfg.api_base_url, ORIGIN, AUTH_PATH),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, ORIGIN, TOKEN_PATH),
            identity_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, ORIGIN, IDENTITY_PATH),
            cfg,
            http,
        }))
    }
}

/// A JSON:API error answer, `{"errors": [{"code_name", "detail", "status"}]}`, as its first
/// error's words; anything else as an OAuth error or the status.
fn jsonapi_error(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    let first = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors")?.as_array()?.first().cloned());
    match first {
        Some(e) => UpstreamError::Status {
            endpoint: endpoint.to_string(),
            status,
            excerpt: [text(&e, "code_name"), text(&e, "detail")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": "),
        },
        None => oauth_or_status(endpoint, status, body),
    }
}

/// The identity answer as the mapper's claims: `data` must be the user resource.
pub fn claims(identity: &Value) -> Result<(String, Value), UpstreamError> {
    let data = identity
        .get("data")
        .filter(|d| text(d, "type") == Some("user"));
    let subject = data
        .and_then(|d| d.get("id"))
        .and_then(subject_string)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: ENDPOINT.into(),
            what: format!(
                "a `data` user resource with an `id` ({})",
                excerpt(identity.to_string().as_bytes())
            ),
        })?;
    let attrs = data
        .and_then(|d| d.get("attributes"))
        .cloned()
        .unwrap_or_default();
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "name", text(&attrs, "full_name"));
    put_text(&mut c, "given_name", text(&attrs, "first_name"));
    put_text(&mut c, "family_name", text(&attrs, "last_name"));
    put_text(&mut c, "picture", text(&attrs, "image_url"));
    put_text(&mut c, "profile", text(&attrs, "url"));
    put_text(&mut c, "username", text(&attrs, "vanity"));
    if let Some(email) = text(&attrs, "email") {
        c.insert("email".into(), email.into());
        c.insert(
            "email_verified".into(),
            (attrs.get("is_email_verified").and_then(Value::as_bool) == Some(true)).into(),
        );
    }
    let mut raw = attrs.as_object().cloned().unwrap_or_default();
    for k in ["relationships", "included"] {
        let v = match k {
            "relationships" => data.and_then(|d| d.get(k)),
            _ => identity.get(k),
        };
        if let Some(v) = v {
            raw.insert(k.into(), v.clone());
        }
    }
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Patreon {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// Patreon documents no PKCE; `pkce: force` is honoured for a server that has it.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(self.cfg.pkce == crate::config::Pkce::Force)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or(DEFAULT_SCOPE, " ");
        let challenge = crate::provider::pkce_challenge(req.code_verifier);
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("scope", scope.as_str()),
            ("state", req.state),
        ];
        if self.uses_pkce().await? {
            pairs.push(("code_challenge", challenge.as_str()));
            pairs.push(("code_challenge_method", "S256"));
        }
        oauth2::authorization_url(&self.auth_url, pairs)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "Patreon sent no authorization code")?;
        let mut form = vec![
            ("code", code),
            ("grant_type", "authorization_code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("redirect_uri", req.redirect_uri),
        ];
        if self.uses_pkce().await? {
            form.push(("code_verifier", req.code_verifier));
        }
        let rb = self.http.client().post(&self.token_url).form(&form);
        let token = oauth2::exchange_code(
            &self.http,
            "Patreon token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let rb = self
            .http
            .client()
            .get(&self.identity_url)
            .bearer_auth(&token.access_token);
        let identity = oauth2::call(&self.http, ENDPOINT, rb, jsonapi_error).await?;
        let (subject, claims) = claims(&identity)?;
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

    fn identity(verified: Value) -> Value {
        json!({"data": {"id": "3821056", "type": "user", "attributes": {
            "email": "ivan@example.org", "is_email_verified": verified,
            "first_name": "Иван", "last_name": "Петров", "full_name": "Иван Петров",
            "image_url": "https://c8.patreon.com/2/200/3821056", "vanity": "ivanp",
            "url": "https://www.patreon.com/ivanp"},
            "relationships": {"memberships": {"data": []}}},
            "links": {"self": "https://www.patreon.com/api/oauth2/v2/user/3821056"}})
    }

    #[test]
    fn the_identity_becomes_claims_and_only_a_confirmed_email_is_verified() {
        let (sub, c) = claims(&identity(json!(true))).unwrap();
        assert_eq!(sub, "3821056");
        assert_eq!(c["given_name"], "Иван");
        assert_eq!(c["family_name"], "Петров");
        assert_eq!(c["username"], "ivanp");
        assert_eq!(c["email_verified"], true);
        assert_eq!(
            c["raw_claims"]["relationships"]["memberships"]["data"],
            json!([])
        );
        for not_true in [json!(false), json!("true"), json!(null)] {
            let (_, c) = claims(&identity(not_true.clone())).unwrap();
            assert_eq!(c["email_verified"], false, "{not_true}");
        }
    }

    #[test]
    fn anything_but_a_user_resource_is_refused() {
        assert!(claims(&json!({"data": {"id": "1", "type": "campaign"}})).is_err());
        assert!(claims(&json!({"data": {"type": "user"}})).is_err());
        assert!(claims(&json!({"errors": []})).is_err());
        let (_, c) = claims(&json!({"data": {"id": 7, "type": "user"}})).unwrap();
        assert!(c.get("email").is_none() && c.get("email_verified").is_none());
    }

    #[test]
    fn jsonapi_errors_are_read() {
        let e = jsonapi_error(
            "x",
            401,
            br#"{"errors": [{"code": 1, "code_name": "Unauthorized", "detail": "The server could not verify that you are authorized", "status": "401"}]}"#,
        );
        assert!(
            e.to_string().contains("Unauthorized: The server could not"),
            "{e}"
        );
        let e = jsonapi_error("x", 400, br#"{"error": "invalid_grant"}"#);
        assert!(matches!(e, UpstreamError::OAuth { .. }), "{e}");
    }
}
