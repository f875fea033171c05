//! The upstream's callback: the state taken once, continuity, `iss`, the code exchange and the
//! mapping, then the branch into sign-in, sign-up or settings linking.

use super::*;
use crate::engine::Engine;
use std::collections::HashMap;
use tessera_core::ErrorId;
use tessera_core::flow::{Flow, FlowKind, FlowState, FlowType};
use tessera_core::identity::CREDENTIAL_OIDC;
use tessera_core::identity::SealedTokens;
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::{Error, ErrorKind, crypto, text};
use tessera_social::{AuthRequest, Callback, Configured, Mapped, Profile, Tokens};
use tessera_store::oidc::TakenState;

impl Engine {
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
            TakenState::Unknown
        } else {
            self.store
                .take_oidc_state(
                    &crypto::token_hash(state_param),
                    provider_id,
                    continuity_cookie.map(crypto::token_hash).as_deref(),
                )
                .await?
        };
        let st = match taken {
            TakenState::Taken(st) => st,
            TakenState::Unknown => {
                tracing::warn!(
                    provider = provider_id,
                    "social sign-in callback with an unknown, expired or already used state"
                );
                return self
                    .stored_error(
                        ErrorKind::BadRequest,
                        ErrorId::SelfServiceOidcStateInvalid,
                        "the `state` parameter is unknown, expired or was already used",
                        "This sign-in link was already used or has expired. Start the sign-in again.",
                    )
                    .await;
            }
            TakenState::OtherProvider(expected) => {
                tracing::warn!(%expected, got = provider_id, "social sign-in callback for another provider");
                return self
                    .stored_error(
                        ErrorKind::BadRequest,
                        ErrorId::SelfServiceOidcProviderMismatch,
                        "the callback came for another provider than the one the sign-in started with",
                        "This sign-in could not be completed. Start the sign-in again.",
                    )
                    .await;
            }
            TakenState::OtherBrowser => {
                // The state stays for the browser that holds the cookie: a stranger who got
                // hold of the callback URL can neither use it nor spend it.
                tracing::warn!(
                    provider = provider_id,
                    "social sign-in callback from a browser without the continuity cookie of the attempt"
                );
                return self
                    .stored_error(ErrorKind::BadRequest, ErrorId::SelfServiceOidcOtherBrowser, "the callback came from a browser that did not start this sign-in (continuity cookie missing or different)", "This sign-in was started in another browser or the browser did not keep its cookies. Start the sign-in again in this browser.")
                    .await;
            }
        };
        let now = now_ms();
        if st.expires_at < now {
            return self
                .stored_error(
                    ErrorKind::Gone,
                    ErrorId::SelfServiceFlowExpired,
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
                        ErrorKind::Gone,
                        ErrorId::SelfServiceFlowExpired,
                        "the flow of this sign-in no longer exists",
                        "The sign-in expired. Start again.",
                    )
                    .await;
            }
        };
        if flow.is_expired_at(now) || flow.state == FlowState::PassedChallenge {
            return self
                .stored_error(
                    ErrorKind::Gone,
                    ErrorId::SelfServiceFlowExpired,
                    "the flow of this sign-in expired or was completed",
                    "The sign-in expired. Start again.",
                )
                .await;
        }
        flow.ui.reset_messages();
        let Some(provider) = self.social.get(provider_id).cloned() else {
            return self
                .stored_error(
                    ErrorKind::BadRequest,
                    ErrorId::SelfServiceOidcProviderGone,
                    "the provider is no longer configured",
                    "This sign-in method is no longer available.",
                )
                .await;
        };
        let label = provider.display_name().to_string();
        let fail = |flow: &mut Flow, reason: &dyn std::fmt::Display, user: String, code: &str| {
            tracing::warn!(provider = provider_id, flow = %flow.id, reason = %reason, "social sign-in failed");
            flow.ui.messages.push(text::social_sign_in_failed(
                &user,
                code,
                &label,
                provider_id,
            ));
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
        // An answer with no single-use code of the upstream's (Telegram's signed widget
        // result) is accepted once: its key is recorded until it would be too old anyway.
        if let Some(once) = provider.provider.single_use(&cb) {
            let key = crypto::token_hash(&format!("social_answer\n{provider_id}\n{}", once.key));
            if !self.store.op_use_jti(&key, now, once.until_ms).await? {
                let e = tessera_social::UpstreamError::Callback(
                    "this sign-in answer was already used once, and a copy of it is not accepted"
                        .into(),
                );
                fail(&mut flow, &e, e.user_message(&label), e.user_code());
                return self.show(flow).await;
            }
        }
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
        crate::mfa::keep_renewal_only_for(&mut flow, session);
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
            FlowKind::Verification | FlowKind::Recovery => {
                return Err(Error::bad_request(
                    "Social sign-in does not apply to verification or recovery flows.",
                ));
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

    /// Encrypts the upstream tokens when the provider keeps them (`store_tokens`).
    /// `None` when it does not; a token that cannot be sealed is left out.
    pub(crate) fn seal_tokens(
        &self,
        provider: &Configured,
        tokens: &Tokens,
    ) -> Option<SealedTokens> {
        if !provider.config().store_tokens {
            return None;
        }
        let seal = |t: &Option<String>| -> Option<String> {
            t.as_deref().and_then(|v| self.cipher.encrypt(v).ok())
        };
        Some(SealedTokens {
            initial_id_token: seal(&tokens.id_token),
            initial_access_token: seal(&tokens.access_token),
            initial_refresh_token: seal(&tokens.refresh_token),
        })
    }

    pub(crate) async fn oidc_sign_in(
        &self,
        flow: Flow,
        provider: &Configured,
        profile: Profile,
        mapped: Mapped,
        tokens: Option<SealedTokens>,
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
}
