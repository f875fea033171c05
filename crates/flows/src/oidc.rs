//! The `oidc` method: social sign-in, sign-up with fill-the-gaps, linking and unlinking.
//!
//! One attempt walks: a flow's "Continue with X" submit → [`Engine::start_oidc`] stores a
//! single-use state bound to the flow and to a continuity cookie, and sends the browser upstream
//! → the upstream calls back → [`Engine::oidc_callback`] takes the state, checks the browser,
//! exchanges the code, maps the claims, and then logs in, registers, asks for missing traits,
//! asks the user to prove an existing account before linking, or links in settings.

use crate::engine::{Engine, Outcome};
use crate::forms::{self, str_field, trait_nodes};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tessera_core::flow::{Flow, FlowKind, FlowType};
use tessera_core::identity::{
    CREDENTIAL_OIDC, CREDENTIAL_PASSWORD, Credential, Identity, IdentityState,
};
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::ui::Node;
use tessera_core::{Error, ErrorKind, crypto, text};
use tessera_social::{AuthRequest, Callback, Configured, Mapped, Profile, Tokens};
use tessera_store::oidc::OidcState;
use uuid::Uuid;

/// How long a browser may spend at the upstream (and how long the continuity cookie lives).
pub const ATTEMPT_LIFESPAN: Duration = Duration::from_secs(30 * 60);

/// Where a callback leaves the browser.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum CallbackOutcome {
    /// Signed in: set the session cookie and go to `return_to`.
    SignedIn {
        identity: Identity,
        session: (Session, String),
        return_to: String,
    },
    /// Continue on a flow's page (missing traits, sign in to link, a message about a failure,
    /// settings saved).
    ShowFlow(Flow),
    /// Go to a URL (e.g. sign in after a registration without the session hook).
    Redirect(String),
    /// The attempt cannot be tied to a flow (unknown or reused state, another browser): show
    /// the error page for this stored error.
    Error(Uuid),
}

/// Pending data kept in a flow's internal state between the callback and the user's next step.
fn pending(profile: &Profile, provider: &str, mapped: &Mapped, tokens: Value) -> Value {
    json!({
        "provider": provider,
        "subject": profile.subject,
        "traits": mapped.traits,
        "metadata_public": mapped.metadata_public,
        "metadata_admin": mapped.metadata_admin,
        "verified_addresses": mapped.verified_addresses.iter().map(|(v, via)| json!({"value": v, "via": via})).collect::<Vec<_>>(),
        "tokens": tokens,
    })
}

impl Engine {
    /// Adds one "Sign in/up with X" button per provider (`group: oidc, name: provider`).
    pub(crate) fn add_oidc_buttons(&self, flow: &mut Flow) {
        for p in self.social.providers() {
            let name = p.config().display_name();
            let label = match flow.kind {
                FlowKind::Registration => text::registration_with(name),
                _ => text::login_with(name),
            };
            flow.ui.nodes.push(
                Node::input("oidc", "provider", "submit", Value::String(p.id().into()))
                    .label(label),
            );
        }
    }

    /// Link/unlink buttons for the settings flow.
    pub(crate) fn add_settings_oidc_nodes(&self, flow: &mut Flow, identity: &Identity) {
        let linked = linked_providers(identity);
        for p in self.social.providers() {
            let name = p.config().display_name();
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

    /// Whether a submission chose the oidc method (Kratos accepts `method=oidc` or just a
    /// `provider`/`link`/`unlink` field).
    pub(crate) fn is_oidc_submit(body: &Value) -> bool {
        forms::method(body) == "oidc"
            || (forms::method(body).is_empty()
                && ["provider", "link", "unlink"]
                    .iter()
                    .any(|k| str_field(body, k).is_some()))
    }

    /// Sends the browser upstream for a flow. Browser flows get a fresh continuity token the
    /// server sets as a cookie; the callback must come back with it.
    pub(crate) async fn start_oidc(
        &self,
        mut flow: Flow,
        provider_id: &str,
    ) -> Result<Outcome, Error> {
        let Some(provider) = self.social.get(provider_id).cloned() else {
            flow.ui.messages.push(text::validation_generic(&format!(
                "Unknown sign-in provider `{provider_id}`; choose one of the buttons shown."
            )));
            return self.invalid(flow).await;
        };
        if flow.flow_type == FlowType::Api
            && !flow
                .internal
                .get("token_exchange")
                .is_some_and(|v| v == true)
        {
            flow.ui.messages.push(text::validation_generic(
                "Social sign-in from a native app needs a flow created with `return_session_token_exchange_code=true` and a `return_to` URL the app handles; the app then redeems the session at /sessions/token-exchange.",
            ));
            return self.invalid(flow).await;
        }
        let state = crypto::random_token();
        let nonce = crypto::random_token();
        let verifier = crypto::random_token();
        let continuity = (flow.flow_type == FlowType::Browser).then(crypto::random_token);
        let redirect_uri = self.oidc_redirect_uri(provider_id);
        let req = AuthRequest {
            state: &state,
            nonce: &nonce,
            code_verifier: &verifier,
            redirect_uri: &redirect_uri,
        };
        let url = match provider.provider.authorization_url(&req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(provider = provider_id, flow = %flow.id, reason = %e, "social sign-in could not start");
                let label = provider.config().display_name();
                flow.ui.messages.push(text::social_sign_in_failed(
                    &e.user_message(label),
                    e.user_code(),
                    label,
                ));
                return self.invalid(flow).await;
            }
        };
        let now = now_ms();
        self.store
            .insert_oidc_state(&OidcState {
                state_hash: crypto::token_hash(&state),
                flow_id: flow.id,
                provider: provider_id.to_string(),
                continuity_hash: continuity
                    .as_deref()
                    .map(crypto::token_hash)
                    .unwrap_or_default(),
                code_verifier: verifier,
                nonce,
                created_at: now,
                expires_at: (now + ATTEMPT_LIFESPAN.as_millis() as i64)
                    .min(flow.expires_at.max(now + 60_000)),
            })
            .await?;
        Ok(Outcome::Upstream {
            flow,
            to: url.to_string(),
            continuity,
        })
    }

    /// Native apps (API flows): `return_session_token_exchange_code=true` at flow creation gives
    /// the app an init code; the browser comes back to `return_to?code=<return code>`; both codes
    /// together redeem the session once at `/sessions/token-exchange`.
    pub async fn enable_token_exchange(&self, flow: &mut Flow) -> Result<(), Error> {
        if flow.flow_type != FlowType::Api {
            return Err(Error::bad_request(
                "`return_session_token_exchange_code` is for API flows (native apps); browser flows get a session cookie.",
            ));
        }
        let init = crypto::random_token();
        self.store
            .insert_token_exchange(&crypto::token_hash(&init), flow.id, now_ms())
            .await?;
        flow.internal = json!({ "token_exchange": true });
        flow.updated_at = now_ms();
        self.store.update_flow(flow).await?;
        flow.session_token_exchange_code = Some(init);
        Ok(())
    }

    /// A social sign-in of an API flow finished in the browser: seal the token for the app and
    /// send the browser to `return_to` with the return code.
    async fn finish_for_app(
        &self,
        flow: &Flow,
        session: &(Session, String),
        return_to: &str,
    ) -> Result<CallbackOutcome, Error> {
        let code = crypto::random_token();
        let sealed = self
            .cipher
            .encrypt(&session.1)
            .map_err(|e| Error::internal(format!("cannot seal the session token: {e}")))?;
        if !self
            .store
            .complete_token_exchange(flow.id, &crypto::token_hash(&code), &sealed, session.0.id)
            .await?
        {
            return self
                .stored_error(
                    400,
                    "self_service_app_handoff_impossible",
                    "the API flow has no token exchange",
                    "This sign-in cannot be handed back to the app. Start again from the app.",
                )
                .await;
        }
        let mut to = url::Url::parse(return_to).map_err(|e| Error::internal(e.to_string()))?;
        to.query_pairs_mut().append_pair("code", &code);
        Ok(CallbackOutcome::Redirect(to.to_string()))
    }

    /// `GET /sessions/token-exchange?init_code=&return_to_code=`: the app's session, once.
    pub async fn redeem_token_exchange(
        &self,
        init_code: &str,
        return_code: &str,
    ) -> Result<(Session, String), Error> {
        let not_found = || {
            Error::not_found("No session for these codes: they are wrong, were already used, or the sign-in has not finished.")
                .with_id("session_token_exchange_not_found")
        };
        if init_code.is_empty() || return_code.is_empty() {
            return Err(not_found());
        }
        let (sealed, session_id) = self
            .store
            .take_token_exchange(
                &crypto::token_hash(init_code),
                &crypto::token_hash(return_code),
            )
            .await?
            .ok_or_else(not_found)?;
        let token = self
            .cipher
            .decrypt(&sealed)
            .map_err(|e| Error::internal(e.to_string()))?;
        let session = self
            .session_from_token(&token)
            .await?
            .ok_or_else(not_found)?;
        if session.id != session_id {
            return Err(not_found());
        }
        Ok((session, token))
    }

    pub fn oidc_redirect_uri(&self, provider_id: &str) -> String {
        self.settings
            .public_base_url
            .join(&format!("self-service/methods/oidc/callback/{provider_id}"))
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Stores an error a user is sent to (`/ui/error?id=`). `id` is the stable id a UI
    /// translates (Kratos's error objects carry one); `reason` is for the log and the API.
    async fn stored_error(
        &self,
        status: u16,
        id: &str,
        reason: &str,
        message: &str,
    ) -> Result<CallbackOutcome, Error> {
        let stored = self
            .store
            .insert_error(
                &json!({
                    "id": id,
                    "code": status,
                    "status": if status == 410 { "Gone" } else { "Bad Request" },
                    "reason": reason,
                    "message": message,
                }),
                now_ms(),
            )
            .await?;
        Ok(CallbackOutcome::Error(stored))
    }

    /// Handles `GET|POST /self-service/methods/oidc/callback/{provider}`.
    pub async fn oidc_callback(
        &self,
        provider_id: &str,
        params: HashMap<String, String>,
        continuity_cookie: Option<&str>,
        csrf_cookie: Option<&str>,
        session: Option<&Session>,
    ) -> Result<CallbackOutcome, Error> {
        let state_param = params.get("state").cloned().unwrap_or_default();
        let state_param = state_param.as_str();
        let taken = if state_param.is_empty() || state_param.len() > 512 {
            None
        } else {
            self.store
                .take_oidc_state(&crypto::token_hash(state_param))
                .await?
        };
        let Some(st) = taken else {
            tracing::warn!(
                provider = provider_id,
                "social sign-in callback with an unknown, expired or already used state"
            );
            return self
                .stored_error(
                    400,
                    "self_service_oidc_state_invalid",
                    "the `state` parameter is unknown, expired or was already used",
                    "This sign-in link was already used or has expired. Start the sign-in again.",
                )
                .await;
        };
        if st.provider != provider_id {
            tracing::warn!(expected = %st.provider, got = provider_id, "social sign-in callback for another provider");
            return self
                .stored_error(
                    400,
                    "self_service_oidc_provider_mismatch",
                    "the callback came for another provider than the one the sign-in started with",
                    "This sign-in could not be completed. Start the sign-in again.",
                )
                .await;
        }
        if !st.continuity_hash.is_empty() {
            let ok = continuity_cookie.is_some_and(|c| {
                crypto::constant_time_eq(&crypto::token_hash(c), &st.continuity_hash)
            });
            if !ok {
                tracing::warn!(provider = provider_id, flow = %st.flow_id, "social sign-in callback from a browser without the continuity cookie of the attempt");
                return self
                    .stored_error(400, "self_service_oidc_other_browser", "the callback came from a browser that did not start this sign-in (continuity cookie missing or different)", "This sign-in was started in another browser or the browser did not keep its cookies. Start the sign-in again in this browser.")
                    .await;
            }
        }
        let now = now_ms();
        if st.expires_at < now {
            return self
                .stored_error(
                    410,
                    "self_service_flow_expired",
                    "the sign-in attempt expired",
                    "The sign-in took too long and expired. Start again.",
                )
                .await;
        }
        let (mut flow, _) = match self.store.get_flow(st.flow_id).await {
            Ok(f) => f,
            Err(_) => {
                return self
                    .stored_error(
                        410,
                        "self_service_flow_expired",
                        "the flow of this sign-in no longer exists",
                        "The sign-in expired. Start again.",
                    )
                    .await;
            }
        };
        if flow.is_expired_at(now) || flow.state == "passed_challenge" {
            return self
                .stored_error(
                    410,
                    "self_service_flow_expired",
                    "the flow of this sign-in expired or was completed",
                    "The sign-in expired. Start again.",
                )
                .await;
        }
        flow.ui.reset_messages();
        let Some(provider) = self.social.get(provider_id).cloned() else {
            return self
                .stored_error(
                    400,
                    "self_service_oidc_provider_gone",
                    "the provider is no longer configured",
                    "This sign-in method is no longer available.",
                )
                .await;
        };
        let label = provider.config().display_name().to_string();
        let fail = |flow: &mut Flow, reason: &dyn std::fmt::Display, user: String, code: &str| {
            tracing::warn!(provider = provider_id, flow = %flow.id, reason = %reason, "social sign-in failed");
            flow.ui
                .messages
                .push(text::social_sign_in_failed(&user, code, &label));
        };

        let cb = Callback { params };
        if let Some(err) = cb.get("error") {
            let e = tessera_social::UpstreamError::OAuth {
                endpoint: "authorization endpoint".into(),
                error: truncate(err, 100),
                description: truncate(cb.get("error_description").unwrap_or_default(), 300),
            };
            fail(&mut flow, &e, e.user_message(&label), e.user_code());
            return self.show(flow).await;
        }
        // RFC 9207: when the upstream names itself, it must be exactly (simple string
        // comparison, §2.4) the one we sent the user to; one that promised to name itself
        // must do so.
        if let Some(expected) = provider.provider.expected_callback_issuer().await {
            let problem = match cb.get("iss") {
                Some(iss) if iss != expected.issuer => Some(format!(
                    "the `iss` parameter is `{}`, not `{}` (RFC 9207 mix-up defence)",
                    truncate(iss, 200),
                    expected.issuer
                )),
                None if expected.required => Some(format!(
                    "the callback has no `iss` parameter, although `{}` says it always sends one (RFC 9207)",
                    expected.issuer
                )),
                _ => None,
            };
            if let Some(problem) = problem {
                let e = tessera_social::UpstreamError::Callback(problem);
                fail(&mut flow, &e, e.user_message(&label), e.user_code());
                return self.show(flow).await;
            }
        }
        let redirect_uri = self.oidc_redirect_uri(provider_id);
        let req = AuthRequest {
            state: state_param,
            nonce: &st.nonce,
            code_verifier: &st.code_verifier,
            redirect_uri: &redirect_uri,
        };
        let profile = match provider.provider.exchange(&cb, &req).await {
            Ok(p) => p,
            Err(e) => {
                fail(&mut flow, &e, e.user_message(&label), e.user_code());
                return self.show(flow).await;
            }
        };
        let mapped = match self.social.map(&provider, &profile.claims).await {
            Ok(m) => m,
            Err(e) => {
                fail(
                    &mut flow,
                    &e,
                    format!(
                        "Your {label} profile could not be turned into an account here because the site's profile mapping failed. The administrator can see why in the server log."
                    ),
                    "mapping_failed",
                );
                return self.show(flow).await;
            }
        };
        let tokens = self.seal_tokens(&provider, &profile.tokens);
        let api_flow = (flow.flow_type == FlowType::Api).then(|| flow.clone());
        let outcome = match flow.kind {
            FlowKind::Settings => {
                self.oidc_link_in_settings(flow, &provider, &profile, tokens, session)
                    .await?
            }
            FlowKind::Login | FlowKind::Registration => {
                self.oidc_sign_in(flow, &provider, profile, mapped, tokens, csrf_cookie)
                    .await?
            }
        };
        match (&outcome, api_flow) {
            (
                CallbackOutcome::SignedIn {
                    session, return_to, ..
                },
                Some(f),
            ) => self.finish_for_app(&f, session, return_to).await,
            _ => Ok(outcome),
        }
    }

    async fn show(&self, mut flow: Flow) -> Result<CallbackOutcome, Error> {
        flow.updated_at = now_ms();
        self.store.update_flow(&flow).await?;
        Ok(CallbackOutcome::ShowFlow(flow))
    }

    /// Encrypts the upstream tokens when the provider keeps them (`store_tokens`).
    fn seal_tokens(&self, provider: &Configured, tokens: &Tokens) -> Value {
        if !provider.config().store_tokens {
            return Value::Null;
        }
        let seal = |t: &Option<String>| -> Value {
            t.as_deref()
                .and_then(|v| self.cipher.encrypt(v).ok())
                .map(Value::String)
                .unwrap_or(Value::Null)
        };
        let mut m = Map::new();
        for (k, v) in [
            ("initial_id_token", seal(&tokens.id_token)),
            ("initial_access_token", seal(&tokens.access_token)),
            ("initial_refresh_token", seal(&tokens.refresh_token)),
        ] {
            if !v.is_null() {
                m.insert(k.into(), v);
            }
        }
        Value::Object(m)
    }

    async fn oidc_sign_in(
        &self,
        flow: Flow,
        provider: &Configured,
        profile: Profile,
        mapped: Mapped,
        tokens: Value,
        csrf_cookie: Option<&str>,
    ) -> Result<CallbackOutcome, Error> {
        let identifier = format!("{}:{}", provider.id(), profile.subject);
        if let Some(identity) = self
            .store
            .find_identity_by_identifier(CREDENTIAL_OIDC, &identifier)
            .await?
        {
            return self
                .oidc_login(flow, provider, &profile, &mapped, tokens, identity)
                .await;
        }
        let pending = pending(&profile, provider.id(), &mapped, tokens);
        self.oidc_register(flow, provider, pending, csrf_cookie)
            .await
    }

    /// The subject is known: sign in (re-mapping traits if the provider asks for it).
    async fn oidc_login(
        &self,
        mut flow: Flow,
        provider: &Configured,
        profile: &Profile,
        mapped: &Mapped,
        tokens: Value,
        identity: Identity,
    ) -> Result<CallbackOutcome, Error> {
        if identity.state != IdentityState::Active {
            flow.ui.messages.push(text::inactive_identity());
            return self.show(flow).await;
        }
        let mut identity = identity;
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
        if tokens.as_object().is_some_and(|m| !m.is_empty()) {
            set_provider_entry(&mut identity, provider.id(), &profile.subject, &tokens);
            changed = true;
        }
        // Signing in with another provider this account already has proves ownership; the
        // owner still confirms the link explicitly (after the update below).
        let confirm_link = Self::pending_link_for(&flow, &identity).is_some();
        if changed {
            match self.store.update_identity(&identity).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::Conflict => {
                    tracing::warn!(identity = %identity.id, "sign-in: re-mapped traits collide with another identity; kept the stored ones");
                    identity = self.store.get_identity(identity.id).await?;
                }
                Err(e) => return Err(e),
            }
        }
        if confirm_link {
            let flow = self.ask_to_confirm_link(flow, &identity, "oidc").await?;
            return Ok(CallbackOutcome::ShowFlow(flow));
        }
        self.finish_sign_in(
            flow,
            identity,
            "This sign-in was already completed. Start again if you are not signed in.",
        )
        .await
    }

    /// Completes the flow exactly once (a request that comes second gets a stored error saying
    /// `again`). `None` when this request completed it.
    async fn complete_once(
        &self,
        flow: &Flow,
        again: &str,
    ) -> Result<Option<CallbackOutcome>, Error> {
        if self.store.complete_flow(flow.id, now_ms()).await? {
            return Ok(None);
        }
        self.stored_error(
            400,
            "self_service_flow_completed",
            "the flow was completed by another request",
            again,
        )
        .await
        .map(Some)
    }

    /// Completes the flow and signs `identity` in, returning to the flow's `return_to`.
    async fn finish_sign_in(
        &self,
        flow: Flow,
        mut identity: Identity,
        again: &str,
    ) -> Result<CallbackOutcome, Error> {
        if let Some(second) = self.complete_once(&flow, again).await? {
            return Ok(second);
        }
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        let session = self.issue_session(&identity, "oidc").await?;
        let return_to = self.return_to(&flow, None);
        Ok(CallbackOutcome::SignedIn {
            identity,
            session,
            return_to,
        })
    }

    /// The subject is new: create the identity when the mapped traits are valid and collide
    /// with nobody, otherwise ask for the gaps or for proof of the existing account.
    async fn oidc_register(
        &self,
        flow: Flow,
        provider: &Configured,
        pending: Value,
        csrf_cookie: Option<&str>,
    ) -> Result<CallbackOutcome, Error> {
        let schema = self.schemas.default_schema()?;
        let traits = pending.get("traits").cloned().unwrap_or(Value::Null);
        let errors = schema.validate_traits(&traits);
        if !errors.is_empty() || !self.settings.registration_enabled {
            if !self.settings.registration_enabled {
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
            reg.internal = json!({ "oidc": pending });
            reg.updated_at = now_ms();
            self.store.update_flow(&reg).await?;
            return Ok(CallbackOutcome::ShowFlow(reg));
        }
        self.create_oidc_identity(flow, provider, pending, csrf_cookie)
            .await
    }

    /// A new flow of `kind` that carries on from `flow`: same type, request URL and
    /// `return_to`, and for browsers bound to the same CSRF cookie.
    fn successor_flow(&self, flow: &Flow, kind: FlowKind, csrf_cookie: Option<&str>) -> Flow {
        let csrf = if flow.flow_type == FlowType::Browser {
            csrf_cookie.unwrap_or_default()
        } else {
            ""
        };
        self.new_flow(
            kind,
            flow.flow_type,
            &flow.request_url,
            flow.return_to.clone(),
            csrf,
        )
    }

    /// The registration flow to continue in: the flow itself, or a new one when the user
    /// started from the login page (as Kratos does).
    async fn registration_flow_for(
        &self,
        flow: &Flow,
        csrf_cookie: Option<&str>,
    ) -> Result<Flow, Error> {
        if flow.kind == FlowKind::Registration {
            return Ok(flow.clone());
        }
        let mut reg = self.successor_flow(flow, FlowKind::Registration, csrf_cookie);
        reg.state = "choose_method".into();
        self.store.insert_flow(&reg).await?;
        Ok(reg)
    }

    /// The fill-the-gaps form: every trait, pre-filled with what the mapper gave, and one
    /// "Sign up with X" button that submits it.
    fn fill_gaps_form(&self, flow: &mut Flow, provider: &Configured, traits: &Value) {
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
            .label(text::registration_with(provider.config().display_name())),
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
        let pending = flow.internal.get("oidc").cloned();
        let Some(mut pending) =
            pending.filter(|p| p.get("provider").and_then(Value::as_str) == Some(&provider_id))
        else {
            return self.start_oidc(flow, &provider_id).await;
        };
        let Some(provider) = self.social.get(&provider_id).cloned() else {
            return self.start_oidc(flow, &provider_id).await;
        };
        let mapped = pending.get("traits").cloned().unwrap_or_else(|| json!({}));
        let mut traits = mapped.clone();
        if let Some(submitted) = body.get("traits") {
            merge(&mut traits, submitted);
        }
        let schema = self.schemas.default_schema()?;
        // Read-only traits come from the upstream (the mapper) or nobody, never the user.
        let refused = schema.pin_read_only(&mut traits, &mapped);
        let errors = schema.validate_traits(&traits);
        if !refused.is_empty() {
            pending["traits"] = traits.clone();
            self.fill_gaps_form(&mut flow, &provider, &traits);
            for path in refused {
                flow.ui
                    .add_message(Some(&format!("traits.{path}")), text::read_only_trait());
            }
            for e in errors {
                flow.ui.add_message(e.field.as_deref(), e.message);
            }
            flow.internal = json!({ "oidc": pending });
            return self.invalid(flow).await;
        }
        pending["traits"] = traits.clone();
        if !errors.is_empty() {
            self.fill_gaps_form(&mut flow, &provider, &traits);
            for e in errors {
                flow.ui.add_message(e.field.as_deref(), e.message);
            }
            flow.internal = json!({ "oidc": pending });
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
            .with_id("self_service_flow_completed")),
        }
    }

    async fn create_oidc_identity(
        &self,
        flow: Flow,
        provider: &Configured,
        pending: Value,
        csrf_cookie: Option<&str>,
    ) -> Result<CallbackOutcome, Error> {
        let schema = self.schemas.default_schema()?;
        let traits = pending.get("traits").cloned().unwrap_or(Value::Null);
        let subject = pending
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // Never link silently: an identifier that already belongs to someone sends the user to
        // prove that account first.
        for id in schema.extract(&traits).password_identifiers {
            if let Some(owner) = self
                .store
                .find_identity_by_identifier(CREDENTIAL_PASSWORD, &id)
                .await?
            {
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
                flow.internal = Value::Null;
                flow.ui.messages.push(text::duplicate_on_oidc_link());
                return self.show(flow).await;
            }
        }
        let mut identity = match self.build_identity(
            &schema.id,
            traits,
            IdentityState::Active,
            pending
                .get("metadata_public")
                .cloned()
                .unwrap_or(Value::Null),
            pending
                .get("metadata_admin")
                .cloned()
                .unwrap_or(Value::Null),
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
                flow.internal = Value::Null;
                return self
                    .finish_sign_in(flow, existing, "This sign-in was already completed.")
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
        if self.settings.session_after_oidc_registration {
            let session = self.issue_session(&identity, "oidc").await?;
            let fallback = self.settings.oidc_registration_return_url.clone();
            let return_to = self.return_to(&flow, fallback.as_ref());
            return Ok(CallbackOutcome::SignedIn {
                identity,
                session,
                return_to,
            });
        }
        // Without the session hook the user signs in next (seed 003).
        let mut to = self
            .settings
            .public_base_url
            .join("self-service/login/browser")
            .map_err(|e| Error::internal(e.to_string()))?;
        if let Some(r) = &flow.return_to {
            to.query_pairs_mut().append_pair("return_to", r);
        }
        Ok(CallbackOutcome::Redirect(to.to_string()))
    }

    /// The mapped identifier belongs to an existing account: show a login flow that explains
    /// it, offers that account's methods, and remembers the social account to link afterwards.
    async fn ask_to_link(
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
    fn pending_link_for(flow: &Flow, identity: &Identity) -> Option<Value> {
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

    /// The settings flow's link callback: add the provider to the signed-in identity.
    async fn oidc_link_in_settings(
        &self,
        mut flow: Flow,
        provider: &Configured,
        profile: &Profile,
        tokens: Value,
        session: Option<&Session>,
    ) -> Result<CallbackOutcome, Error> {
        let Some(identity_id) = flow
            .identity_id
            .filter(|id| session.is_some_and(|s| s.identity_id == *id))
        else {
            return self
                .stored_error(
                    401,
                    "self_service_oidc_link_session",
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
                    provider.config().display_name()
                )));
            }
            Some(_) => {
                flow.ui.messages.push(text::settings_saved());
            }
            None => {
                let pending = json!({"provider": provider.id(), "subject": profile.subject, "tokens": tokens});
                add_link_from_pending(&mut identity, &pending);
                match self.store.update_identity(&identity).await {
                    Ok(()) => {
                        flow.state = "success".into();
                        flow.ui.messages.push(text::settings_saved());
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
            if let Some(list) = c.config.get_mut("providers").and_then(Value::as_array_mut) {
                list.retain(|p| p.get("provider").and_then(Value::as_str) != Some(provider_id));
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

    /// `include_credential=oidc`: the stored upstream tokens, decrypted for the admin.
    pub fn reveal_oidc_tokens(&self, identity: &mut Identity) {
        let Some(c) = identity
            .credentials
            .as_mut()
            .and_then(|m| m.get_mut(CREDENTIAL_OIDC))
        else {
            return;
        };
        let Some(list) = c.config.get_mut("providers").and_then(Value::as_array_mut) else {
            return;
        };
        for p in list {
            for k in [
                "initial_id_token",
                "initial_access_token",
                "initial_refresh_token",
            ] {
                if let Some(Value::String(sealed)) = p.get(k).cloned() {
                    match self.cipher.decrypt(&sealed) {
                        Ok(plain) => p[k] = Value::String(plain),
                        Err(e) => {
                            tracing::warn!(identity = %identity.id, error = %e, "stored upstream token could not be decrypted");
                            p[k] = Value::Null;
                        }
                    }
                }
            }
        }
    }
}

/// Whether the identity can sign in with a password (an imported identity may have an empty
/// password credential).
fn has_password(identity: &Identity) -> bool {
    identity.credential(CREDENTIAL_PASSWORD).is_some_and(|c| {
        c.config
            .get("hashed_password")
            .and_then(Value::as_str)
            .is_some_and(|h| !h.is_empty())
    })
}

/// `(provider, subject)` pairs an identity is linked with.
pub fn linked_providers(identity: &Identity) -> Vec<(String, String)> {
    identity
        .credential(CREDENTIAL_OIDC)
        .map(|c| {
            c.identifiers
                .iter()
                .filter_map(|i| {
                    i.split_once(':')
                        .map(|(p, s)| (p.to_string(), s.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Adds (or refreshes) `<provider>:<subject>` in the identity's oidc credential.
fn add_link_from_pending(identity: &mut Identity, pending: &Value) {
    let provider = pending
        .get("provider")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let subject = pending
        .get("subject")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if provider.is_empty() || subject.is_empty() {
        return;
    }
    let tokens = pending.get("tokens").cloned().unwrap_or(Value::Null);
    set_provider_entry(identity, provider, subject, &tokens);
}

fn set_provider_entry(identity: &mut Identity, provider: &str, subject: &str, tokens: &Value) {
    let now = now_ms();
    let creds = identity.credentials.get_or_insert_with(BTreeMap::new);
    let c = creds
        .entry(CREDENTIAL_OIDC.into())
        .or_insert_with(|| Credential {
            kind: CREDENTIAL_OIDC.into(),
            identifiers: vec![],
            config: json!({ "providers": [] }),
            version: 0,
            created_at: now,
            updated_at: now,
        });
    let identifier = format!("{provider}:{subject}");
    if !c.identifiers.contains(&identifier) {
        c.identifiers.push(identifier);
    }
    if !c.config.get("providers").is_some_and(Value::is_array) {
        c.config = json!({ "providers": [] });
    }
    let mut entry = json!({ "provider": provider, "subject": subject });
    if let Some(t) = tokens.as_object() {
        for (k, v) in t {
            entry[k] = v.clone();
        }
    }
    if let Some(list) = c.config.get_mut("providers").and_then(Value::as_array_mut) {
        match list.iter_mut().find(|p| {
            p.get("provider").and_then(Value::as_str) == Some(provider)
                && p.get("subject").and_then(Value::as_str) == Some(subject)
        }) {
            Some(existing) => {
                if tokens.as_object().is_some_and(|t| !t.is_empty()) {
                    *existing = entry;
                }
            }
            None => list.push(entry),
        }
    }
    c.updated_at = now;
}

/// Whether the upstream vouched for `identifier`: it is one of the `verified_addresses` the
/// provider's mapper declared. The mapper is the operator's statement of what the upstream
/// verifies (the default mappers list an email only when the upstream says
/// `email_verified`), as in Kratos.
fn upstream_verified(pending: &Value, identifier: &str) -> bool {
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

/// Addresses the mapper vouched for (`verified_addresses`) start verified.
fn mark_verified(identity: &mut Identity, pending: &Value) {
    let Some(list) = pending.get("verified_addresses").and_then(Value::as_array) else {
        return;
    };
    let now = now_ms();
    for a in list {
        let (Some(value), via) = (
            a.get("value").and_then(Value::as_str),
            a.get("via").and_then(Value::as_str).unwrap_or("email"),
        ) else {
            continue;
        };
        for addr in identity.verifiable_addresses.iter_mut() {
            if addr.via == via && addr.value.eq_ignore_ascii_case(value) {
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

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
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
