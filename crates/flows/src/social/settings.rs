//! The settings flow's `oidc` method: link and unlink buttons, linking after the callback,
//! unlinking (never the last way to sign in).

use super::*;
use crate::engine::Engine;
use serde_json::Value;
use tessera_core::ErrorId;
use tessera_core::flow::{Flow, FlowState};
use tessera_core::identity::SealedTokens;
use tessera_core::identity::{CREDENTIAL_OIDC, Identity};
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::ui::Node;
use tessera_core::{Error, ErrorKind, text};
use tessera_social::{Configured, Profile};

impl Engine {
    /// Link/unlink buttons for the settings flow.
    pub(crate) fn add_settings_oidc_nodes(&self, flow: &mut Flow, identity: &Identity) {
        let linked = linked_providers(identity);
        for p in self.social.providers() {
            let name = p.display_name();
            let node = if linked.iter().any(|(prov, _)| prov == p.id()) {
                Node::input("oidc", "unlink", "submit", Value::String(p.id().into()))
                    .label(text::unlink_provider(name))
            } else {
                Node::input("oidc", "link", "submit", Value::String(p.id().into()))
                    .label(text::link_provider(name))
            };
            flow.ui.nodes.push(node);
        }
    }

    /// The settings flow's link callback: add the provider to the signed-in identity.
    pub(crate) async fn oidc_link_in_settings(
        &self,
        mut flow: Flow,
        provider: &Configured,
        profile: &Profile,
        tokens: Option<SealedTokens>,
        session: Option<&Session>,
    ) -> Result<CallbackOutcome, Error> {
        let Some(identity_id) = flow
            .identity_id
            .filter(|id| session.is_some_and(|s| s.identity_id == *id))
        else {
            return self
                .stored_error(
                    ErrorKind::Unauthorized,
                    ErrorId::SelfServiceOidcLinkSession,
                    "linking requires the session that started the settings flow",
                    "Sign in again, then link the account from your settings.",
                )
                .await;
        };
        let identifier = format!("{}:{}", provider.id(), profile.subject);
        let mut identity = self.store.get_identity(identity_id).await?;
        match self
            .store
            .find_identity_by_identifier(CREDENTIAL_OIDC, &identifier)
            .await?
        {
            Some(other) if other.id != identity.id => {
                flow.ui.messages.push(text::validation_generic(&format!(
                    "This {} account is already linked to another account here. Sign in with it there and unlink it first.",
                    provider.display_name()
                )));
            }
            Some(_) => {
                flow.ui.messages.push(text::settings_saved());
            }
            None => {
                let mut next = identity.clone();
                if !profile.subject.is_empty() {
                    set_provider_entry(&mut next, provider.id(), &profile.subject, tokens.as_ref());
                }
                // Only over the identity as read: a racing settings change is not undone.
                match self
                    .store
                    .update_identity_if_unchanged(&next, identity.updated_at)
                    .await
                {
                    Ok(true) => {
                        identity = next;
                        flow.state = FlowState::Success;
                        flow.ui.messages.push(text::settings_saved());
                    }
                    Ok(false) => {
                        identity = self.store.get_identity(identity_id).await?;
                        flow.ui.messages.push(text::validation_generic(
                            "This account was changed by another request while this one was being saved, so nothing was saved. Link the account again.",
                        ));
                    }
                    Err(e) if e.kind == ErrorKind::Conflict => {
                        flow.ui.messages.push(text::duplicate_credentials());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        self.refresh_settings_nodes(&mut flow, &identity);
        self.show(flow).await
    }

    pub(crate) fn refresh_settings_nodes(&self, flow: &mut Flow, identity: &Identity) {
        flow.ui.nodes.retain(|n| n.group != "oidc");
        self.add_settings_oidc_nodes(flow, identity);
    }

    /// Settings `unlink`: refuses to remove the identity's last way to sign in.
    pub(crate) fn unlink_provider(
        &self,
        identity: &mut Identity,
        provider_id: &str,
    ) -> Result<(), String> {
        let linked = linked_providers(identity);
        if !linked.iter().any(|(p, _)| p == provider_id) {
            return Err(format!("`{provider_id}` is not linked to this account."));
        }
        let has_password = has_password(identity);
        if !has_password && linked.len() <= 1 {
            return Err("This is the only way to sign in to this account: set a password or link another account first, then unlink this one.".into());
        }
        if let Some(c) = identity
            .credentials
            .as_mut()
            .and_then(|m| m.get_mut(CREDENTIAL_OIDC))
        {
            let prefix = format!("{provider_id}:");
            c.identifiers.retain(|i| !i.starts_with(&prefix));
            if c.config.get("providers").is_some_and(Value::is_array) {
                let mut config = c.oidc_config();
                config.providers.retain(|p| p.provider != provider_id);
                c.set_config(&config);
            }
            c.updated_at = now_ms();
        }
        if identity
            .credential(CREDENTIAL_OIDC)
            .is_some_and(|c| c.identifiers.is_empty())
            && let Some(m) = identity.credentials.as_mut()
        {
            m.remove(CREDENTIAL_OIDC);
        }
        Ok(())
    }
}
