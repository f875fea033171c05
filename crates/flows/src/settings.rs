//! The settings flow: change password, update profile traits.

use crate::engine::{Engine, Outcome};
use crate::forms::{self, password_node, str_field, submit_node, trait_nodes};
use crate::hooks::HookOutcome;
use serde_json::Value;
use tessera_core::flow::{Flow, FlowKind, FlowState, FlowType};
use tessera_core::identity::{CREDENTIAL_PASSWORD, Credential, PasswordConfig};
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::ui::Autocomplete;
use tessera_core::{Error, ErrorKind, text};

impl Engine {
    pub async fn init_settings(
        &self,
        flow_type: FlowType,
        request_url: &str,
        return_to: Option<&str>,
        session: &Session,
        csrf: &str,
    ) -> Result<Flow, Error> {
        let return_to = self.check_return_to(return_to)?;
        if self
            .falls_short(session, self.settings.mfa.settings_required_aal)
            .await?
        {
            let back = self
                .settings
                .serve
                .public_base_url
                .join("self-service/settings/browser")
                .map_err(|e| Error::internal(e.to_string()))?;
            return Err(self.aal2_required(Some(back.as_str())));
        }
        let identity = session.identity.clone().ok_or_else(Error::no_session)?;
        let mut flow = self.new_flow(FlowKind::Settings, flow_type, request_url, return_to, csrf);
        flow.identity_id = Some(identity.id);
        let schema = self.schemas.get(&identity.schema_id)?;
        trait_nodes(&mut flow.ui, schema, "profile", &identity.traits);
        flow.ui
            .nodes
            .push(submit_node("profile", "profile", text::label_save()));
        if self.settings.password.enabled {
            flow.ui.nodes.push(password_node(
                "password",
                "password",
                Autocomplete::NewPassword,
            ));
            flow.ui
                .nodes
                .push(submit_node("password", "password", text::label_save()));
        }
        if self.settings.oidc.enabled
            || self.settings.mfa.totp.is_some()
            || self.settings.mfa.lookup_secret
        {
            let full = self.store.get_identity(identity.id).await?;
            if self.settings.oidc.enabled {
                self.add_settings_oidc_nodes(&mut flow, &full);
            }
            self.add_settings_totp_nodes(&mut flow, &full)?;
            self.add_settings_lookup_nodes(&mut flow, &full);
        }
        self.run_before_hooks(&self.settings.hooks.settings_before, &flow, Some(session))
            .await?;
        self.store.insert_flow(&flow).await?;
        let mut public = identity;
        public.credentials = None;
        flow.identity = serde_json::to_value(public).unwrap_or(Value::Null);
        Ok(flow)
    }

    /// Applies a settings submission for the signed-in identity. The flow must belong to it.
    pub async fn submit_settings(
        &self,
        flow_id: &str,
        body: &Value,
        csrf_cookie: Option<&str>,
        session: &Session,
    ) -> Result<Outcome, Error> {
        let mut flow = self
            .flow_for_submit(FlowKind::Settings, flow_id, body, csrf_cookie)
            .await?;
        if flow.identity_id != Some(session.identity_id) {
            return Err(Error::forbidden("This settings flow belongs to another session's identity: start a new settings flow.").with_id(tessera_core::error::ErrorId::SecurityIdentityMismatch));
        }
        // A stolen or forgotten session must not become a permanent takeover: credentials and
        // traits change only within `privileged_session_max_age` of signing in (Kratos).
        let max_age = self
            .settings
            .flows
            .settings
            .privileged_session_max_age
            .as_millis() as i64;
        if now_ms() - session.authenticated_at > max_age {
            let mut to = self
                .settings
                .serve
                .public_base_url
                .join("self-service/login/browser")
                .map_err(|e| Error::internal(e.to_string()))?;
            let back = self
                .settings
                .serve
                .public_base_url
                .join("self-service/settings/browser")
                .map_err(|e| Error::internal(e.to_string()))?;
            to.query_pairs_mut()
                .append_pair("refresh", "true")
                .append_pair("return_to", back.as_str());
            return Err(Error::forbidden(
                "The login session is too old and thus not allowed to update these fields. Please re-authenticate.",
            )
            .with_id(tessera_core::error::ErrorId::SessionRefreshRequired)
            .with_details(serde_json::json!({ "redirect_browser_to": to.to_string() })));
        }
        // `selfservice.flows.settings.required_aal: highest_available`: someone holding a second
        // factor changes nothing (that factor included) on one factor's strength.
        if self
            .falls_short(session, self.settings.mfa.settings_required_aal)
            .await?
        {
            let back = self
                .settings
                .serve
                .public_base_url
                .join("self-service/settings/browser")
                .map_err(|e| Error::internal(e.to_string()))?;
            return Err(self.aal2_required(Some(back.as_str())));
        }
        let mut identity = self.store.get_identity(session.identity_id).await?;
        // The optimistic check of the writes below (issue 21): each writes the whole identity
        // back, so one that raced another settings request would undo it.
        let read_at = identity.updated_at;
        let schema = self.schemas.get(&identity.schema_id)?;
        // `settings.after.totp` is not read yet: a TOTP change runs the stage's global hooks
        // (Kratos's rule for a method without its own).
        let totp_hooks = tessera_config::hooks::AfterHooks {
            method: vec![],
            global: self.settings.hooks.settings_after_password.global.clone(),
        };
        let hooks;
        if self.settings.oidc.enabled && Self::is_oidc_submit(body) {
            if let Some(p) = str_field(body, "link") {
                let p = p.to_string();
                return self.start_oidc(flow, &p).await;
            }
            let target = str_field(body, "unlink").unwrap_or_default().to_string();
            if let Err(reason) = self.unlink_provider(&mut identity, &target) {
                flow.ui.messages.push(text::validation_generic(&reason));
                return self.settings_invalid(flow, &identity).await;
            }
            hooks = &self.settings.hooks.settings_after_oidc;
            if let HookOutcome::Refused(r) = self
                .run_pre_persist(hooks.pre_persist(), &flow, &mut identity, Some(session))
                .await?
            {
                r.apply(&mut flow);
                return self.settings_invalid(flow, &identity).await;
            }
            if !self
                .store
                .update_identity_if_unchanged(&identity, read_at)
                .await?
            {
                return self.changed_meanwhile(flow, &identity).await;
            }
            self.refresh_settings_nodes(&mut flow, &identity);
        } else {
            match forms::settings_method(body) {
                "password" if self.settings.password.enabled => {
                    let password = str_field(body, "password").unwrap_or_default().to_string();
                    let identifiers = schema.extract(&identity.traits).password_identifiers;
                    if password.is_empty() {
                        flow.ui
                            .add_message(Some("password"), text::missing_property("password"));
                        return self.settings_invalid(flow, &identity).await;
                    }
                    if let Err(reason) = self.check_password_policy(&password, &identifiers) {
                        flow.ui
                            .add_message(Some("password"), text::password_policy(&reason));
                        return self.settings_invalid(flow, &identity).await;
                    }
                    let hasher = self.hasher.clone();
                    let hashed = self.limits.hash(move || hasher.hash(&password)).await?;
                    let now = now_ms();
                    let creds = identity.credentials.get_or_insert_with(Default::default);
                    let created_at = creds
                        .get(CREDENTIAL_PASSWORD)
                        .map(|c| c.created_at)
                        .unwrap_or(now);
                    creds.insert(
                        CREDENTIAL_PASSWORD.into(),
                        Credential {
                            kind: CREDENTIAL_PASSWORD.into(),
                            identifiers,
                            config: serde_json::to_value(PasswordConfig {
                                hashed_password: hashed,
                            })
                            .unwrap_or(Value::Null),
                            version: 0,
                            created_at,
                            updated_at: now,
                        },
                    );
                    identity.updated_at = now;
                    hooks = &self.settings.hooks.settings_after_password;
                    if let HookOutcome::Refused(r) = self
                        .run_pre_persist(hooks.pre_persist(), &flow, &mut identity, Some(session))
                        .await?
                    {
                        r.apply(&mut flow);
                        return self.settings_invalid(flow, &identity).await;
                    }
                    if !self
                        .store
                        .update_identity_if_unchanged(&identity, read_at)
                        .await?
                    {
                        return self.changed_meanwhile(flow, &identity).await;
                    }
                }
                "totp" if self.settings.mfa.totp.is_some() => {
                    hooks = &totp_hooks;
                    match self
                        .settings_totp(flow, &mut identity, body, session)
                        .await?
                    {
                        Ok(f) => flow = f,
                        Err(f) => return self.settings_invalid(f, &identity).await,
                    }
                }
                "lookup_secret" if self.settings.mfa.lookup_secret => {
                    hooks = &totp_hooks;
                    match self
                        .settings_lookup(flow, &mut identity, body, session)
                        .await?
                    {
                        Ok(f) => flow = f,
                        Err(f) => return self.settings_invalid(f, &identity).await,
                    }
                }
                "profile" => {
                    let mut traits = body.get("traits").cloned().unwrap_or(Value::Null);
                    if traits.is_object() {
                        let refused = schema.pin_read_only(&mut traits, &identity.traits);
                        if !refused.is_empty() {
                            for path in refused {
                                flow.ui.add_message(
                                    Some(&format!("traits.{path}")),
                                    text::read_only_trait(),
                                );
                            }
                            return self.settings_invalid(flow, &identity).await;
                        }
                    }
                    for f in &schema.fields {
                        if let Some(v) = tessera_core::schema::lookup(&traits, &f.path) {
                            flow.ui.set_value(&format!("traits.{}", f.path), v.clone());
                        }
                    }
                    let errors = schema.validate_traits(&traits);
                    if !traits.is_object() || !errors.is_empty() {
                        for e in errors {
                            flow.ui.add_message(e.field.as_deref(), e.message);
                        }
                        if !traits.is_object() {
                            flow.ui.messages.push(text::validation_generic(
                                "`traits` must be an object of the identity's traits.",
                            ));
                        }
                        return self.settings_invalid(flow, &identity).await;
                    }
                    let mut updated = self.rebuild_with_traits(&identity, traits)?;
                    hooks = &self.settings.hooks.settings_after_profile;
                    if let HookOutcome::Refused(r) = self
                        .run_pre_persist(hooks.pre_persist(), &flow, &mut updated, Some(session))
                        .await?
                    {
                        r.apply(&mut flow);
                        return self.settings_invalid(flow, &identity).await;
                    }
                    match self
                        .store
                        .update_identity_if_unchanged(&updated, read_at)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => return self.changed_meanwhile(flow, &identity).await,
                        Err(e) if e.kind == ErrorKind::Conflict => {
                            flow.ui.messages.push(text::duplicate_credentials());
                            return self.settings_invalid(flow, &identity).await;
                        }
                        Err(e) => return Err(e),
                    }
                    // A changed address starts unverified and gets a code (Kratos's
                    // verification hook after settings).
                    for v in self
                        .verify_new_addresses(&flow, &updated, Some(&identity))
                        .await?
                    {
                        flow.continue_with.push(self.show_verification_ui(&v));
                    }
                    identity = updated;
                }
                other => {
                    let mut offered = vec!["`profile`"];
                    for (on, name) in [
                        (self.settings.password.enabled, "`password`"),
                        (self.settings.mfa.totp.is_some(), "`totp`"),
                        (self.settings.mfa.lookup_secret, "`lookup_secret`"),
                        (
                            self.settings.oidc.enabled,
                            "`oidc` (with `link` or `unlink`)",
                        ),
                    ] {
                        if on {
                            offered.push(name);
                        }
                    }
                    let said = if other.is_empty() {
                        "No settings method given".to_string()
                    } else {
                        format!("Settings method `{other}` is not offered here")
                    };
                    flow.ui.messages.push(text::validation_generic(&format!(
                        "{said}: send `method` as one of {}.",
                        offered.join(", ")
                    )));
                    return self.settings_invalid(flow, &identity).await;
                }
            }
        }
        flow.state = FlowState::Success;
        flow.ui.messages.push(text::settings_saved());
        flow.updated_at = now_ms();
        self.store.update_flow(&flow).await?;
        self.run_post_persist(hooks.post_persist(), &flow, &identity, Some(session))
            .await?;
        identity.schema_url = self.schema_url(&identity.schema_id);
        identity.credentials = None;
        flow.identity = serde_json::to_value(&identity).unwrap_or(Value::Null);
        let return_to = self.return_to(&flow, None);
        Ok(Outcome::Completed {
            flow,
            identity,
            session: None,
            return_to,
        })
    }

    /// The optimistic check failed: another request changed the identity after this one read
    /// it. Nothing was written; the flow shows the identity as it is now, to submit again.
    /// Writes a second-factor change of a settings flow over the identity as it was read at
    /// `read_at`; `false`, with the flow told so, when another request wrote it in between
    /// (its change would otherwise be undone by this whole-identity write).
    pub(crate) async fn save_factor_change(
        &self,
        flow: &mut Flow,
        identity: &tessera_core::identity::Identity,
        read_at: i64,
    ) -> Result<bool, Error> {
        if self
            .store
            .update_identity_if_unchanged(identity, read_at)
            .await?
        {
            return Ok(true);
        }
        flow.ui.messages.push(text::validation_generic(
            "This account was changed by another request while this one was being saved, so nothing was saved. Check the values and submit again.",
        ));
        Ok(false)
    }

    async fn changed_meanwhile(
        &self,
        mut flow: Flow,
        stale: &tessera_core::identity::Identity,
    ) -> Result<Outcome, Error> {
        flow.ui.messages.push(text::validation_generic(
            "This account was changed by another request while this one was being saved, so nothing was saved. Check the values and submit again.",
        ));
        let now = match self.store.get_identity(stale.id).await {
            Ok(i) => i,
            Err(_) => stale.clone(),
        };
        self.settings_invalid(flow, &now).await
    }

    async fn settings_invalid(
        &self,
        mut flow: Flow,
        identity: &tessera_core::identity::Identity,
    ) -> Result<Outcome, Error> {
        let mut public = identity.clone();
        public.credentials = None;
        public.schema_url = self.schema_url(&public.schema_id);
        flow.identity = serde_json::to_value(public).unwrap_or(Value::Null);
        self.invalid(flow).await
    }
}
