//! Assurance levels for apps: the `acr` and `amr` claims of id_tokens and the `acr_values` an
//! app asks for (OpenID Connect Core §2, §3.1.2.1).
//!
//! `acr` is the session's Kratos level, `aal1` or `aal2`, the two values discovery lists in
//! `acr_values_supported`. `amr` names how the person signed in, in RFC 8176's vocabulary
//! (`pwd`, `otp`, `fed`, `mfa`, …), so an app needs no knowledge of Kratos's method names.
//!
//! An app asking for `aal2` sends a person who holds a second factor through the step-up
//! (Kratos's `aal=aal2` login). Someone without a second factor cannot reach aal2; the id_token
//! then says `acr: aal1`, and the app decides (`acr_values` is a preference, not a demand, in
//! OpenID Connect). Asking for `aal1` never lowers what the server requires: a person holding a
//! second factor completes it whenever `session.whoami.required_aal` is `highest_available`.

use tessera_core::session::Session;

/// The two levels: `acr_values_supported`.
pub const ACR_VALUES_SUPPORTED: &[&str] = &["aal1", "aal2"];

/// The level the app asks for is aal2: one of its space-separated `acr_values` is `aal2`.
/// Unknown values are ignored, as OpenID Connect lets a provider do with a preference list.
pub fn asks_aal2(acr_values: Option<&str>) -> bool {
    acr_values.is_some_and(|v| v.split_whitespace().any(|a| a == "aal2"))
}

/// The `acr` of a session: `aal2` only when the session is at aal2.
pub fn acr(session: &Session) -> &'static str {
    if session.authenticator_assurance_level == "aal2" {
        "aal2"
    } else {
        "aal1"
    }
}

/// The `amr` of a session (RFC 8176): one entry per kind of method, in the order they were
/// used, and `mfa` when more than one kind of factor was used.
pub fn amr(session: &Session) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for m in &session.authentication_methods {
        let value = match m.method.as_str() {
            "password" => "pwd",
            // One-time codes: an authenticator app, a recovery code, a code sent by e-mail.
            "totp" | "lookup_secret" | "code" | "link_recovery" | "code_recovery" => "otp",
            "oidc" | "saml" => "fed",
            "webauthn" | "passkey" => "hwk",
            _ => continue,
        };
        if !out.contains(&value) {
            out.push(value);
        }
    }
    if out.len() > 1 || session.authenticator_assurance_level == "aal2" {
        out.push("mfa");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::session::AuthenticationMethod;

    fn session(aal: &str, methods: &[&str]) -> Session {
        Session {
            id: uuid::Uuid::nil(),
            active: true,
            expires_at: 0,
            authenticated_at: 0,
            authenticator_assurance_level: aal.into(),
            authentication_methods: methods
                .iter()
                .map(|m| AuthenticationMethod {
                    method: (*m).into(),
                    aal: aal.into(),
                    completed_at: 0,
                })
                .collect(),
            issued_at: 0,
            identity: None,
            devices: vec![],
            identity_id: uuid::Uuid::nil(),
        }
    }

    #[test]
    fn amr_speaks_rfc8176() {
        assert_eq!(amr(&session("aal1", &["password"])), vec!["pwd"]);
        assert_eq!(
            amr(&session("aal2", &["password", "totp"])),
            vec!["pwd", "otp", "mfa"]
        );
        assert_eq!(amr(&session("aal1", &["oidc"])), vec!["fed"]);
        assert_eq!(
            amr(&session("aal1", &["password", "password"])),
            vec!["pwd"],
            "a method used twice is one entry"
        );
        assert_eq!(acr(&session("aal2", &["password", "totp"])), "aal2");
        assert_eq!(acr(&session("aal3", &["password"])), "aal1");
    }

    #[test]
    fn only_an_explicit_aal2_asks_for_it() {
        assert!(asks_aal2(Some("aal2")));
        assert!(asks_aal2(Some("urn:x aal2")));
        assert!(!asks_aal2(Some("aal1")));
        assert!(!asks_aal2(Some("aal22 xaal2")));
        assert!(!asks_aal2(None));
    }
}
