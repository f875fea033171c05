//! "Sign in to link": an identifier collision on sign-up asks the owner to prove the account,
//! then to confirm the link explicitly.

use super::*;
use crate::engine::{Engine, Outcome};
use crate::forms::{self};
use serde_json::Value;
use tessera_core::flow::{
    Flow, FlowKind, FlowState, FlowType, LinkIntent, LinkProof, PendingSocial,
};
use tessera_core::identity::{Identity, IdentityState};
use tessera_core::timefmt::now_ms;
use tessera_core::ui::{Autocomplete, Node};
use tessera_core::{Error, text};
use tessera_social::Configured;

/// How often confirming an account link is tried against racing writes.
const LINK_ATTEMPTS: usize = 3;

impl Engine {
    /// The mapped identifier belongs to an existing account: show a login flow that explains
    /// it, offers that account's methods, and remembers the social account to link afterwards.
    pub(crate) async fn ask_to_link(
        &self,
        flow: Flow,
        provider: &Configured,
        pending: PendingSocial,
        owner: Identity,
        duplicate: &str,
        csrf_cookie: Option<&str>,
    ) -> Result<CallbackOutcome, Error> {
        let mut login = self.successor_flow(&flow, FlowKind::Login, csrf_cookie);
        login.refresh = Some(false);
        login.requested_aal = Some("aal1".into());
        let has_password = has_password(&owner);
        if has_password && self.settings.password.enabled {
            login.ui.nodes.push(
                Node::input(
                    "default",
                    "identifier",
                    "text",
                    Value::String(duplicate.into()),
                )
                .required()
                .label(text::label_id()),
            );
            login.ui.nodes.push(forms::password_node(
                "password",
                "password",
                Autocomplete::CurrentPassword,
            ));
            login.ui.nodes.push(forms::submit_node(
                "password",
                "password",
                text::login_title(),
            ));
        }
        let owner_providers: Vec<String> = linked_providers(&owner)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        for p in self.social.providers() {
            if owner_providers.iter().any(|o| o == p.id()) {
                login.ui.nodes.push(
                    Node::input("oidc", "provider", "submit", Value::String(p.id().into()))
                        .label(text::login_with(p.display_name(), p.id())),
                );
            }
        }
        login.ui.messages.push(text::login_to_link(
            duplicate,
            provider.display_name(),
            &owner_providers,
        ));
        login.internal.link = Some(LinkIntent {
            pending,
            identity_id: owner.id,
            identifier: duplicate.to_string(),
        });
        self.store.insert_flow(&login).await?;
        Ok(CallbackOutcome::ShowFlow(login))
    }

    /// The pending link of a browser login flow, if it is for `identity`. API flows never
    /// carry one (see [`Engine::create_oidc_identity`]); an older one is ignored.
    pub(crate) fn pending_link_for<'f>(
        flow: &'f Flow,
        identity: &Identity,
    ) -> Option<&'f LinkIntent> {
        let link = flow.internal.link.as_ref()?;
        (flow.flow_type == FlowType::Browser && link.identity_id == identity.id).then_some(link)
    }

    /// The owner proved the account (password, or a provider it already has): before anything
    /// is linked, ask them to confirm, naming the upstream account. The proof is kept on the
    /// flow, which only this browser can submit (CSRF-bound).
    pub(crate) async fn ask_to_confirm_link(
        &self,
        mut flow: Flow,
        identity: &Identity,
        method: &str,
    ) -> Result<Flow, Error> {
        let Some(link) = Self::pending_link_for(&flow, identity) else {
            return Err(Error::internal("no pending link to confirm"));
        };
        let provider_id = link.pending.provider.as_str();
        let provider_name = self
            .social
            .get(provider_id)
            .map(|p| p.display_name().to_string())
            .unwrap_or_else(|| provider_id.to_string());
        let account = link.identifier.clone();
        flow.ui.nodes.retain(|n| n.attributes.name == "csrf_token");
        flow.ui.messages.clear();
        flow.ui
            .messages
            .push(text::confirm_link(&provider_name, &account));
        flow.ui.nodes.push(
            Node::input(
                "link",
                "link_decision",
                "submit",
                Value::String("confirm".into()),
            )
            .label(text::confirm_link_button(&provider_name)),
        );
        flow.ui.nodes.push(
            Node::input(
                "link",
                "link_decision",
                "submit",
                Value::String("skip".into()),
            )
            .label(text::skip_link_button()),
        );
        flow.internal.link_proof = Some(LinkProof {
            identity_id: identity.id,
            method: method.to_string(),
            at: now_ms(),
        });
        flow.updated_at = now_ms();
        self.store.update_flow(&flow).await?;
        Ok(flow)
    }

    /// The answer to [`Engine::ask_to_confirm_link`]: link (or not), then sign in with the
    /// method that proved the account.
    pub(crate) async fn submit_link_decision(
        &self,
        flow: Flow,
        decision: &str,
    ) -> Result<Outcome, Error> {
        let Some(proof) = flow.internal.link_proof.clone() else {
            return Err(Error::bad_request(
                "This flow has no account link to confirm: sign in first.",
            )
            .with_id(tessera_core::error::ErrorId::SelfServiceFlowLinkMissing));
        };
        let method = proof.method;
        let mut identity = self.store.get_identity(proof.identity_id).await?;
        if identity.state != IdentityState::Active {
            let mut flow = flow;
            flow.ui.messages.push(text::inactive_identity());
            return self.invalid(flow).await;
        }
        self.complete_submitted(&flow).await?;
        if decision == "confirm" {
            // Written only over the identity as read; a lost race reads it again.
            for attempt in 1..=LINK_ATTEMPTS {
                let Some(link) = Self::pending_link_for(&flow, &identity) else {
                    break;
                };
                let mut next = identity.clone();
                add_link_from_pending(&mut next, &link.pending);
                if self
                    .store
                    .update_identity_if_unchanged(&next, identity.updated_at)
                    .await?
                {
                    identity = next;
                    break;
                }
                if attempt == LINK_ATTEMPTS {
                    return Err(Error::conflict(
                        "The account kept being changed by other requests while the link was being saved, so it was not linked. Sign in again to link it.",
                    ));
                }
                identity = self.store.get_identity(identity.id).await?;
            }
        }
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        let session = self.issue_session(&identity, &method).await?;
        self.count(crate::engine::Counted::SignIn, &method, "");
        let mut flow = flow;
        flow.state = FlowState::PassedChallenge;
        let return_to = self.return_to(&flow, None);
        Ok(Outcome::Completed {
            flow,
            identity,
            session: Some(session),
            return_to,
        })
    }
}

/// Whether the upstream vouched for `identifier`: it is one of the `verified_addresses` the
/// provider's mapper declared. The mapper is the operator's statement of what the upstream
/// verifies (the default mappers list an email only when the upstream says
/// `email_verified`), as in Kratos.
pub(crate) fn upstream_verified(pending: &PendingSocial, identifier: &str) -> bool {
    pending
        .verified_addresses
        .iter()
        .any(|a| a.value.eq_ignore_ascii_case(identifier))
}
