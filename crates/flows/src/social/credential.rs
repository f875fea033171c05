//! The identity's `oidc` credential: which providers it is linked with, adding a link, and the
//! sealed upstream tokens.

use crate::engine::Engine;
use serde_json::Value;
use std::collections::BTreeMap;
use tessera_core::flow::PendingSocial;
use tessera_core::identity::{
    CREDENTIAL_OIDC, CREDENTIAL_PASSWORD, Credential, Identity, OidcConfig, OidcLink, SealedTokens,
};
use tessera_core::timefmt::now_ms;

impl Engine {
    /// `include_credential=oidc`: the stored upstream tokens, decrypted for the admin. A token
    /// that no longer decrypts (a retired `secrets.cipher`) is shown as `null`.
    pub fn reveal_oidc_tokens(&self, identity: &mut Identity) {
        let id = identity.id;
        let Some(c) = identity
            .credentials
            .as_mut()
            .and_then(|m| m.get_mut(CREDENTIAL_OIDC))
        else {
            return;
        };
        if !c.config.get("providers").is_some_and(Value::is_array) {
            return;
        }
        let mut config = c.oidc_config();
        for link in &mut config.providers {
            let t = &mut link.tokens;
            for (name, slot) in [
                ("initial_id_token", &mut t.initial_id_token),
                ("initial_access_token", &mut t.initial_access_token),
                ("initial_refresh_token", &mut t.initial_refresh_token),
            ] {
                let Some(sealed) = slot.take() else { continue };
                match self.cipher.decrypt(&sealed) {
                    Ok(plain) => *slot = Some(plain),
                    Err(e) => {
                        tracing::warn!(identity = %id, error = %e, "stored upstream token could not be decrypted");
                        link.other.insert(name.into(), Value::Null);
                    }
                }
            }
        }
        c.set_config(&config);
    }
}

/// Whether the identity can sign in with a password (an imported identity may have an empty
/// password credential).
pub(crate) fn has_password(identity: &Identity) -> bool {
    identity
        .credential(CREDENTIAL_PASSWORD)
        .and_then(Credential::password_config)
        .is_some()
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
pub(crate) fn add_link_from_pending(identity: &mut Identity, pending: &PendingSocial) {
    if pending.provider.is_empty() || pending.subject.is_empty() {
        return;
    }
    set_provider_entry(
        identity,
        &pending.provider,
        &pending.subject,
        pending.tokens.as_ref(),
    );
}

/// Records the link `<provider>:<subject>`; an existing entry is replaced only when there are
/// new tokens to keep.
pub(crate) fn set_provider_entry(
    identity: &mut Identity,
    provider: &str,
    subject: &str,
    tokens: Option<&SealedTokens>,
) {
    let now = now_ms();
    let creds = identity.credentials.get_or_insert_with(BTreeMap::new);
    let c = creds
        .entry(CREDENTIAL_OIDC.into())
        .or_insert_with(|| Credential {
            kind: CREDENTIAL_OIDC.into(),
            identifiers: vec![],
            config: Value::Null,
            version: 0,
            created_at: now,
            updated_at: now,
        });
    let identifier = format!("{provider}:{subject}");
    if !c.identifiers.contains(&identifier) {
        c.identifiers.push(identifier);
    }
    let mut config: OidcConfig = c.oidc_config();
    let entry = OidcLink {
        provider: provider.to_string(),
        subject: subject.to_string(),
        tokens: tokens.cloned().unwrap_or_default(),
        other: Default::default(),
    };
    match config
        .providers
        .iter_mut()
        .find(|p| p.provider == provider && p.subject == subject)
    {
        Some(existing) => {
            if tokens.is_some_and(|t| !t.is_empty()) {
                *existing = entry;
            }
        }
        None => config.providers.push(entry),
    }
    c.set_config(&config);
    c.updated_at = now;
}
