//! Starting an attempt: state, PKCE verifier, nonce and continuity token, then upstream.

use super::*;
use crate::engine::{Engine, Outcome};
use tessera_core::flow::{Flow, FlowType};
use tessera_core::timefmt::now_ms;
use tessera_core::{Error, crypto, text};
use tessera_social::AuthRequest;
use tessera_store::oidc::OidcState;

impl Engine {
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
        if flow.flow_type == FlowType::Api && !flow.internal.token_exchange {
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
                let label = provider.display_name();
                flow.ui.messages.push(text::social_sign_in_failed(
                    &e.user_message(label),
                    e.user_code(),
                    label,
                    provider_id,
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
}
