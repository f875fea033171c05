//! The first-factor sign-in methods' settings (`selfservice.methods.password|oidc`) and the
//! password hasher (`hashers.*`) they use. TOTP, recovery codes and one-time codes live in
//! `mfa.rs` and `lifecycle.rs`.

use crate::load::{Loaded, Problem, problem};
use crate::model::{Config, parse_size_kib};
use crate::resolve::ProviderSource;
use tessera_core::password::Argon2Params;

#[derive(Debug, Clone)]
pub struct PasswordSettings {
    pub enabled: bool,
    pub min_length: usize,
    pub identifier_similarity_check: bool,
    /// `hashers.argon2`: the parameters of new hashes.
    pub argon2: Argon2Params,
}

#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub enabled: bool,
    /// The providers as written; `tessera_social` validates each against its type.
    pub providers: Vec<ProviderSource>,
}

pub(crate) fn resolve_password(
    loaded: &Loaded,
    c: &Config,
    p: &mut Vec<Problem>,
) -> PasswordSettings {
    let memory_kib = match parse_size_kib(&c.hashers.argon2.memory) {
        Ok(k) => k,
        Err(e) => {
            p.push(problem(loaded, "hashers.argon2.memory", e));
            65536
        }
    };
    let argon2 = Argon2Params {
        memory: memory_kib,
        iterations: c.hashers.argon2.iterations,
        parallelism: c.hashers.argon2.parallelism,
    };
    if let Err(e) = argon2.validate() {
        p.push(problem(loaded, "hashers.argon2", e));
    }
    if c.hashers.algorithm != "argon2" {
        p.push(problem(loaded, "hashers.algorithm", format!("`{}` is not supported for new hashes: use argon2 (bcrypt and pbkdf2 hashes still verify on import)", c.hashers.algorithm)));
    }
    let password = &c.selfservice.methods.password;
    let min_length = password.config.min_password_length;
    if min_length < 6 {
        p.push(problem(
            loaded,
            "selfservice.methods.password.config.min_password_length",
            "must be at least 6",
        ));
    }
    PasswordSettings {
        enabled: password.enabled,
        min_length,
        identifier_similarity_check: password.config.identifier_similarity_check_enabled,
        argon2,
    }
}

pub(crate) fn resolve_oidc(loaded: &Loaded, c: &Config) -> OidcSettings {
    OidcSettings {
        enabled: c.selfservice.methods.oidc.enabled,
        providers: crate::resolve::provider_sources(loaded),
    }
}
