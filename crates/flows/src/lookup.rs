//! Recovery codes (Kratos's `lookup_secret`, issue 20): generated in settings, shown in that
//! settings flow until confirmed and never again, each usable once as the second factor of an
//! `aal=aal2` login, regenerated (the old ones then stop working) or disabled.
//!
//! Kratos keeps the codes in clear; here only a SHA-256 of each (over the identity id and the
//! code) is stored. A code has 12 characters of `[a-z0-9]` (62 bits), so a database dump does
//! not give them back by guessing either.

use crate::engine::Engine;
use crate::forms::{flag, str_field};
use serde_json::Value;
use tessera_core::flow::Flow;
use tessera_core::identity::{
    CREDENTIAL_LOOKUP_SECRET, Credential, Identity, LookupSecretConfig, RecoveryCode,
};
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::ui::Node;
use tessera_core::{Error, crypto, text};

/// Kratos generates 12 codes.
const CODES: usize = 12;
const CODE_LEN: usize = 12;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A fresh set of codes.
fn generate() -> Vec<String> {
    (0..CODES)
        .map(|_| {
            // 36 divides 252 evenly: bytes of 252 or more are redrawn, so no symbol is likelier.
            let mut out = String::with_capacity(CODE_LEN);
            while out.len() < CODE_LEN {
                for b in crypto::random_bytes::<32>() {
                    if b < 252 && out.len() < CODE_LEN {
                        out.push(char::from(ALPHABET[usize::from(b % 36)]));
                    }
                }
            }
            out
        })
        .collect()
}

/// What is stored of a code: its hash, bound to the identity.
pub(crate) fn code_hash(identity: &Identity, code: &str) -> String {
    crypto::token_hash(&format!(
        "{}:{}",
        identity.id,
        code.trim().to_ascii_lowercase()
    ))
}

/// The identity's recovery codes, if it has any.
pub(crate) fn codes_of(identity: &Identity) -> Option<LookupSecretConfig> {
    identity
        .credential(CREDENTIAL_LOOKUP_SECRET)
        .and_then(|c| serde_json::from_value(c.config.clone()).ok())
}

/// Whether a code matched, was used before, or matched none.
pub(crate) enum Used {
    Fresh,
    Spent,
    Invalid,
}

impl Engine {
    /// Settings: the `lookup_secret` group. Without codes: "generate"; with codes: "generate
    /// new ones" and "disable". The codes themselves are only in the flow that generated them.
    pub(crate) fn add_settings_lookup_nodes(&self, flow: &mut Flow, identity: &Identity) {
        flow.ui.nodes.retain(|n| n.group != "lookup_secret");
        flow.internal.lookup_pending = None;
        if !self.settings.mfa.lookup_secret {
            return;
        }
        flow.ui.nodes.push(button(
            "lookup_secret_regenerate",
            text::lookup_regenerate(),
        ));
        if codes_of(identity).is_some() {
            flow.ui
                .nodes
                .push(button("lookup_secret_disable", text::lookup_disable()));
        }
    }

    /// Settings, `method=lookup_secret`: `lookup_secret_regenerate` shows new codes (kept as
    /// hashes in the flow until confirmed), `lookup_secret_confirm` stores them in place of the
    /// old ones, `lookup_secret_disable` removes them. Changing codes of someone who holds a
    /// second factor takes an aal2 session, whatever `settings.required_aal` says: new codes
    /// are a second factor. `Err(flow)` is the flow to answer with its messages.
    pub(crate) async fn settings_lookup(
        &self,
        mut flow: Flow,
        identity: &mut Identity,
        body: &Value,
        session: &Session,
    ) -> Result<Result<Flow, Flow>, Error> {
        // Nothing has changed `identity` since it was read: the writes below go over that.
        let read_at = identity.updated_at;
        if session.authenticator_assurance_level != crate::mfa::AAL2
            && self.settings.mfa.holds_second_factor(identity)
        {
            let back = self
                .settings
                .serve
                .public_base_url
                .join("self-service/settings/browser")
                .map_err(|e| Error::internal(e.to_string()))?;
            return Err(self.aal2_required(Some(back.as_str())));
        }
        if flag(body, "lookup_secret_regenerate") {
            let codes = generate();
            self.add_settings_lookup_nodes(&mut flow, identity);
            flow.internal.lookup_pending =
                Some(codes.iter().map(|c| code_hash(identity, c)).collect());
            flow.ui.nodes.push(
                Node::text(
                    "lookup_secret",
                    "lookup_secret_codes",
                    text::lookup_secret_list(&codes),
                )
                .label(text::lookup_secret_label()),
            );
            flow.ui
                .nodes
                .push(button("lookup_secret_confirm", text::lookup_confirm()));
            return Ok(Ok(flow));
        }
        if flag(body, "lookup_secret_confirm") {
            let Some(hashes) = flow.internal.lookup_pending.take() else {
                flow.ui.messages.push(text::validation_generic(
                    "There are no new recovery codes to confirm: generate them first.",
                ));
                return Ok(Err(flow));
            };
            let now = now_ms();
            let mut credential = Credential {
                kind: CREDENTIAL_LOOKUP_SECRET.into(),
                identifiers: vec![identity.id.to_string()],
                config: Value::Null,
                version: 0,
                created_at: now,
                updated_at: now,
            };
            credential.set_config(&LookupSecretConfig {
                recovery_codes: hashes
                    .into_iter()
                    .map(|hash| RecoveryCode {
                        hash,
                        used_at: None,
                    })
                    .collect(),
            });
            identity
                .credentials
                .get_or_insert_with(Default::default)
                .insert(CREDENTIAL_LOOKUP_SECRET.into(), credential);
            identity.updated_at = now;
            if !self
                .save_factor_change(&mut flow, identity, read_at)
                .await?
            {
                return Ok(Err(flow));
            }
            self.add_settings_lookup_nodes(&mut flow, identity);
            return Ok(Ok(flow));
        }
        if flag(body, "lookup_secret_disable") {
            let removed = identity
                .credentials
                .as_mut()
                .and_then(|c| c.remove(CREDENTIAL_LOOKUP_SECRET))
                .is_some();
            if !removed {
                flow.ui.messages.push(text::no_lookup());
                return Ok(Err(flow));
            }
            identity.updated_at = now_ms();
            if !self
                .save_factor_change(&mut flow, identity, read_at)
                .await?
            {
                return Ok(Err(flow));
            }
            self.add_settings_lookup_nodes(&mut flow, identity);
            return Ok(Ok(flow));
        }
        flow.ui.messages.push(text::validation_generic(
            "Say what to do with the recovery codes: `lookup_secret_regenerate`, `lookup_secret_confirm` or `lookup_secret_disable`.",
        ));
        Ok(Err(flow))
    }

    /// An aal2 login with `method=lookup_secret`: marks the matching code used. A code is
    /// taken once even when two requests race: the store's counter admits the first only.
    pub(crate) async fn use_lookup_code(
        &self,
        identity: &mut Identity,
        body: &Value,
    ) -> Result<Used, Error> {
        let code = str_field(body, "lookup_secret").unwrap_or_default();
        let Some(mut config) = codes_of(identity) else {
            return Ok(Used::Invalid);
        };
        let hash = code_hash(identity, code);
        let Some(entry) = config
            .recovery_codes
            .iter_mut()
            .find(|r| crypto::constant_time_eq(&r.hash, &hash))
        else {
            return Ok(Used::Invalid);
        };
        if entry.used_at.is_some() {
            return Ok(Used::Spent);
        }
        if self
            .store
            .limit_hit(&format!("lookup-used:{hash}"), 0)
            .await?
            != 1
        {
            return Ok(Used::Spent);
        }
        // The code is ours now (the counter above); recording it as used on the identity is
        // written only over the identity as read, re-read after a lost race, so a racing
        // change to the identity is never undone.
        for _ in 0..3 {
            let read_at = identity.updated_at;
            let now = now_ms();
            mark_used(identity, &hash, now);
            if self
                .store
                .update_identity_if_unchanged(identity, read_at)
                .await?
            {
                return Ok(Used::Fresh);
            }
            *identity = self.store.get_identity(identity.id).await?;
        }
        tracing::warn!(identity = %identity.id, "a recovery code was used, but the identity kept changing, so it is not yet marked used on it (the code stays spent)");
        Ok(Used::Fresh)
    }
}

/// Marks the recovery code with `hash` used at `now` on `identity`.
fn mark_used(identity: &mut Identity, hash: &str, now: i64) {
    let Some(mut config) = codes_of(identity) else {
        return;
    };
    if let Some(entry) = config
        .recovery_codes
        .iter_mut()
        .find(|r| crypto::constant_time_eq(&r.hash, hash))
    {
        entry.used_at.get_or_insert(now);
    }
    if let Some(c) = identity
        .credentials
        .as_mut()
        .and_then(|m| m.get_mut(CREDENTIAL_LOOKUP_SECRET))
    {
        c.set_config(&config);
        c.updated_at = now;
    }
    identity.updated_at = now;
}

fn button(name: &str, label: text::Text) -> Node {
    Node::input(
        "lookup_secret",
        name,
        "submit",
        Value::String("true".into()),
    )
    .label(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_twelve_distinct_lowercase_alphanumerics() {
        let codes = generate();
        assert_eq!(codes.len(), CODES);
        let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), CODES);
        for c in &codes {
            assert_eq!(c.len(), CODE_LEN, "{c}");
            assert!(c.bytes().all(|b| ALPHABET.contains(&b)), "{c}");
        }
    }
}
