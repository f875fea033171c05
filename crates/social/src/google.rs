//! `google`: Sign in with Google, OpenID Connect through Google's discovery document
//! (`https://accounts.google.com/.well-known/openid-configuration`), as Kratos's `google` type.
//!
//! What differs from `generic`:
//! - the issuer is fixed (`issuer_url` only moves it, for an emulator), and Google writes it in
//!   two ways: an id_token's `iss` is `https://accounts.google.com` **or**
//!   `accounts.google.com`; both are accepted, nothing else;
//! - `offline_access` in `scope` is not a Google scope: as Kratos does, it is taken out and
//!   `access_type=offline` asks for a refresh token instead;
//! - `google_hosted_domain` (Tessera) restricts sign-in to one Google Workspace domain: it is sent
//!   as `hd` (which only narrows Google's account chooser, anyone can edit the URL) and then
//!   **checked** in the id_token's `hd` claim, so an account of another domain, or a consumer
//!   account (no `hd`), is refused;
//! - the token request authenticates with `client_secret_post`.
//!
//! Claims come from the verified id_token (`sub`, `email`, `email_verified` as a boolean,
//! `name`, `given_name`, `family_name`, `picture`, `hd`); mappers map `email` only when
//! `email_verified` is true.

use crate::config::ProviderConfig;
use crate::oidc::Issuer;
use crate::oidc_rp::{ClientAuth, Rp};
use crate::provider::{AuthRequest, Callback, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError};
use serde_json::Value;
use std::sync::Arc;
use url::Url;

/// Google's issuer, where its discovery document is.
pub const ISSUER: &str = "https://accounts.google.com";

pub struct Google {
    rp: Rp,
    /// `google_hosted_domain`, lower-cased; empty: any Google account.
    hosted_domain: String,
}

impl Google {
    pub fn make(
        cfg: ProviderConfig,
        http: Upstream,
    ) -> Result<Arc<dyn Provider>, (String, String)> {
        crate::oauth2::require_secret(
            &cfg,
            ": the OAuth client's secret from the Google Cloud console (APIs & Services → Credentials)",
        )?;
        let hosted_domain = cfg.google_hosted_domain.trim().to_ascii_lowercase();
        if !hosted_domain.is_empty()
            && (hosted_domain.contains(['/', '@', ':', ' ']) || !hosted_domain.contains('.'))
        {
            return Err((
                "google_hosted_domain".into(),
                format!(
                    "`{}` is not a domain: give the Google Workspace domain alone, e.g. example.com",
                    cfg.google_hosted_domain
                ),
            ));
        }
        Ok(Arc::new(Self::new(cfg, http, hosted_domain)))
    }

    fn new(cfg: ProviderConfig, http: Upstream, hosted_domain: String) -> Google {
        let issuer_url = if cfg.issuer_url.trim().is_empty() {
            ISSUER.to_string()
        } else {
            cfg.issuer_url.clone()
        };
        let issuer = Issuer::new(&issuer_url, http.clone());
        Google {
            rp: Rp::new(cfg, http, issuer, "Google"),
            hosted_domain,
        }
    }

    /// The configured scopes with `openid` first and without `offline_access` (Kratos's rule:
    /// Google asks for refresh tokens with `access_type=offline`); and whether it was there.
    fn scopes(&self) -> (String, bool) {
        let offline = self.rp.cfg.scope.iter().any(|s| s == "offline_access");
        let mut s: Vec<&str> = self
            .rp
            .cfg
            .scope
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "offline_access")
            .collect();
        if !s.contains(&"openid") {
            s.insert(0, "openid");
        }
        (s.join(" "), offline)
    }

    /// The checked `hd` rule: with a hosted domain configured, the token must be for an
    /// account of exactly that domain.
    fn check_hosted_domain(&self, hd: Option<&str>) -> Result<(), UpstreamError> {
        if self.hosted_domain.is_empty() {
            return Ok(());
        }
        match hd {
            Some(d) if d.eq_ignore_ascii_case(&self.hosted_domain) => Ok(()),
            Some(d) => Err(UpstreamError::Callback(format!(
                "the Google account belongs to the domain `{d}`, but this site accepts only accounts of `{}`; sign in with an account of that domain",
                self.hosted_domain
            ))),
            None => Err(UpstreamError::Callback(format!(
                "the Google account is a personal account, but this site accepts only accounts of the Google Workspace domain `{}`; sign in with an account of that domain",
                self.hosted_domain
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Provider for Google {
    fn config(&self) -> &ProviderConfig {
        &self.rp.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        self.rp.uses_pkce().await
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        let (scope, offline) = self.scopes();
        let mut extra = vec![];
        if offline {
            extra.push(("access_type", "offline"));
        }
        if !self.hosted_domain.is_empty() {
            extra.push(("hd", self.hosted_domain.as_str()));
        }
        self.rp.authorization_url(req, &scope, &extra).await
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let r = self
            .rp
            .redeem(cb, req, ClientAuth::Post, &self.rp.cfg.client_secret)
            .await?;
        let d = self.rp.discovery().await?;
        // Google's two spellings of its issuer: with and without `https://`.
        let bare = d
            .issuer
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&d.issuer);
        let id_token = r.tokens.id_token.as_deref().unwrap_or_default();
        let mut claims = self
            .rp
            .verify(id_token, req.nonce, &[&d.issuer, bare])
            .await?;
        self.check_hosted_domain(claims.get("hd").and_then(Value::as_str))?;
        // `email_verified` is a boolean in Google's tokens; a string would be another
        // upstream's habit and is not trusted as true.
        if let Some(v) = claims.get("email_verified")
            && !v.is_boolean()
        {
            claims.insert("email_verified".into(), Value::Bool(false));
        }
        // One spelling of the issuer for mappers, whichever the token used.
        claims.insert("iss".into(), Value::String(d.issuer.clone()));
        crate::claims::id_token_profile(claims, r.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn google(extra: serde_json::Value) -> Result<Arc<dyn Provider>, (String, String)> {
        let mut v = serde_json::json!({"id": "google", "provider": "google", "client_id": "c", "client_secret": "s"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let cfg: ProviderConfig = serde_json::from_value(v).expect("entry");
        Google::make(cfg, Upstream::new().expect("client"))
    }

    #[test]
    fn a_hosted_domain_must_be_a_bare_domain_and_a_secret_is_required() {
        assert!(google(serde_json::json!({"google_hosted_domain": "example.com"})).is_ok());
        for bad in ["https://example.com", "me@example.com", "example"] {
            let Err((key, why)) = google(serde_json::json!({"google_hosted_domain": bad})) else {
                panic!("{bad} accepted");
            };
            assert_eq!(key, "google_hosted_domain");
            assert!(why.contains("example.com"), "{why}");
        }
        let Err((key, _)) = google(serde_json::json!({"client_secret": ""})) else {
            panic!("no secret accepted");
        };
        assert_eq!(key, "client_secret");
    }

    #[test]
    fn the_hosted_domain_is_checked_not_only_requested() {
        let cfg: ProviderConfig = serde_json::from_value(serde_json::json!({
            "id": "google", "provider": "google", "client_id": "c", "client_secret": "s",
            "google_hosted_domain": "Example.com",
        }))
        .expect("entry");
        let g = Google::new(cfg, Upstream::new().expect("client"), "example.com".into());
        assert!(g.check_hosted_domain(Some("EXAMPLE.com")).is_ok());
        let other = g.check_hosted_domain(Some("other.example")).unwrap_err();
        assert!(other.to_string().contains("other.example"), "{other}");
        assert_eq!(other.user_code(), "upstream_callback");
        let personal = g.check_hosted_domain(None).unwrap_err();
        assert!(
            personal.to_string().contains("personal account"),
            "{personal}"
        );
    }

    #[test]
    fn offline_access_becomes_access_type_offline() {
        let cfg: ProviderConfig = serde_json::from_value(serde_json::json!({
            "id": "google", "provider": "google", "client_id": "c", "client_secret": "s",
            "scope": ["email", "offline_access", "profile"],
        }))
        .expect("entry");
        let g = Google::new(cfg, Upstream::new().expect("client"), String::new());
        assert_eq!(g.scopes(), ("openid email profile".to_string(), true));
    }
}
