//! `uaepass`: UAE PASS, the United Arab Emirates' national digital identity, the type Kratos
//! calls `uaepass`, so a Kratos configuration naming it starts unchanged.
//!
//! UAE PASS publishes no OpenID Connect discovery, so its endpoints are fixed below the
//! environment's base URL, which `issuer_url` chooses as in Kratos: production
//! `https://id.uaepass.ae` (the default) or staging `https://stg-id.uaepass.ae`;
//! `/idshub/authorize`, `/idshub/token` (client authenticated with HTTP Basic) and
//! `/idshub/userinfo`, which alone describes the person. The authorization request must carry
//! `acr_values` (web sign-in: `urn:safelayer:tws:policies:authentication:level:low`) and PKCE
//! S256, which UAE PASS supports but does not advertise (`pkce: never` turns it off).
//!
//! Every account level has a mobile number and an email UAE PASS verified; the user type says
//! how far the person is known: `SOP1` (Emirates ID **not** verified, no `idn`, no Arabic
//! names), `SOP2` and `SOP3` (Emirates ID verified). So `email_verified` and
//! `phone_number_verified` are true, and `userType` reaches the mapper under `raw_claims` to
//! decide what an unverified identity may do (docs/providers/uaepass.md). The subject is
//! userinfo's `sub`, as Kratos keeps it; `uuid`, which UAE PASS asks services to store, is in
//! `raw_claims`.

use crate::claims::{normalize_claims, put_text, subject_string};
use crate::config::ProviderConfig;
use crate::oauth2::{self, endpoint};
use crate::provider::{AuthRequest, Callback, Profile, Provider, pkce_challenge};
use crate::upstream::{Upstream, UpstreamError, excerpt, oauth_or_status, text};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

/// Production; staging is `https://stg-id.uaepass.ae`.
pub const PRODUCTION: &str = "https://id.uaepass.ae";
/// The `acr_values` of a web sign-in (Kratos's default too).
pub const ACR_WEB: &str = "urn:safelayer:tws:policies:authentication:level:low";
const DEFAULT_SCOPE: &str = "urn:uae:digitalid:profile:general";
const ENDPOINT: &str = "UAE PASS userinfo endpoint";

pub struct UaePass {
    cfg: ProviderConfig,
    http: Upstream,
    base: String,
    auth_url: String,
    token_url: String,
    userinfo_url: String,
}

impl UaePass {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        oauth2::require_secret(
            &cfg,
            ": the client secret UAE PASS's onboarding team issued with the client id (staging: the sandbox credentials of docs.uaepass.ae)",
        )?;
        let base = environment(&cfg.issuer_url);
        Ok(Arc::new(UaePass {
            auth_url: endpoint(&cfg.auth_url, &base, "", "/idshub/authorize"),
            token_url: endpoint(&cfg.token_url, &base, "", "/idshub/token"),
            userinfo_url: endpoint(&cfg.userinfo_url, &base, "", "/idshub/userinfo"),
            base,
            cfg,
            http,
        }))
    }
}

/// The environment's base URL: `issuer_url` without a trailing `/`, production when empty.
fn environment(issuer_url: &str) -> String {
    match issuer_url.trim().trim_end_matches('/') {
        "" => PRODUCTION.to_string(),
        given => given.to_string(),
    }
}

/// UAE PASS's mobile numbers are digits with the country code (`971500000000`): E.164 adds
/// the `+`.
fn e164(mobile: &str) -> Option<String> {
    let digits = mobile.trim().trim_start_matches('+');
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())).then(|| format!("+{digits}"))
}

/// The userinfo answer as the mapper's claims, with `issuer` (the environment's base URL).
pub fn claims(info: &Value, issuer: &str) -> Result<(String, Value), UpstreamError> {
    let subject = info
        .get("sub")
        .and_then(subject_string)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| UpstreamError::Missing {
            endpoint: ENDPOINT.into(),
            what: format!(
                "the user's `sub` ({})",
                excerpt(info.to_string().as_bytes())
            ),
        })?;
    let mut c = Map::new();
    c.insert("iss".into(), issuer.into());
    c.insert("sub".into(), subject.clone().into());
    put_text(&mut c, "name", text(info, "fullnameEN"));
    put_text(&mut c, "given_name", text(info, "firstnameEN"));
    put_text(&mut c, "family_name", text(info, "lastnameEN"));
    put_text(&mut c, "gender", text(info, "gender"));
    // Verified at every account level (SOP1 included) before UAE PASS lets anyone in.
    if let Some(email) = text(info, "email") {
        c.insert("email".into(), email.into());
        c.insert("email_verified".into(), true.into());
    }
    if let Some(phone) = text(info, "mobile").and_then(e164) {
        c.insert("phone_number".into(), phone.into());
        c.insert("phone_number_verified".into(), true.into());
    }
    let raw = info.as_object().cloned().unwrap_or_default();
    Ok((subject, normalize_claims(&c, Some(&raw))))
}

#[async_trait::async_trait]
impl Provider for UaePass {
    fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// UAE PASS supports PKCE without a discovery document to say so: on unless `never`.
    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        Ok(self.cfg.pkce != crate::config::Pkce::Never)
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let scope = self.cfg.scope_or(DEFAULT_SCOPE, " ");
        let challenge = pkce_challenge(req.code_verifier);
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", self.cfg.client_id.as_str()),
            ("redirect_uri", req.redirect_uri),
            ("scope", scope.as_str()),
            ("state", req.state),
            ("acr_values", ACR_WEB),
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
        let code = oauth2::from_callback(self.code(cb), "UAE PASS sent no authorization code")?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", req.redirect_uri),
        ];
        if self.uses_pkce().await? {
            form.push(("code_verifier", req.code_verifier));
        }
        // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let rb = self
            .http
            .client()
            .post(&self.token_url)
            .basic_auth(enc(&self.cfg.client_id), Some(enc(&self.cfg.client_secret)))
            .header("accept", "application/json")
            .form(&form);
        let token = oauth2::exchange_code(
            &self.http,
            "UAE PASS token endpoint",
            rb,
            oauth_or_status,
            "access_token",
        )
        .await?;
        let rb = self
            .http
            .client()
            .get(&self.userinfo_url)
            .bearer_auth(&token.access_token);
        let info = oauth2::call(&self.http, ENDPOINT, rb, oauth_or_status).await?;
        let (subject, claims) = claims(&info, &self.base)?;
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
    fn every_account_level_has_a_verified_email_and_the_level_reaches_the_mapper() {
        let sop3 = json!({"sub": "UAEPASS/6f1c…", "uuid": "6f1c", "userType": "SOP3",
            "email": "ivan@example.ae", "mobile": "971500000001", "firstnameEN": "Ivan",
            "lastnameEN": "Petrov", "fullnameEN": "Ivan Petrov", "idn": "784198012345671"});
        let (sub, c) = claims(&sop3, PRODUCTION).unwrap();
        assert_eq!(sub, "UAEPASS/6f1c…");
        assert_eq!(c["iss"], PRODUCTION);
        assert_eq!(c["email_verified"], true);
        assert_eq!(c["phone_number"], "+971500000001");
        assert_eq!(c["phone_number_verified"], true);
        assert_eq!(c["raw_claims"]["userType"], "SOP3");
        assert_eq!(c["raw_claims"]["idn"], "784198012345671");
        let sop1 = json!({"sub": "UAEPASS/1", "userType": "SOP1", "email": "m@example.ae",
            "mobile": "not a number", "firstnameEN": "Maria"});
        let (_, c) = claims(&sop1, PRODUCTION).unwrap();
        assert_eq!(c["raw_claims"]["userType"], "SOP1");
        assert!(c.get("phone_number").is_none(), "only digits make a number");
        assert!(c["raw_claims"].get("idn").is_none());
        assert!(claims(&json!({"email": "x@example.ae"}), PRODUCTION).is_err());
    }

    #[test]
    fn the_environment_is_the_issuer_url() {
        let entry = |issuer: &str| {
            serde_json::from_value::<ProviderConfig>(json!({"id": "u", "provider": "uaepass",
                "client_id": "sandbox_stage", "client_secret": "s", "issuer_url": issuer}))
            .expect("entry")
        };
        assert_eq!(environment(""), PRODUCTION);
        assert_eq!(
            environment("https://stg-id.uaepass.ae/"),
            "https://stg-id.uaepass.ae"
        );
        let http = Upstream::new().expect("client");
        assert!(UaePass::make(entry(""), http.clone()).is_ok());
        let mut no_secret = entry("");
        no_secret.client_secret.clear();
        assert!(UaePass::make(no_secret, http).is_err());
    }
}
