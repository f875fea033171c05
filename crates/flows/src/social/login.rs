//! Signing in with a known upstream subject, and the single-use completion of a social flow.

use super::*;
use crate::engine::Engine;
use tessera_core::ErrorId;
use tessera_core::flow::Flow;
use tessera_core::identity::SealedTokens;
use tessera_core::identity::{Identity, IdentityState};
use tessera_core::timefmt::now_ms;
use tessera_core::{Error, ErrorKind, text};
use tessera_social::{Configured, Mapped, Profile};

/// How often a sign-in's refresh of traits and tokens is tried against racing writes.
const LOGIN_REFRESH_ATTEMPTS: usize = 3;

impl Engine {
    /// The subject is known: sign in (re-mapping traits if the provider asks for it).
    pub(crate) async fn oidc_login(
        &self,
        mut flow: Flow,
        provider: &Configured,
        profile: &Profile,
        mapped: &Mapped,
        tokens: Option<SealedTokens>,
        identity: Identity,
    ) -> Result<CallbackOutcome, Error> {
        if identity.state != IdentityState::Active {
            flow.ui.messages.push(text::inactive_identity());
            return self.show(flow).await;
        }
        // The refresh is written only over the identity as it was read: a racing write (a
        // password change, say) must not be undone by this whole-identity write. A lost race
        // re-reads and refreshes again.
        let mut identity = identity;
        for attempt in 1..=LOGIN_REFRESH_ATTEMPTS {
            let (next, changed) =
                self.refreshed_at_login(provider, profile, mapped, tokens.as_ref(), &identity)?;
            if !changed {
                break;
            }
            match self
                .store
                .update_identity_if_unchanged(&next, identity.updated_at)
                .await
            {
                Ok(true) => {
                    identity = next;
                    break;
                }
                Ok(false) => {
                    identity = self.store.get_identity(identity.id).await?;
                    if attempt == LOGIN_REFRESH_ATTEMPTS {
                        tracing::warn!(identity = %identity.id, "sign-in: the identity kept changing; its traits and tokens were not refreshed");
                    }
                }
                Err(e) if e.kind == ErrorKind::Conflict => {
                    tracing::warn!(identity = %identity.id, "sign-in: re-mapped traits collide with another identity; kept the stored ones");
                    identity = self.store.get_identity(identity.id).await?;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        // Signing in with another provider this account already has proves ownership; the
        // owner still confirms the link explicitly (after the update above).
        let confirm_link = Self::pending_link_for(&flow, &identity).is_some();
        if confirm_link {
            let flow = self.ask_to_confirm_link(flow, &identity, "oidc").await?;
            return Ok(CallbackOutcome::ShowFlow(flow));
        }
        self.finish_sign_in(
            flow,
            identity,
            provider.id(),
            "This sign-in was already completed. Start again if you are not signed in.",
        )
        .await
    }

    /// `identity` with the traits re-mapped (`update_traits_on_login`) and the upstream tokens
    /// stored, and whether anything changed.
    fn refreshed_at_login(
        &self,
        provider: &Configured,
        profile: &Profile,
        mapped: &Mapped,
        tokens: Option<&SealedTokens>,
        identity: &Identity,
    ) -> Result<(Identity, bool), Error> {
        let mut identity = identity.clone();
        let mut changed = false;
        if provider.config().update_traits_on_login {
            let schema = self.schemas.get(&identity.schema_id)?;
            if schema.validate_traits(&mapped.traits).is_empty() {
                match self.rebuild_with_traits(&identity, mapped.traits.clone()) {
                    Ok(mut updated) => {
                        if !mapped.metadata_public.is_null() {
                            updated.metadata_public = mapped.metadata_public.clone();
                        }
                        if !mapped.metadata_admin.is_null() {
                            updated.metadata_admin = mapped.metadata_admin.clone();
                        }
                        identity = updated;
                        changed = true;
                    }
                    Err(e) => {
                        tracing::warn!(identity = %identity.id, reason = %e.reason, "update_traits_on_login: mapped traits not applied")
                    }
                }
            } else {
                tracing::warn!(identity = %identity.id, provider = provider.id(), "update_traits_on_login: mapped traits are invalid against the schema; kept the stored ones");
            }
        }
        if tokens.is_some_and(|t| !t.is_empty()) {
            set_provider_entry(&mut identity, provider.id(), &profile.subject, tokens);
            changed = true;
        }
        Ok((identity, changed))
    }

    /// Completes the flow exactly once (a request that comes second gets a stored error saying
    /// `again`). `None` when this request completed it.
    pub(crate) async fn complete_once(
        &self,
        flow: &Flow,
        again: &str,
    ) -> Result<Option<CallbackOutcome>, Error> {
        if self.store.complete_flow(flow.id, now_ms()).await? {
            return Ok(None);
        }
        self.stored_error(
            ErrorKind::BadRequest,
            ErrorId::SelfServiceFlowCompleted,
            "the flow was completed by another request",
            again,
        )
        .await
        .map(Some)
    }

    /// Completes the flow and signs `identity` in, returning to the flow's `return_to`.
    pub(crate) async fn finish_sign_in(
        &self,
        flow: Flow,
        mut identity: Identity,
        provider: &str,
        again: &str,
    ) -> Result<CallbackOutcome, Error> {
        let hooks = self.settings.hooks.login_after_oidc.post_persist();
        if flow.kind == tessera_core::flow::FlowKind::Login
            && let crate::hooks::HookOutcome::Refused(r) =
                self.run_login_hooks(hooks, &flow, &identity).await?
        {
            let mut flow = flow;
            r.apply(&mut flow);
            return self.show(flow).await;
        }
        if let Some(second) = self.complete_once(&flow, again).await? {
            return Ok(second);
        }
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        let session = self.sign_in_session(&flow, &identity, "oidc").await?;
        self.revoke_after_login(hooks, &identity, &session.0)
            .await?;
        self.count(crate::engine::Counted::SignIn, "oidc", provider);
        let return_to = self.return_to(&flow, None);
        Ok(CallbackOutcome::SignedIn {
            identity,
            session,
            return_to,
        })
    }
}
