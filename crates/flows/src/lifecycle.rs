//! Verification and recovery by one-time code (Kratos's `code` method): the flows, the codes
//! and their limits. The `link` method shares the flows, the address step, the send limits and
//! the no-enumeration answer; what differs (the token, the mail, `GET …?flow=&token=`) is in
//! `lifecycle_link.rs`.
//!
//! A code is six digits, sent by the courier, and kept only as an HMAC (keyed with the first
//! cookie secret and bound to its flow) in the flow's [`PendingCode`]. It holds for
//! `selfservice.methods.code.config.lifespan`, works once (the flow is completed by a
//! conditional update, so two racing submissions cannot both use it), works only in the flow
//! it was sent for, and a flow takes `max_submissions` wrong codes before it must be started
//! again (counted in the store, so across instances). Codes sent per address and per client
//! address per hour are counted the same way. An unknown address gets exactly the answer a
//! known one gets; only the mail (or, with `notify_unknown_recipients`, the "no account here"
//! mail) differs.

use crate::engine::{Engine, Outcome};
use crate::forms::str_field;
use crate::hooks::HookOutcome;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tessera_config::hooks::HookAction;
use tessera_config::lifecycle::{LifecycleFlow, LifecycleMethod};
use tessera_core::flow::{Flow, FlowKind, FlowState, FlowType, PendingCode};
use tessera_core::identity::Identity;
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::ui::{Autocomplete, Node, Ui};
use tessera_core::{Error, crypto, text};
use tessera_courier::{Lang, TemplateType};
use tessera_store::lifecycle::AddressKind;
use uuid::Uuid;

/// Kratos's node group for the code method.
const GROUP: &str = "code";
/// Kratos's `CodeLength`.
const CODE_DIGITS: usize = 6;
const HOUR_MS: i64 = 3_600_000;

/// What a lifecycle submission led to, beyond the shared [`Outcome`]s.
impl Engine {
    /// The lifecycle flow's settings, or Kratos's "disabled" error.
    pub fn lifecycle(&self, kind: FlowKind) -> Result<&LifecycleFlow, Error> {
        let (flow, name) = match kind {
            FlowKind::Verification => (&self.settings.lifecycle.verification, "verification"),
            FlowKind::Recovery => (&self.settings.lifecycle.recovery, "recovery"),
            _ => (&None, kind.as_str()),
        };
        flow.as_ref().ok_or_else(|| {
            Error::bad_request(format!(
                "The {name} flow is disabled: set selfservice.flows.{name}.enabled to true."
            ))
            .with_id(tessera_core::error::ErrorId::SelfServiceFlowDisabled)
        })
    }

    /// `GET /self-service/{verification,recovery}/{browser,api}`: a flow asking for an address.
    /// Recovery is for people who cannot sign in, so a signed-in browser is refused as Kratos
    /// does (`session_already_available`).
    ///
    /// The flow's `before` hooks run here, before it is stored: a refusal means no flow.
    pub async fn init_lifecycle(
        &self,
        kind: FlowKind,
        flow_type: FlowType,
        request_url: &str,
        return_to: Option<&str>,
        session: Option<&Session>,
        csrf: &str,
    ) -> Result<Flow, Error> {
        self.lifecycle(kind)?;
        if kind == FlowKind::Recovery && session.is_some() {
            return Err(Error::session_already_available());
        }
        let flow = self.lifecycle_flow(kind, flow_type, request_url, return_to, csrf)?;
        let before = match kind {
            FlowKind::Recovery => &self.settings.hooks.recovery_before,
            _ => &self.settings.hooks.verification_before,
        };
        self.run_before_hooks(before, &flow, None).await?;
        self.store.insert_flow(&flow).await?;
        Ok(flow)
    }

    /// A fresh flow that replaces a spent one (too many wrong codes, a refused link): stored
    /// at once. Its `before` hooks do not run again, as Kratos's retried flows do not.
    pub(crate) async fn replacement_flow(
        &self,
        spent: &Flow,
        flow_type: FlowType,
        csrf: &str,
    ) -> Result<Flow, Error> {
        let flow = self.lifecycle_flow(
            spent.kind,
            flow_type,
            &spent.request_url,
            spent.return_to.as_deref(),
            csrf,
        )?;
        self.store.insert_flow(&flow).await?;
        Ok(flow)
    }

    /// A new flow asking for an address (not stored).
    fn lifecycle_flow(
        &self,
        kind: FlowKind,
        flow_type: FlowType,
        request_url: &str,
        return_to: Option<&str>,
        csrf: &str,
    ) -> Result<Flow, Error> {
        let method = self.lifecycle(kind)?.method;
        let return_to = self.check_return_to(return_to)?;
        let mut flow = self.new_flow(kind, flow_type, request_url, return_to, csrf);
        flow.active = Some(method.as_str().into());
        address_form(&mut flow, "");
        Ok(flow)
    }

    /// `POST /self-service/{verification,recovery}?flow=`: an address (send a code) or a code.
    pub async fn submit_lifecycle(
        &self,
        kind: FlowKind,
        flow_id: &str,
        body: &Value,
        csrf_cookie: Option<&str>,
        client: Option<std::net::IpAddr>,
    ) -> Result<Outcome, Error> {
        let configured = self.lifecycle(kind)?.method.as_str();
        let mut flow = self
            .flow_for_submit(kind, flow_id, body, csrf_cookie)
            .await?;
        let code = str_field(body, "code").unwrap_or_default().trim();
        let method = match str_field(body, "method").unwrap_or_default() {
            "" if !code.is_empty() => GROUP,
            m => m,
        };
        if method != configured {
            let msg = match method {
                "link" | "code" => format!(
                    "The `{method}` method is not enabled for this flow: use `{configured}`."
                ),
                _ => format!(
                    "Could not find a strategy for this request: submit `method: {configured}`."
                ),
            };
            flow.ui.messages.push(text::validation_generic(&msg));
            return self.invalid(flow).await;
        }
        if method == GROUP && !code.is_empty() {
            return self.use_code(flow, code, csrf_cookie).await;
        }
        let email = str_field(body, "email").unwrap_or_default();
        if email.trim().is_empty() {
            address_form(&mut flow, "");
            flow.ui
                .add_message(Some("email"), text::missing_property("email"));
            return self.invalid(flow).await;
        }
        self.send_code(flow, email, client).await
    }

    /// Sends a code (or, with `use: link`, a link) to `email` when someone holds it, and
    /// answers the same either way.
    async fn send_code(
        &self,
        mut flow: Flow,
        email: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Outcome, Error> {
        let link = self.lifecycle(flow.kind)?.method == LifecycleMethod::Link;
        // An international number (`+…`) is an address to text; anything else must be email.
        // Links go by email only (as Kratos's link method), so a number is no address there.
        let (via, address) = match phone_number(email) {
            Some(p) if !link => ("sms", p),
            _ => ("email", email.trim().to_lowercase()),
        };
        if via == "email" && !looks_like_email(&address) {
            address_form(&mut flow, email);
            flow.ui
                .add_message(Some("email"), text::invalid_format(email, "email"));
            return self.invalid(flow).await;
        }
        if let Some(minutes) = self.code_send_limited(&address, client).await? {
            address_form(&mut flow, email);
            flow.ui.messages.push(text::code_sends_limited(minutes));
            return self.invalid(flow).await;
        }
        let kind = flow.kind;
        let address_kind = match kind {
            FlowKind::Recovery => AddressKind::Recovery,
            _ => AddressKind::Verifiable,
        };
        let owner = self
            .store
            .address_owner(address_kind, via, &address)
            .await?;
        let lang = flow_language(&flow);
        flow.internal.code = None;
        match owner {
            Some(identity_id) if link => {
                let token = self.new_link(&mut flow, &address, identity_id, false);
                self.mail_link(&flow, &address, &token, lang).await?;
            }
            Some(identity_id) => {
                let code = self.new_code(&mut flow, via, &address, identity_id, false);
                self.send_code_by(kind, via, &address, &code, lang).await?;
            }
            None => {
                // A number nobody holds gets no text (Kratos sends no "unknown recipient" SMS,
                // and a text costs money an attacker would spend for us).
                if via == "email" && self.lifecycle(kind)?.notify_unknown_recipients {
                    let t = match (kind, link) {
                        (FlowKind::Recovery, false) => TemplateType::RecoveryCodeInvalid,
                        (FlowKind::Recovery, true) => TemplateType::RecoveryInvalid,
                        (_, false) => TemplateType::VerificationCodeInvalid,
                        (_, true) => TemplateType::VerificationInvalid,
                    };
                    tessera_courier::queue_email(
                        &self.store,
                        &self.settings.courier,
                        &address,
                        t,
                        lang,
                        &json!({ "To": address }),
                    )
                    .await?;
                }
            }
        }
        flow.state = FlowState::SentEmail;
        if link {
            link_sent_form(&mut flow, email);
        } else {
            code_form(&mut flow, email);
        }
        flow.updated_at = now_ms();
        self.store.update_flow(&flow).await?;
        Ok(Outcome::Shown(flow))
    }

    /// Makes a code for `flow`, keeps its hash there, and hands back the code itself.
    pub(crate) fn new_code(
        &self,
        flow: &mut Flow,
        via: &str,
        address: &str,
        identity_id: Uuid,
        admin: bool,
    ) -> String {
        let n = u64::from_le_bytes(crypto::random_bytes::<8>()) % 1_000_000;
        let code = format!("{n:0width$}", width = CODE_DIGITS);
        flow.internal.code = Some(PendingCode {
            hash: self.code_mac(flow.id, &code),
            address: address.to_string(),
            via: via.into(),
            identity_id,
            expires_at: now_ms() + self.settings.lifecycle.code_lifespan.as_millis() as i64,
            admin,
            link: false,
            traits: Value::Null,
        });
        code
    }

    /// The queued message carrying a code: an email, or a text for an `sms` address.
    async fn send_code_by(
        &self,
        kind: FlowKind,
        via: &str,
        address: &str,
        code: &str,
        lang: Lang,
    ) -> Result<(), Error> {
        if via != "sms" {
            return self.mail_code(kind, address, code, lang).await;
        }
        let minutes = self.settings.lifecycle.code_lifespan.as_secs().div_ceil(60);
        let (t, data) = match kind {
            FlowKind::Recovery => (
                TemplateType::RecoveryCodeValid,
                json!({"To": address, "RecoveryCode": code, "ExpiresInMinutes": minutes}),
            ),
            _ => (
                TemplateType::VerificationCodeValid,
                json!({"To": address, "VerificationCode": code, "ExpiresInMinutes": minutes}),
            ),
        };
        tessera_courier::queue_sms(&self.store, &self.settings.courier, address, t, lang, &data)
            .await?;
        Ok(())
    }

    /// The queued email carrying a code.
    async fn mail_code(
        &self,
        kind: FlowKind,
        address: &str,
        code: &str,
        lang: Lang,
    ) -> Result<(), Error> {
        let minutes = self.settings.lifecycle.code_lifespan.as_secs().div_ceil(60);
        let (t, data) = match kind {
            FlowKind::Recovery => (
                TemplateType::RecoveryCodeValid,
                json!({"To": address, "RecoveryCode": code, "ExpiresInMinutes": minutes}),
            ),
            _ => (
                TemplateType::VerificationCodeValid,
                json!({"To": address, "VerificationCode": code, "ExpiresInMinutes": minutes}),
            ),
        };
        tessera_courier::queue_email(&self.store, &self.settings.courier, address, t, lang, &data)
            .await?;
        Ok(())
    }

    /// HMAC-SHA-256 (hex) of a code under the first cookie secret, bound to its flow: a code
    /// read from one flow's row does not match another flow, and the database alone does not
    /// give codes away.
    pub(crate) fn code_mac(&self, flow: Uuid, code: &str) -> String {
        self.flow_secret_mac(b"tessera-code:", flow, code)
    }

    /// HMAC-SHA-256 (hex) of a flow's secret under the first cookie secret, in the HMAC
    /// domain `domain` (codes and link tokens never match each other's hashes).
    pub(crate) fn flow_secret_mac(&self, domain: &[u8], flow: Uuid, secret: &str) -> String {
        let key = self
            .settings
            .secrets
            .cookie
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()) else {
            return String::new();
        };
        mac.update(domain);
        mac.update(flow.as_bytes());
        mac.update(secret.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Counts one send for the address and the client address; `Some(minutes)` (until the
    /// hour ends) when either is over its limit. Unknown addresses count too, so the limit
    /// says nothing about who has an account.
    pub(crate) async fn code_send_limited(
        &self,
        address: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<Option<u64>, Error> {
        let l = &self.settings.lifecycle;
        let now = now_ms();
        let window = now - now.rem_euclid(HOUR_MS);
        let minutes = ((window + HOUR_MS - now) as u64).div_ceil(60_000);
        if l.sends_per_address_per_hour > 0 {
            let key = format!("code_send:address:{}", crypto::token_hash(address));
            let n = self.store.limit_hit(&key, window).await?;
            if n > i64::from(l.sends_per_address_per_hour) {
                return Ok(Some(minutes));
            }
        }
        if l.sends_per_client_per_hour > 0
            && let Some(ip) = client
        {
            let n = self
                .store
                .limit_hit(&format!("code_send:client:{ip}"), window)
                .await?;
            if n > i64::from(l.sends_per_client_per_hour) {
                return Ok(Some(minutes));
            }
        }
        Ok(None)
    }

    /// Checks a submitted code against the flow's; the flow's tries are counted first.
    async fn use_code(
        &self,
        mut flow: Flow,
        code: &str,
        csrf_cookie: Option<&str>,
    ) -> Result<Outcome, Error> {
        let tries = self
            .store
            .limit_hit(&format!("code_try:{}", flow.id), flow.created_at)
            .await?;
        if tries > i64::from(self.settings.lifecycle.max_submissions) {
            // This flow is spent: its code can no longer be used, and the person starts again
            // on a fresh flow that says why.
            flow.internal.code = None;
            flow.updated_at = now_ms();
            self.store.update_flow(&flow).await?;
            let mut fresh = self
                .replacement_flow(&flow, flow.flow_type, csrf_cookie.unwrap_or_default())
                .await?;
            fresh.ui.messages.push(text::code_submitted_too_often());
            self.store.update_flow(&fresh).await?;
            return Ok(Outcome::Invalid(fresh));
        }
        let now = now_ms();
        let pending = flow.internal.code.clone().filter(|p| {
            !p.link
                && p.expires_at > now
                && crypto::constant_time_eq(&p.hash, &self.code_mac(flow.id, code))
        });
        let Some(pending) = pending else {
            flow.ui.reset_messages();
            flow.ui.messages.push(match flow.kind {
                FlowKind::Recovery => text::recovery_code_invalid(),
                _ => text::verification_code_invalid(),
            });
            flow.updated_at = now;
            self.store.update_flow(&flow).await?;
            return Ok(Outcome::Shown(flow));
        };
        let settings_type = flow.flow_type;
        self.passed(flow, pending, csrf_cookie, settings_type).await
    }

    /// A right code or link. The flow's blocking `after` hooks run first, while nothing is
    /// written: a refusal puts their messages on this flow, whose code or link still holds,
    /// and a failure fails the submission. Then the flow is taken (single use: only one
    /// request completes it) and the address verified or the identity signed in (a settings
    /// flow of `settings_type` follows a recovery).
    pub(crate) async fn passed(
        &self,
        mut flow: Flow,
        pending: PendingCode,
        csrf_cookie: Option<&str>,
        settings_type: FlowType,
    ) -> Result<Outcome, Error> {
        let hooks = self.after_hooks(flow.kind);
        if hooks
            .iter()
            .any(|h| matches!(h, HookAction::WebHook(w) if w.blocks()))
        {
            let identity = self.store.get_identity(pending.identity_id).await?;
            // An inactive identity is refused by `recovered` without asking anybody.
            let ask = flow.kind == FlowKind::Verification
                || identity.state == tessera_core::identity::IdentityState::Active;
            let identity = as_passed(identity, &pending, now_ms());
            if ask
                && let HookOutcome::Refused(r) =
                    self.run_blocking_hooks(hooks, &flow, &identity).await?
            {
                flow.ui.reset_messages();
                r.apply(&mut flow);
                return self.invalid(flow).await;
            }
        }
        self.complete_submitted(&flow).await?;
        flow.internal.code = None;
        match flow.kind {
            FlowKind::Recovery => {
                self.recovered(flow, pending, csrf_cookie, settings_type)
                    .await
            }
            _ => self.verified(flow, pending).await,
        }
    }

    /// `selfservice.flows.{verification,recovery}.after.hooks`.
    fn after_hooks(&self, kind: FlowKind) -> &[HookAction] {
        match kind {
            FlowKind::Recovery => &self.settings.hooks.recovery_after,
            _ => &self.settings.hooks.verification_after,
        }
    }

    pub(crate) async fn verified(
        &self,
        mut flow: Flow,
        pending: PendingCode,
    ) -> Result<Outcome, Error> {
        let now = now_ms();
        self.store
            .mark_address_verified(pending.identity_id, &pending.via, &pending.address, now)
            .await?;
        let fallback = self
            .lifecycle(FlowKind::Verification)?
            .return_url
            .clone()
            .unwrap_or_else(|| self.settings.flows.default_return_url.clone());
        let to = self.return_to(&flow, Some(&fallback));
        flow.state = FlowState::PassedChallenge;
        flow.ui = Ui {
            action: to.clone(),
            method: "GET".into(),
            nodes: vec![Node::anchor(
                flow.active.as_deref().unwrap_or(GROUP),
                "continue",
                &to,
                text::label_continue(),
            )],
            messages: vec![text::verification_successful()],
        };
        if flow.flow_type == FlowType::Browser {
            flow.ui.nodes.insert(0, Node::csrf(""));
        }
        flow.updated_at = now;
        self.store.update_flow(&flow).await?;
        let hooks = self.after_hooks(FlowKind::Verification);
        if !hooks.is_empty() {
            // The address is verified whatever happens to the hooks from here on.
            match self.store.get_identity(pending.identity_id).await {
                Ok(identity) => self.spawn_after_hooks(hooks, &flow, &identity),
                Err(e) => tracing::warn!(error = %e, "verification web hooks not sent"),
            }
        }
        Ok(Outcome::Shown(flow))
    }

    /// A correct recovery code (or link): a session, then a settings flow (of `settings_type`:
    /// a link is always opened in a browser) where the password can be set without the old
    /// one (the session is fresh, so privileged).
    pub(crate) async fn recovered(
        &self,
        mut flow: Flow,
        pending: PendingCode,
        csrf_cookie: Option<&str>,
        settings_type: FlowType,
    ) -> Result<Outcome, Error> {
        let now = now_ms();
        let mut identity = self.store.get_identity(pending.identity_id).await?;
        if identity.state != tessera_core::identity::IdentityState::Active {
            flow.state = FlowState::ChooseMethod;
            address_form(&mut flow, "");
            flow.ui.messages.push(text::inactive_identity());
            return self.invalid(flow).await;
        }
        if !pending.admin {
            self.store
                .mark_address_verified(identity.id, &pending.via, &pending.address, now)
                .await?;
            identity = self.store.get_identity(identity.id).await?;
        }
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        let method = if pending.link {
            "link_recovery"
        } else {
            "code_recovery"
        };
        let (session, token) = self.issue_session(&identity, method).await?;
        let hooks = self.after_hooks(FlowKind::Recovery);
        if hooks.contains(&HookAction::RevokeActiveSessions) {
            let n = self
                .store
                .revoke_identity_sessions(identity.id, Some(session.id))
                .await?;
            tracing::info!(identity = %identity.id, revoked = n, "revoke_active_sessions after recovery");
        }
        let request_url = self
            .settings
            .serve
            .public_base_url
            .join("self-service/settings/browser")
            .map(|u| u.to_string())
            .unwrap_or_default();
        let mut settings = self
            .init_settings(
                settings_type,
                &request_url,
                None,
                &session,
                csrf_cookie.unwrap_or_default(),
            )
            .await?;
        let until = session.authenticated_at
            + self
                .settings
                .flows
                .settings
                .privileged_session_max_age
                .as_millis() as i64;
        settings.ui.messages.push(text::recovery_successful(
            until,
            (until - now) as f64 / 60_000.0,
        ));
        self.store.update_flow(&settings).await?;
        let mut to = self.ui_url(FlowKind::Settings).clone();
        to.query_pairs_mut()
            .append_pair("flow", &settings.id.to_string());
        flow.state = FlowState::PassedChallenge;
        flow.ui.reset_messages();
        flow.updated_at = now;
        self.store.update_flow(&flow).await?;
        // Before `continue_with` carries the session token: the hooks never see it.
        self.spawn_after_hooks(hooks, &flow, &identity);
        if settings_type == FlowType::Api {
            flow.continue_with
                .push(json!({"action": "set_ory_session_token", "ory_session_token": token}));
        }
        flow.continue_with.push(json!({
            "action": "show_settings_ui",
            "flow": {"id": settings.id, "url": to.as_str()},
        }));
        Ok(Outcome::Completed {
            flow,
            identity,
            session: Some((session, token)),
            return_to: to.to_string(),
        })
    }

    /// After a registration or an address change: one verification flow (of the triggering
    /// flow's type, bound to the same browser) per address still unverified that is new, each
    /// with a code on its way. Returns the flows made. Nothing happens with verification off.
    pub(crate) async fn verify_new_addresses(
        &self,
        trigger: &Flow,
        identity: &Identity,
        before: Option<&Identity>,
    ) -> Result<Vec<Flow>, Error> {
        if self.settings.lifecycle.verification.is_none() {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        for a in &identity.verifiable_addresses {
            let known = before.is_some_and(|b| {
                b.verifiable_addresses
                    .iter()
                    .any(|o| o.via == a.via && o.value == a.value)
            });
            if a.verified || known || !matches!(a.via.as_str(), "email" | "sms") {
                continue;
            }
            let mut flow = self.new_flow(
                FlowKind::Verification,
                trigger.flow_type,
                &trigger.request_url,
                trigger.return_to.clone(),
                &trigger.csrf_token,
            );
            let method = self.lifecycle(FlowKind::Verification)?.method;
            flow.active = Some(method.as_str().into());
            flow.state = FlowState::SentEmail;
            // Links go by email only: a number is verified by a code even with `use: link`.
            if method == LifecycleMethod::Link && a.via == "email" {
                let token = self.new_link(&mut flow, &a.value, identity.id, false);
                link_sent_form(&mut flow, &a.value);
                self.store.insert_flow(&flow).await?;
                self.mail_link(&flow, &a.value, &token, flow_language(trigger))
                    .await?;
            } else {
                flow.active = Some(GROUP.into());
                let code = self.new_code(&mut flow, &a.via, &a.value, identity.id, false);
                code_form(&mut flow, &a.value);
                self.store.insert_flow(&flow).await?;
                self.send_code_by(
                    FlowKind::Verification,
                    &a.via,
                    &a.value,
                    &code,
                    flow_language(trigger),
                )
                .await?;
            }
            out.push(flow);
        }
        Ok(out)
    }

    /// `continue_with`'s `show_verification_ui` for a verification flow.
    pub(crate) fn show_verification_ui(&self, flow: &Flow) -> Value {
        let mut url = self.ui_url(FlowKind::Verification).clone();
        url.query_pairs_mut()
            .append_pair("flow", &flow.id.to_string());
        json!({
            "action": "show_verification_ui",
            "flow": {
                "id": flow.id,
                "verifiable_address": flow.internal.code.as_ref().map(|c| c.address.clone()),
                "url": url.as_str(),
            }
        })
    }

    /// `POST /admin/recovery/code`: a recovery flow for an identity with a code the
    /// administrator passes on. Returns the flow, the code and the link to the flow's page.
    pub async fn admin_recovery_code(
        &self,
        identity_id: Uuid,
        expires_in: Option<std::time::Duration>,
    ) -> Result<(Flow, String, String), Error> {
        let (mut flow, identity, address) = self.admin_recovery_flow(identity_id).await?;
        if let Some(d) = expires_in {
            flow.expires_at = now_ms() + d.as_millis() as i64;
        }
        flow.active = Some(GROUP.into());
        let code = self.new_code(&mut flow, "email", &address, identity.id, true);
        if let (Some(d), Some(c)) = (expires_in, flow.internal.code.as_mut()) {
            c.expires_at = now_ms() + d.as_millis() as i64;
        }
        flow.state = FlowState::SentEmail;
        code_form(&mut flow, "");
        flow.ui.nodes.retain(|n| n.attributes.name != "email");
        self.store.insert_flow(&flow).await?;
        let mut link = self
            .settings
            .serve
            .public_base_url
            .join("self-service/recovery")
            .map_err(|e| Error::internal(e.to_string()))?;
        link.query_pairs_mut()
            .append_pair("flow", &flow.id.to_string());
        Ok((flow, code, link.to_string()))
    }

    /// An administrator's recovery flow for an identity (not stored yet), with the identity
    /// and its first recovery address ("" when it has none).
    pub(crate) async fn admin_recovery_flow(
        &self,
        identity_id: Uuid,
    ) -> Result<(Flow, Identity, String), Error> {
        self.lifecycle(FlowKind::Recovery)?;
        let identity = self.store.get_identity(identity_id).await?;
        let request_url = self
            .settings
            .serve
            .public_base_url
            .join("self-service/recovery/browser")
            .map(|u| u.to_string())
            .unwrap_or_default();
        // An administrator's flow has no browser yet: the first browser that opens its link
        // is bound to it (`claim_recovery_link`); until then no form post passes its CSRF
        // check.
        let flow = self.new_flow(
            FlowKind::Recovery,
            FlowType::Browser,
            &request_url,
            None,
            "",
        );
        let address = identity
            .recovery_addresses
            .first()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        Ok((flow, identity, address))
    }

    /// `GET /self-service/recovery?flow=` (an administrator's recovery link): binds the flow to
    /// this browser's CSRF secret if no browser holds it yet, and says where its page is. A
    /// flow another browser holds is not handed over (its page sends this one to start over).
    pub async fn claim_recovery_link(&self, id: &str, csrf: &str) -> Result<url::Url, Error> {
        self.lifecycle(FlowKind::Recovery)?;
        let uuid = Uuid::parse_str(id.trim()).map_err(|_| Error::invalid_uuid("flow id", id))?;
        let (flow, csrf_hash) = self.store.get_flow(uuid).await?;
        if flow.kind != FlowKind::Recovery {
            return Err(Error::flow_not_found(id));
        }
        let admin = flow
            .internal
            .code
            .as_ref()
            .is_some_and(|c| c.admin && !c.link);
        if admin && csrf_hash.is_empty() && !csrf.is_empty() {
            self.store.bind_flow_csrf(uuid, csrf).await?;
        }
        let mut to = self.ui_url(FlowKind::Recovery).clone();
        to.query_pairs_mut()
            .append_pair("flow", &flow.id.to_string());
        Ok(to)
    }
}

/// The identity as the step will leave it, for its blocking hooks: the address the code or
/// link went to verified (an administrator's recovery verifies nothing).
fn as_passed(mut identity: Identity, pending: &PendingCode, now: i64) -> Identity {
    if !pending.admin
        && let Some(a) = identity
            .verifiable_addresses
            .iter_mut()
            .find(|a| a.via == pending.via && a.value == pending.address)
    {
        a.verified = true;
        a.status = "completed".into();
        a.verified_at = Some(now);
        a.updated_at = now;
    }
    identity
}

/// The first step's form: the address, and the method's submit (in the flow's method's
/// group: `code` or `link`).
pub(crate) fn address_form(flow: &mut Flow, email: &str) {
    let group = flow.active.clone().unwrap_or_else(|| GROUP.into());
    let csrf = flow
        .ui
        .nodes
        .iter()
        .find(|n| n.attributes.name == "csrf_token")
        .cloned();
    flow.ui.nodes = csrf.into_iter().collect();
    let value = if email.is_empty() {
        Value::Null
    } else {
        Value::String(email.into())
    };
    flow.ui.nodes.push(
        Node::input(&group, "email", "email", value)
            .required()
            .autocomplete(Autocomplete::Email)
            .label(text::label_email()),
    );
    flow.ui.nodes.push(
        Node::input(&group, "method", "submit", Value::String(group.clone()))
            .label(submit_label(flow.kind)),
    );
}

/// After a link was sent (Kratos's `sent_email` of the link method): the address form again
/// (submitting it sends another link) under the "link sent" message.
pub(crate) fn link_sent_form(flow: &mut Flow, email: &str) {
    address_form(flow, email);
    flow.ui.messages = vec![match flow.kind {
        FlowKind::Recovery => text::recovery_link_sent(),
        _ => text::verification_link_sent(),
    }];
}

/// The code step's form (Kratos's nodes after `sent_email`): the code, the method, and a
/// button sending a new code to the same address.
fn code_form(flow: &mut Flow, email: &str) {
    let csrf = flow
        .ui
        .nodes
        .iter()
        .find(|n| n.attributes.name == "csrf_token")
        .cloned();
    flow.ui.nodes = csrf.into_iter().collect();
    let label = match flow.kind {
        FlowKind::Recovery => text::label_recovery_code(),
        _ => text::label_verification_code(),
    };
    flow.ui.nodes.push(
        Node::input(GROUP, "code", "text", Value::Null)
            .required()
            .pattern("[0-9]+")
            .autocomplete(Autocomplete::OneTimeCode)
            .label(label),
    );
    flow.ui.nodes.push(Node::input(
        GROUP,
        "method",
        "hidden",
        Value::String(GROUP.into()),
    ));
    flow.ui.nodes.push(
        Node::input(GROUP, "method", "submit", Value::String(GROUP.into()))
            .label(submit_label(flow.kind)),
    );
    if !email.is_empty() {
        flow.ui.nodes.push(
            Node::input(GROUP, "email", "submit", Value::String(email.into()))
                .label(text::label_resend()),
        );
    }
    flow.ui.messages = vec![match flow.kind {
        FlowKind::Recovery => text::recovery_code_sent(),
        _ => text::verification_code_sent(),
    }];
}

/// Kratos labels verification's submit "Submit" and recovery's "Continue".
fn submit_label(kind: FlowKind) -> text::Text {
    match kind {
        FlowKind::Recovery => text::label_continue(),
        _ => text::label_submit(),
    }
}

/// Enough of an address to be worth a message: one `@` with something on both sides.
fn looks_like_email(a: &str) -> bool {
    let mut parts = a.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(l), Some(d), None) if !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !a.contains(char::is_whitespace)
    )
}

/// An international phone number as written by a person (`+7 912 345-67-89`), in E.164 (the
/// form the schema's `sms` addresses are stored in); `None` for anything else. Numbers without `+` are not guessed at: the
/// country they belong to is unknown here.
fn phone_number(a: &str) -> Option<String> {
    tessera_core::identity::phone_e164(a)
}

/// The message language: the flow's `ui_locales`, else the browser's language cookie or
/// `Accept-Language` of the request being answered, else English.
pub(crate) fn flow_language(flow: &Flow) -> Lang {
    if let Ok(u) = url::Url::parse(&flow.request_url)
        && let Some((_, v)) = u.query_pairs().find(|(k, _)| k == "ui_locales")
        && let Some(tag) = v.split_whitespace().next()
    {
        return Lang::from_tag(tag);
    }
    let req = crate::hooks::current_request();
    if let Some(c) = req.cookies.get("tessera_lang") {
        return Lang::from_tag(c);
    }
    req.headers
        .get("Accept-Language")
        .and_then(|v| v.first())
        .and_then(|h| h.split([',', ';']).next())
        .map(|t| Lang::from_tag(t.trim()))
        .unwrap_or(Lang::En)
}

#[cfg(test)]
mod tests {
    use super::{looks_like_email, phone_number};

    #[test]
    fn international_numbers_are_texted_and_nothing_else_is() {
        assert_eq!(
            phone_number("+7 (912) 345-67-89").as_deref(),
            Some("+79123456789")
        );
        assert_eq!(
            phone_number(" +86 138 0013 8000 ").as_deref(),
            Some("+8613800138000")
        );
        for bad in [
            "89123456789",
            "+1234",
            "+7912abc4567",
            "a@b.c",
            "+",
            "+7 912 345 67 89 0000 00",
        ] {
            assert_eq!(phone_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn addresses_worth_a_message() {
        for ok in ["a@example.org", "li.wei@example.cn"] {
            assert!(looks_like_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@example.org",
            "a@",
            "a@b",
            "a@@b.c",
            "a b@c.d",
            "a@.c",
        ] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }
}
