//! The registration flow with the password method.

use crate::engine::{Engine, Outcome};
use crate::forms::{self, password_node, str_field, submit_node, trait_nodes};
use crate::hooks::HookOutcome;
use serde_json::Value;
use tessera_core::flow::{Flow, FlowKind, FlowState, FlowType};
use tessera_core::identity::IdentityState;
use tessera_core::session::Session;
use tessera_core::ui::Autocomplete;
use tessera_core::{Error, ErrorKind, text};

impl Engine {
    pub async fn init_registration(
        &self,
        flow_type: FlowType,
        request_url: &str,
        return_to: Option<&str>,
        session: Option<&Session>,
        csrf: &str,
    ) -> Result<Flow, Error> {
        if !self.settings.flows.registration.enabled {
            return Err(Error::bad_request(
                "Registration is disabled: selfservice.flows.registration.enabled is false.",
            )
            .with_id(tessera_core::error::ErrorId::SelfServiceFlowDisabled));
        }
        if session.is_some() {
            return Err(Error::session_already_available());
        }
        let return_to = self.check_return_to(return_to)?;
        let mut flow = self.new_flow(
            FlowKind::Registration,
            flow_type,
            request_url,
            return_to,
            csrf,
        );
        if self.settings.password.enabled {
            let schema = self.schemas.default_schema()?;
            trait_nodes(&mut flow.ui, schema, "password", &Value::Null);
            flow.ui.nodes.push(password_node(
                "password",
                "password",
                Autocomplete::NewPassword,
            ));
            flow.ui.nodes.push(submit_node(
                "password",
                "password",
                text::registration_title(),
            ));
        }
        self.add_code_registration_nodes(&mut flow)?;
        if self.settings.oidc.enabled {
            self.add_oidc_buttons(&mut flow);
        }
        self.add_agreement_node(&mut flow);
        self.run_before_hooks(&self.settings.hooks.registration_before, &flow, None)
            .await?;
        self.store.insert_flow(&flow).await?;
        Ok(flow)
    }

    /// Adds the agreement checkbox when the sign-in experience has terms or privacy links.
    pub(crate) fn add_agreement_node(&self, flow: &mut Flow) {
        let x = &self.settings.experience;
        if x.requires_agreement() && flow.ui.node_mut("terms_accepted").is_none() {
            flow.ui.nodes.push(forms::agreement_node(
                x.terms_url.as_ref().map(|u| u.as_str()),
                x.privacy_url.as_ref().map(|u| u.as_str()),
            ));
        }
    }

    pub async fn submit_registration(
        &self,
        flow_id: &str,
        body: &Value,
        csrf_cookie: Option<&str>,
    ) -> Result<Outcome, Error> {
        self.submit_registration_from(flow_id, body, csrf_cookie, None)
            .await
    }

    /// [`Self::submit_registration`] with the client's address, which a code sign-up's send
    /// limits count.
    pub async fn submit_registration_from(
        &self,
        flow_id: &str,
        body: &Value,
        csrf_cookie: Option<&str>,
        client: Option<std::net::IpAddr>,
    ) -> Result<Outcome, Error> {
        let mut flow = self
            .flow_for_submit(FlowKind::Registration, flow_id, body, csrf_cookie)
            .await?;
        // The code step: the agreement was given with the first step, which sent the code.
        if flow.state == FlowState::SentEmail && self.is_code_submit(body) {
            return self.submit_code_registration(flow, body, client).await;
        }
        // Every way of signing up here (password, a social button, the fill-the-gaps form)
        // needs the agreement when the experience asks for one; the checkbox is not just HTML.
        if self.settings.experience.requires_agreement()
            && body.get("terms_accepted") != Some(&Value::Bool(true))
        {
            flow.ui.reset_messages();
            self.add_agreement_node(&mut flow);
            if let Some(traits) = body.get("traits") {
                for n in flow.ui.nodes.iter_mut() {
                    if let Some(path) = n.attributes.name.strip_prefix("traits.")
                        && let Some(v) = tessera_core::schema::lookup(traits, path)
                    {
                        n.attributes.value = v.clone();
                    }
                }
            }
            // Say everything that is wrong at once: the traits of a password sign-up or of the
            // fill-the-gaps form (merged with what the provider gave) are checked too.
            if let (Ok(schema), Some(submitted)) =
                (self.schemas.default_schema(), body.get("traits"))
            {
                let traits = match flow.internal.pending.as_ref().map(|p| &p.traits) {
                    Some(mapped) => {
                        let mut t = mapped.clone();
                        crate::social::merge(&mut t, submitted);
                        Some(t)
                    }
                    None if matches!(forms::method(body), "password" | "code") => {
                        Some(submitted.clone())
                    }
                    None => None,
                };
                for e in traits
                    .map(|t| schema.validate_traits(&t))
                    .unwrap_or_default()
                {
                    flow.ui.add_message(e.field.as_deref(), e.message);
                }
            }
            flow.ui
                .add_message(Some("terms_accepted"), text::agreement_required());
            return self.invalid(flow).await;
        }
        if self.settings.oidc.enabled && Self::is_oidc_submit(body) {
            return self.submit_oidc_registration(flow, body, csrf_cookie).await;
        }
        if self.is_code_submit(body) {
            return self.submit_code_registration(flow, body, client).await;
        }
        if forms::method(body) != "password" || !self.settings.password.enabled {
            flow.ui.messages.push(text::validation_generic("Could not find a strategy to sign you up with. Did you fill out the form correctly?"));
            return self.invalid(flow).await;
        }
        let schema = self.schemas.default_schema()?;
        let mut traits = body
            .get("traits")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        let mut failed = false;
        if traits.is_object() {
            for path in schema.pin_read_only(&mut traits, &Value::Null) {
                flow.ui
                    .add_message(Some(&format!("traits.{path}")), text::read_only_trait());
                failed = true;
            }
        }
        for f in &schema.fields {
            if let Some(v) = tessera_core::schema::lookup(&traits, &f.path) {
                flow.ui.set_value(&format!("traits.{}", f.path), v.clone());
            }
        }
        let password = str_field(body, "password").unwrap_or_default().to_string();
        if !traits.is_object() {
            flow.ui.messages.push(text::validation_generic(
                "`traits` must be an object of the identity's traits.",
            ));
            return self.invalid(flow).await;
        }
        for e in schema.validate_traits(&traits) {
            flow.ui.add_message(e.field.as_deref(), e.message);
            failed = true;
        }
        let identifiers = schema.extract(&traits).password_identifiers;
        if password.is_empty() {
            flow.ui
                .add_message(Some("password"), text::missing_property("password"));
            failed = true;
        } else if let Err(reason) = self.check_password_policy(&password, &identifiers) {
            flow.ui
                .add_message(Some("password"), text::password_policy(&reason));
            failed = true;
        }
        if identifiers.is_empty() && !failed {
            flow.ui.messages.push(text::validation_generic("The identity schema marks no trait as a password identifier (ory.sh/kratos credentials.password.identifier), so a password cannot be used to sign up."));
            failed = true;
        }
        if failed {
            return self.invalid(flow).await;
        }

        let hasher = self.hasher.clone();
        let pw = password.clone();
        let hashed = self.limits.hash(move || hasher.hash(&pw)).await?;
        let mut identity = match self.build_identity(
            &schema.id,
            traits,
            IdentityState::Active,
            Value::Null,
            Value::Null,
            Some(hashed),
            None,
        ) {
            Ok(i) => i,
            Err(e) => {
                flow.ui.messages.push(text::validation_generic(&e.reason));
                return self.invalid(flow).await;
            }
        };
        // Blocking web hooks see (and may change) the identity before anything is written.
        let hooks = &self.settings.hooks.registration_after_password;
        if let HookOutcome::Refused(r) = self
            .run_pre_persist(hooks.pre_persist(), &flow, &mut identity, None)
            .await?
        {
            r.apply(&mut flow);
            return self.invalid(flow).await;
        }
        self.complete_submitted(&flow).await?;
        if let Err(e) = self.store.insert_identity(&identity).await {
            if e.kind == ErrorKind::Conflict {
                // Reopen the flow so the user can fix the identifier and resubmit.
                flow.state = FlowState::ChooseMethod;
                flow.ui.messages.push(text::duplicate_credentials());
                return self.invalid(flow).await;
            }
            return Err(e);
        }
        let mut identity = identity;
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        self.count(crate::engine::Counted::Registration, "password", "");
        let session = if self.settings.flows.registration.session_after_password {
            Some(self.issue_session(&identity, "password").await?)
        } else {
            None
        };
        self.run_post_persist(
            hooks.post_persist(),
            &flow,
            &identity,
            session.as_ref().map(|(s, _)| s),
        )
        .await?;
        flow.state = FlowState::PassedChallenge;
        let fallback = self.settings.flows.registration.return_url.clone();
        let mut return_to = self.return_to(&flow, fallback.as_ref());
        // Verification on: the new addresses get their codes, and `show_verification_ui`
        // sends a browser on to the code's page.
        let verifications = self.verify_new_addresses(&flow, &identity, None).await?;
        if let Some(v) = verifications.first() {
            flow.continue_with.push(self.show_verification_ui(v));
            if hooks.has(&tessera_config::hooks::HookAction::ShowVerificationUi)
                && flow.flow_type == FlowType::Browser
            {
                let mut to = self.ui_url(FlowKind::Verification).clone();
                to.query_pairs_mut().append_pair("flow", &v.id.to_string());
                return_to = to.to_string();
            }
        }
        Ok(Outcome::Completed {
            flow,
            identity,
            session,
            return_to,
        })
    }

    /// Kratos's policy: minimum length and not too similar to the identifier.
    pub fn check_password_policy(
        &self,
        password: &str,
        identifiers: &[String],
    ) -> Result<(), String> {
        let len = password.chars().count();
        if len < self.settings.password.min_length {
            return Err(format!(
                "password length must be at least {} characters but only got {len}.",
                self.settings.password.min_length
            ));
        }
        let ids: Vec<&str> = if self.settings.password.identifier_similarity_check {
            identifiers.iter().map(String::as_str).collect()
        } else {
            vec![]
        };
        use tessera_core::password::PasswordPolicyError as P;
        match tessera_core::password::check_policy(
            password,
            self.settings.password.min_length,
            &ids,
        ) {
            Ok(()) => Ok(()),
            Err(P::TooShort { .. }) => Err(format!(
                "password length must be at least {} characters but only got {len}.",
                self.settings.password.min_length
            )),
            Err(P::TooLong { max }) => {
                Err(format!("password length must be at most {max} characters."))
            }
            Err(P::TooSimilarToIdentifier) => {
                Err("the password is too similar to the user identifier.".into())
            }
        }
    }
}
