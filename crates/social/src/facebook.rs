//! `facebook`: Facebook Login (the manual web flow: the dialog at `www.facebook.com/dialog/oauth`,
//! the token at `graph.facebook.com/oauth/access_token`, the person at `graph.facebook.com/me`),
//! the type Kratos calls `facebook`, so a Kratos configuration naming it starts unchanged.
//!
//! Plain OAuth 2.0: Facebook has no OpenID Connect for the web (its id_tokens are for iOS's
//! Limited Login), so there is no id_token and no discovery. As Kratos does, the endpoints are
//! Graph's **unversioned** ones (Facebook then answers with the oldest version the app may
//! use, so an entry never breaks when a version is retired); `auth_url`, `token_url` and
//! `userinfo_url` take versioned ones. `scope` is sent comma-separated (`email,public_profile`
//! by default).
//!
//! Every Graph call carries **`appsecret_proof`**, the hex HMAC-SHA256 of the access token
//! keyed with the app secret: with "Require App Secret" on (as it should be), Graph refuses a
//! call without it, and a token issued to another app (whose secret differs) is refused too,
//! so a token obtained elsewhere cannot be passed off as this app's.
//!
//! The profile's app-scoped `id` is the subject. Facebook sends **no email-verified flag**:
//! unlike Kratos (which marks any email it gets as verified), `email_verified` is never set.
//! Graph's errors are `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`
//! with a 4xx, read into the error's type and message.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, excerpt, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

const AUTH_URL: &str = "https://www.facebook.com/dialog/oauth";
const GRAPH_ORIGIN: &str = "https://graph.facebook.com";
const TOKEN_PATH: &str = "/oauth/access_token";
const ME_PATH: &str = "/me";
/// The profile fields asked for (Kratos's list without `birthday` and `gender`, which need
/// permissions of their own that Facebook reviews).
const FIELDS: &str = "id,name,first_name,last_name,middle_name,email,picture";
/// The issuer given to Facebook's claims (the one Kratos sets).
pub const ISSUER: &str = "https://www.facebook.com";
const TOKEN_ENDPOINT: &str = "Facebook token endpoint";
const ENDPOINT: &str = "Facebook Graph me";
const DEFAULT_SCOPE: &str = "email,public_profile";

pub struct Facebook {
    cfg: ProviderConfig,
    http: Upstream,
    auth_url: String,
    token_url: String,
    me_url: String,
}

impl Facebook {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the App Secret at developers.facebook.com (App settings → Basic); it also signs every Graph call (appsecret_proof)",
        )?;
        Ok(Arc::new(Facebook {
            auth_url: endpoint(&cfg.auth_url, "", AUTH_URL, ""),
            token_url: endpoint(&cfg.token_url, &cfg.api_base_url, GRAPH_ORIGIN, TOKEN_PATH),
            me_url: endpoint(&cfg.userinfo_url, &cfg.api_base_url, GRAPH_ORIGIN, ME_PATH),
            cfg,
            http,
        }))
    }
}

/// `appsecret_proof`: the lowercase hex HMAC-SHA256 of `access_token` keyed with the app
/// secret, as Graph checks it.
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, app_secret.as_bytes());
    ring::hmac::sign(&key, access_token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Graph's error shape, `{"error": {"message", "type", "code", "error_subcode"}}` with a 4xx:
/// the type and code become the error, the message its description; anything else is read as
/// OAuth 2.0's.
fn graph_error(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    let v = serde_json::from_slice::<Value>(body).ok();
    let e = v
        .as_ref()
        .and_then(|v| v.get("error"))
        .filter(|e| e.is_object());
    match e {
        Some(e) => {
            let kind = text(e, "type").unwrap_or("GraphError");
            let code = e.get("code").and_then(subject_string);
            UpstreamError::OAuth {
                endpoint: endpoint.to_string(),
                error: match code {
                    Some(c) => format!("{kind} #{c}"),
                    None => kind.to_string(),
                },
                description: text(e, "message")
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect(),
            }
        }
        None => oauth_or_status(endpoint, status, body),
    }
}

/// Graph's `/me` answer as the mapper's claims.
pub fn claims(me: &Value) -> Result<(String, Value), UpstreamError> {
    let subject = me
        .get("id")
        .and_then(subject_string)
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: ENDPOINT.into(),
            what: format!("the user's `id` ({})", excerpt(me.to_string().as_bytes())),
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "name", text(me, "name"));
    put_text(&mut c, "given_name", text(me, "first_name"));
    put_text(&mut c, "family_name", text(me, "last_name"));
    put_text(&mut c, "middle_name", text(me, "middle_name"));
    // Facebook says nothing about whether the address was confirmed: no `email_verified`.
    put_text(&mut c, "email", text(me, "email"));
    let picture = me
        .get("picture")
        .and_then(|p| p.get("data"))
        .filter(|d| d.get("is_silhouette").and_then(Value::as_bool) != Some(true))
        .and_then(|d| text(d, "url"));
    put_text(&mut c, "picture", picture);
    let raw = me.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for Facebook {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// Only with `pkce: force`: Facebook's web flow does not advertise PKCE (no discovery),
    /// and Kratos's `facebook` sends none.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(self.cfg.pkce == crate::config::Pkce::Force)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or(DEFAULT_SCOPE, ",");
        let challenge = pkce_challenge(req.code_verifier);
        let mut pairs = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("state", req.state),
            ("response_type", "code"),
            ("scope", scope.as_str()),
        ];
        if self.uses_pkce().await? {
            pairs.push(("code_challenge_method", "S256"));
            pairs.push(("code_challenge", challenge.as_str()));
        }
        oauth2::authorization_url(&self.auth_url, pairs)
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let code = oauth2::from_callback(self.code(cb), "Facebook sent no authorization code")?;
        let mut form = vec![
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("code", code),
        ];
        if self.uses_pkce().await? {
            form.push(("code_verifier", req.code_verifier));
        }
        let rb = self.http.client().post(&self.token_url).form(&form);
        let token =
            oauth2::exchange_code(&self.http, TOKEN_ENDPOINT, rb, graph_error, "access_token")
                .await?;
        let proof = appsecret_proof(&self.cfg.client_secret, &token.access_token);
        let rb = self
            .http
            .client()
            .get(&self.me_url)
            .query(&[("fields", FIELDS), ("appsecret_proof", proof.as_str())])
            .bearer_auth(&token.access_token);
        let me = oauth2::call(&self.http, ENDPOINT, rb, graph_error).await?;
        let (subject, claims) = claims(&me)?;
        Ok(Profile {
            subject,
            claims,
            // No refresh token: Facebook extends a token by exchanging it (fb_exchange_token).
            tokens: token.tokens(None, None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_proof_is_the_hex_hmac_of_the_token() {
        // RFC 4231 test case 2 (key "Jefe").
        assert_eq!(
            appsecret_proof("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_profile_becomes_claims_and_the_email_is_never_verified() {
        let me = json!({"id": "10229876543210", "name": "Иван Петров", "first_name": "Иван",
            "last_name": "Петров", "email": "ivan@example.ru",
            "picture": {"data": {"url": "https://platform-lookaside.fbsbx.com/p", "is_silhouette": false}}});
        let (sub, c) = claims(&me).unwrap();
        assert_eq!(sub, "10229876543210");
        assert_eq!(
            (c["given_name"].as_str(), c["family_name"].as_str()),
            (Some("Иван"), Some("Петров"))
        );
        assert_eq!(c["email"], "ivan@example.ru");
        assert!(c.get("email_verified").is_none(), "{c}");
        assert_eq!(c["picture"], "https://platform-lookaside.fbsbx.com/p");
        let (_, c) =
            claims(&json!({"id": "1", "picture": {"data": {"url": "u", "is_silhouette": true}}}))
                .unwrap();
        assert!(
            c.get("picture").is_none(),
            "the default silhouette is no picture"
        );
        assert!(claims(&json!({"name": "x"})).is_err());
    }

    #[test]
    fn graph_errors_are_read() {
        let e = graph_error(
            "me",
            400,
            br#"{"error": {"message": "Invalid appsecret_proof provided in the API argument", "type": "GraphMethodException", "code": 100, "fbtrace_id": "A1"}}"#,
        );
        let m = e.user_message("Facebook");
        assert!(
            m.contains("GraphMethodException #100") && m.contains("Invalid appsecret_proof"),
            "{m}"
        );
        let e = graph_error("t", 400, br#"{"error": "invalid_request"}"#);
        assert!(e.to_string().contains("invalid_request"), "{e}");
    }
}
