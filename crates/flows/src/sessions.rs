//! Session lifecycle beyond issuance: logout tokens, revocation, extension, and whoami's
//! answer cache.

use crate::engine::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tessera_core::session::Session;
use tessera_core::timefmt::now_ms;
use tessera_core::{Error, crypto};
use uuid::Uuid;

/// whoami's answer for one session: the session (with its identity) as Kratos's JSON,
/// serialised once.
#[derive(Debug)]
pub struct WhoamiAnswer {
    pub json: Vec<u8>,
    /// For `X-Kratos-Authenticated-Identity-Id`.
    pub identity_id: Option<String>,
    /// The session is below `session.whoami.required_aal` (an aal1 session of someone with a
    /// second factor): whoami answers 403 `session_aal2_required` instead.
    pub falls_short: bool,
}

/// Answers beyond this are dropped wholesale: at a few kB each, memory stays bounded (a few
/// MB) whatever the number of sessions in use.
const MAX_ANSWERS: usize = 2048;

/// whoami's serialised answers by session token hash. An answer is served only while the
/// store's session generation has not moved since it was built (every revocation, logout,
/// extension or identity change in this process moves it, see `tessera_store`'s session
/// cache), for at most `session.cache_ttl` and never past the session's expiry. Another
/// instance's writes reach this one within `session.cache_ttl` (docs/operations.md).
#[derive(Debug, Default)]
pub struct WhoamiCache {
    map: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug)]
struct Cached {
    answer: Arc<WhoamiAnswer>,
    until: i64,
    generation: u64,
}

impl WhoamiCache {
    fn get(&self, token_hash: &str, now: i64, generation: u64) -> Option<Arc<WhoamiAnswer>> {
        let map = self.map.lock().ok()?;
        map.get(token_hash)
            .filter(|c| c.generation == generation && c.until > now)
            .map(|c| c.answer.clone())
    }

    fn put(&self, token_hash: String, cached: Cached) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_ANSWERS {
                map.clear();
            }
            map.insert(token_hash, cached);
        }
    }
}

impl Engine {
    /// `GET /sessions/whoami`: the answer for a session token, `None` when the token has no
    /// valid session. Served from [`WhoamiCache`] while nothing could have changed it.
    pub async fn whoami(&self, token: &str) -> Result<Option<Arc<WhoamiAnswer>>, Error> {
        let answer = self.whoami_answer(token).await?;
        if answer.as_ref().is_some_and(|a| a.falls_short) {
            return Err(self.aal2_required(None));
        }
        Ok(answer)
    }

    async fn whoami_answer(&self, token: &str) -> Result<Option<Arc<WhoamiAnswer>>, Error> {
        let ttl = self.settings.session.cache_ttl.as_millis() as i64;
        if ttl <= 0 || token.is_empty() || token.len() > 256 {
            return self.whoami_uncached(token).await.map(|a| a.map(Arc::new));
        }
        let hash = crypto::token_hash(token);
        let now = now_ms();
        // Taken before the session is read: a write that lands meanwhile moves it, and the
        // answer built from the older read is then never served.
        let generation = self.store.session_generation();
        if let Some(answer) = self.whoami_answers.get(&hash, now, generation) {
            return Ok(Some(answer));
        }
        let Some(session) = self.session_from_token(token).await? else {
            return Ok(None);
        };
        let until = (now + ttl).min(session.expires_at);
        let mut answer = render_whoami(&session)?;
        answer.falls_short = self
            .falls_short(&session, self.settings.mfa.whoami_required_aal)
            .await?;
        let answer = Arc::new(answer);
        self.whoami_answers.put(
            hash,
            Cached {
                answer: answer.clone(),
                until,
                generation,
            },
        );
        Ok(Some(answer))
    }

    async fn whoami_uncached(&self, token: &str) -> Result<Option<WhoamiAnswer>, Error> {
        match self.session_from_token(token).await? {
            Some(s) => {
                let mut answer = render_whoami(&s)?;
                answer.falls_short = self
                    .falls_short(&s, self.settings.mfa.whoami_required_aal)
                    .await?;
                Ok(Some(answer))
            }
            None => Ok(None),
        }
    }

    /// A logout token is the session id with an HMAC under the cookie secret: it proves the
    /// logout link was minted for this session without storing anything.
    pub fn logout_token(&self, session: &Session) -> String {
        let key = self
            .settings
            .secrets
            .cookie
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
            .serve
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
            .secrets
            .cookie
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

fn render_whoami(session: &Session) -> Result<WhoamiAnswer, Error> {
    Ok(WhoamiAnswer {
        json: serde_json::to_vec(session)
            .map_err(|e| Error::internal(format!("cannot serialise the session: {e}")))?,
        identity_id: session.identity.as_ref().map(|i| i.id.to_string()),
        falls_short: false,
    })
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
