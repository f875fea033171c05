//! Second factors and assurance levels: Kratos's `selfservice.methods.{totp,lookup_secret,
//! webauthn,passkey}`, `selfservice.flows.settings.required_aal` and
//! `session.whoami.required_aal`.
//!
//! A second factor that is configured but silently ignored lets people in with one factor, so
//! a method Tessera does not implement yet may be present in a `kratos.yml` only while it is
//! off; `enabled: true` refuses the start with a message saying so (rather than the usual
//! "ignored" warning of `load::ACCEPTED_UNIMPLEMENTED`).

use crate::load::{Loaded, Location, Problem, problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Kratos's second-factor (and passwordless) methods that Tessera does not implement yet.
pub const NOT_IMPLEMENTED_FACTORS: &[&str] = &["totp", "lookup_secret", "webauthn", "passkey"];

/// Refuses every method of [`NOT_IMPLEMENTED_FACTORS`] that the document turns on. Runs on the
/// merged document before unimplemented keys are set aside, so the refusal names the line of
/// `enabled`.
pub(crate) fn refuse_unimplemented_factors(
    doc: &Value,
    locations: &HashMap<String, Location>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for method in NOT_IMPLEMENTED_FACTORS {
        let enabled = doc
            .pointer(&format!("/selfservice/methods/{method}/enabled"))
            .is_some_and(is_on);
        if enabled {
            let key = format!("selfservice.methods.{method}.enabled");
            out.push(Problem {
                location: crate::load::locate(locations, &key),
                key,
                message: format!(
                    "Tessera does not implement the `{method}` method yet, and ignoring it would let people sign in without the second factor this configuration asks for; set it to false or remove it (see docs/mfa.md)"
                ),
            });
        }
    }
    out
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
    /// `selfservice.methods.totp` when enabled. While `totp` is in [`NOT_IMPLEMENTED_FACTORS`]
    /// the start is refused before this is read, so it is `None` in a running server (engine
    /// tests set it).
    pub totp: Option<TotpSettings>,
}

/// The TOTP method as the engine runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TotpSettings {
    /// The issuer authenticator apps show; empty means the public URL's host (Kratos).
    pub issuer: String,
}

impl Default for MfaSettings {
    fn default() -> Self {
        MfaSettings {
            whoami_required_aal: RequiredAal::HighestAvailable,
            settings_required_aal: RequiredAal::HighestAvailable,
            totp: None,
        }
    }
}

/// Resolves the assurance-level keys. While no second factor is implemented (every method of
/// [`NOT_IMPLEMENTED_FACTORS`] is refused when on), no identity can hold one, so both values
/// mean aal1 for everyone: accepting them loses no safety.
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
    fn an_enabled_second_factor_refuses_the_start_naming_the_line() {
        for method in NOT_IMPLEMENTED_FACTORS {
            let yaml = format!("selfservice:\n  methods:\n    {method}:\n      enabled: true\n");
            let err = load(&yaml).expect_err(method);
            assert_eq!(err.problems.len(), 1, "{err}");
            let p = &err.problems[0];
            assert_eq!(p.key, format!("selfservice.methods.{method}.enabled"));
            assert_eq!(p.location.to_string(), "t.yml:4");
            assert!(p.message.contains("does not implement"), "{err}");
            assert!(p.message.contains("without the second factor"), "{err}");
        }
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
        assert!(load(yaml).is_err());
        let loaded = crate::load_str("t.yml", yaml, &env).expect("turned off by the environment");
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
