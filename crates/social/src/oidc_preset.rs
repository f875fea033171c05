//! The Kratos types that are plain OpenID Connect with a known issuer and a quirk or two:
//! `gitlab`, `auth0`, `slack`, `linkedin_v2` (and Kratos's older `linkedin`, whose profile API
//! LinkedIn retired, on the same OpenID Connect sign-in). Each is a [`Preset`] — data — over
//! the shared relying party ([`crate::oidc_rp`]); nothing of the exchange is repeated here.
//!
//! - `gitlab`: issuer `https://gitlab.com`, or a self-managed GitLab's URL as `issuer_url`;
//!   the userinfo answer is merged (as Kratos reads it), its `sub` must match the token's.
//! - `auth0`: `issuer_url` is the tenant's (`https://<tenant>.<region>.auth0.com/`, with the
//!   trailing `/` Auth0 writes); userinfo merged; `updated_at`, an RFC 3339 string at Auth0,
//!   becomes seconds since the epoch, as OIDC Core says (Kratos rewrites it too).
//! - `slack`: "Sign in with Slack", issuer `https://slack.com`. Slack answers errors with
//!   HTTP 200 and `{"ok": false, "error": "…"}`, which the token step reads as the error it is;
//!   workspace and user ids arrive as namespaced claims (`https://slack.com/team_id`, under
//!   `raw_claims`).
//! - `linkedin_v2`, `linkedin`: issuer `https://www.linkedin.com/oauth` (LinkedIn changed it
//!   from `https://www.linkedin.com` in 2024; the discovery document and tokens say the new
//!   one), userinfo merged, no PKCE (LinkedIn's discovery does not offer it and refuses a
//!   `code_verifier`), and a `locale` object `{"country": "US", "language": "en"}` becomes
//!   `en-US`.
//! - `salesforce`: issuer `https://login.salesforce.com`, or the org's My Domain
//!   (`https://<name>.my.salesforce.com`) or a sandbox's `https://test.salesforce.com` as
//!   `issuer_url`; the id_token must name that issuer, so a token of another org's My Domain
//!   or of another login server is refused. Userinfo merged (Kratos reads Salesforce's claims
//!   from it); its `updated_at`, a string at Salesforce, becomes seconds. The subject is the
//!   identity URL (`https://login.salesforce.com/id/<org id>/<user id>`), as Kratos keeps it.
//! - `netid`: netID's broker, issuer `https://broker.netid.de/` (with its `/`). netID hands
//!   out personal data only as asked through OIDC's `claims` parameter, so an entry without
//!   `requested_claims` asks for the email (essential) and the name; what the person declines
//!   on netID's page is simply absent. Userinfo merged, as Kratos reads it.

use crate::config::{ClaimsSource, ProviderConfig};
use crate::oidc::Issuer;
use crate::oidc_rp::{ClientAuth, Rp};
use crate::provider::{AuthRequest, Callback, CallbackIssuer, Profile, Provider};
use crate::upstream::{Upstream, UpstreamError};
use serde_json::{Map, Value};
use std::sync::Arc;
use url::Url;

/// What one OpenID Connect provider type adds to the shared relying party.
pub struct Preset {
    /// What messages call the upstream.
    pub name: &'static str,
    /// The issuer when `issuer_url` is empty; `None`: `issuer_url` is required.
    pub issuer: Option<&'static str>,
    /// Said when a required `issuer_url` is missing.
    pub issuer_hint: &'static str,
    /// Merge the userinfo answer whatever `claims_source` says (Kratos reads it for these).
    pub userinfo: bool,
    /// The provider's claim quirks, applied to the verified (and merged) claims.
    pub fix: fn(&mut Map<String, Value>),
    /// The OIDC `claims` request (JSON) sent when the entry sets no `requested_claims`.
    pub default_claims: Option<&'static str>,
}

fn no_fix(_: &mut Map<String, Value>) {}

/// Auth0 and Salesforce write `updated_at` as an RFC 3339 string; OIDC Core §5.1 says
/// seconds.
fn updated_at_fix(c: &mut Map<String, Value>) {
    if let Some(secs) = c
        .get("updated_at")
        .and_then(Value::as_str)
        .and_then(tessera_core::timefmt::parse_rfc3339)
        .map(|ms| ms.div_euclid(1000))
    {
        c.insert("updated_at".into(), secs.into());
    }
}

/// LinkedIn's `locale` may be `{"country": "US", "language": "en"}`: made `en-US`.
fn linkedin_fix(c: &mut Map<String, Value>) {
    if let Some(Value::Object(l)) = c.get("locale") {
        let part = |k: &str| l.get(k).and_then(Value::as_str).unwrap_or_default();
        let tag = match (part("language"), part("country")) {
            ("", _) => None,
            (lang, "") => Some(lang.to_string()),
            (lang, country) => Some(format!("{lang}-{country}")),
        };
        match tag {
            Some(t) => c.insert("locale".into(), t.into()),
            None => c.remove("locale"),
        };
    }
}

pub static GITLAB: Preset = Preset {
    name: "GitLab",
    issuer: Some("https://gitlab.com"),
    issuer_hint: "",
    userinfo: true,
    fix: no_fix,
    default_claims: None,
};

pub static AUTH0: Preset = Preset {
    name: "Auth0",
    issuer: None,
    issuer_hint: "issuer_url is required for `auth0`: your tenant's domain, e.g. https://example.eu.auth0.com/ (or your custom domain)",
    userinfo: true,
    fix: updated_at_fix,
    default_claims: None,
};

pub static SLACK: Preset = Preset {
    name: "Slack",
    issuer: Some("https://slack.com"),
    issuer_hint: "",
    userinfo: false,
    fix: no_fix,
    default_claims: None,
};

pub static LINKEDIN: Preset = Preset {
    name: "LinkedIn",
    issuer: Some("https://www.linkedin.com/oauth"),
    issuer_hint: "",
    userinfo: true,
    fix: linkedin_fix,
    default_claims: None,
};

pub static SALESFORCE: Preset = Preset {
    name: "Salesforce",
    issuer: Some("https://login.salesforce.com"),
    issuer_hint: "",
    userinfo: true,
    fix: updated_at_fix,
    default_claims: None,
};

/// What an entry without `requested_claims` asks netID for: the email, which the sign-in
/// needs, as essential, and the name (the person may decline it).
pub const NETID_DEFAULT_CLAIMS: &str = r#"{"userinfo":{"email":{"essential":true},"email_verified":{"essential":true},"given_name":null,"family_name":null}}"#;

pub static NETID: Preset = Preset {
    name: "netID",
    issuer: Some("https://broker.netid.de/"),
    issuer_hint: "",
    userinfo: true,
    fix: no_fix,
    default_claims: Some(NETID_DEFAULT_CLAIMS),
};

/// A provider of one [`Preset`].
pub struct PresetProvider {
    rp: Rp,
    preset: &'static Preset,
}

/// Makes a provider of `preset` from an entry (the types table's constructors call this).
pub fn make(
    preset: &'static Preset,
    cfg: ProviderConfig,
    http: Upstream,
) -> Result<Arc<dyn Provider>, (String, String)> {
    crate::oauth2::require_secret(
        &cfg,
        &format!(": the OAuth client's secret from {}", preset.name),
    )?;
    let issuer_url = match (cfg.issuer_url.trim(), preset.issuer) {
        ("", Some(default)) => default.to_string(),
        ("", None) => return Err(("issuer_url".into(), preset.issuer_hint.into())),
        (given, _) => given.to_string(),
    };
    let issuer = Issuer::new(&issuer_url, http.clone());
    let mut cfg = cfg;
    if cfg.requested_claims.is_null()
        && let Some(default) = preset.default_claims
    {
        cfg.requested_claims = serde_json::from_str(default).unwrap_or_default();
    }
    Ok(Arc::new(PresetProvider {
        rp: Rp::new(cfg, http, issuer, preset.name),
        preset,
    }))
}

pub fn gitlab(cfg: ProviderConfig, http: Upstream) -> Result<Arc<dyn Provider>, (String, String)> {
    make(&GITLAB, cfg, http)
}

pub fn auth0(cfg: ProviderConfig, http: Upstream) -> Result<Arc<dyn Provider>, (String, String)> {
    make(&AUTH0, cfg, http)
}

pub fn slack(cfg: ProviderConfig, http: Upstream) -> Result<Arc<dyn Provider>, (String, String)> {
    make(&SLACK, cfg, http)
}

pub fn linkedin(
    cfg: ProviderConfig,
    http: Upstream,
) -> Result<Arc<dyn Provider>, (String, String)> {
    make(&LINKEDIN, cfg, http)
}

pub fn salesforce(
    cfg: ProviderConfig,
    http: Upstream,
) -> Result<Arc<dyn Provider>, (String, String)> {
    make(&SALESFORCE, cfg, http)
}

pub fn netid(cfg: ProviderConfig, http: Upstream) -> Result<Arc<dyn Provider>, (String, String)> {
    make(&NETID, cfg, http)
}

#[async_trait::async_trait]
impl Provider for PresetProvider {
    fn config(&self) -> &ProviderConfig {
        &self.rp.cfg
    }

    async fn uses_pkce(&self) -> Result<bool, UpstreamError> {
        self.rp.uses_pkce().await
    }

    async fn authorization_url(&self, req: &AuthRequest<'_>) -> Result<Url, UpstreamError> {
        self.rp.authorization_url(req, &self.rp.scopes(), &[]).await
    }

    async fn expected_callback_issuer(&self) -> Option<CallbackIssuer> {
        self.rp.callback_issuer().await
    }

    async fn exchange(
        &self,
        cb: &Callback,
        req: &AuthRequest<'_>,
    ) -> Result<Profile, UpstreamError> {
        let r = self
            .rp
            .redeem(cb, req, ClientAuth::ByDiscovery, &self.rp.cfg.client_secret)
            .await?;
        let d = self.rp.discovery().await?;
        let id_token = r.tokens.id_token.as_deref().unwrap_or_default();
        let mut claims = self.rp.verify(id_token, req.nonce, &[&d.issuer]).await?;
        if self.preset.userinfo || self.rp.cfg.claims_source == ClaimsSource::Userinfo {
            self.rp
                .merge_userinfo(r.tokens.access_token.as_deref(), &mut claims)
                .await?;
        }
        (self.preset.fix)(&mut claims);
        crate::claims::id_token_profile(claims, r.tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auth0_updated_at_strings_become_seconds() {
        let mut c = json!({"updated_at": "2026-01-02T03:04:05.678Z"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        updated_at_fix(&mut c);
        assert_eq!(c["updated_at"], 1_767_323_045);
        let mut n = json!({"updated_at": 5})
            .as_object()
            .cloned()
            .unwrap_or_default();
        updated_at_fix(&mut n);
        assert_eq!(n["updated_at"], 5, "a number stays");
        let mut bad = json!({"updated_at": "yesterday"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        updated_at_fix(&mut bad);
        assert_eq!(
            bad["updated_at"], "yesterday",
            "what does not parse is left"
        );
    }

    #[test]
    fn netid_asks_for_the_email_unless_the_entry_says_what_to_ask() {
        let entry = |claims: Value| {
            serde_json::from_value::<ProviderConfig>(json!({"id": "n", "provider": "netid",
                "client_id": "c", "client_secret": "s", "requested_claims": claims}))
            .expect("entry")
        };
        let http = Upstream::new().expect("client");
        let p = netid(entry(Value::Null), http.clone()).expect("netid");
        let asked = &p.config().requested_claims;
        assert_eq!(asked["userinfo"]["email"]["essential"], true, "{asked}");
        let own = json!({"userinfo": {"given_name": null}});
        let p = netid(entry(own.clone()), http.clone()).expect("netid");
        assert_eq!(
            p.config().requested_claims,
            own,
            "the entry's own request wins"
        );
        let p = gitlab(entry(Value::Null), http).expect("gitlab");
        assert!(
            p.config().requested_claims.is_null(),
            "only netID has a default"
        );
    }

    #[test]
    fn linkedin_locale_objects_become_tags() {
        for (locale, want) in [
            (json!({"country": "US", "language": "en"}), json!("en-US")),
            (json!({"language": "de"}), json!("de")),
            (json!("fr_FR"), json!("fr_FR")),
        ] {
            let mut c = Map::new();
            c.insert("locale".into(), locale);
            linkedin_fix(&mut c);
            assert_eq!(c["locale"], want);
        }
        let mut c = Map::new();
        c.insert("locale".into(), json!({"country": "US"}));
        linkedin_fix(&mut c);
        assert!(c.get("locale").is_none());
    }

    #[test]
    fn auth0_needs_its_tenant_and_the_others_have_their_issuer() {
        let entry = |t: &str, extra: Value| {
            let mut v = json!({"id": "x", "provider": t, "client_id": "c", "client_secret": "s"});
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            serde_json::from_value::<ProviderConfig>(v).expect("entry")
        };
        let http = Upstream::new().expect("client");
        let Err((key, why)) = auth0(entry("auth0", json!({})), http.clone()) else {
            panic!("accepted");
        };
        assert_eq!(key, "issuer_url");
        assert!(why.contains("auth0.com"), "{why}");
        for make in [gitlab, slack, linkedin, salesforce, netid] {
            assert!(make(entry("x", json!({})), http.clone()).is_ok());
            let Err((key, _)) = make(entry("x", json!({"client_secret": ""})), http.clone()) else {
                panic!("no secret accepted");
            };
            assert_eq!(key, "client_secret");
        }
    }
}
