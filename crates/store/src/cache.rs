//! A short-lived, per-process read-through cache of sessions by token hash, for the hottest
//! request (`/sessions/whoami`, called by apps on every page).
//!
//! Coherence: every write that can change what a cached session means (session revoked or
//! extended, identity updated or deleted) goes through [`crate::Store`] and clears the cache, so
//! this process never serves a stale answer after its own writes. Another instance sharing the
//! database may serve a session for at most `ttl` after it was revoked elsewhere; `ttl = 0`
//! turns the cache off.

use std::collections::HashMap;
use std::sync::Mutex;
use tessera_core::session::Session;

/// Entries beyond this are dropped wholesale; bounded memory beats a perfect hit rate.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
pub struct SessionCache {
    ttl_ms: i64,
    map: Mutex<HashMap<String, (Session, i64)>>,
}

impl SessionCache {
    pub fn new(ttl_ms: i64) -> Self {
        SessionCache {
            ttl_ms,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, token_hash: &str, now: i64) -> Option<Session> {
        if self.ttl_ms <= 0 {
            return None;
        }
        let map = self.map.lock().ok()?;
        match map.get(token_hash) {
            Some((s, until)) if *until > now => Some(s.clone()),
            _ => None,
        }
    }

    pub fn put(&self, token_hash: &str, session: &Session, now: i64) {
        if self.ttl_ms <= 0 {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            // Never cache past the session's own expiry.
            let until = (now + self.ttl_ms).min(session.expires_at);
            map.insert(token_hash.to_string(), (session.clone(), until));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.clear();
        }
    }
}
