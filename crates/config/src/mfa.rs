//! Second factors and assurance levels: Kratos's `selfservice.methods.{totp,lookup_secret,
//! webauthn,passkey}`, `selfservice.flows.settings.required_aal` and
//! `session.whoami.required_aal`.
//!
//! `totp` runs when enabled. Kratos's `enabled: true` *offers* a factor that each user may
//! enrol; the methods Tessera does not offer yet are turned off with a warning naming the
//! line, not refused: no identity here can hold such a factor (importing `lookup_secret` or
//! `webauthn` credentials is refused, and none can be enrolled), so nobody signs in with less
//! than they have, and Kratos's own quickstarts (which all offer `totp` and `lookup_secret`)
//! keep starting unchanged.

use crate::load::{Loaded, Location, Problem, problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Kratos's second-factor (and passwordless) methods that Tessera does not implement yet.
pub const NOT_IMPLEMENTED_FACTORS: &[&str] = &["webauthn", "passkey"];

/// Turns off every method of [`NOT_IMPLEMENTED_FACTORS`] that the document turns on, with one
/// warning each naming its line and why that is safe. Runs on the merged document, after the
/// copy kept as written, so a downloaded configuration still shows what the operator wrote.
pub(crate) fn set_aside_unimplemented_factors(
    doc: &mut Value,
    locations: &HashMap<String, Location>,
    warnings: &mut Vec<String>,
) {
    for method in NOT_IMPLEMENTED_FACTORS {
        let pointer = format!("/selfservice/methods/{method}/enabled");
        if let Some(v) = doc.pointer_mut(&pointer)
            && is_on(v)
        {
            *v = Value::Bool(false);
            let key = format!("selfservice.methods.{method}.enabled");
            warnings.push(format!(
                "`{key}` ({}): Tessera does not offer the `{method}` method yet, so it is off. No identity here can hold such a factor (importing one is refused), so nobody signs in with less than they have; see docs/mfa.md",
                crate::load::locate(locations, &key)
            ));
        }
    }
}

/// `true`, or a string an environment override or a quoted YAML value would carry.
fn is_on(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// `selfservice.methods.totp` (Kratos's keys; `enabled` is off by default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TotpMethod {
    pub enabled: bool,
    pub config: TotpMethodConfig,
}

/// `selfservice.methods.totp.config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TotpMethodConfig {
    /// The name authenticator apps show next to the code (Kratos: the public URL's host when
    /// empty).
    pub issuer: String,
}

/// `selfservice.methods.lookup_secret` (recovery codes; Kratos has no `config` for it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LookupSecretMethod {
    pub enabled: bool,
}

/// `selfservice.methods.webauthn` and `.passkey`: only `enabled` is read (and refused when
/// on); `config` (`rp`, `passwordless`) is kept as written for when they exist.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebauthnMethod {
    pub enabled: bool,
    pub config: Value,
}

/// `session.whoami` as far as Tessera reads it (`tokenizer` stays set aside).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WhoamiConfig {
    pub required_aal: String,
}

impl Default for WhoamiConfig {
    fn default() -> Self {
        WhoamiConfig {
            required_aal: "highest_available".into(),
        }
    }
}

/// Kratos's `required_aal` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiredAal {
    /// One factor is enough.
    Aal1,
    /// The session must be at the highest level the identity's credentials allow.
    HighestAvailable,
}

/// The assurance levels the server enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct MfaSettings {
    /// `session.whoami.required_aal`.
    pub whoami_required_aal: RequiredAal,
    /// `selfservice.flows.settings.required_aal`.
    pub settings_required_aal: RequiredAal,
    /// `selfservice.methods.totp` when enabled.
    pub totp: Option<TotpSettings>,
    /// `selfservice.methods.lookup_secret.enabled`: recovery codes.
    pub lookup_secret: bool,
}

/// The TOTP method as the engine runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TotpSettings {
    /// The issuer authenticator apps show; empty means the public URL's host (Kratos).
    pub issuer: String,
}

impl MfaSettings {
    /// Whether `identity` holds a second factor of a method the server runs: what makes its
    /// highest available level aal2. A key of a method turned off counts for nothing (Kratos:
    /// a disabled method's credentials are not offered).
    pub fn holds_second_factor(&self, identity: &tessera_core::identity::Identity) -> bool {
        use tessera_core::identity::{
            CREDENTIAL_LOOKUP_SECRET, CREDENTIAL_TOTP, LookupSecretConfig,
        };
        let totp = self.totp.is_some() && identity.credential(CREDENTIAL_TOTP).is_some();
        let codes = self.lookup_secret
            && identity
                .credential(CREDENTIAL_LOOKUP_SECRET)
                .and_then(|c| serde_json::from_value::<LookupSecretConfig>(c.config.clone()).ok())
                .is_some_and(|c| c.recovery_codes.iter().any(|r| r.used_at.is_none()));
        totp || codes
    }
}

impl Default for MfaSettings {
    fn default() -> Self {
        MfaSettings {
            whoami_required_aal: RequiredAal::HighestAvailable,
            settings_required_aal: RequiredAal::HighestAvailable,
            totp: None,
            lookup_secret: false,
        }
    }
}

/// Resolves the assurance-level keys and the `totp` method.
pub fn resolve_mfa(
    loaded: &Loaded,
    whoami_required_aal: &str,
    settings_required_aal: &str,
    p: &mut Vec<Problem>,
) -> MfaSettings {
    let totp = &loaded.config.selfservice.methods.totp;
    MfaSettings {
        totp: totp.enabled.then(|| TotpSettings {
            issuer: totp.config.issuer.clone(),
        }),
        lookup_secret: loaded.config.selfservice.methods.lookup_secret.enabled,
        whoami_required_aal: parse_aal(
            loaded,
            "session.whoami.required_aal",
            whoami_required_aal,
            p,
        ),
        settings_required_aal: parse_aal(
            loaded,
            "selfservice.flows.settings.required_aal",
            settings_required_aal,
            p,
        ),
    }
}

fn parse_aal(loaded: &Loaded, key: &str, v: &str, p: &mut Vec<Problem>) -> RequiredAal {
    match v {
        "aal1" => RequiredAal::Aal1,
        "highest_available" => RequiredAal::HighestAvailable,
        other => {
            p.push(problem(
                loaded,
                key,
                format!("`{other}` is not a required level; write `aal1` or `highest_available` (Kratos's two values)"),
            ));
            RequiredAal::HighestAvailable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<crate::Loaded, crate::ConfigError> {
        crate::load_str("t.yml", yaml, &Default::default())
    }

    #[test]
    fn an_enabled_second_factor_is_turned_off_with_a_warning_naming_the_line() {
        for method in NOT_IMPLEMENTED_FACTORS {
            let yaml = format!("selfservice:\n  methods:\n    {method}:\n      enabled: true\n");
            let loaded = load(&yaml).expect(method);
            assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
            let w = &loaded.warnings[0];
            assert!(
                w.starts_with(&format!("`selfservice.methods.{method}.enabled` (t.yml:4)")),
                "{w}"
            );
            assert!(w.contains("does not offer"), "{w}");
            assert_eq!(
                loaded.raw["selfservice"]["methods"][*method]["enabled"], true,
                "the document as written keeps it"
            );
        }
        let loaded =
            load("selfservice:\n  methods:\n    webauthn:\n      enabled: true\n").unwrap();
        assert!(
            !loaded.config.selfservice.methods.webauthn.enabled,
            "off in what runs"
        );
    }

    #[test]
    fn an_enabled_totp_runs_with_its_issuer() {
        let loaded = load(
            "selfservice:\n  methods:\n    totp:\n      enabled: true\n      config:\n        issuer: Acme\n",
        )
        .expect("loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let mut p = Vec::new();
        let mfa = resolve_mfa(&loaded, "highest_available", "aal1", &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            mfa.totp,
            Some(TotpSettings {
                issuer: "Acme".into()
            })
        );
        let off = load("selfservice:\n  methods:\n    totp:\n      enabled: false\n").unwrap();
        assert_eq!(resolve_mfa(&off, "aal1", "aal1", &mut p).totp, None);
    }

    #[test]
    fn the_environment_turns_a_factor_off_as_in_kratos() {
        let env: HashMap<String, String> = [
            ("SELFSERVICE_METHODS_TOTP_ENABLED", "false"),
            ("SELFSERVICE_METHODS_LOOKUP_SECRET_ENABLED", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let yaml = "selfservice:\n  methods:\n    totp:\n      enabled: true\n      config:\n        issuer: Kratos\n    lookup_secret:\n      enabled: true\n";
        assert_eq!(load(yaml).map(|l| l.warnings.len()).ok(), Some(0));
        let loaded = crate::load_str("t.yml", yaml, &env).expect("turned off by the environment");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert!(!loaded.config.selfservice.methods.totp.enabled);
        assert_eq!(
            loaded.config.selfservice.methods.totp.config.issuer,
            "Kratos"
        );
    }

    #[test]
    fn a_disabled_second_factor_is_accepted_with_its_config() {
        let loaded = load(
            "selfservice:\n  methods:\n    totp:\n      enabled: false\n      config:\n        issuer: X\n    webauthn:\n      config:\n        passwordless: true\n",
        )
        .expect("loads");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.config.selfservice.methods.totp.config.issuer, "X");
        assert_eq!(
            loaded.config.selfservice.methods.webauthn.config["passwordless"],
            true
        );
        let err = load("selfservice:\n  methods:\n    totp:\n      config:\n        issuerr: X\n")
            .expect_err("a typo under totp is an unknown key");
        assert_eq!(
            err.problems[0].key,
            "selfservice.methods.totp.config.issuerr"
        );
    }

    #[test]
    fn required_aal_takes_kratos_values_only() {
        let loaded = load(
            "session:\n  whoami:\n    required_aal: aal1\nselfservice:\n  flows:\n    settings:\n      required_aal: aal3\n",
        )
        .expect("loads");
        let mut p = Vec::new();
        let s = resolve_mfa(
            &loaded,
            &loaded.config.session.whoami.required_aal,
            &loaded.config.selfservice.flows.settings.required_aal,
            &mut p,
        );
        assert_eq!(s.whoami_required_aal, RequiredAal::Aal1);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "selfservice.flows.settings.required_aal");
        assert_eq!(p[0].location.to_string(), "t.yml:7");
        assert!(p[0].message.contains("highest_available"));
    }
}
