//! OIDC Back-Channel Logout 1.0: when a session ends (the user signs out anywhere, an admin
//! revokes it, the identity is deactivated or deleted), each app that session signed in to and
//! that registered a `backchannel_logout_uri` receives a `logout_token` by a direct POST.
//!
//! The notices are queued by the store in the same transaction that ends the session; this
//! module delivers them. Delivery is at least once: a notice is retried with exponential backoff
//! while the app is down (`MAX_ATTEMPTS`), each attempt with a freshly signed token (a new `jti`
//! and `iat`: an app that rejects replays still accepts the retry), and leased so that of
//! several instances on one database only one sends it.

use crate::{OpResult, Provider};
use serde_json::json;
use std::time::Duration;
use tessera_core::crypto;
use tessera_core::timefmt::now_ms;
use tessera_store::logout_notices::{LogoutNotice, NoticeState};

/// The event that makes a JWT a logout token (§2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is valid: the spec recommends a short lifetime (§2.4); two minutes
/// covers clock skew.
pub const LOGOUT_TOKEN_TTL_SECS: i64 = 120;
/// Attempts before a notice is given up (about 17 minutes of backoff in all).
pub const MAX_ATTEMPTS: i64 = 10;
/// One delivery's whole time limit: the app answers at once or is treated as down.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Notices leased per round, and how long a lease holds.
const BATCH: usize = 32;
const LEASE_MS: i64 = 60_000;

/// The wait before attempt `n + 1` after `n` failed ones: 1 s, 2 s, 4 s … capped at 5 min.
pub fn backoff_ms(failed: i64) -> i64 {
    let exp = failed.clamp(0, 20) as u32;
    (1000_i64.saturating_mul(1 << exp)).min(300_000)
}

/// What happened to one notice in a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retry(String),
    Abandoned(String),
}

impl Provider {
    /// The `logout_token` for a notice (§2.4): `iss`, `aud` = the app, `iat`, `exp`, `jti`,
    /// `sub` as the app knows it, `sid` from its id_tokens, the logout event, and no `nonce`;
    /// `typ: logout+jwt` (§2.4, as recommended) so it cannot pass for an id_token.
    pub async fn logout_token(&self, n: &LogoutNotice) -> OpResult<String> {
        let now = now_ms() / 1000;
        let claims = json!({
            "iss": self.issuer,
            "aud": n.client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_TTL_SECS,
            "jti": &crypto::random_token()[..22],
            "sub": n.sub,
            "sid": n.sid,
            "events": { LOGOUT_EVENT: {} },
        });
        self.sign_typed(&claims, Some("logout+jwt"), None).await
    }

    /// Records that `session` signed in to `client` as `sub`, when the app wants to hear of
    /// the session's end: the one place both the authorization endpoint and a device approval
    /// call.
    pub(crate) async fn remember_session_app(
        &self,
        client: &crate::Client,
        session: &tessera_core::session::Session,
        sub: &str,
    ) -> OpResult<()> {
        // Front-channel logout needs the link too: its iframe goes only to apps this very
        // session signed in to.
        if client.backchannel_logout_uri.is_some() || client.frontchannel_logout_uri.is_some() {
            self.store
                .op_link_session_app(
                    session.id,
                    &client.client_id,
                    sub,
                    client.backchannel_logout_uri.is_some(),
                )
                .await?;
        }
        Ok(())
    }

    /// One delivery round: leases the due notices and POSTs each. Returns how many were
    /// handled (a worker that handled none sleeps longer).
    pub async fn deliver_logout_notices(&self, http: &reqwest::Client) -> OpResult<usize> {
        let due = self.store.op_lease_logout_notices(BATCH, LEASE_MS).await?;
        for n in &due {
            let outcome = self.deliver(http, n).await;
            let (state, next, error) = match &outcome {
                Outcome::Delivered => (NoticeState::Delivered, now_ms(), None),
                Outcome::Retry(e) if n.attempts + 1 >= MAX_ATTEMPTS => {
                    (NoticeState::Abandoned, now_ms(), Some(e.as_str()))
                }
                Outcome::Retry(e) => (
                    NoticeState::Pending,
                    now_ms() + backoff_ms(n.attempts),
                    Some(e.as_str()),
                ),
                Outcome::Abandoned(e) => (NoticeState::Abandoned, now_ms(), Some(e.as_str())),
            };
            match &outcome {
                Outcome::Delivered => {
                    tracing::info!(client_id = %n.client_id, "back-channel logout delivered")
                }
                Outcome::Retry(e) | Outcome::Abandoned(e) => {
                    tracing::warn!(client_id = %n.client_id, attempt = n.attempts + 1, error = %e, state = state.as_str(), "back-channel logout not delivered")
                }
            }
            metrics::counter!("tessera_op_backchannel_logouts_total", "outcome" => state.as_str())
                .increment(1);
            self.store
                .op_record_logout_attempt(&n.id, state, next, error)
                .await?;
        }
        Ok(due.len())
    }

    async fn deliver(&self, http: &reqwest::Client, n: &LogoutNotice) -> Outcome {
        let client = match self.client(&n.client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Outcome::Abandoned("the app was deleted".into()),
            Err(e) => return Outcome::Retry(format!("cannot read the app: {}", e.description)),
        };
        let Some(uri) = client.backchannel_logout_uri else {
            return Outcome::Abandoned("the app no longer has a backchannel_logout_uri".into());
        };
        let token = match self.logout_token(n).await {
            Ok(t) => t,
            Err(e) => return Outcome::Retry(format!("cannot sign: {}", e.description)),
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", &token)
            .finish();
        let sent = http
            .post(&uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .timeout(DELIVERY_TIMEOUT)
            .send()
            .await;
        // Only the URL's origin and path are logged: its query could hold a secret of the app.
        let shown = url::Url::parse(&uri)
            .map(|u| format!("{}{}", u.origin().ascii_serialization(), u.path()))
            .unwrap_or_default();
        match sent {
            // §2.8: 200 (or 204) is success; anything else is a failure the OP may retry.
            Ok(r) if r.status().is_success() => Outcome::Delivered,
            Ok(r) => Outcome::Retry(format!("{shown} answered {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Outcome::Retry(format!(
                "{shown} did not answer within {} s",
                DELIVERY_TIMEOUT.as_secs()
            )),
            Err(_) => Outcome::Retry(format!("{shown} could not be reached")),
        }
    }
}

/// The HTTP client deliveries use: no redirects (a logout token goes where the app registered,
/// not where an answer points), no cookies, a bounded connection time.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

/// Runs delivery rounds until `stop` resolves: every second while there is work, otherwise
/// every few seconds.
pub async fn run(provider: impl Fn() -> Provider, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let http = http_client();
    loop {
        let handled = match provider().deliver_logout_notices(&http).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e.description, "could not read the back-channel logout queue");
                0
            }
        };
        let pause = if handled > 0 {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(0), 1000);
        assert_eq!(backoff_ms(1), 2000);
        assert_eq!(backoff_ms(3), 8000);
        assert_eq!(backoff_ms(9), 300_000);
        assert_eq!(backoff_ms(60), 300_000);
        assert_eq!(backoff_ms(-1), 1000);
    }
}
