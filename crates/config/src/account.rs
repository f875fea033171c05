//! `selfservice.methods.code`: one-time-code sign-in and sign-up (`passwordless_enabled`,
//! `flows::code_auth`) and whether a code sign-up starts a session
//! (`selfservice.flows.registration.after.code.hooks`). Codes as a second factor
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
    // `registration.after.code` is set aside by `load` with the after-hooks of methods Tessera
    // has no hook list for; only its `session` hook is read, from the document as written.
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
    if passwordless {
        refuse_unrun_code_hooks(loaded, p);
    }
    CodeSettings {
        passwordless,
        session_after_registration,
    }
}

/// Hooks after a code sign-in or sign-up that Tessera reads: `session` (sign-up only) and
/// `show_verification_ui`, which has nothing to show since the code verified the address.
const CODE_HOOKS_READ: &[&str] = &["session", "show_verification_ui"];

/// Any other hook after a code sign-in or sign-up (`revoke_active_sessions`, a `web_hook` that
/// may refuse the person, …) would be skipped, making code sign-in weaker than the operator
/// configured it, so it stops the start instead.
fn refuse_unrun_code_hooks(loaded: &Loaded, p: &mut Vec<Problem>) {
    for flow in ["login", "registration"] {
        let key = format!("selfservice.flows.{flow}.after.code.hooks");
        let Some(hooks) = loaded
            .raw
            .pointer(&format!("/selfservice/flows/{flow}/after/code/hooks"))
            .and_then(serde_json::Value::as_array)
        else {
            continue;
        };
        for (i, h) in hooks.iter().enumerate() {
            let name = h
                .get("hook")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            if !CODE_HOOKS_READ.contains(&name) {
                p.push(problem(
                    loaded,
                    &format!("{key}.{i}"),
                    format!(
                        "hook `{name}` after a code {} is not run by Tessera yet, and skipping it would make code sign-in weaker than configured; remove it, or set selfservice.methods.code.passwordless_enabled to false",
                        if flow == "login" { "sign-in" } else { "sign-up" }
                    ),
                ));
            }
        }
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
    fn hooks_after_code_sign_in_that_would_be_skipped_stop_the_start() {
        let yaml = "selfservice:\n  methods:\n    code:\n      passwordless_enabled: true\n  flows:\n    login:\n      after:\n        code:\n          hooks:\n            - hook: revoke_active_sessions\n    registration:\n      after:\n        code:\n          hooks:\n            - hook: session\n            - hook: web_hook\n";
        let loaded = crate::load_str("t.yml", yaml, &Default::default()).expect("loads");
        let mut p = Vec::new();
        resolve_code_method(&loaded, &loaded.config.selfservice.methods.code, &mut p);
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "selfservice.flows.login.after.code.hooks.0",
                "selfservice.flows.registration.after.code.hooks.1"
            ],
            "{p:?}"
        );
        assert!(p[0].message.contains("revoke_active_sessions"), "{p:?}");
        // With code sign-in off the hooks never run, so nothing is weaker.
        let off = yaml.replace("passwordless_enabled: true", "passwordless_enabled: false");
        let loaded = crate::load_str("t.yml", &off, &Default::default()).expect("loads");
        let mut p = Vec::new();
        resolve_code_method(&loaded, &loaded.config.selfservice.methods.code, &mut p);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn the_quickstart_shape_with_code_enabled_loads() {
        assert!(problems("selfservice:\n  methods:\n    code:\n      enabled: true\n      passwordless_enabled: false\n").is_empty());
    }
}
