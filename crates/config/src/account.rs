//! `selfservice.methods.code`: one-time-code sign-in (`passwordless_enabled`) and codes as a
//! second factor (`mfa_enabled`) are not implemented, and ignoring either would let people in
//! differently from what the operator configured, so turning one on is refused at start. The
//! method's other keys (and the verification and recovery flows) are still set aside with a
//! warning by `load` until those flows exist.

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

/// Refuses what Tessera cannot do safely.
pub fn check_code_method(loaded: &Loaded, code: &CodeMethodConfig, p: &mut Vec<Problem>) {
    if code.passwordless_enabled {
        p.push(problem(
            loaded,
            "selfservice.methods.code.passwordless_enabled",
            "one-time-code sign-in is not implemented in Tessera yet; set it to false or remove it",
        ));
    }
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
    fn passwordless_code_sign_in_is_refused_not_ignored() {
        let p = problems(
            "selfservice:\n  methods:\n    code:\n      enabled: true\n      passwordless_enabled: true\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "selfservice.methods.code.passwordless_enabled");
        assert_eq!(p[0].location.to_string(), "t.yml:5");
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
