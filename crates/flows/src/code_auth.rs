//! One-time-code sign-in and sign-up: Kratos's `code` method with
//! `selfservice.methods.code.passwordless_enabled`.
//!
//! Both are two steps on one flow. The first (`method=code` with `identifier`, or with
//! `traits` on registration) sends a code and moves the flow to `sent_email`; the second
//! (`method=code` with `code`) checks it; `resend=code` goes back to the first. The codes are
//! the verification and recovery codes of `lifecycle.rs`: six digits kept only as an HMAC
//! bound to their flow (`FlowInternal::code`), valid for `methods.code.config.lifespan`, used
//! once (the flow is completed by a conditional update), at most `max_submissions` wrong tries
//! per flow before the person starts over on a fresh flow, and sends limited per address and
//! per client address per hour.
//!
//! Identifiers are the traits the schema marks `credentials.code.identifier` (`via: email` or
//! `sms`), kept as the identity's `code` credential; phone numbers in E.164. A sign-in with an
//! address nobody holds gets exactly the answer a known one gets and nothing is sent (Kratos
//! answers 4000035 "account does not exist", which tells anyone which addresses have
//! accounts). A sign-up sends the code before checking that the address is free, so the answer
//! does not say whether it is; a taken address is refused when the code is entered. A sign-up
//! code goes to every code address of the new traits (one code for all, as Kratos), so an
//! address is marked verified by it only when it was the only one: otherwise nobody knows
//! which inbox or phone the code was read from, and each address is verified on its own.
//!
//! The hooks after a code sign-in or sign-up (`selfservice.flows.{login,registration}.after
//! .code.hooks`) run as a password's do: a login's web hooks and `require_verified_address`
//! before the session, `revoke_active_sessions` after it; a sign-up's blocking web hooks
//! (`can_interrupt`, `response.parse`) before the identity is written, the others after. The
//! code is checked first and the flow completed only once the hooks let it through; a refusal
//! spends the code and answers with a fresh flow carrying the hook's messages.

use crate::engine::{Engine, Outcome};
use crate::forms::{self, str_field, submit_node, trait_nodes};
use crate::hooks::{HookOutcome, Refusal};
use crate::lifecycle::flow_language;
use serde_json::{Value, json};
use tessera_config::hooks::HookAction;
use tessera_core::flow::{Flow, FlowKind, FlowState, PendingCode};
use tessera_core::identity::{CREDENTIAL_CODE, IdentityState, normalize_identifier, phone_e164};
use tessera_core::timefmt::now_ms;
use tessera_core::ui::{Autocomplete, Node};
use tessera_core::{Error, ErrorKind, crypto, text};
use tessera_courier::TemplateType;
use uuid::Uuid;

/// Kratos's node group and method name.
pub const CODE: &str = "code";

impl Engine {
    /// The login form's code nodes (Kratos's `PopulateMethod`): the shared `identifier` (when
    /// the password method did not add it) and the "Sign in with code" submit.
    pub(crate) fn add_code_login_nodes(&self, flow: &mut Flow) {
        if !self.settings.code.passwordless {
            return;
        }
        if flow.ui.node_mut("identifier").is_none() {
            flow.ui.nodes.push(
                Node::input("default", "identifier", "text", Value::Null)
                    .required()
                    .label(text::label_id()),
            );
        }
        flow.ui
            .nodes
            .push(submit_node(CODE, CODE, text::login_code()));
    }

    /// The registration form's code nodes: the traits and "Sign up with code", when the
    /// schema has a code identifier to send the code to.
    pub(crate) fn add_code_registration_nodes(&self, flow: &mut Flow) -> Result<(), Error> {
        if !self.settings.code.passwordless {
            return Ok(());
        }
        let schema = self.schemas.default_schema()?;
        if !schema.fields.iter().any(|f| f.code_via.is_some()) {
            return Ok(());
        }
        trait_nodes(&mut flow.ui, schema, CODE, &Value::Null);
        flow.ui
            .nodes
            .push(submit_node(CODE, CODE, text::registration_code()));
        Ok(())
    }

    /// Whether a submission is for the code method.
    pub(crate) fn is_code_submit(&self, body: &Value) -> bool {
        self.settings.code.passwordless && forms::method(body) == CODE
    }

    /// `POST /self-service/login?flow=` with `method=code`.
    pub(crate) async fn submit_code_login(
        &self,
        mut flow: Flow,
        body: &Value,
        client: Option<std::net::IpAddr>,
    ) -> Result<Outcome, Error> {
        if flow.requested_aal.as_deref() == Some(crate::mfa::AAL2) {
            flow.ui.messages.push(text::validation_generic(
                "A code is a first factor here: codes as a second factor are not enabled.",
            ));
            return self.invalid(flow).await;
        }
        let resend = str_field(body, "resend") == Some(CODE);
        if flow.state == FlowState::SentEmail && !resend {
            return self.check_login_code(flow, body).await;
        }
        let identifier = str_field(body, "identifier")
            .or_else(|| str_field(body, "address"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if identifier.is_empty() {
            flow.ui
                .add_message(Some("identifier"), text::missing_property("identifier"));
            return self.invalid(flow).await;
        }
        let (via, address) = code_address(&identifier);
        if let Some(minutes) = self.code_send_limited(&address, client).await? {
            flow.ui.set_value("identifier", Value::String(identifier));
            flow.ui.messages.push(text::code_sends_limited(minutes));
            return self.invalid(flow).await;
        }
        flow.internal.code = None;
        let owner = self
            .store
            .find_identity_by_identifier(CREDENTIAL_CODE, &address)
            .await?;
        if let Some(identity) = owner {
            // The channel the schema gives this address (a phone number may be texted only).
            let via = identity
                .credential(CREDENTIAL_CODE)
                .and_then(|c| {
                    serde_json::from_value::<tessera_core::identity::CodeConfig>(c.config.clone())
                        .ok()
                })
                .and_then(|c| {
                    c.addresses
                        .into_iter()
                        .find(|a| a.address == address)
                        .map(|a| a.channel)
                })
                .unwrap_or_else(|| via.to_string());
            let code = self.new_code(&mut flow, &via, &address, identity.id, false);
            let data = json!({
                "To": address,
                "LoginCode": code,
                "ExpiresInMinutes": self.code_minutes(),
                "Identity": {"id": identity.id, "traits": identity.traits},
                "RequestURL": flow.request_url,
            });
            self.queue_code(&via, &address, TemplateType::LoginCodeValid, &flow, &data)
                .await?;
        }
        flow.state = FlowState::SentEmail;
        flow.active = Some(CODE.into());
        login_code_form(&mut flow, &identifier);
        self.invalid(flow).await
    }

    /// The second step of a code sign-in: the code, then a session.
    async fn check_login_code(&self, mut flow: Flow, body: &Value) -> Result<Outcome, Error> {
        let Some(pending) = self.take_code(&mut flow, body).await? else {
            return self.code_refused(flow).await;
        };
        let mut identity = self.store.get_identity(pending.identity_id).await?;
        if identity.state != IdentityState::Active {
            flow.ui.messages.push(text::inactive_identity());
            return self.invalid(flow).await;
        }
        // A code that arrived proves the address, as in Kratos: `require_verified_address`
        // sees it verified.
        for a in identity.verifiable_addresses.iter_mut() {
            if a.via == pending.via && a.value == pending.address {
                a.verified = true;
            }
        }
        let hooks = self.settings.hooks.login_after_code.post_persist();
        if hooks.contains(&HookAction::RequireVerifiedAddress)
            && !identity.verifiable_addresses.iter().any(|a| a.verified)
        {
            let refusal = Refusal {
                messages: vec![(None, text::address_not_verified())],
            };
            return self.code_hook_refused(flow, &pending, refusal).await;
        }
        if let HookOutcome::Refused(r) = self.run_login_hooks(hooks, &flow, &identity).await? {
            return self.code_hook_refused(flow, &pending, r).await;
        }
        self.complete_submitted(&flow).await?;
        self.store
            .mark_address_verified(identity.id, &pending.via, &pending.address, now_ms())
            .await?;
        identity = self.store.get_identity(identity.id).await?;
        let second_factor = crate::mfa::has_second_factor(self, &identity);
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        let session = self.sign_in_session(&flow, &identity, CODE).await?;
        self.revoke_after_login(hooks, &identity, &session.0)
            .await?;
        self.count(crate::engine::Counted::SignIn, CODE, "");
        flow.state = FlowState::PassedChallenge;
        let mut return_to = self.return_to(&flow, None);
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

    /// `POST /self-service/registration?flow=` with `method=code`.
    pub(crate) async fn submit_code_registration(
        &self,
        mut flow: Flow,
        body: &Value,
        client: Option<std::net::IpAddr>,
    ) -> Result<Outcome, Error> {
        let resend = str_field(body, "resend") == Some(CODE);
        if flow.state == FlowState::SentEmail && !resend {
            return self.check_registration_code(flow, body).await;
        }
        let schema = self.schemas.default_schema()?;
        let mut traits = match (resend, flow.internal.code.as_ref()) {
            // Resend: the traits the first code was for (the hidden fields echo them).
            (true, Some(p)) if !p.traits.is_null() => p.traits.clone(),
            _ => body
                .get("traits")
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
        };
        if !traits.is_object() {
            flow.ui.messages.push(text::validation_generic(
                "`traits` must be an object of the identity's traits.",
            ));
            return self.invalid(flow).await;
        }
        let mut failed = false;
        for path in schema.pin_read_only(&mut traits, &Value::Null) {
            flow.ui
                .add_message(Some(&format!("traits.{path}")), text::read_only_trait());
            failed = true;
        }
        for f in &schema.fields {
            if let Some(v) = tessera_core::schema::lookup(&traits, &f.path) {
                flow.ui.set_value(&format!("traits.{}", f.path), v.clone());
            }
        }
        for e in schema.validate_traits(&traits) {
            flow.ui.add_message(e.field.as_deref(), e.message);
            failed = true;
        }
        if failed {
            return self.invalid(flow).await;
        }
        let addresses = schema.extract(&traits).code_identifiers;
        let Some((via, address)) = addresses.first().cloned() else {
            flow.ui.messages.push(text::validation_generic(
                "The identity schema marks no trait as a code identifier (ory.sh/kratos credentials.code.identifier), or it was left empty: fill in the address the code goes to.",
            ));
            return self.invalid(flow).await;
        };
        if addresses
            .iter()
            .any(|(via, a)| via == "sms" && phone_e164(a).is_none())
        {
            let field = schema
                .fields
                .iter()
                .find(|f| f.code_via.as_deref() == Some("sms"))
                .map(|f| format!("traits.{}", f.path));
            flow.ui.add_message(
                field.as_deref(),
                text::validation_generic(
                    "Write the phone number with its country code, such as +86 138 0013 8000 or +7 912 345-67-89.",
                ),
            );
            return self.invalid(flow).await;
        }
        // Every address counts against its limit before anything is sent.
        for (_, a) in &addresses {
            if let Some(minutes) = self.code_send_limited(a, client).await? {
                flow.ui.messages.push(text::code_sends_limited(minutes));
                return self.invalid(flow).await;
            }
        }
        // The identity to be: its id is fixed now, its traits are the ones the code is for.
        let identity_id = Uuid::new_v4();
        let code = self.new_code(&mut flow, &via, &address, identity_id, false);
        if let Some(p) = flow.internal.code.as_mut() {
            p.traits = traits.clone();
        }
        for (via, address) in &addresses {
            let data = json!({
                "To": address,
                "RegistrationCode": code,
                "ExpiresInMinutes": self.code_minutes(),
                "Traits": traits,
                "RequestURL": flow.request_url,
            });
            self.queue_code(
                via,
                address,
                TemplateType::RegistrationCodeValid,
                &flow,
                &data,
            )
            .await?;
        }
        flow.state = FlowState::SentEmail;
        flow.active = Some(CODE.into());
        registration_code_form(&mut flow, schema, &traits);
        self.invalid(flow).await
    }

    /// The second step of a code sign-up: the code, then the identity (its address verified),
    /// and a session with `registration.after.code`'s `session` hook.
    async fn check_registration_code(
        &self,
        mut flow: Flow,
        body: &Value,
    ) -> Result<Outcome, Error> {
        let sent_for = flow
            .internal
            .code
            .as_ref()
            .map(|p| p.traits.clone())
            .unwrap_or(Value::Null);
        if let Some(submitted) = body.get("traits")
            && !sent_for.is_null()
            && !same_traits(submitted, &sent_for)
        {
            flow.ui.messages.push(text::traits_mismatch());
            return self.invalid(flow).await;
        }
        let Some(pending) = self.take_code(&mut flow, body).await? else {
            return self.code_refused(flow).await;
        };
        let schema = self.schemas.default_schema()?;
        let mut identity = self.build_identity(
            &schema.id,
            pending.traits.clone(),
            IdentityState::Active,
            Value::Null,
            Value::Null,
            None,
            Some(pending.identity_id),
        )?;
        // Blocking web hooks see (and may change) the identity before anything is written.
        let hooks = &self.settings.hooks.registration_after_code;
        if let HookOutcome::Refused(r) = self
            .run_pre_persist(hooks.pre_persist(), &flow, &mut identity, None)
            .await?
        {
            return self.code_hook_refused(flow, &pending, r).await;
        }
        self.complete_submitted(&flow).await?;
        // The code proves an address only when it went to that address alone (and a parsing
        // hook left the address in the traits).
        let sent_to = schema.extract(&pending.traits).code_identifiers;
        let now = now_ms();
        for a in identity.verifiable_addresses.iter_mut() {
            if sent_to.len() == 1 && a.via == pending.via && a.value == pending.address {
                a.verified = true;
                a.status = "completed".into();
                a.verified_at = Some(now);
            }
        }
        if let Err(e) = self.store.insert_identity(&identity).await {
            if e.kind == ErrorKind::Conflict {
                // The flow is spent (its code was used); a fresh one says why.
                let mut fresh = self
                    .init_registration(
                        flow.flow_type,
                        &flow.request_url,
                        flow.return_to.as_deref(),
                        None,
                        &flow.csrf_token,
                    )
                    .await?;
                fresh.ui.messages.push(text::duplicate_credentials());
                return self.invalid(fresh).await;
            }
            return Err(e);
        }
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        self.count(crate::engine::Counted::Registration, CODE, "");
        let session = if self.settings.code.session_after_registration {
            Some(self.issue_session(&identity, CODE).await?)
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
        let return_to = self.return_to(&flow, fallback.as_ref());
        let verifications = self.verify_new_addresses(&flow, &identity, None).await?;
        if let Some(v) = verifications.first() {
            flow.continue_with.push(self.show_verification_ui(v));
        }
        Ok(Outcome::Completed {
            flow,
            identity,
            session,
            return_to,
        })
    }

    /// Counts a try and checks the submitted code against the flow's. `Ok(Some)`: right; the
    /// caller completes the flow (single use) once the hooks let it through. `Ok(None)`: refused; the flow carries the
    /// message (wrong, expired, another flow's, never sent, or missing), or — past
    /// `max_submissions` — has lost its code and is back at its first step, which
    /// [`Self::code_refused`] answers with a fresh flow.
    async fn take_code(&self, flow: &mut Flow, body: &Value) -> Result<Option<PendingCode>, Error> {
        let code = str_field(body, "code")
            .unwrap_or_default()
            .trim()
            .to_string();
        if code.is_empty() {
            flow.ui
                .add_message(Some("code"), text::missing_property("code"));
            return Ok(None);
        }
        let tries = self
            .store
            .limit_hit(&format!("code_try:{}", flow.id), flow.created_at)
            .await?;
        if tries > i64::from(self.settings.lifecycle.max_submissions) {
            flow.internal.code = None;
            flow.state = FlowState::ChooseMethod;
            return Ok(None);
        }
        let now = now_ms();
        let mac = self.code_mac(flow.id, &code);
        let pending = flow
            .internal
            .code
            .clone()
            .filter(|p| p.expires_at > now && crypto::constant_time_eq(&p.hash, &mac));
        let Some(pending) = pending else {
            flow.ui.messages.push(match flow.kind {
                FlowKind::Registration => text::registration_code_invalid(),
                _ => text::login_code_invalid(),
            });
            return Ok(None);
        };
        flow.internal.code = None;
        Ok(Some(pending))
    }

    /// Answers a refused code: the flow with its message, or — after too many tries, when
    /// [`Self::take_code`] put the flow back to its first step — a fresh flow that says why
    /// (this one can no longer take a code).
    async fn code_refused(&self, flow: Flow) -> Result<Outcome, Error> {
        if flow.state != FlowState::ChooseMethod {
            return self.invalid(flow).await;
        }
        let mut fresh = self.fresh_code_flow(flow).await?;
        fresh.ui.messages.push(text::code_submitted_too_often());
        self.invalid(fresh).await
    }

    /// A hook refused a code sign-in or sign-up (nothing was written): the code is spent, and
    /// a fresh flow (the sign-up's traits filled in again) carries the hook's messages.
    async fn code_hook_refused(
        &self,
        mut flow: Flow,
        pending: &PendingCode,
        refusal: Refusal,
    ) -> Result<Outcome, Error> {
        flow.internal.code = None;
        flow.state = FlowState::ChooseMethod;
        let mut fresh = self.fresh_code_flow(flow).await?;
        if fresh.kind == FlowKind::Registration && pending.traits.is_object() {
            let schema = self.schemas.default_schema()?;
            for f in &schema.fields {
                if let Some(v) = tessera_core::schema::lookup(&pending.traits, &f.path) {
                    fresh.ui.set_value(&format!("traits.{}", f.path), v.clone());
                }
            }
        }
        refusal.apply(&mut fresh);
        self.invalid(fresh).await
    }

    /// Stores `flow` as it is (spent) and starts a fresh one of its kind for the same browser.
    async fn fresh_code_flow(&self, mut flow: Flow) -> Result<Flow, Error> {
        flow.updated_at = now_ms();
        self.store.update_flow(&flow).await?;
        let fresh = match flow.kind {
            FlowKind::Registration => {
                self.init_registration(
                    flow.flow_type,
                    &flow.request_url,
                    flow.return_to.as_deref(),
                    None,
                    &flow.csrf_token,
                )
                .await?
            }
            _ => {
                self.init_login(
                    flow.flow_type,
                    &flow.request_url,
                    flow.return_to.as_deref(),
                    false,
                    None,
                    &flow.csrf_token,
                )
                .await?
            }
        };
        Ok(fresh)
    }

    /// Minutes a code holds, for the messages.
    fn code_minutes(&self) -> u64 {
        self.settings.lifecycle.code_lifespan.as_secs().div_ceil(60)
    }

    /// Queues the message carrying a code: a text for `sms`, else an email.
    async fn queue_code(
        &self,
        via: &str,
        address: &str,
        t: TemplateType,
        flow: &Flow,
        data: &Value,
    ) -> Result<(), Error> {
        let lang = flow_language(flow);
        if via == "sms" {
            tessera_courier::queue_sms(&self.store, &self.settings.courier, address, t, lang, data)
                .await?;
        } else {
            tessera_courier::queue_email(
                &self.store,
                &self.settings.courier,
                address,
                t,
                lang,
                data,
            )
            .await?;
        }
        Ok(())
    }
}

/// How a submitted identifier is looked up: an international phone number in E.164 (texted),
/// anything else case-folded (an email address).
fn code_address(identifier: &str) -> (&'static str, String) {
    match phone_e164(identifier) {
        Some(p) => ("sms", p),
        None => ("email", normalize_identifier(identifier)),
    }
}

/// Whether submitted traits are the ones a code was sent for (form posts send every value as
/// a string, so values are compared as their text).
fn same_traits(submitted: &Value, sent_for: &Value) -> bool {
    fn flat(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    flat(v, &format!("{prefix}{k}."), out);
                }
            }
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flat(submitted, "", &mut a);
    flat(sent_for, "", &mut b);
    a.sort();
    b.sort();
    a == b
}

/// The nodes of the code step (Kratos's `populateEmailSentFlow`): the hidden `method`, the
/// code, "Continue" and "Resend code".
fn code_step_nodes(flow: &mut Flow, label: text::Text) {
    flow.ui.nodes.push(Node::input(
        CODE,
        "method",
        "hidden",
        Value::String(CODE.into()),
    ));
    flow.ui.nodes.push(
        Node::input(CODE, "code", "text", Value::Null)
            .required()
            .autocomplete(Autocomplete::OneTimeCode)
            .label(label),
    );
    flow.ui
        .nodes
        .push(submit_node(CODE, CODE, text::label_continue()));
    flow.ui.nodes.push(
        Node::input(CODE, "resend", "submit", Value::String(CODE.into()))
            .label(text::label_resend()),
    );
}

/// Keeps only the CSRF node of a flow's form.
fn keep_csrf(flow: &mut Flow) {
    flow.ui.nodes.retain(|n| n.attributes.name == "csrf_token");
}

/// A login flow after a code was (or seemed to be) sent: the identifier kept as a hidden
/// field, then the code step.
fn login_code_form(flow: &mut Flow, identifier: &str) {
    keep_csrf(flow);
    flow.ui.nodes.push(Node::input(
        "default",
        "identifier",
        "hidden",
        Value::String(identifier.into()),
    ));
    code_step_nodes(flow, text::label_login_code());
    flow.ui.messages = vec![text::login_code_sent()];
}

/// A registration flow after a code was sent: the traits kept as hidden fields (the code is
/// for exactly these), then the code step.
fn registration_code_form(
    flow: &mut Flow,
    schema: &tessera_core::schema::IdentitySchema,
    traits: &Value,
) {
    keep_csrf(flow);
    let mut ui = tessera_core::ui::Ui::new(String::new());
    trait_nodes(&mut ui, schema, CODE, traits);
    for mut n in ui.nodes {
        if n.attributes.value.is_null() {
            continue;
        }
        n.attributes.input_type = "hidden".into();
        n.attributes.required = false;
        n.attributes.autocomplete = None;
        n.attributes.disabled = false;
        flow.ui.nodes.push(n);
    }
    code_step_nodes(flow, text::label_registration_code());
    flow.ui.messages = vec![text::registration_code_sent()];
}

#[cfg(test)]
mod tests {
    use super::{code_address, same_traits};
    use serde_json::json;

    #[test]
    fn identifiers_are_numbers_in_e164_or_folded_addresses() {
        assert_eq!(
            code_address("+7 (912) 345-67-89"),
            ("sms", "+79123456789".to_string())
        );
        assert_eq!(
            code_address(" Li.Wei@Example.CN "),
            ("email", "li.wei@example.cn".to_string())
        );
        // A national number is not guessed at: it is looked up as written, and finds nobody.
        assert_eq!(code_address("89123456789").0, "email");
    }

    #[test]
    fn traits_match_by_their_text_and_any_change_is_a_mismatch() {
        let sent = json!({"email": "a@b.cn", "age": 3, "name": {"first": "Li"}});
        assert!(same_traits(
            &json!({"email": "a@b.cn", "age": "3", "name": {"first": "Li"}}),
            &sent
        ));
        assert!(!same_traits(
            &json!({"email": "x@b.cn", "age": 3, "name": {"first": "Li"}}),
            &sent
        ));
        assert!(!same_traits(&json!({"email": "a@b.cn"}), &sent));
    }
}
