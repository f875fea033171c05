//! Native apps: the session token exchange (init code at flow creation, return code after the
//! browser sign-in, both redeemed once).

use super::*;
use crate::engine::Engine;
use tessera_core::ErrorId;
use tessera_core::flow::{Flow, FlowType};
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::{Error, ErrorKind, crypto};

impl Engine {
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
        flow.internal.token_exchange = true;
        flow.updated_at = now_ms();
        self.store.update_flow(flow).await?;
        flow.session_token_exchange_code = Some(init);
        Ok(())
    }

    /// A social sign-in of an API flow finished in the browser: seal the token for the app and
    /// send the browser to `return_to` with the return code.
    pub(crate) async fn finish_for_app(
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
                    ErrorKind::BadRequest,
                    ErrorId::SelfServiceAppHandoffImpossible,
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
                .with_id(tessera_core::error::ErrorId::SessionTokenExchangeNotFound)
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
}
