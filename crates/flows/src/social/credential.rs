//! The identity's `oidc` credential: which providers it is linked with, adding a link, and the
//! sealed upstream tokens.

use crate::engine::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tessera_core::identity::{CREDENTIAL_OIDC, CREDENTIAL_PASSWORD, Credential, Identity};
use tessera_core::timefmt::now_ms;

impl Engine {
    /// `include_credential=oidc`: the stored upstream tokens, decrypted for the admin.
    pub fn reveal_oidc_tokens(&self, identity: &mut Identity) {
        let Some(c) = identity
            .credentials
            .as_mut()
            .and_then(|m| m.get_mut(CREDENTIAL_OIDC))
        else {
            return;
        };
        let Some(list) = c.config.get_mut("providers").and_then(Value::as_array_mut) else {
            return;
        };
        for p in list {
            for k in [
                "initial_id_token",
                "initial_access_token",
                "initial_refresh_token",
            ] {
                if let Some(Value::String(sealed)) = p.get(k).cloned() {
                    match self.cipher.decrypt(&sealed) {
                        Ok(plain) => p[k] = Value::String(plain),
                        Err(e) => {
                            tracing::warn!(identity = %identity.id, error = %e, "stored upstream token could not be decrypted");
                            p[k] = Value::Null;
                        }
                    }
                }
            }
        }
    }
}

/// Whether the identity can sign in with a password (an imported identity may have an empty
/// password credential).
pub(crate) fn has_password(identity: &Identity) -> bool {
    identity.credential(CREDENTIAL_PASSWORD).is_some_and(|c| {
        c.config
            .get("hashed_password")
            .and_then(Value::as_str)
            .is_some_and(|h| !h.is_empty())
    })
}

/// `(provider, subject)` pairs an identity is linked with.
pub fn linked_providers(identity: &Identity) -> Vec<(String, String)> {
    identity
        .credential(CREDENTIAL_OIDC)
        .map(|c| {
            c.identifiers
                .iter()
                .filter_map(|i| {
                    i.split_once(':')
                        .map(|(p, s)| (p.to_string(), s.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Adds (or refreshes) `<provider>:<subject>` in the identity's oidc credential.
pub(crate) fn add_link_from_pending(identity: &mut Identity, pending: &Value) {
    let provider = pending
        .get("provider")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let subject = pending
        .get("subject")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if provider.is_empty() || subject.is_empty() {
        return;
    }
    let tokens = pending.get("tokens").cloned().unwrap_or(Value::Null);
    set_provider_entry(identity, provider, subject, &tokens);
}

pub(crate) fn set_provider_entry(
    identity: &mut Identity,
    provider: &str,
    subject: &str,
    tokens: &Value,
) {
    let now = now_ms();
    let creds = identity.credentials.get_or_insert_with(BTreeMap::new);
    let c = creds
        .entry(CREDENTIAL_OIDC.into())
        .or_insert_with(|| Credential {
            kind: CREDENTIAL_OIDC.into(),
            identifiers: vec![],
            config: json!({ "providers": [] }),
            version: 0,
            created_at: now,
            updated_at: now,
        });
    let identifier = format!("{provider}:{subject}");
    if !c.identifiers.contains(&identifier) {
        c.identifiers.push(identifier);
    }
    if !c.config.get("providers").is_some_and(Value::is_array) {
        c.config = json!({ "providers": [] });
    }
    let mut entry = json!({ "provider": provider, "subject": subject });
    if let Some(t) = tokens.as_object() {
        for (k, v) in t {
            entry[k] = v.clone();
        }
    }
    if let Some(list) = c.config.get_mut("providers").and_then(Value::as_array_mut) {
        match list.iter_mut().find(|p| {
            p.get("provider").and_then(Value::as_str) == Some(provider)
                && p.get("subject").and_then(Value::as_str) == Some(subject)
        }) {
            Some(existing) => {
                if tokens.as_object().is_some_and(|t| !t.is_empty()) {
                    *existing = entry;
                }
            }
            None => list.push(entry),
        }
    }
    c.updated_at = now;
}
