//! The `oidc` method: social sign-in, sign-up with fill-the-gaps, linking and unlinking, split
//! the way Kratos splits its strategy (one file per flow step).
//!
//! One attempt walks: a flow's "Continue with X" submit → [`Engine::start_oidc`] (`start`)
//! stores a single-use state bound to the flow and to a continuity cookie, and sends the browser
//! upstream → the upstream calls back → [`Engine::oidc_callback`] (`callback`) takes the state,
//! checks the browser, exchanges the code, maps the claims, and then signs in (`login`),
//! registers or asks for missing traits (`registration`), asks the user to prove an existing
//! account before linking (`link`), or links in settings (`settings`). Native apps redeem the
//! session through `exchange`; `credential` reads and edits the identity's `oidc` credential.

mod callback;
mod credential;
mod exchange;
mod link;
mod login;
mod registration;
mod settings;
mod start;

pub use credential::linked_providers;
pub(crate) use credential::*;
pub(crate) use link::*;
pub(crate) use registration::*;

use std::time::Duration;

/// How long a browser may spend at the upstream (and how long the continuity cookie lives).
pub const ATTEMPT_LIFESPAN: Duration = Duration::from_secs(30 * 60);

use crate::engine::Engine;
use crate::forms::{self, str_field};
use serde_json::Value;
use tessera_core::flow::{Flow, FlowKind, FlowType};
use tessera_core::identity::Identity;
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::ui::Node;
use tessera_core::{Error, ErrorId, ErrorKind, StoredError, text};
use uuid::Uuid;

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

impl Engine {
    /// Adds one "Sign in/up with X" button per provider (`group: oidc, name: provider`).
    pub(crate) fn add_oidc_buttons(&self, flow: &mut Flow) {
        for p in self.social.providers() {
            let name = p.display_name();
            let label = match flow.kind {
                FlowKind::Registration => text::registration_with(name, p.id()),
                _ => text::login_with(name, p.id()),
            };
            flow.ui.nodes.push(
                Node::input("oidc", "provider", "submit", Value::String(p.id().into()))
                    .label(label),
            );
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

    pub fn oidc_redirect_uri(&self, provider_id: &str) -> String {
        self.settings
            .serve
            .public_base_url
            .join(&format!("self-service/methods/oidc/callback/{provider_id}"))
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Stores an error a user is sent to (`/ui/error?id=`). `id` is the stable id a UI
    /// translates (Kratos's error objects carry one); `reason` is for the log and the API.
    pub(crate) async fn stored_error(
        &self,
        kind: ErrorKind,
        id: ErrorId,
        reason: &str,
        message: &str,
    ) -> Result<CallbackOutcome, Error> {
        let stored = self
            .store
            .insert_error(
                &StoredError {
                    id,
                    kind,
                    reason: reason.to_string(),
                    message: message.to_string(),
                },
                now_ms(),
            )
            .await?;
        Ok(CallbackOutcome::Error(stored))
    }

    pub(crate) async fn show(&self, mut flow: Flow) -> Result<CallbackOutcome, Error> {
        flow.updated_at = now_ms();
        self.store.update_flow(&flow).await?;
        Ok(CallbackOutcome::ShowFlow(flow))
    }

    /// A new flow of `kind` that carries on from `flow`: same type, request URL and
    /// `return_to`, and for browsers bound to the same CSRF cookie.
    pub(crate) fn successor_flow(
        &self,
        flow: &Flow,
        kind: FlowKind,
        csrf_cookie: Option<&str>,
    ) -> Flow {
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
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
