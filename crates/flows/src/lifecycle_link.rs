//! Kratos's `link` method of verification and recovery: the email carries
//! `GET /self-service/{verification,recovery}?flow=<id>&token=<token>`.
//!
//! The token is 256 random bits, kept only as an HMAC bound to its flow (in its own HMAC
//! domain, so it never passes as a code), holds until `selfservice.methods.link.config.lifespan`
//! or the flow's own expiry, whichever comes first, and works once: the flow is completed by
//! the same conditional update as a code. Opening a link is counted against the flow's
//! `max_submissions` like a code, so even an attacker with unlimited time cannot search tokens
//! through one flow. Every failure (unknown, forged, used, expired, another flow's token) ends
//! on a fresh flow in the browser that opened the link with Kratos's message, because the
//! link's own flow may belong to another browser (a phone's mail app), which must not see it.

use crate::engine::{Engine, Outcome, cookie_made_flow};
use serde_json::json;
use tessera_core::flow::{Flow, FlowKind, FlowState, FlowType, PendingCode};
use tessera_core::timefmt::now_ms;
use tessera_core::{Error, crypto, text};
use tessera_courier::{Lang, TemplateType};
use uuid::Uuid;

/// The link method's node group and `active`.
const LINK: &str = "link";

impl Engine {
    /// Makes a link token for `flow`, keeps its hash there, and hands back the token itself.
    pub(crate) fn new_link(
        &self,
        flow: &mut Flow,
        address: &str,
        identity_id: Uuid,
        admin: bool,
    ) -> String {
        let token = crypto::random_token();
        let lifespan = self.settings.lifecycle.link_lifespan.as_millis() as i64;
        flow.internal.code = Some(PendingCode {
            hash: self.link_mac(flow.id, &token),
            address: address.to_string(),
            via: "email".into(),
            identity_id,
            expires_at: (now_ms() + lifespan).min(flow.expires_at),
            admin,
            link: true,
            traits: serde_json::Value::Null,
        });
        token
    }

    fn link_mac(&self, flow: Uuid, token: &str) -> String {
        self.flow_secret_mac(b"tessera-link:", flow, token)
    }

    /// The link a token travels in: `selfservice.methods.link.config.base_url` (else the
    /// public base URL) + `self-service/<kind>?flow=&token=`.
    pub(crate) fn link_url(&self, flow: &Flow, token: &str) -> Result<url::Url, Error> {
        let base = self
            .settings
            .lifecycle
            .link_base_url
            .as_ref()
            .unwrap_or(&self.settings.serve.public_base_url);
        let mut url = base
            .join(&format!("self-service/{}", flow.kind.as_str()))
            .map_err(|e| Error::internal(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("flow", &flow.id.to_string())
            .append_pair("token", token);
        Ok(url)
    }

    /// The queued email carrying a link (`verification_valid` / `recovery_valid`).
    pub(crate) async fn mail_link(
        &self,
        flow: &Flow,
        address: &str,
        token: &str,
        lang: Lang,
    ) -> Result<(), Error> {
        let url = self.link_url(flow, token)?;
        let expires_at = flow
            .internal
            .code
            .as_ref()
            .map_or(flow.expires_at, |c| c.expires_at);
        let minutes = ((expires_at - now_ms()).max(0) as u64).div_ceil(60_000);
        let (t, data) = match flow.kind {
            FlowKind::Recovery => (
                TemplateType::RecoveryValid,
                json!({"To": address, "RecoveryURL": url.as_str(), "ExpiresInMinutes": minutes}),
            ),
            _ => (
                TemplateType::VerificationValid,
                json!({"To": address, "VerificationURL": url.as_str(), "ExpiresInMinutes": minutes}),
            ),
        };
        tessera_courier::queue_email(&self.store, &self.settings.courier, address, t, lang, &data)
            .await?;
        Ok(())
    }

    /// `GET /self-service/{verification,recovery}?flow=&token=`: a link opened in a browser
    /// whose CSRF secret is `csrf`. A verification ends `Shown` (its page says the address is
    /// verified), a recovery `Completed` with a session and the settings flow to go to, any
    /// failure `Invalid` with a fresh flow of this browser carrying the message. Each flow
    /// returned belongs to this browser.
    pub async fn use_link(
        &self,
        kind: FlowKind,
        flow_id: &str,
        token: &str,
        csrf: &str,
    ) -> Result<Outcome, Error> {
        self.lifecycle(kind)?;
        let uuid =
            Uuid::parse_str(flow_id.trim()).map_err(|_| Error::invalid_uuid("flow id", flow_id))?;
        let (mut flow, csrf_hash) = self.store.get_flow(uuid).await?;
        if flow.kind != kind {
            return Err(Error::flow_not_found(flow_id));
        }
        let now = now_ms();
        let invalid = match kind {
            FlowKind::Recovery => text::recovery_token_invalid(),
            _ => text::verification_token_invalid(),
        };
        if flow.is_expired_at(now) {
            let msg = Engine::expired_message(kind, flow.expires_at);
            return self.link_refused(&flow, csrf, msg).await;
        }
        if matches!(flow.state, FlowState::PassedChallenge | FlowState::Success) {
            return self.link_refused(&flow, csrf, invalid).await;
        }
        let tries = self
            .store
            .limit_hit(&format!("code_try:{}", flow.id), flow.created_at)
            .await?;
        if tries > i64::from(self.settings.lifecycle.max_submissions) {
            flow.internal.code = None;
            flow.updated_at = now;
            self.store.update_flow(&flow).await?;
            return self
                .link_refused(&flow, csrf, text::code_submitted_too_often())
                .await;
        }
        let pending = flow.internal.code.clone().filter(|p| {
            p.link
                && p.expires_at > now
                && !token.is_empty()
                && crypto::constant_time_eq(&p.hash, &self.link_mac(flow.id, token))
        });
        let Some(pending) = pending else {
            return self.link_refused(&flow, csrf, invalid).await;
        };
        let outcome = self
            .passed(flow, pending, Some(csrf), FlowType::Browser)
            .await?;
        match outcome {
            Outcome::Shown(f) | Outcome::Invalid(f)
                if f.flow_type != FlowType::Browser || !cookie_made_flow(csrf, &csrf_hash) =>
            {
                self.shown_here(&f, csrf).await
            }
            other => Ok(other),
        }
    }

    /// A refused link: a fresh flow of this browser (same `return_to`) saying why.
    async fn link_refused(
        &self,
        flow: &Flow,
        csrf: &str,
        msg: text::Text,
    ) -> Result<Outcome, Error> {
        let mut fresh = self.replacement_flow(flow, FlowType::Browser, csrf).await?;
        fresh.ui.messages.push(msg);
        self.invalid(fresh).await
    }

    /// `flow`'s outcome, copied onto a flow of this browser: the link was opened elsewhere than
    /// where its flow started (or the flow is an app's), and only this browser may see it.
    async fn shown_here(&self, flow: &Flow, csrf: &str) -> Result<Outcome, Error> {
        let mut here = self.new_flow(
            flow.kind,
            FlowType::Browser,
            &flow.request_url,
            flow.return_to.clone(),
            csrf,
        );
        here.active = Some(LINK.into());
        here.state = flow.state;
        here.ui.messages = flow.ui.messages.clone();
        here.ui.method = flow.ui.method.clone();
        here.ui.action = flow.ui.action.clone();
        let csrf_node = here.ui.nodes.pop();
        here.ui.nodes = csrf_node.into_iter().collect();
        here.ui.nodes.extend(
            flow.ui
                .nodes
                .iter()
                .filter(|n| n.attributes.name != "csrf_token")
                .cloned(),
        );
        self.store.insert_flow(&here).await?;
        Ok(Outcome::Shown(here))
    }

    /// `POST /admin/recovery/link`: a recovery flow for an identity and the link the
    /// administrator passes on. It holds for `expires_in` (else the link method's lifespan),
    /// does not mark any address verified, and is opened like any recovery link. Returns the
    /// flow and the link.
    pub async fn admin_recovery_link(
        &self,
        identity_id: Uuid,
        expires_in: Option<std::time::Duration>,
    ) -> Result<(Flow, String), Error> {
        if !self.settings.lifecycle.link_enabled {
            return Err(Error::bad_request(
                "The link method is disabled: set selfservice.methods.link.enabled to true, or use POST /admin/recovery/code.",
            ));
        }
        let (mut flow, identity, address) = self.admin_recovery_flow(identity_id).await?;
        let lifespan = expires_in.unwrap_or(self.settings.lifecycle.link_lifespan);
        flow.expires_at = now_ms() + lifespan.as_millis() as i64;
        flow.active = Some(LINK.into());
        let token = self.new_link(&mut flow, &address, identity.id, true);
        if let Some(c) = flow.internal.code.as_mut() {
            c.expires_at = flow.expires_at;
        }
        crate::lifecycle::address_form(&mut flow, "");
        self.store.insert_flow(&flow).await?;
        let link = self.link_url(&flow, &token)?;
        Ok((flow, link.to_string()))
    }
}
