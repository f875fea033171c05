//! Signing up with a new upstream subject: the identity straight away, or the fill-the-gaps form
//! with the pending upstream data kept on the flow.

use super::*;
use crate::engine::{Engine, Outcome};
use crate::forms::{str_field, trait_nodes};
use serde_json::{Value, json};
use tessera_core::flow::{Flow, FlowKind, FlowState, FlowType, PendingSocial, VerifiedAddress};
use tessera_core::identity::{
    CREDENTIAL_OIDC, CREDENTIAL_PASSWORD, Identity, IdentityState, SealedTokens,
};
use tessera_core::timefmt::now_ms;
use tessera_core::ui::Node;
use tessera_core::{Error, ErrorKind, text};
use tessera_social::{Configured, Mapped, Profile};

/// Pending data kept in a flow's internal state between the callback and the user's next step.
pub(crate) fn pending(
    profile: &Profile,
    provider: &str,
    mapped: &Mapped,
    tokens: Option<SealedTokens>,
) -> PendingSocial {
    PendingSocial {
        provider: provider.to_string(),
        subject: profile.subject.clone(),
        traits: mapped.traits.clone(),
        metadata_public: mapped.metadata_public.clone(),
        metadata_admin: mapped.metadata_admin.clone(),
        verified_addresses: mapped
            .verified_addresses
            .iter()
            .map(|(value, via)| VerifiedAddress {
                value: value.clone(),
                via: via.clone(),
            })
            .collect(),
        tokens,
    }
}

impl Engine {
    /// The subject is new: create the identity when the mapped traits are valid and collide
    /// with nobody, otherwise ask for the gaps or for proof of the existing account.
    pub(crate) async fn oidc_register(
        &self,
        flow: Flow,
        provider: &Configured,
        pending: PendingSocial,
        csrf_cookie: Option<&str>,
    ) -> Result<CallbackOutcome, Error> {
        let schema = self.schemas.default_schema()?;
        let traits = pending.traits.clone();
        let errors = schema.validate_traits(&traits);
        if !errors.is_empty() || !self.settings.flows.registration.enabled {
            if !self.settings.flows.registration.enabled {
                let mut flow = flow;
                flow.ui.messages.push(text::validation_generic(
                    "No account is linked to this sign-in, and sign-up is disabled on this site.",
                ));
                return self.show(flow).await;
            }
            let mut reg = self.registration_flow_for(&flow, csrf_cookie).await?;
            self.fill_gaps_form(&mut reg, provider, &traits);
            for e in errors {
                reg.ui.add_message(e.field.as_deref(), e.message);
            }
            reg.internal.pending = Some(pending);
            reg.updated_at = now_ms();
            self.store.update_flow(&reg).await?;
            return Ok(CallbackOutcome::ShowFlow(reg));
        }
        self.create_oidc_identity(flow, provider, pending, csrf_cookie)
            .await
    }

    /// The registration flow to continue in: the flow itself, or a new one when the user
    /// started from the login page (as Kratos does).
    pub(crate) async fn registration_flow_for(
        &self,
        flow: &Flow,
        csrf_cookie: Option<&str>,
    ) -> Result<Flow, Error> {
        if flow.kind == FlowKind::Registration {
            return Ok(flow.clone());
        }
        let mut reg = self.successor_flow(flow, FlowKind::Registration, csrf_cookie);
        reg.state = FlowState::ChooseMethod;
        self.store.insert_flow(&reg).await?;
        Ok(reg)
    }

    /// The fill-the-gaps form: every trait, pre-filled with what the mapper gave, and one
    /// "Sign up with X" button that submits it.
    pub(crate) fn fill_gaps_form(&self, flow: &mut Flow, provider: &Configured, traits: &Value) {
        flow.ui.nodes.retain(|n| {
            n.group == "default"
                && (n.attributes.name == "csrf_token" || n.attributes.name == "terms_accepted")
        });
        if let Ok(schema) = self.schemas.default_schema() {
            trait_nodes(&mut flow.ui, schema, "oidc", traits);
        }
        self.add_agreement_node(flow);
        flow.ui.nodes.push(
            Node::input(
                "oidc",
                "provider",
                "submit",
                Value::String(provider.id().into()),
            )
            .label(text::registration_with(
                provider.display_name(),
                provider.id(),
            )),
        );
    }

    /// Registration submit carrying the gaps: merge with the mapped traits and try again.
    pub(crate) async fn submit_oidc_registration(
        &self,
        mut flow: Flow,
        body: &Value,
        csrf_cookie: Option<&str>,
    ) -> Result<Outcome, Error> {
        let provider_id = str_field(body, "provider").unwrap_or_default().to_string();
        let pending = flow.internal.pending.clone();
        let Some(mut pending) = pending.filter(|p| p.provider == provider_id) else {
            return self.start_oidc(flow, &provider_id).await;
        };
        let Some(provider) = self.social.get(&provider_id).cloned() else {
            return self.start_oidc(flow, &provider_id).await;
        };
        let mapped = if pending.traits.is_null() {
            json!({})
        } else {
            pending.traits.clone()
        };
        let mut traits = mapped.clone();
        if let Some(submitted) = body.get("traits") {
            merge(&mut traits, submitted);
        }
        let schema = self.schemas.default_schema()?;
        // Read-only traits come from the upstream (the mapper) or nobody, never the user.
        let refused = schema.pin_read_only(&mut traits, &mapped);
        let errors = schema.validate_traits(&traits);
        if !refused.is_empty() {
            pending.traits = traits.clone();
            self.fill_gaps_form(&mut flow, &provider, &traits);
            for path in refused {
                flow.ui
                    .add_message(Some(&format!("traits.{path}")), text::read_only_trait());
            }
            for e in errors {
                flow.ui.add_message(e.field.as_deref(), e.message);
            }
            flow.internal.pending = Some(pending);
            return self.invalid(flow).await;
        }
        pending.traits = traits.clone();
        if !errors.is_empty() {
            self.fill_gaps_form(&mut flow, &provider, &traits);
            for e in errors {
                flow.ui.add_message(e.field.as_deref(), e.message);
            }
            flow.internal.pending = Some(pending);
            return self.invalid(flow).await;
        }
        match self
            .create_oidc_identity(flow.clone(), &provider, pending, csrf_cookie)
            .await?
        {
            CallbackOutcome::SignedIn {
                identity,
                session,
                return_to,
            } => Ok(Outcome::Completed {
                flow,
                identity,
                session: Some(session),
                return_to,
            }),
            CallbackOutcome::ShowFlow(f) if f.id == flow.id => Ok(Outcome::Invalid(f)),
            CallbackOutcome::ShowFlow(f) => Ok(Outcome::Continue(f)),
            CallbackOutcome::Redirect(to) => Ok(Outcome::Redirect(to)),
            CallbackOutcome::Error(_) => Err(Error::bad_request(
                "This flow was completed already and cannot be submitted again: start a new flow.",
            )
            .with_id(tessera_core::error::ErrorId::SelfServiceFlowCompleted)),
        }
    }

    pub(crate) async fn create_oidc_identity(
        &self,
        flow: Flow,
        provider: &Configured,
        pending: PendingSocial,
        csrf_cookie: Option<&str>,
    ) -> Result<CallbackOutcome, Error> {
        let schema = self.schemas.default_schema()?;
        let traits = pending.traits.clone();
        let subject = pending.subject.clone();
        // Never link silently: an identifier that already belongs to someone sends the user to
        // prove that account first.
        for id in schema.extract(&traits).password_identifiers {
            if let Some(owner) = self
                .store
                .find_identity_by_identifier(CREDENTIAL_PASSWORD, &id)
                .await?
            {
                // The same upstream account signed up a moment ago (two first sign-ins at
                // once): the owner is this very account, so sign in to it, as the insert
                // conflict below does.
                let mine = format!("{}:{subject}", provider.id());
                if owner
                    .credential(CREDENTIAL_OIDC)
                    .is_some_and(|c| c.identifiers.contains(&mine))
                {
                    let mut flow = flow;
                    flow.internal.pending = None;
                    return self
                        .finish_sign_in(
                            flow,
                            owner,
                            provider.id(),
                            "This sign-in was already completed.",
                        )
                        .await;
                }
                // Offer "sign in to link" only to a browser that started the flow (API flows
                // are bound to nobody, so a link prompt there could be handed to the victim)
                // and only when the upstream vouched for the colliding address: otherwise
                // anyone could claim someone's address upstream and ask them to link it. The
                // plain message says nothing about the existing account (enumeration).
                if flow.flow_type == FlowType::Browser && upstream_verified(&pending, &id) {
                    return self
                        .ask_to_link(flow, provider, pending, owner, &id, csrf_cookie)
                        .await;
                }
                let mut flow = flow;
                flow.internal.pending = None;
                flow.ui.messages.push(text::duplicate_on_oidc_link());
                return self.show(flow).await;
            }
        }
        let mut identity = match self.build_identity(
            &schema.id,
            traits,
            IdentityState::Active,
            pending.metadata_public.clone(),
            pending.metadata_admin.clone(),
            None,
            None,
        ) {
            Ok(i) => i,
            Err(e) => {
                let mut flow = flow;
                flow.ui.messages.push(text::validation_generic(&e.reason));
                return self.show(flow).await;
            }
        };
        add_link_from_pending(&mut identity, &pending);
        mark_verified(&mut identity, &pending);
        let hooks = &self.settings.hooks.registration_after_oidc;
        if let crate::hooks::HookOutcome::Refused(r) = self
            .run_pre_persist(hooks.pre_persist(), &flow, &mut identity, None)
            .await?
        {
            let mut flow = flow;
            r.apply(&mut flow);
            return self.show(flow).await;
        }
        if let Err(e) = self.store.insert_identity(&identity).await {
            if e.kind != ErrorKind::Conflict {
                return Err(e);
            }
            // Someone else won a race: the same subject signing in twice at once logs in to the
            // identity the other request created; anything else is an identifier collision.
            let identifier = format!("{}:{subject}", provider.id());
            if let Some(existing) = self
                .store
                .find_identity_by_identifier(CREDENTIAL_OIDC, &identifier)
                .await?
            {
                let mut flow = flow;
                flow.internal.pending = None;
                return self
                    .finish_sign_in(
                        flow,
                        existing,
                        provider.id(),
                        "This sign-in was already completed.",
                    )
                    .await;
            }
            let mut flow = flow;
            flow.ui.messages.push(text::duplicate_on_oidc_link());
            return self.show(flow).await;
        }
        if let Some(second) = self
            .complete_once(&flow, "This sign-up was already completed. Sign in.")
            .await?
        {
            return Ok(second);
        }
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        self.count(crate::engine::Counted::Registration, "oidc", provider.id());
        // Addresses the upstream did not vouch for get a verification code, as after a
        // password sign-up.
        // The verification flow belongs to this browser (a callback's flow was loaded without
        // its CSRF secret, which the browser's cookie still is).
        let mut trigger = flow.clone();
        if trigger.flow_type == FlowType::Browser {
            trigger.csrf_token = csrf_cookie.unwrap_or_default().to_string();
        }
        let verifications = self.verify_new_addresses(&trigger, &identity, None).await?;
        if self.settings.flows.registration.session_after_oidc {
            let session = self.issue_session(&identity, "oidc").await?;
            self.run_post_persist(hooks.post_persist(), &flow, &identity, Some(&session.0))
                .await?;
            let fallback = self.settings.flows.registration.oidc_return_url.clone();
            let mut return_to = self.return_to(&flow, fallback.as_ref());
            if let Some(v) = verifications.first()
                && hooks.has(&tessera_config::hooks::HookAction::ShowVerificationUi)
                && flow.flow_type == FlowType::Browser
            {
                let mut to = self.ui_url(FlowKind::Verification).clone();
                to.query_pairs_mut().append_pair("flow", &v.id.to_string());
                return_to = to.to_string();
            }
            return Ok(CallbackOutcome::SignedIn {
                identity,
                session,
                return_to,
            });
        }
        self.run_post_persist(hooks.post_persist(), &flow, &identity, None)
            .await?;
        // Without the session hook the user signs in next (seed 003).
        let mut to = self
            .settings
            .serve
            .public_base_url
            .join("self-service/login/browser")
            .map_err(|e| Error::internal(e.to_string()))?;
        if let Some(r) = &flow.return_to {
            to.query_pairs_mut().append_pair("return_to", r);
        }
        Ok(CallbackOutcome::Redirect(to.to_string()))
    }
}

/// Addresses the mapper vouched for (`verified_addresses`) start verified.
pub(crate) fn mark_verified(identity: &mut Identity, pending: &PendingSocial) {
    let now = now_ms();
    for a in &pending.verified_addresses {
        for addr in identity.verifiable_addresses.iter_mut() {
            if addr.via == a.via && addr.value.eq_ignore_ascii_case(&a.value) {
                addr.verified = true;
                addr.status = "completed".into();
                addr.verified_at = Some(now);
            }
        }
    }
}

/// Deep-merges the user's submitted traits over the mapped ones; empty strings do not erase.
pub(crate) fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if v.is_object() => merge(existing, v),
                    _ if v.as_str() == Some("") || v.is_null() => {}
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_mapped_values_and_adds_submitted_ones() {
        let mut base = json!({"name": {"first": "Ann"}, "email": "a@b.c"});
        merge(
            &mut base,
            &json!({"name": {"last": "Lee"}, "email": "", "tos": true}),
        );
        assert_eq!(
            base,
            json!({"name": {"first": "Ann", "last": "Lee"}, "email": "a@b.c", "tos": true})
        );
    }
}
