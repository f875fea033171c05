//! Second factors and assurance levels (issue 20): the `totp` method (RFC 6238 authenticator
//! apps) in settings (enrol, unlink) and in the `aal=aal2` login that lifts a session to aal2,
//! and the `required_aal` rules of whoami and settings.
//!
//! A code is accepted for the current 30-second step and one step either side (clock drift).
//! Each step's code is taken once per identity: the step is recorded with the store's
//! fixed-window counters, so a replayed code is refused on every instance. Wrong codes count
//! against the identity like failed passwords do (`limits.failed_logins`).

use crate::engine::{Engine, Outcome};
use crate::forms::{self, str_field, submit_node};
use base64::Engine as _;
use serde_json::Value;
use tessera_config::RequiredAal;
use tessera_core::error::ErrorId;
use tessera_core::flow::{Flow, FlowKind, FlowState, FlowType};
use tessera_core::identity::{
    CREDENTIAL_OIDC, CREDENTIAL_PASSWORD, CREDENTIAL_TOTP, Credential, Identity, TotpConfig,
};
use tessera_core::session::{AuthenticationMethod, Session};
use tessera_core::timefmt::now_ms;
use tessera_core::ui::{Autocomplete, Node};
use tessera_core::{Error, crypto, text};
use totp_rs::{Algorithm, TOTP};

/// Kratos's (and every authenticator app's) defaults: SHA-1, 6 digits, 30 s.
const DIGITS: usize = 6;
const STEP_SECONDS: u64 = 30;
/// 160 bits, RFC 4226's recommended secret length.
const SECRET_BYTES: usize = 20;
/// The QR code's size on the page, as Kratos's node.
const QR_SIZE: u32 = 256;

pub const AAL1: &str = "aal1";
pub const AAL2: &str = "aal2";

/// A TOTP key: the secret with the labels authenticator apps show.
pub struct TotpKey(TOTP);

impl TotpKey {
    /// A new random key for `account` (the identity's identifier) under `issuer`.
    pub fn generate(issuer: &str, account: &str) -> Result<TotpKey, Error> {
        let secret = crypto::random_bytes::<SECRET_BYTES>().to_vec();
        // `:` separates issuer and account in the otpauth label; apps mis-read it elsewhere.
        let issuer = issuer.replace(':', " ");
        let account = account.replace(':', " ");
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            1,
            STEP_SECONDS,
            secret,
            Some(issuer).filter(|i| !i.is_empty()),
            account,
        )
        .map(TotpKey)
        .map_err(|e| Error::internal(format!("cannot make a TOTP key: {e:?}")))
    }

    /// A key from its `otpauth://totp/…` URL (as stored, once unsealed). Imported keys may be
    /// shorter than the 128 bits totp-rs insists on ([`TotpKey::import`] checks what we allow).
    pub fn from_url(url: &str) -> Result<TotpKey, Error> {
        TOTP::from_url_unchecked(url)
            .map(TotpKey)
            .map_err(|e| Error::internal(format!("a stored TOTP key does not read: {e:?}")))
    }

    /// A key an administrator imports (Kratos's `credentials.totp.config.totp_url`): an
    /// `otpauth://totp/` URL whose secret has at least 80 bits (what older authenticator
    /// set-ups issued) and 6 to 8 digits. `Err` says what is wrong, for the admin API's answer.
    pub fn import(url: &str) -> Result<TotpKey, String> {
        let totp = TOTP::from_url_unchecked(url)
            .map_err(|e| format!("is not an otpauth://totp/ URL with a base32 `secret` ({e:?})"))?;
        if totp.secret.len() < 10 {
            return Err(format!(
                "holds a {}-bit secret; a TOTP secret needs at least 80 bits",
                totp.secret.len() * 8
            ));
        }
        if !(6..=8).contains(&totp.digits) {
            return Err(format!(
                "asks for {} digits; authenticator apps show 6 to 8",
                totp.digits
            ));
        }
        if totp.step == 0 {
            return Err("has a `period` of 0 seconds".into());
        }
        Ok(TotpKey(totp))
    }

    /// The `otpauth://` URL apps import (Kratos's `totp_url`).
    pub fn url(&self) -> String {
        self.0.get_url()
    }

    /// The secret in base32, to type into an app that cannot scan.
    pub fn secret_base32(&self) -> String {
        self.0.get_secret_base32()
    }

    /// The enrolment QR code of [`TotpKey::url`] as an SVG `data:` URL for an image node.
    pub fn qr_data_url(&self) -> Result<String, Error> {
        let code = qrcode::QrCode::new(self.url().as_bytes())
            .map_err(|e| Error::internal(format!("cannot draw the TOTP QR code: {e}")))?;
        let svg = code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(QR_SIZE, QR_SIZE)
            .build();
        Ok(format!(
            "data:image/svg+xml;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(svg)
        ))
    }

    /// The code at Unix time `unix` (seconds).
    pub fn code_at(&self, unix: u64) -> String {
        self.0.generate(unix)
    }

    /// The time step whose code `code` is, when it is valid at `unix` (the current step or
    /// one either side); compared in constant time.
    pub fn matching_step(&self, code: &str, unix: u64) -> Option<u64> {
        let code = code.trim();
        // An imported key keeps its own digits and period; ours are 6 and 30 s.
        let period = self.0.step.max(1);
        if code.len() != self.0.digits || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix / period;
        [now.saturating_sub(1), now, now + 1]
            .into_iter()
            .find(|step| crypto::constant_time_eq(&self.0.generate(step * period), code))
    }
}

/// How many ways to sign in on their own (first factors) an identity has: a usable password
/// and each linked upstream account.
fn first_factors(identity: &Identity) -> usize {
    let password = identity
        .credential(CREDENTIAL_PASSWORD)
        .and_then(Credential::password_config)
        .is_some();
    let oidc = identity
        .credential(CREDENTIAL_OIDC)
        .map_or(0, |c| c.identifiers.len());
    usize::from(password) + oidc
}

/// Whether an identity holds a second factor the server runs (what makes its highest available
/// level aal2).
pub fn has_second_factor(engine: &Engine, identity: &Identity) -> bool {
    engine.settings.mfa.holds_second_factor(identity)
}

impl Engine {
    /// `DELETE /admin/identities/{id}/credentials/{type}` (Kratos's rules): `totp` and
    /// `lookup_secret` go whole; `password` and `oidc` (one upstream account, named by `identifier`
    /// `<provider>:<subject>`) only while another first factor remains; other types cannot be
    /// deleted. The identity's sessions are left as they are, as in Kratos.
    pub async fn admin_delete_credential(
        &self,
        id: uuid::Uuid,
        kind: &str,
        identifier: Option<&str>,
    ) -> Result<(), Error> {
        let mut identity = self.store.get_identity(id).await?;
        let read_at = identity.updated_at;
        if identity.credential(kind).is_none() {
            return Err(Error::not_found(format!(
                "You tried to remove a {kind} but this user have no {kind} set up."
            )));
        }
        let creds = identity.credentials.get_or_insert_with(Default::default);
        match kind {
            CREDENTIAL_TOTP | tessera_core::identity::CREDENTIAL_LOOKUP_SECRET => {
                creds.remove(kind);
            }
            CREDENTIAL_PASSWORD | CREDENTIAL_OIDC => {
                if first_factors(&identity) < 2 {
                    return Err(Error::bad_request(
                        "You cannot remove the last first factor credential.",
                    ));
                }
                let creds = identity.credentials.get_or_insert_with(Default::default);
                if kind == CREDENTIAL_PASSWORD {
                    creds.remove(kind);
                } else {
                    let identifier = identifier.filter(|i| !i.is_empty()).ok_or_else(|| {
                        Error::bad_request(
                            "You must provide an identifier to delete this credential: `?identifier=<provider>:<subject>`.",
                        )
                    })?;
                    let Some(c) = creds.get_mut(CREDENTIAL_OIDC) else {
                        return Err(Error::internal("the oidc credential vanished"));
                    };
                    if !c.identifiers.iter().any(|i| i == identifier) {
                        return Err(Error::not_found(format!(
                            "The identifier `{identifier}` was not found among OIDC credentials."
                        )));
                    }
                    c.identifiers.retain(|i| i != identifier);
                    let mut config = c.oidc_config();
                    config
                        .providers
                        .retain(|p| format!("{}:{}", p.provider, p.subject) != identifier);
                    c.set_config(&config);
                    c.updated_at = now_ms();
                    if c.identifiers.is_empty() {
                        creds.remove(CREDENTIAL_OIDC);
                    }
                }
            }
            other => {
                return Err(Error::bad_request(format!(
                    "Credentials type {other} cannot be deleted."
                )));
            }
        }
        identity.updated_at = now_ms();
        // Only over the identity as read: a racing change (a new password, say) is not undone.
        if self
            .store
            .update_identity_if_unchanged(&identity, read_at)
            .await?
        {
            Ok(())
        } else {
            Err(Error::conflict(
                "The identity was changed by another request while the credential was being removed, so nothing was removed. Try again.",
            ))
        }
    }

    fn totp_issuer(&self) -> String {
        match &self.settings.mfa.totp {
            Some(t) if !t.issuer.is_empty() => t.issuer.clone(),
            _ => self
                .settings
                .serve
                .public_base_url
                .host_str()
                .unwrap_or("Tessera")
                .to_string(),
        }
    }

    /// The identity's TOTP key, unsealed.
    fn totp_key_of(&self, identity: &Identity) -> Result<Option<TotpKey>, Error> {
        let Some(c) = identity.credential(CREDENTIAL_TOTP) else {
            return Ok(None);
        };
        let config: TotpConfig = serde_json::from_value(c.config.clone())
            .map_err(|e| Error::internal(format!("a totp credential does not read: {e}")))?;
        let url = self
            .cipher
            .decrypt(&config.totp_url)
            .map_err(|e| Error::internal(format!("a totp credential does not unseal: {e}")))?;
        TotpKey::from_url(&url).map(Some)
    }

    /// The error a session below the level it needs gets (Kratos's 403
    /// `session_aal2_required`), with where a browser completes the second factor.
    pub fn aal2_required(&self, return_to: Option<&str>) -> Error {
        let mut to = self
            .settings
            .serve
            .public_base_url
            .join("self-service/login/browser")
            .unwrap_or_else(|_| self.settings.serve.public_base_url.clone());
        {
            let mut q = to.query_pairs_mut();
            q.append_pair("aal", AAL2);
            if let Some(r) = return_to {
                q.append_pair("return_to", r);
            }
        }
        Error::forbidden(
            "Session was found but it does not satisfy the required assurance level. Complete the second factor (a login flow with aal=aal2).",
        )
        .with_id(ErrorId::SessionAal2Required)
        .with_details(serde_json::json!({ "redirect_browser_to": to.to_string() }))
    }

    /// Whether `session` falls short of `required`: `highest_available` asks aal2 of anyone
    /// holding a second factor. Loads the identity's credentials only when it can matter.
    pub async fn falls_short(
        &self,
        session: &Session,
        required: RequiredAal,
    ) -> Result<bool, Error> {
        if required == RequiredAal::Aal1
            || self.settings.mfa.totp.is_none()
            || session.authenticator_assurance_level == AAL2
        {
            return Ok(false);
        }
        let identity = self.store.get_identity(session.identity_id).await?;
        Ok(has_second_factor(self, &identity))
    }

    /// Settings: the `totp` group. Without a key: a new key (sealed into the flow) as a QR code
    /// and as text, and the code input that confirms it; with one: the unlink button.
    pub(crate) fn add_settings_totp_nodes(
        &self,
        flow: &mut Flow,
        identity: &Identity,
    ) -> Result<(), Error> {
        flow.ui.nodes.retain(|n| n.group != "totp");
        flow.internal.totp_pending = None;
        if self.settings.mfa.totp.is_none() {
            return Ok(());
        }
        if identity.credential(CREDENTIAL_TOTP).is_some() {
            flow.ui.nodes.push(
                Node::input(
                    "totp",
                    "totp_unlink",
                    "submit",
                    Value::String("true".into()),
                )
                .label(text::unlink_totp()),
            );
            return Ok(());
        }
        let account = identity
            .credential(tessera_core::identity::CREDENTIAL_PASSWORD)
            .and_then(|c| c.identifiers.first().cloned())
            .unwrap_or_else(|| identity.id.to_string());
        let key = TotpKey::generate(&self.totp_issuer(), &account)?;
        flow.internal.totp_pending = Some(
            self.cipher
                .encrypt(&key.url())
                .map_err(|e| Error::internal(e.to_string()))?,
        );
        flow.ui.nodes.push(
            Node::image("totp", "totp_qr", key.qr_data_url()?, QR_SIZE).label(text::totp_qr()),
        );
        flow.ui.nodes.push(
            Node::text(
                "totp",
                "totp_secret_key",
                text::totp_secret(&key.secret_base32()),
            )
            .label(text::totp_secret_label()),
        );
        flow.ui.nodes.push(
            Node::input("totp", "totp_code", "text", Value::Null)
                .required()
                .autocomplete(Autocomplete::OneTimeCode)
                .label(text::label_verify_otp()),
        );
        flow.ui
            .nodes
            .push(submit_node("totp", "totp", text::label_save()));
        Ok(())
    }

    /// Settings, `method=totp`: `totp_unlink=true` removes the key; `totp_code` confirms the
    /// key the flow offered. `Err(flow)` is the flow to answer with its messages.
    ///
    /// Changing the key of someone who holds a second factor (removing it, or adding one next
    /// to recovery codes) takes an aal2 session whatever `settings.required_aal` says: with
    /// `aal1` a stolen password would otherwise be enough to strip or replace the second factor
    /// that protects against exactly that.
    pub(crate) async fn settings_totp(
        &self,
        mut flow: Flow,
        identity: &mut Identity,
        body: &Value,
        session: &Session,
    ) -> Result<Result<Flow, Flow>, Error> {
        // Nothing has changed `identity` since it was read: the writes below go over that.
        let read_at = identity.updated_at;
        let unlink = crate::forms::flag(body, "totp_unlink");
        if session.authenticator_assurance_level != AAL2
            && self.settings.mfa.holds_second_factor(identity)
        {
            let back = self
                .settings
                .serve
                .public_base_url
                .join("self-service/settings/browser")
                .map_err(|e| Error::internal(e.to_string()))?;
            return Err(self.aal2_required(Some(back.as_str())));
        }
        if unlink {
            let removed = identity
                .credentials
                .as_mut()
                .and_then(|c| c.remove(CREDENTIAL_TOTP))
                .is_some();
            if !removed {
                flow.ui.messages.push(text::validation_generic(
                    "There is no authenticator app to unlink.",
                ));
                return Ok(Err(flow));
            }
            identity.updated_at = now_ms();
            if !self
                .save_factor_change(&mut flow, identity, read_at)
                .await?
            {
                return Ok(Err(flow));
            }
            self.add_settings_totp_nodes(&mut flow, identity)?;
            return Ok(Ok(flow));
        }
        let Some(sealed) = flow.internal.totp_pending.clone() else {
            flow.ui.messages.push(text::validation_generic(
                "This settings flow offers no authenticator app to add: start a new settings flow.",
            ));
            return Ok(Err(flow));
        };
        let code = str_field(body, "totp_code").unwrap_or_default().to_string();
        if code.trim().is_empty() {
            flow.ui
                .add_message(Some("totp_code"), text::missing_property("totp_code"));
            return Ok(Err(flow));
        }
        let limit_key = format!("totp:{}", identity.id);
        self.limits
            .check_login(&self.store, &limit_key, None)
            .await?;
        let url = self
            .cipher
            .decrypt(&sealed)
            .map_err(|e| Error::internal(e.to_string()))?;
        let key = TotpKey::from_url(&url)?;
        // The code that confirms the key is spent like a sign-in code: otherwise whoever saw
        // it (over a shoulder, in a screen recording) could step up with it in the same window.
        let fresh = match key.matching_step(&code, unix_now()) {
            Some(step) => self.first_use_of_step(identity.id, step).await?,
            None => false,
        };
        if !fresh {
            self.limits
                .record_login_failure(&self.store, &limit_key, None)
                .await?;
            flow.ui
                .add_message(Some("totp_code"), text::totp_verifier_wrong());
            return Ok(Err(flow));
        }
        let now = now_ms();
        let mut credential = Credential {
            kind: CREDENTIAL_TOTP.into(),
            identifiers: vec![identity.id.to_string()],
            config: Value::Null,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        credential.set_config(&TotpConfig { totp_url: sealed });
        identity
            .credentials
            .get_or_insert_with(Default::default)
            .insert(CREDENTIAL_TOTP.into(), credential);
        identity.updated_at = now;
        if !self
            .save_factor_change(&mut flow, identity, read_at)
            .await?
        {
            return Ok(Err(flow));
        }
        self.add_settings_totp_nodes(&mut flow, identity)?;
        Ok(Ok(flow))
    }

    /// `GET /self-service/login/{browser,api}?aal=aal2`: the second step of a signed-in
    /// person who holds a second factor. The flow is bound to the session's identity.
    pub async fn init_login_aal2(
        &self,
        flow_type: FlowType,
        request_url: &str,
        return_to: Option<&str>,
        session: Option<&Session>,
        csrf: &str,
    ) -> Result<Flow, Error> {
        let session = session.ok_or_else(|| {
            Error::new(
                tessera_core::ErrorKind::Unauthorized,
                "A login flow with aal=aal2 needs a session: sign in with the first factor first.",
            )
            .with_id(ErrorId::SessionInactive)
        })?;
        if session.authenticator_assurance_level == AAL2 {
            return Err(Error::session_already_available());
        }
        let identity = self.store.get_identity(session.identity_id).await?;
        if !has_second_factor(self, &identity) {
            return Err(Error::bad_request(
                "This account has no second factor set up, so there is nothing to complete: add one in the settings.",
            ));
        }
        let return_to = self.check_return_to(return_to)?;
        let mut flow = self.new_flow(FlowKind::Login, flow_type, request_url, return_to, csrf);
        flow.refresh = Some(false);
        flow.requested_aal = Some(AAL2.into());
        flow.identity_id = Some(identity.id);
        flow.ui.messages.push(text::login_mfa());
        if self.settings.mfa.totp.is_some() && identity.credential(CREDENTIAL_TOTP).is_some() {
            flow.ui.nodes.push(
                Node::input("totp", "totp_code", "text", Value::Null)
                    .required()
                    .autocomplete(Autocomplete::OneTimeCode)
                    .label(text::login_totp_label()),
            );
            flow.ui
                .nodes
                .push(submit_node("totp", "totp", text::login_totp()));
        }
        if self.settings.mfa.lookup_secret && crate::lookup::codes_of(&identity).is_some() {
            flow.ui.nodes.push(
                Node::input("lookup_secret", "lookup_secret", "text", Value::Null)
                    .required()
                    .label(text::login_lookup_label()),
            );
            flow.ui.nodes.push(submit_node(
                "lookup_secret",
                "lookup_secret",
                text::login_lookup(),
            ));
        }
        self.store.insert_flow(&flow).await?;
        Ok(flow)
    }

    /// A login submission, knowing the request's session: an aal2 flow takes only `totp`, an
    /// aal1 flow never does (a second factor cannot stand in for the first).
    pub async fn submit_login_as(
        &self,
        flow_id: &str,
        body: &Value,
        csrf_cookie: Option<&str>,
        client: Option<std::net::IpAddr>,
        session: Option<&Session>,
    ) -> Result<Outcome, Error> {
        let aal2 = match uuid::Uuid::parse_str(flow_id.trim()) {
            Ok(id) => self
                .store
                .get_flow(id)
                .await
                .ok()
                .is_some_and(|(f, _)| f.requested_aal.as_deref() == Some(AAL2)),
            Err(_) => false,
        };
        if !aal2 {
            if forms::method(body) == "totp" {
                let mut flow = self
                    .flow_for_submit(FlowKind::Login, flow_id, body, csrf_cookie)
                    .await?;
                flow.ui.messages.push(text::validation_generic(
                    "Sign in with your first factor first; the authentication code is asked for afterwards.",
                ));
                return self.invalid(flow).await;
            }
            return self
                .submit_login_with(flow_id, body, csrf_cookie, client, session)
                .await;
        }
        let mut flow = self
            .flow_for_submit(FlowKind::Login, flow_id, body, csrf_cookie)
            .await?;
        let session = session.ok_or_else(Error::no_session)?;
        if flow.identity_id != Some(session.identity_id) {
            return Err(Error::forbidden(
                "This login flow belongs to another session's identity: start a new one.",
            )
            .with_id(ErrorId::SecurityIdentityMismatch));
        }
        let method = forms::method(body);
        if method == "lookup_secret" && self.settings.mfa.lookup_secret {
            return self.submit_lookup_step(flow, session, body, client).await;
        }
        if method != "totp" || self.settings.mfa.totp.is_none() {
            flow.ui.messages.push(text::validation_generic(
                "This step takes the authentication code from your authenticator app (method `totp`) or a recovery code (method `lookup_secret`).",
            ));
            return self.invalid(flow).await;
        }
        let code = str_field(body, "totp_code").unwrap_or_default().to_string();
        if code.trim().is_empty() {
            flow.ui
                .add_message(Some("totp_code"), text::missing_property("totp_code"));
            return self.invalid(flow).await;
        }
        let identity = self.store.get_identity(session.identity_id).await?;
        let limit_key = format!("totp:{}", identity.id);
        self.limits
            .check_login(&self.store, &limit_key, client)
            .await?;
        let Some(key) = self.totp_key_of(&identity)? else {
            flow.ui.messages.push(text::validation_generic(
                "This account has no authenticator app any more: start again.",
            ));
            return self.invalid(flow).await;
        };
        let fresh = match key.matching_step(&code, unix_now()) {
            Some(step) => self.first_use_of_step(identity.id, step).await?,
            None => false,
        };
        if !fresh {
            self.limits
                .record_login_failure(&self.store, &limit_key, client)
                .await?;
            flow.ui
                .add_message(Some("totp_code"), text::totp_verifier_wrong());
            return self.invalid(flow).await;
        }
        self.finish_step_up(flow, session, identity, "totp").await
    }

    /// Records that `identity` used the code of TOTP `step`; `false` when it was used before.
    /// The counter's window starts at the step's first millisecond, so the limits' cleanup
    /// (which forgets windows by age in ms) keeps it for as long as any other counter.
    async fn first_use_of_step(&self, identity: uuid::Uuid, step: u64) -> Result<bool, Error> {
        let window_start = i64::try_from(step.saturating_mul(30_000)).unwrap_or(i64::MAX);
        Ok(self
            .store
            .limit_hit(&format!("totp-used:{identity}:{step}"), window_start)
            .await?
            == 1)
    }

    /// The recovery-code branch of the aal2 step: wrong and reused codes count against the
    /// identity like wrong TOTP codes.
    async fn submit_lookup_step(
        &self,
        mut flow: Flow,
        session: &Session,
        body: &Value,
        client: Option<std::net::IpAddr>,
    ) -> Result<Outcome, Error> {
        if str_field(body, "lookup_secret")
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            flow.ui.add_message(
                Some("lookup_secret"),
                text::missing_property("lookup_secret"),
            );
            return self.invalid(flow).await;
        }
        let mut identity = self.store.get_identity(session.identity_id).await?;
        let limit_key = format!("totp:{}", identity.id);
        self.limits
            .check_login(&self.store, &limit_key, client)
            .await?;
        let refused = match self.use_lookup_code(&mut identity, body).await? {
            crate::lookup::Used::Fresh => None,
            crate::lookup::Used::Spent => Some(text::lookup_already_used()),
            crate::lookup::Used::Invalid => Some(text::lookup_invalid()),
        };
        if let Some(message) = refused {
            self.limits
                .record_login_failure(&self.store, &limit_key, client)
                .await?;
            flow.ui.add_message(Some("lookup_secret"), message);
            return self.invalid(flow).await;
        }
        self.finish_step_up(flow, session, identity, "lookup_secret")
            .await
    }

    /// A passed second step: the flow is done and the session is lifted to aal2.
    async fn finish_step_up(
        &self,
        mut flow: Flow,
        session: &Session,
        identity: Identity,
        method: &str,
    ) -> Result<Outcome, Error> {
        self.complete_submitted(&flow).await?;
        let mut public = identity;
        public.schema_url = self.schema_url(&public.schema_id);
        public.credentials = None;
        let issued = self.step_up_session(session, &public, method).await?;
        self.count(crate::engine::Counted::SignIn, method, "");
        flow.state = FlowState::PassedChallenge;
        let return_to = self.return_to(&flow, None);
        Ok(Outcome::Completed {
            flow,
            identity: public,
            session: Some(issued),
            return_to,
        })
    }

    /// The session a completed login flow signs `identity` in with: the renewal of the session
    /// a refresh login started from when it is still valid and the same person's, a new one
    /// otherwise (someone else signing in inherits nothing).
    pub(crate) async fn sign_in_session(
        &self,
        flow: &Flow,
        identity: &Identity,
        method: &str,
    ) -> Result<(Session, String), Error> {
        if let Some(id) = flow.internal.renews_session
            && let Ok(old) = self.store.get_session(id).await
            && old.active
            && old.expires_at > now_ms()
            && old.identity_id == identity.id
        {
            return self.renew_session(&old, identity, method).await;
        }
        self.issue_session(identity, method).await
    }

    /// A refresh login of the session's own identity, as Kratos does it: the methods proven
    /// earlier in the session are kept next to the one just repeated, so an aal2 session stays
    /// aal2 (it must not fall back to aal1 and ask for the second factor again), and it lives a
    /// whole lifespan from now.
    async fn renew_session(
        &self,
        old: &Session,
        identity: &Identity,
        method: &str,
    ) -> Result<(Session, String), Error> {
        let expires_at = now_ms() + self.settings.session.lifespan.as_millis() as i64;
        let level = old.authenticator_assurance_level.clone();
        self.replace_session(old, identity, (method, AAL1), level, expires_at)
            .await
    }

    /// Lifts an aal1 session to aal2 with both methods; it lives no longer than the one it
    /// lifts.
    async fn step_up_session(
        &self,
        old: &Session,
        identity: &Identity,
        method: &str,
    ) -> Result<(Session, String), Error> {
        self.replace_session(old, identity, (method, AAL2), AAL2.into(), old.expires_at)
            .await
    }

    /// A new session carrying `old`'s methods plus `added` (method, level): a new token,
    /// because what the session proves changed and the old token must stop working; `old` is
    /// retired with its app links moved over, as the sign-in continues rather than ends.
    async fn replace_session(
        &self,
        old: &Session,
        identity: &Identity,
        (method, method_aal): (&str, &str),
        level: String,
        expires_at: i64,
    ) -> Result<(Session, String), Error> {
        let now = now_ms();
        let token = crypto::random_token();
        let mut methods = old.authentication_methods.clone();
        methods.push(AuthenticationMethod {
            method: method.into(),
            aal: method_aal.into(),
            completed_at: now,
        });
        let session = Session {
            id: uuid::Uuid::new_v4(),
            active: true,
            expires_at,
            authenticated_at: now,
            authenticator_assurance_level: level,
            authentication_methods: methods,
            issued_at: now,
            identity: Some(identity.clone()),
            devices: vec![],
            identity_id: identity.id,
        };
        self.store
            .insert_session(&session, &crypto::token_hash(&token))
            .await?;
        self.store
            .retire_replaced_session(old.id, session.id)
            .await?;
        Ok((session, token))
    }
}

/// Forgets which session a refresh flow would renew unless `current` (the session the
/// completing request carries) is that session.
pub(crate) fn keep_renewal_only_for(flow: &mut Flow, current: Option<&Session>) {
    if flow.internal.renews_session.is_some()
        && flow.internal.renews_session != current.map(|s| s.id)
    {
        flow.internal.renews_session = None;
    }
}

fn unix_now() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_and_one_either_side_only() {
        let key = TotpKey::generate("Tessera", "a@example.com").expect("key");
        let t = 1_800_000_000;
        let code = key.code_at(t);
        assert_eq!(key.matching_step(&code, t), Some(t / 30));
        assert_eq!(
            key.matching_step(&code, t + 30),
            Some(t / 30),
            "a step late"
        );
        assert_eq!(
            key.matching_step(&code, t - 30),
            Some(t / 30),
            "a step early"
        );
        assert_eq!(key.matching_step(&code, t + 90), None, "three steps late");
        assert_eq!(key.matching_step("12345", t), None);
        assert_eq!(key.matching_step("abcdef", t), None);
    }

    /// RFC 6238 appendix B's SHA-1 vector (8 digits there; the last 6 here, as the RFC's
    /// truncation makes them).
    #[test]
    fn rfc6238_vector() {
        let secret = b"12345678901234567890".to_vec();
        let totp = TOTP::new(Algorithm::SHA1, 6, 1, 30, secret, None, "x".into()).expect("totp");
        assert_eq!(totp.generate(59), "287082");
        assert_eq!(totp.generate(1_111_111_109), "081804");
    }

    #[test]
    fn url_round_trips_and_names_issuer_and_account() {
        let key = TotpKey::generate("Acme: Inc", "a@example.com").expect("key");
        let url = key.url();
        assert!(url.starts_with("otpauth://totp/"), "{url}");
        assert!(
            url.contains("issuer=Acme%20%20Inc") || url.contains("issuer=Acme"),
            "{url}"
        );
        let back = TotpKey::from_url(&url).expect("reads back");
        assert_eq!(back.secret_base32(), key.secret_base32());
        assert_eq!(back.code_at(1_800_000_000), key.code_at(1_800_000_000));
        let qr = key.qr_data_url().expect("qr");
        assert!(qr.starts_with("data:image/svg+xml;base64,"), "{qr}");
    }
}
