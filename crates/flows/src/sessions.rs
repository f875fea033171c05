//! Session lifecycle beyond issuance: logout tokens, revocation, extension.

use crate::engine::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::{Error, crypto};
use uuid::Uuid;

impl Engine {
    /// A logout token is the session id with an HMAC under the cookie secret: it proves the
    /// logout link was minted for this session without storing anything.
    pub fn logout_token(&self, session: &Session) -> String {
        let key = self
            .settings
            .cookie_secrets
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        format!(
            "{}.{}",
            session.id.simple(),
            mac(key, &session.id.to_string())
        )
    }

    /// The URL that signs this session out in a browser (`/self-service/logout?token=…`).
    pub fn public_logout_url(&self, session: &Session) -> String {
        let mut u = self
            .settings
            .public_base_url
            .join("self-service/logout")
            .expect("relative path joins onto a base URL");
        u.query_pairs_mut()
            .append_pair("token", &self.logout_token(session));
        u.to_string()
    }

    /// Verifies a logout token and deactivates its session.
    pub async fn logout_with_token(
        &self,
        token: &str,
        current: Option<&Session>,
    ) -> Result<(), Error> {
        let invalid = || {
            Error::forbidden("The logout token is invalid or belongs to another session: open the logout link again from the signed-in browser.").with_id(tessera_core::error::ErrorId::SecurityCsrfViolation)
        };
        let (sid, given) = token.split_once('.').ok_or_else(invalid)?;
        let id = Uuid::parse_str(sid).map_err(|_| invalid())?;
        // Any configured secret verifies, so rotating secrets keeps issued links working.
        let valid = self
            .settings
            .cookie_secrets
            .iter()
            .any(|key| crypto::constant_time_eq(&mac(key, &id.to_string()), given));
        if !valid || current.map(|s| s.id) != Some(id) {
            return Err(invalid());
        }
        self.store.set_session_active(id, false).await
    }

    pub async fn revoke_session_token(&self, token: &str) -> Result<(), Error> {
        let s = self
            .store
            .session_by_token_hash(&crypto::token_hash(token))
            .await?
            .ok_or_else(|| {
                Error::forbidden("The session token is invalid or already revoked.")
                    .with_id(tessera_core::error::ErrorId::SessionInactive)
            })?;
        self.store.set_session_active(s.id, false).await
    }

    pub async fn extend_session(&self, id: Uuid) -> Result<Session, Error> {
        let s = self.store.get_session(id).await?;
        if !s.active {
            return Err(Error::bad_request(
                "The session is not active and cannot be extended.",
            ));
        }
        self.store
            .set_session_expiry(
                id,
                now_ms() + self.settings.session.lifespan.as_millis() as i64,
            )
            .await?;
        self.store.get_session(id).await
    }
}

/// HMAC-SHA256 (hex) of a logout token's session id under one cookie secret.
fn mac(key: &str, data: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(b"tessera-logout:");
    mac.update(data.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
