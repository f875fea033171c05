//! Shared flow machinery: creating, loading and checking flows, and issuing sessions.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tessera_config::Settings;
use tessera_core::flow::{Flow, FlowInternal, FlowKind, FlowState, FlowType};
use tessera_core::identity::Identity;
use tessera_core::password::Hasher;
use tessera_core::schema::IdentitySchema;
use tessera_core::session::{AuthenticationMethod, Session};
use tessera_core::timefmt::{self, now_ms};
use tessera_core::ui::Ui;
use tessera_core::{Error, crypto, text};
use tessera_store::Store;
use uuid::Uuid;

/// The identity schemas in use, by id.
#[derive(Debug)]
pub struct Schemas {
    pub default_id: String,
    pub by_id: HashMap<String, IdentitySchema>,
}

impl Schemas {
    pub fn get(&self, id: &str) -> Result<&IdentitySchema, Error> {
        self.by_id.get(id).ok_or_else(|| {
            let mut ids: Vec<&str> = self.by_id.keys().map(String::as_str).collect();
            ids.sort();
            Error::bad_request(format!(
                "Identity schema `{id}` does not exist; configured schemas: {}.",
                ids.join(", ")
            ))
        })
    }
    pub fn default_schema(&self) -> Result<&IdentitySchema, Error> {
        self.get(&self.default_id)
    }
}

#[derive(Clone)]
pub struct Engine {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub schemas: Arc<Schemas>,
    pub hasher: Arc<Hasher>,
    /// Social sign-in providers and the mapper sandbox.
    pub social: Arc<tessera_social::Social>,
    /// Encrypts what must be readable later (upstream tokens), keyed by `secrets.cipher`.
    pub cipher: Arc<tessera_core::crypto::Cipher>,
    /// Abuse limits; kept across configuration updates that leave `limits` unchanged.
    pub limits: Arc<crate::limits::Limits>,
    /// whoami's serialised answers (per configuration: they hold its URLs).
    pub whoami_answers: Arc<crate::sessions::WhoamiCache>,
}

/// What a submission led to. One is built per request and moved once, so the size difference
/// between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outcome {
    /// The flow is done. For login and registration-with-session a session was issued.
    Completed {
        flow: Flow,
        identity: Identity,
        session: Option<(Session, String)>,
        return_to: String,
    },
    /// The submission was refused; the flow carries the messages to show (HTTP 400).
    Invalid(Flow),
    /// The browser must go to an upstream to sign in: browser forms get a 303, JSON callers
    /// 422 `browser_location_change_required`. `continuity` is the cookie value binding the
    /// round trip to this browser.
    Upstream {
        flow: Flow,
        to: String,
        continuity: Option<String>,
    },
    /// The user continues on another flow (e.g. "sign in to link" after a social sign-up).
    Continue(Flow),
    /// The browser goes to a URL (e.g. sign in after a registration without the session hook).
    Redirect(String),
    /// The flow's next step, or a refused code, answered 200 as Kratos does (verification and
    /// recovery: "a code was sent", "the code is wrong", "verified").
    Shown(Flow),
}

impl Engine {
    pub fn lifespan(&self, kind: FlowKind) -> std::time::Duration {
        match kind {
            FlowKind::Login => self.settings.flows.login.lifespan,
            FlowKind::Registration => self.settings.flows.registration.lifespan,
            FlowKind::Settings => self.settings.flows.settings.lifespan,
            FlowKind::Verification | FlowKind::Recovery => self
                .lifecycle(kind)
                .map(|l| l.lifespan)
                .unwrap_or(self.settings.flows.settings.lifespan),
        }
    }

    pub fn ui_url(&self, kind: FlowKind) -> &url::Url {
        match kind {
            FlowKind::Login => &self.settings.flows.login.ui_url,
            FlowKind::Registration => &self.settings.flows.registration.ui_url,
            FlowKind::Settings => &self.settings.flows.settings.ui_url,
            FlowKind::Verification | FlowKind::Recovery => self
                .lifecycle(kind)
                .map(|l| &l.ui_url)
                .unwrap_or(&self.settings.flows.error_ui_url),
        }
    }

    /// Checks a requested `return_to` against the allow-list; refuses anything else, so flows
    /// can never be used as open redirects.
    pub fn check_return_to(&self, return_to: Option<&str>) -> Result<Option<String>, Error> {
        match return_to.filter(|r| !r.is_empty()) {
            None => Ok(None),
            Some(r) => self.settings.is_allowed_return(r).map(|u| Some(u.to_string())).ok_or_else(|| {
                Error::bad_request(format!(
                    "Requested return_to URL `{r}` is not allowed: add it to selfservice.allowed_return_urls."
                ))
                .with_id(tessera_core::error::ErrorId::SelfServiceFlowReturnToForbidden)
            }),
        }
    }

    /// Builds an empty flow of a kind; the method modules add their nodes.
    pub fn new_flow(
        &self,
        kind: FlowKind,
        flow_type: FlowType,
        request_url: &str,
        return_to: Option<String>,
        csrf: &str,
    ) -> Flow {
        let now = now_ms();
        let id = Uuid::new_v4();
        let action = self
            .settings
            .serve
            .public_base_url
            .join(&format!("self-service/{}?flow={id}", kind.as_str()))
            .map(|u| u.to_string())
            .unwrap_or_default();
        let mut ui = Ui::new(action);
        if flow_type == FlowType::Browser {
            // Never the secret itself: the stored flow carries an empty token, and every
            // response fills in a fresh masked one (see [`Engine::present_flow`]).
            ui.nodes.push(tessera_core::ui::Node::csrf(""));
        }
        Flow {
            id,
            flow_type,
            kind,
            expires_at: now + self.lifespan(kind).as_millis() as i64,
            issued_at: now,
            request_url: request_url.to_string(),
            return_to,
            ui,
            state: match kind {
                FlowKind::Settings => FlowState::ShowForm,
                _ => FlowState::ChooseMethod,
            },
            refresh: None,
            requested_aal: None,
            identity: Value::Null,
            created_at: now,
            updated_at: now,
            csrf_token: if flow_type == FlowType::Browser {
                csrf.to_string()
            } else {
                String::new()
            },
            identity_id: None,
            internal: FlowInternal::default(),
            session_token_exchange_code: None,
            active: None,
            continue_with: Vec::new(),
        }
    }

    /// Fills a browser flow's CSRF node with a fresh token masked from the browser's secret
    /// (its CSRF cookie), right before the flow leaves the server. API flows have no node.
    pub fn present_flow(flow: &mut Flow, csrf_cookie: Option<&str>) {
        if flow.flow_type != FlowType::Browser {
            return;
        }
        let token = csrf_cookie
            .filter(|c| !c.is_empty())
            .map(crypto::mask_csrf)
            .unwrap_or_default();
        flow.ui.set_value("csrf_token", Value::String(token));
    }

    /// Loads a flow of the expected kind for display: 404 when unknown, 410 when expired, and
    /// for a browser flow 403 `security_csrf_violation` unless `csrf_cookie` is the secret of
    /// the browser that started it (as Kratos since #1282: a pasted flow URL shows nothing to
    /// another browser). The flow comes back with a fresh masked CSRF token.
    pub async fn fetch_flow(
        &self,
        kind: FlowKind,
        id: &str,
        csrf_cookie: Option<&str>,
    ) -> Result<Flow, Error> {
        let uuid = Uuid::parse_str(id.trim()).map_err(|_| Error::invalid_uuid("flow id", id))?;
        let (mut flow, csrf_hash) = self.store.get_flow(uuid).await?;
        if flow.kind != kind {
            return Err(Error::flow_not_found(id));
        }
        if flow.flow_type == FlowType::Browser {
            let cookie = csrf_cookie.unwrap_or_default();
            if !cookie_made_flow(cookie, &csrf_hash) {
                return Err(Error::csrf_violation());
            }
            Self::present_flow(&mut flow, Some(cookie));
        }
        if flow.is_expired_at(now_ms()) {
            return Err(Error::flow_expired(
                id,
                &timefmt::to_rfc3339(flow.expires_at),
            ));
        }
        if kind == FlowKind::Settings
            && let Some(identity_id) = flow.identity_id
        {
            let mut identity = self.store.get_identity(identity_id).await?;
            identity.redact_credentials(&[]);
            identity.credentials = None;
            flow.identity = serde_json::to_value(identity).unwrap_or(Value::Null);
        }
        Ok(flow)
    }

    /// Loads a flow for submission: must exist, not be expired or already used, and — for browser
    /// flows — come with the CSRF token bound to this browser.
    pub async fn flow_for_submit(
        &self,
        kind: FlowKind,
        id: &str,
        body: &Value,
        csrf_cookie: Option<&str>,
    ) -> Result<Flow, Error> {
        let uuid = Uuid::parse_str(id.trim()).map_err(|_| Error::invalid_uuid("flow id", id))?;
        let (mut flow, csrf_hash) = self.store.get_flow(uuid).await?;
        if flow.kind != kind {
            return Err(Error::flow_not_found(id));
        }
        if flow.is_expired_at(now_ms()) {
            return Err(Error::flow_expired(
                id,
                &timefmt::to_rfc3339(flow.expires_at),
            ));
        }
        let completed = match flow.state {
            FlowState::PassedChallenge => true,
            FlowState::Success => kind != FlowKind::Settings,
            FlowState::ChooseMethod | FlowState::ShowForm | FlowState::SentEmail => false,
        };
        if completed {
            return Err(Error::bad_request(
                "This flow was completed already and cannot be submitted again: start a new flow.",
            )
            .with_id(tessera_core::error::ErrorId::SelfServiceFlowCompleted));
        }
        if flow.flow_type == FlowType::Browser {
            let submitted = body
                .get("csrf_token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let cookie = csrf_cookie.unwrap_or_default();
            let ok =
                crypto::csrf_matches(submitted, cookie) && cookie_made_flow(cookie, &csrf_hash);
            if !ok {
                return Err(Error::csrf_violation());
            }
            flow.csrf_token = cookie.to_string();
        }
        flow.ui.reset_messages();
        Ok(flow)
    }

    /// Marks a submitted flow used, or refuses the submission when another request completed it
    /// first (`self_service_flow_completed`): the one step that makes every flow single-use.
    pub(crate) async fn complete_submitted(&self, flow: &Flow) -> Result<(), Error> {
        if self.store.complete_flow(flow.id, now_ms()).await? {
            return Ok(());
        }
        Err(Error::bad_request(
            "This flow was completed already and cannot be submitted again: start a new flow.",
        )
        .with_id(tessera_core::error::ErrorId::SelfServiceFlowCompleted))
    }

    /// Keeps a user-facing error for the error UI (`GET /self-service/errors?id=`), as Kratos
    /// does for browser flows that cannot go on (a CSRF violation, for example).
    pub(crate) async fn record_error(&self, err: &Error) -> Result<uuid::Uuid, Error> {
        self.store
            .insert_error(&tessera_core::StoredError::from_error(err), now_ms())
            .await
    }

    /// Persists a refused submission's messages and returns it as the outcome.
    pub async fn invalid(&self, mut flow: Flow) -> Result<Outcome, Error> {
        flow.updated_at = now_ms();
        self.store.update_flow(&flow).await?;
        Ok(Outcome::Invalid(flow))
    }

    /// Counts a completed sign-in or registration (`tessera_signins_total`,
    /// `tessera_registrations_total`); `provider` is empty for passwords.
    pub fn count(&self, event: Counted, method: &str, provider: &str) {
        let name = match event {
            Counted::SignIn => "tessera_signins_total",
            Counted::Registration => "tessera_registrations_total",
        };
        metrics::counter!(name, "method" => method.to_string(), "provider" => provider.to_string())
            .increment(1);
    }

    /// Issues a session for an identity and returns it with its (only) plaintext token.
    pub async fn issue_session(
        &self,
        identity: &Identity,
        method: &str,
    ) -> Result<(Session, String), Error> {
        let now = now_ms();
        let token = crypto::random_token();
        let session = Session {
            id: Uuid::new_v4(),
            active: true,
            expires_at: now + self.settings.session.lifespan.as_millis() as i64,
            authenticated_at: now,
            authenticator_assurance_level: "aal1".into(),
            authentication_methods: vec![AuthenticationMethod {
                method: method.into(),
                aal: "aal1".into(),
                completed_at: now,
            }],
            issued_at: now,
            identity: Some(identity.clone()),
            devices: vec![],
            identity_id: identity.id,
        };
        self.store
            .insert_session(&session, &crypto::token_hash(&token))
            .await?;
        // Just-in-time organization membership (verified e-mail domains, organization rules).
        // A failure here must not lock the person out; it is logged for the administrator.
        if let Err(e) = self.apply_org_jit(identity.id).await {
            tracing::error!(identity = %identity.id, error = %e, "just-in-time organization membership failed");
        }
        Ok((session, token))
    }

    /// Resolves a session token to a valid session with its identity, or `None`.
    pub async fn session_from_token(&self, token: &str) -> Result<Option<Session>, Error> {
        if token.is_empty() || token.len() > 256 {
            return Ok(None);
        }
        let Some(mut s) = self
            .store
            .session_by_token_hash(&crypto::token_hash(token))
            .await?
        else {
            return Ok(None);
        };
        if !s.is_valid_at(now_ms()) {
            return Ok(None);
        }
        if let Some(i) = s.identity.as_mut() {
            i.schema_url = self.schema_url(&i.schema_id);
            if i.state != tessera_core::identity::IdentityState::Active {
                return Ok(None);
            }
        }
        Ok(Some(s))
    }

    pub fn schema_url(&self, schema_id: &str) -> String {
        self.settings
            .serve
            .public_base_url
            .join(&format!("schemas/{}", urlencode(schema_id)))
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Where a completed browser flow sends the user.
    pub fn return_to(&self, flow: &Flow, fallback: Option<&url::Url>) -> String {
        flow.return_to
            .clone()
            .or_else(|| fallback.map(|u| u.to_string()))
            .unwrap_or_else(|| self.settings.flows.default_return_url.to_string())
    }

    pub fn expired_message(kind: FlowKind, expires_at: i64) -> tessera_core::text::Text {
        let minutes = (now_ms() - expires_at) as f64 / 60000.0;
        text::flow_expired(kind.expired_message_id(), minutes.max(0.0))
    }
}

/// Whether `cookie` is the CSRF secret of the browser a flow was created for (the flow keeps
/// only its hash).
pub(crate) fn cookie_made_flow(cookie: &str, csrf_hash: &str) -> bool {
    !cookie.is_empty() && crypto::constant_time_eq(&crypto::token_hash(cookie), csrf_hash)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What [`Engine::count`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    SignIn,
    Registration,
}
