//! The login flow with the password method.

use crate::engine::{Engine, Outcome};
use crate::forms::{self, password_node, str_field, submit_node};
use serde_json::Value;
use tessera_core::flow::{Flow, FlowKind, FlowState, FlowType};
use tessera_core::identity::{
    CREDENTIAL_PASSWORD, IdentityState, PasswordConfig, normalize_identifier,
};
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::ui::{Autocomplete, Node};
use tessera_core::{Error, text};

impl Engine {
    /// Starts a login flow. An existing valid session refuses a new login unless `refresh`.
    pub async fn init_login(
        &self,
        flow_type: FlowType,
        request_url: &str,
        return_to: Option<&str>,
        refresh: bool,
        session: Option<&Session>,
        csrf: &str,
    ) -> Result<Flow, Error> {
        if session.is_some() && !refresh {
            return Err(Error::session_already_available());
        }
        let return_to = self.check_return_to(return_to)?;
        let mut flow = self.new_flow(FlowKind::Login, flow_type, request_url, return_to, csrf);
        flow.refresh = Some(refresh);
        flow.requested_aal = Some("aal1".into());
        if refresh && let Some(s) = session {
            flow.ui.messages.push(text::login_refresh());
            flow.internal.renews_session = Some(s.id);
        }
        if self.settings.password.enabled {
            // No autocomplete hint, as Kratos's password strategy (`addIdentifierNode`): the
            // only fitting value, `username`, is not in the enum released SDKs accept.
            let mut id = Node::input("default", "identifier", "text", Value::Null)
                .required()
                .label(text::label_id());
            if let Some(s) = session.and_then(|s| s.identity.as_ref()) {
                let schema = self.schemas.get(&s.schema_id)?;
                if let Some(first) = schema.extract(&s.traits).password_identifiers.first() {
                    id.attributes.value = Value::String(first.clone());
                }
            }
            flow.ui.nodes.push(id);
            flow.ui.nodes.push(password_node(
                "password",
                "password",
                Autocomplete::CurrentPassword,
            ));
            flow.ui
                .nodes
                .push(submit_node("password", "password", text::login_title()));
        }
        self.add_code_login_nodes(&mut flow);
        if self.settings.oidc.enabled {
            self.add_oidc_buttons(&mut flow);
        }
        self.run_before_hooks(&self.settings.hooks.login_before, &flow, None)
            .await?;
        self.store.insert_flow(&flow).await?;
        Ok(flow)
    }

    /// `client` is the address the request came from, for the failed-attempt limits. A
    /// submission without the request's session renews none (see [`Self::submit_login_with`]).
    pub async fn submit_login(
        &self,
        flow_id: &str,
        body: &Value,
        csrf_cookie: Option<&str>,
        client: Option<std::net::IpAddr>,
    ) -> Result<Outcome, Error> {
        self.submit_login_with(flow_id, body, csrf_cookie, client, None)
            .await
    }

    /// The first-factor login. `current` is the session the request carries: a refresh flow
    /// renews the session it was started from only when the same session completes it (as
    /// Kratos reads the session from the submitting request), so knowing a refresh flow's id
    /// and the password is not enough to inherit a second factor.
    pub(crate) async fn submit_login_with(
        &self,
        flow_id: &str,
        body: &Value,
        csrf_cookie: Option<&str>,
        client: Option<std::net::IpAddr>,
        current: Option<&Session>,
    ) -> Result<Outcome, Error> {
        let mut flow = self
            .flow_for_submit(FlowKind::Login, flow_id, body, csrf_cookie)
            .await?;
        crate::mfa::keep_renewal_only_for(&mut flow, current);
        if let Some(decision) = str_field(body, "link_decision") {
            let decision = decision.to_string();
            return self.submit_link_decision(flow, &decision).await;
        }
        if flow.internal.link_proof.is_some() {
            // Proven already: only the link question is left on this flow.
            flow.ui.messages.push(text::validation_generic(
                "Answer the question about linking the account.",
            ));
            return self.invalid(flow).await;
        }
        if self.settings.oidc.enabled && Self::is_oidc_submit(body) {
            let provider = str_field(body, "provider").unwrap_or_default().to_string();
            return self.start_oidc(flow, &provider).await;
        }
        if self.is_code_submit(body) {
            return self.submit_code_login(flow, body, client).await;
        }
        if forms::method(body) != "password" || !self.settings.password.enabled {
            flow.ui.messages.push(tessera_core::text::Text {
                id: tessera_core::text::MessageId::LOGIN_NO_STRATEGY,
                text: "Could not find a strategy to log you in with. Did you fill out the form correctly?".into(),
                kind: tessera_core::text::TextType::Error,
                context: Value::Null,
            });
            return self.invalid(flow).await;
        }
        let identifier = str_field(body, "identifier")
            .unwrap_or_default()
            .trim()
            .to_string();
        let password = str_field(body, "password").unwrap_or_default().to_string();
        flow.ui
            .set_value("identifier", Value::String(identifier.clone()));
        let mut missing = false;
        for (name, value) in [("identifier", &identifier), ("password", &password)] {
            if value.is_empty() {
                flow.ui
                    .add_message(Some(name), text::missing_property(name));
                missing = true;
            }
        }
        if missing {
            return self.invalid(flow).await;
        }

        let normalized = normalize_identifier(&identifier);
        // Before any hashing: a limit reached costs the server one query.
        self.limits
            .check_login(&self.store, &normalized, client)
            .await?;
        let found = self
            .store
            .find_identity_by_identifier(CREDENTIAL_PASSWORD, &normalized)
            .await?;
        let hashed = found
            .as_ref()
            .and_then(|i| i.credential(CREDENTIAL_PASSWORD))
            .and_then(|c| c.password_config())
            .map(|c| c.hashed_password);
        let (identity, hashed) = match (found, hashed) {
            (Some(i), Some(h)) => (i, h),
            _ => {
                // Spend the same time as a real check so response time does not reveal accounts.
                let hasher = self.hasher.clone();
                self.limits
                    .hash(move || hasher.verify_dummy(&password))
                    .await?;
                self.limits
                    .record_login_failure(&self.store, &normalized, client)
                    .await?;
                flow.ui.messages.push(text::invalid_credentials());
                return self.invalid(flow).await;
            }
        };
        let hasher = self.hasher.clone();
        let (pw, h) = (password.clone(), hashed.clone());
        let ok = self
            .limits
            .hash(move || hasher.verify(&pw, &h))
            .await?
            .unwrap_or(false);
        if !ok {
            self.limits
                .record_login_failure(&self.store, &normalized, client)
                .await?;
            flow.ui.messages.push(text::invalid_credentials());
            return self.invalid(flow).await;
        }
        if identity.state != IdentityState::Active {
            flow.ui.messages.push(text::inactive_identity());
            return self.invalid(flow).await;
        }
        if self.hasher.needs_rehash(&hashed) {
            self.upgrade_hash(&identity, &password).await;
        }
        if flow.internal.link.is_some() && flow.flow_type == FlowType::Browser {
            // The owner proved the account; nothing is linked until they confirm it.
            let flow = self
                .ask_to_confirm_link(flow, &identity, "password")
                .await?;
            return Ok(Outcome::Continue(flow));
        }
        // Kratos runs a login's hooks before the session exists: a refusal issues nothing.
        let hooks = self.settings.hooks.login_after_password.post_persist();
        if hooks.contains(&tessera_config::hooks::HookAction::RequireVerifiedAddress)
            && !identity.verifiable_addresses.iter().any(|a| a.verified)
        {
            flow.ui.messages.push(text::address_not_verified());
            return self.invalid(flow).await;
        }
        if let crate::hooks::HookOutcome::Refused(r) =
            self.run_login_hooks(hooks, &flow, &identity).await?
        {
            r.apply(&mut flow);
            return self.invalid(flow).await;
        }
        self.complete_submitted(&flow).await?;
        let second_factor = crate::mfa::has_second_factor(self, &identity);
        let mut identity = identity;
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        let session = self.sign_in_session(&flow, &identity, "password").await?;
        self.revoke_after_login(hooks, &identity, &session.0)
            .await?;
        self.count(crate::engine::Counted::SignIn, "password", "");
        flow.state = FlowState::PassedChallenge;
        let mut return_to = self.return_to(&flow, None);
        // Someone holding a second factor continues to it when whoami will ask for it
        // (Kratos's `highest_available`): the browser goes to the aal2 step, then back.
        if self.settings.mfa.whoami_required_aal == tessera_config::RequiredAal::HighestAvailable
            && second_factor
            && session.0.authenticator_assurance_level != crate::mfa::AAL2
            && let Some(d) = self
                .aal2_required(Some(&return_to))
                .details
                .get("redirect_browser_to")
                .and_then(Value::as_str)
        {
            return_to = d.to_string();
        }
        Ok(Outcome::Completed {
            flow,
            identity,
            session: Some(session),
            return_to,
        })
    }

    /// Re-hashes an imported bcrypt/pbkdf2 (or weaker argon2) hash with current parameters after
    /// a successful login. Failure only costs the upgrade, never the login.
    async fn upgrade_hash(&self, identity: &tessera_core::identity::Identity, password: &str) {
        let hasher = self.hasher.clone();
        let pw = password.to_string();
        let Ok(new_hash) = self.limits.hash(move || hasher.hash(&pw)).await else {
            return;
        };
        let mut updated = identity.clone();
        if let Some(c) = updated
            .credentials
            .as_mut()
            .and_then(|m| m.get_mut(CREDENTIAL_PASSWORD))
        {
            c.set_config(&PasswordConfig {
                hashed_password: new_hash,
            });
            c.updated_at = now_ms();
        }
        updated.updated_at = now_ms();
        // Only over the identity as this login read it: a password changed in between must
        // not be replaced by a fresh hash of the old password.
        match self
            .store
            .update_identity_if_unchanged(&updated, identity.updated_at)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(identity = %identity.id, "password hash not upgraded: the identity changed during the login");
            }
            Err(e) => {
                tracing::warn!(identity = %identity.id, error = %e, "could not upgrade password hash");
            }
        }
    }
}
