//! "Sign in to link": an identifier collision on sign-up asks the owner to prove the account,
//! then to confirm the link explicitly.

use super::*;
use crate::engine::{Engine, Outcome};
use crate::forms::{self};
use serde_json::{Value, json};
use tessera_core::flow::{Flow, FlowKind, FlowType};
use tessera_core::identity::{Identity, IdentityState};
use tessera_core::timefmt::now_ms;
use tessera_core::ui::Node;
use tessera_core::{Error, text};
use tessera_social::Configured;
use uuid::Uuid;

impl Engine {
    /// The mapped identifier belongs to an existing account: show a login flow that explains
    /// it, offers that account's methods, and remembers the social account to link afterwards.
    pub(crate) async fn ask_to_link(
        &self,
        flow: Flow,
        provider: &Configured,
        pending: Value,
        owner: Identity,
        duplicate: &str,
        csrf_cookie: Option<&str>,
    ) -> Result<CallbackOutcome, Error> {
        let mut login = self.successor_flow(&flow, FlowKind::Login, csrf_cookie);
        login.refresh = Some(false);
        login.requested_aal = Some("aal1".into());
        let has_password = has_password(&owner);
        if has_password && self.settings.password_enabled {
            login.ui.nodes.push(
                Node::input(
                    "default",
                    "identifier",
                    "text",
                    Value::String(duplicate.into()),
                )
                .required()
                .autocomplete("username")
                .label(text::label_id()),
            );
            login.ui.nodes.push(forms::password_node(
                "password",
                "password",
                "current-password",
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
                        .label(text::login_with(p.config().display_name())),
                );
            }
        }
        login.ui.messages.push(text::login_to_link(
            duplicate,
            provider.config().display_name(),
            &owner_providers,
        ));
        let mut link = pending;
        link["identity_id"] = Value::String(owner.id.to_string());
        link["identifier"] = Value::String(duplicate.to_string());
        login.internal = json!({ "link": link });
        self.store.insert_flow(&login).await?;
        Ok(CallbackOutcome::ShowFlow(login))
    }

    /// The pending link of a browser login flow, if it is for `identity`. API flows never
    /// carry one (see [`Engine::create_oidc_identity`]); an older one is ignored.
    pub(crate) fn pending_link_for(flow: &Flow, identity: &Identity) -> Option<Value> {
        let link = flow.internal.get("link")?;
        (flow.flow_type == FlowType::Browser
            && link.get("identity_id").and_then(Value::as_str) == Some(&identity.id.to_string()))
        .then(|| link.clone())
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
        let provider_id = link
            .get("provider")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let provider_name = self
            .social
            .get(provider_id)
            .map(|p| p.config().display_name().to_string())
            .unwrap_or_else(|| provider_id.to_string());
        let account = link
            .get("identifier")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
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
        flow.internal = json!({
            "link": link,
            "link_proof": { "identity_id": identity.id.to_string(), "method": method, "at": now_ms() },
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
        let proof = flow.internal.get("link_proof").cloned();
        let Some(identity_id) = proof
            .as_ref()
            .and_then(|p| p.get("identity_id"))
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            return Err(Error::bad_request(
                "This flow has no account link to confirm: sign in first.",
            )
            .with_id("self_service_flow_link_missing"));
        };
        let method = proof
            .as_ref()
            .and_then(|p| p.get("method"))
            .and_then(Value::as_str)
            .unwrap_or("password")
            .to_string();
        let mut identity = self.store.get_identity(identity_id).await?;
        if identity.state != IdentityState::Active {
            let mut flow = flow;
            flow.ui.messages.push(text::inactive_identity());
            return self.invalid(flow).await;
        }
        self.complete_submitted(&flow).await?;
        if decision == "confirm"
            && let Some(link) = Self::pending_link_for(&flow, &identity)
        {
            add_link_from_pending(&mut identity, &link);
            self.store.update_identity(&identity).await?;
        }
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        let session = self.issue_session(&identity, &method).await?;
        let mut flow = flow;
        flow.state = "passed_challenge".into();
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
pub(crate) fn upstream_verified(pending: &Value, identifier: &str) -> bool {
    pending
        .get("verified_addresses")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter().any(|a| {
                a.get("value")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.eq_ignore_ascii_case(identifier))
            })
        })
}
