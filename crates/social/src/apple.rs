//! `apple`: Sign in with Apple on the web, as Kratos's `apple` type.
//!
//! What differs from `generic`:
//! - the endpoints are fixed, as in Kratos (`https://appleid.apple.com/auth/authorize`,
//!   `/auth/token`, `/auth/keys`, issuer `https://appleid.apple.com`); `issuer_url` moves them
//!   together (an emulator);
//! - the **client secret is a JWT** Tessera signs for each code exchange: ES256 with the
//!   Sign in with Apple key (`apple_private_key`, the `.p8` file's PEM), header `kid` =
//!   `apple_private_key_id`, claims `iss` = `apple_team_id`, `sub` = `client_id` (the Services
//!   ID), `aud` = the issuer, `iat`, and `exp` five minutes later. The three keys are checked at
//!   start (a key that does not sign stops the start). Without them, `client_secret` is sent
//!   as it is (a secret JWT made elsewhere, which expires within six months);
//! - with the `name` or `email` scope, Apple requires `response_mode=form_post`: the browser
//!   comes back as a **cross-site POST**, which carries no `SameSite=Lax` cookie. The server
//!   answers that POST with a 303 to the same callback as a GET (a top-level navigation, which
//!   does carry Lax cookies), and only that GET is processed: the state is bound to the
//!   continuity cookie exactly as for every other provider, so a form posted from another
//!   site with someone else's `code` and `state` fails the continuity check before any code
//!   is exchanged;
//! - the person's name comes only once, at the first authorization, as the unsigned `user`
//!   form field (`{"name": {"firstName", "lastName"}, "email"}`). Tessera takes the names from
//!   it (never the email: it is not signed) when the id_token has none;
//! - `email_verified` and `is_private_email` are the strings `"true"`/`"false"` (sometimes
//!   booleans): they become booleans, and anything else is `false`.

use crate::config::ProviderConfig;
use crate::oidc::{Discovery, Issuer};
use crate::oidc_rp::{ClientAuth, Rp};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;
use url::Url;

/// Apple's issuer; its endpoints are under it.
pub const ISSUER: &str = "https://appleid.apple.com";
/// How long a client secret Tessera signs is valid (Kratos signs five-minute ones too).
const SECRET_LIFETIME_SECS: u64 = 300;

/// The key that signs the client secret, with what goes in its header and claims.
struct SecretKey {
    key: EncodingKey,
    key_id: String,
    team_id: String,
}

pub struct Apple {
    rp: Rp,
    key: Option<SecretKey>,
}

fn ten_alphanumerics(s: &str) -> bool {
    s.len() == 10 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `"true"`, `true` → true; anything else (`"false"`, absent, `"yes"`) → false.
fn apple_bool(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true))) || v.and_then(Value::as_str) == Some("true")
}

impl Apple {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        let issuer_url = if cfg.issuer_url.trim().is_empty() {
            ISSUER.to_string()
        } else {
            cfg.issuer_url.trim_end_matches('/').to_string()
        };
        let key = Self::secret_key(&cfg, &issuer_url)?;
        let issuer = Issuer::fixed(
            http.clone(),
            Discovery {
                issuer: issuer_url.clone(),
                authorization_endpoint: format!("{issuer_url}/auth/authorize"),
                token_endpoint: format!("{issuer_url}/auth/token"),
                userinfo_endpoint: None,
                jwks_uri: format!("{issuer_url}/auth/keys"),
                code_challenge_methods_supported: vec![],
                token_endpoint_auth_methods_supported: vec!["client_secret_post".into()],
                authorization_response_iss_parameter_supported: false,
            },
        );
        Ok(Arc::new(Apple {
            rp: Rp::new(cfg, http, issuer, "Apple"),
            key,
        }))
    }

    /// The signing key from `apple_private_key`, `apple_private_key_id` and `apple_team_id`
    /// (all three or none; then `client_secret` is required), tried once so a key that cannot
    /// sign stops the start.
    fn secret_key(
        cfg: &ProviderConfig,
        issuer: &str,
    ) -> Result<Option<SecretKey>, (String, String)> {
        let given = [
            ("apple_private_key", cfg.apple_private_key.trim()),
            ("apple_private_key_id", cfg.apple_private_key_id.trim()),
            ("apple_team_id", cfg.apple_team_id.trim()),
        ];
        if given.iter().all(|(_, v)| v.is_empty()) {
            crate::oauth2::require_secret(
                cfg,
                ", or apple_private_key, apple_private_key_id and apple_team_id: Tessera then signs the client secret itself (Apple Developer → Certificates, Identifiers & Profiles → Keys, a key with Sign in with Apple)",
            )?;
            return Ok(None);
        }
        if let Some((missing, _)) = given.iter().find(|(_, v)| v.is_empty()) {
            return Err((
                (*missing).into(),
                format!(
                    "{missing} is required with the other apple_* keys: apple_private_key is the .p8 key file's text, apple_private_key_id its 10-character Key ID, apple_team_id your 10-character Team ID"
                ),
            ));
        }
        for (k, v) in &given[1..] {
            if !ten_alphanumerics(v) {
                return Err((
                    (*k).into(),
                    format!(
                        "`{v}` is not an Apple id: {k} is 10 letters and digits, as the Apple Developer account shows it"
                    ),
                ));
            }
        }
        let bad_key = |why: String| {
            (
                "apple_private_key".to_string(),
                format!(
                    "the key does not sign ({why}): give the whole .p8 file Apple let you download once, from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----"
                ),
            )
        };
        let key =
            EncodingKey::from_ec_pem(given[0].1.as_bytes()).map_err(|e| bad_key(e.to_string()))?;
        let k = SecretKey {
            key,
            key_id: given[1].1.to_string(),
            team_id: given[2].1.to_string(),
        };
        Self::sign_secret(&k, &cfg.client_id, issuer).map_err(bad_key)?;
        Ok(Some(k))
    }

    fn sign_secret(k: &SecretKey, client_id: &str, audience: &str) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(k.key_id.clone());
        let iat = now();
        let claims = json!({
            "iss": k.team_id,
            "iat": iat,
            "exp": iat + SECRET_LIFETIME_SECS,
            "aud": audience,
            "sub": client_id,
        });
        jsonwebtoken::encode(&header, &claims, &k.key).map_err(|e| e.to_string())
    }

    /// The client secret of this exchange.
    fn client_secret(&self) -> Result<String, UpstreamError> {
        match &self.key {
            None => Ok(self.rp.cfg.client_secret.clone()),
            Some(k) => {
                Self::sign_secret(k, &self.rp.cfg.client_id, &self.rp.issuer_url()).map_err(|e| {
                    UpstreamError::Missing {
                        endpoint: "Apple client secret".into(),
                        what: format!("a signature ({e})"),
                    }
                })
            }
        }
    }

    fn scopes(&self) -> String {
        self.rp.cfg.scope.join(" ")
    }
}

#[async_trait::async_trait]
impl Provider for Apple {
    fn config(&self) -> &ProviderConfig {
        &self.rp.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        self.rp.uses_pkce().await
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.scopes();
        // Apple refuses `name`/`email` without form_post; Kratos sends it whenever it asks
        // for scopes.
        let extra: &[(&str, &str)] = if scope.is_empty() {
            &[]
        } else {
            &[("response_mode", "form_post")]
        };
        self.rp.authorization_url(req, &scope, extra).await
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let secret = self.client_secret()?;
        let r = self.rp.redeem(cb, req, ClientAuth::Post, &secret).await?;
        let id_token = r.tokens.id_token.as_deref().unwrap_or_default();
        let issuer = self.rp.issuer_url();
        let mut claims = self.rp.verify(id_token, req.nonce, &[&issuer]).await?;
        for k in ["email_verified", "is_private_email"] {
            if claims.contains_key(k) {
                let b = apple_bool(claims.get(k));
                claims.insert(k.into(), Value::Bool(b));
            }
        }
        // The names, only at the first authorization, unsigned: never the email.
        if let Some(user) = cb
            .get("user")
            .and_then(|u| serde_json::from_str::<Value>(u).ok())
        {
            let name = |k: &str| {
                user.get("name")
                    .and_then(|n| n.get(k))
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
            };
            let (first, last) = (name("firstName"), name("lastName"));
            if !claims.contains_key("given_name")
                && let Some(f) = &first
            {
                claims.insert("given_name".into(), f.clone().into());
            }
            if !claims.contains_key("family_name")
                && let Some(l) = &last
            {
                claims.insert("family_name".into(), l.clone().into());
            }
            if !claims.contains_key("name") {
                let full: Vec<String> = first.into_iter().chain(last).collect();
                if !full.is_empty() {
                    claims.insert("name".into(), full.join(" ").into());
                }
            }
        }
        crate::claims::id_token_profile(claims, r.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 key in PKCS#8 PEM, as Apple's .p8 files are.
    const P8: &str = include_str!("../testdata/apple_key.p8");

    fn entry(extra: Value) -> Result<Arc<dyn Provider>, (String, String)> {
        let mut v = json!({"id": "apple", "provider": "apple", "client_id": "com.example.web",
            "apple_private_key": P8, "apple_private_key_id": "ABC123DEFG", "apple_team_id": "TEAM123456"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let cfg: ProviderConfig = serde_json::from_value(v).expect("entry");
        Apple::make(cfg, Upstream::new().expect("client"))
    }

    #[test]
    fn the_apple_keys_are_checked_at_start() {
        assert!(entry(json!({})).is_ok());
        let Err((key, why)) = entry(json!({"apple_team_id": ""})) else {
            panic!("accepted");
        };
        assert_eq!(key, "apple_team_id");
        assert!(why.contains("required"), "{why}");
        let Err((key, _)) = entry(json!({"apple_private_key_id": "short"})) else {
            panic!("accepted");
        };
        assert_eq!(key, "apple_private_key_id");
        let Err((key, why)) = entry(
            json!({"apple_private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}),
        ) else {
            panic!("accepted");
        };
        assert_eq!(key, "apple_private_key");
        assert!(why.contains(".p8"), "{why}");
        // Neither the key nor a client secret.
        let Err((key, _)) = entry(
            json!({"apple_private_key": "", "apple_private_key_id": "", "apple_team_id": ""}),
        ) else {
            panic!("accepted");
        };
        assert_eq!(key, "client_secret");
        assert!(
            entry(json!({"apple_private_key": "", "apple_private_key_id": "", "apple_team_id": "", "client_secret": "eyJ.made.elsewhere"}))
                .is_ok()
        );
    }

    #[test]
    fn the_client_secret_is_an_es256_jwt_apple_can_check() {
        let k = SecretKey {
            key: EncodingKey::from_ec_pem(P8.as_bytes()).expect("key"),
            key_id: "ABC123DEFG".into(),
            team_id: "TEAM123456".into(),
        };
        let jwt = Apple::sign_secret(&k, "com.example.web", ISSUER).expect("signed");
        let header = jsonwebtoken::decode_header(&jwt).expect("header");
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("ABC123DEFG"));
        let claims = crate::oidc_rp::unverified_claims(&jwt).expect("claims");
        assert_eq!(claims["iss"], "TEAM123456");
        assert_eq!(claims["sub"], "com.example.web");
        assert_eq!(claims["aud"], ISSUER);
        let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
        assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(SECRET_LIFETIME_SECS));
    }

    #[test]
    fn apple_booleans_are_strings_or_booleans_and_nothing_else_is_true() {
        assert!(apple_bool(Some(&json!("true"))));
        assert!(apple_bool(Some(&json!(true))));
        for v in [
            json!("false"),
            json!(false),
            json!("yes"),
            json!(1),
            json!("TRUE"),
        ] {
            assert!(!apple_bool(Some(&v)), "{v}");
        }
        assert!(!apple_bool(None));
    }
}
