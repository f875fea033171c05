//! `selfservice.methods.code`: one-time-code sign-in and sign-up (`passwordless_enabled`,
//! `flows::code_auth`) and whether a code sign-up starts a session (the `session` hook of
//! `selfservice.flows.registration.after.code.hooks`; its other hooks are `hooks.rs`'s). Codes as a second factor
//! (`mfa_enabled`) are not implemented, and ignoring that would let people in with one factor
//! where the operator asked for two, so turning it on is refused at start.

use crate::load::{Loaded, Problem, problem};
use serde::{Deserialize, Serialize};

/// `selfservice.methods.code`, as far as Tessera reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CodeMethodConfig {
    pub enabled: bool,
    pub passwordless_enabled: bool,
    pub mfa_enabled: bool,
    /// Codes' lifespan and tries (`lifecycle.rs`).
    pub config: crate::lifecycle::CodeConfig,
}

impl Default for CodeMethodConfig {
    fn default() -> Self {
        CodeMethodConfig {
            enabled: true,
            passwordless_enabled: false,
            mfa_enabled: false,
            config: Default::default(),
        }
    }
}

/// What the code method does, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeSettings {
    /// Sign-in and sign-up by a code sent to an address (`enabled && passwordless_enabled`).
    pub passwordless: bool,
    /// A code sign-up signs the new identity in (`registration.after.code` has `session`).
    pub session_after_registration: bool,
}

/// Resolves the code method and refuses what Tessera cannot do safely.
pub fn resolve_code_method(
    loaded: &Loaded,
    code: &CodeMethodConfig,
    p: &mut Vec<Problem>,
) -> CodeSettings {
    check_code_method(loaded, code, p);
    // Its other hooks (web hooks, `show_verification_ui`) resolve with every stage's in
    // `hooks.rs` and run in `flows::code_auth` as a password sign-up's do.
    let session_after_registration = loaded
        .raw
        .pointer("/selfservice/flows/registration/after/code/hooks")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|hooks| {
            hooks
                .iter()
                .any(|h| h.get("hook").and_then(serde_json::Value::as_str) == Some("session"))
        });
    let passwordless = code.enabled && code.passwordless_enabled;
    CodeSettings {
        passwordless,
        session_after_registration,
    }
}

/// Refuses what Tessera cannot do safely.
pub fn check_code_method(loaded: &Loaded, code: &CodeMethodConfig, p: &mut Vec<Problem>) {
    if code.mfa_enabled {
        p.push(problem(
            loaded,
            "selfservice.methods.code.mfa_enabled",
            "codes as a second factor are not implemented in Tessera yet; set it to false or remove it",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<Problem> {
        let loaded = crate::load_str("t.yml", yaml, &Default::default()).expect("loads");
        let mut p = Vec::new();
        check_code_method(&loaded, &loaded.config.selfservice.methods.code, &mut p);
        p
    }

    #[test]
    fn passwordless_code_sign_in_is_on_and_codes_as_second_factor_are_refused() {
        let yaml = "selfservice:\n  methods:\n    code:\n      enabled: true\n      passwordless_enabled: true\n  flows:\n    registration:\n      after:\n        code:\n          hooks:\n            - hook: session\n";
        let loaded = crate::load_str("t.yml", yaml, &Default::default()).expect("loads");
        let mut p = Vec::new();
        let s = resolve_code_method(&loaded, &loaded.config.selfservice.methods.code, &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert!(s.passwordless && s.session_after_registration, "{s:?}");
        let off = crate::load_str(
            "t.yml",
            "selfservice:\n  methods:\n    code:\n      enabled: false\n      passwordless_enabled: true\n",
            &Default::default(),
        )
        .expect("loads");
        let s = resolve_code_method(&off, &off.config.selfservice.methods.code, &mut p);
        assert!(!s.passwordless && !s.session_after_registration, "{s:?}");
        let p = problems("selfservice:\n  methods:\n    code:\n      mfa_enabled: true\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].location.to_string(), "t.yml:4");
        assert!(p[0].message.contains("not implemented"), "{p:?}");
        assert_eq!(
            problems("selfservice:\n  methods:\n    code:\n      mfa_enabled: true\n")[0].key,
            "selfservice.methods.code.mfa_enabled"
        );
    }

    #[test]
    fn the_quickstart_shape_with_code_enabled_loads() {
        assert!(problems("selfservice:\n  methods:\n    code:\n      enabled: true\n      passwordless_enabled: false\n").is_empty());
    }
}
