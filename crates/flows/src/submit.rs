//! One entry point for a flow submission, which also decides what a refused one leads to, so
//! that the HTTP handler only shapes the answer.

use crate::engine::{Engine, Outcome};
use serde_json::Value;
use tessera_core::flow::{FlowKind, FlowType};
use tessera_core::session::Session;
use tessera_core::{Error, ErrorId, ErrorKind};
use uuid::Uuid;

/// What a submission leads to.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Submitted {
    /// The flow's own outcome, with a browser flow's CSRF token filled in for the answer.
    Flow(Outcome),
    /// A browser's flow expired: the browser starts over at this URL, with a new flow (Kratos).
    StartOver(String),
    /// The session is too old for this change (`session_refresh_required`) or below the level
    /// settings require (`session_aal2_required`). A browser posting a form goes to
    /// `redirect_browser_to` (a refresh or second-factor login); other callers get `error`
    /// (its id kept) and that URL.
    RefreshRequired {
        error: Error,
        redirect_browser_to: String,
        browser: bool,
    },
    /// A browser's form post that cannot go on (a CSRF violation from a stale tab or another
    /// site, a rate limit): the error page explains it from this stored error and offers a
    /// fresh start, rather than a JSON error in the browser.
    ErrorPage(Uuid),
}

impl Engine {
    /// Submits a flow of `kind`. `wants_json` says the caller reads JSON (an SPA or an app)
    /// rather than being a browser posting a form. `session` is needed for settings only.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit(
        &self,
        kind: FlowKind,
        flow_id: &str,
        body: &Value,
        csrf_cookie: Option<&str>,
        client: Option<std::net::IpAddr>,
        session: Option<&Session>,
        wants_json: bool,
    ) -> Result<Submitted, Error> {
        let result = match kind {
            FlowKind::Login => {
                self.submit_login_as(flow_id, body, csrf_cookie, client, session)
                    .await
            }
            FlowKind::Registration => {
                self.submit_registration_from(flow_id, body, csrf_cookie, client)
                    .await
            }
            FlowKind::Settings => {
                let session = session.ok_or_else(Error::no_session)?;
                self.submit_settings(flow_id, body, csrf_cookie, session)
                    .await
            }
            FlowKind::Verification | FlowKind::Recovery => {
                self.submit_lifecycle(kind, flow_id, body, csrf_cookie, client)
                    .await
            }
        };
        let err = match result {
            Ok(outcome) => return Ok(Submitted::Flow(present(outcome, csrf_cookie))),
            Err(e) => e,
        };
        let handled = err.kind == ErrorKind::Gone
            || matches!(
                err.id,
                Some(
                    ErrorId::SessionRefreshRequired
                        | ErrorId::SessionAal2Required
                        | ErrorId::SecurityCsrfViolation
                        | ErrorId::SelfServiceRateLimited
                )
            );
        if !handled {
            return Err(err);
        }
        // Only a browser's own form post is answered with pages. A refused submission did
        // not return its flow, so its type is read here (on these error paths only).
        let browser = !wants_json && self.is_browser_flow(flow_id).await;
        if err.kind == ErrorKind::Gone {
            if !browser {
                return Err(err);
            }
            let to = self
                .settings
                .serve
                .public_base_url
                .join(&format!("self-service/{}/browser", kind.as_str()))
                .map_err(|_| err.clone())?;
            return Ok(Submitted::StartOver(to.to_string()));
        }
        match err.id {
            Some(ErrorId::SessionRefreshRequired | ErrorId::SessionAal2Required) => {
                let redirect_browser_to = err
                    .details
                    .get("redirect_browser_to")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                Ok(Submitted::RefreshRequired {
                    error: err,
                    redirect_browser_to,
                    browser,
                })
            }
            _ if browser => Ok(Submitted::ErrorPage(self.record_error(&err).await?)),
            _ => Err(err),
        }
    }

    async fn is_browser_flow(&self, id: &str) -> bool {
        match Uuid::parse_str(id.trim()) {
            Ok(u) => self
                .store
                .get_flow(u)
                .await
                .is_ok_and(|(f, _)| f.flow_type == FlowType::Browser),
            Err(_) => false,
        }
    }
}

/// Fills a browser flow's CSRF token into the flow an outcome answers with.
fn present(outcome: Outcome, csrf_cookie: Option<&str>) -> Outcome {
    match outcome {
        Outcome::Continue(mut f) => {
            Engine::present_flow(&mut f, csrf_cookie);
            Outcome::Continue(f)
        }
        Outcome::Invalid(mut f) => {
            Engine::present_flow(&mut f, csrf_cookie);
            Outcome::Invalid(f)
        }
        Outcome::Shown(mut f) => {
            Engine::present_flow(&mut f, csrf_cookie);
            Outcome::Shown(f)
        }
        Outcome::Completed {
            mut flow,
            identity,
            session,
            return_to,
        } => {
            Engine::present_flow(&mut flow, csrf_cookie);
            Outcome::Completed {
                flow,
                identity,
                session,
                return_to,
            }
        }
        other => other,
    }
}
