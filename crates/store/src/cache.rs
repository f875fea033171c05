//! A short-lived, per-process read-through cache of sessions by token hash, for the hottest
//! request (`/sessions/whoami`, called by apps on every page).
//!
//! Coherence: every write that can change what a cached session means (session revoked or
//! extended, identity updated or deleted) goes through [`crate::Store`] and clears the cache
//! when it is done, so this process never serves a stale answer after its own writes. Each
//! clear also moves a generation counter on, and a session read from the database is cached
//! only if no clear happened since the read began: a read that raced with a revocation (it saw
//! the row before the write committed) cannot put the old row back. Caches built on top of
//! this one (the engine's serialised whoami answers) check the same generation. Another
//! instance sharing the database may serve a session for at most `ttl` after it was revoked
//! elsewhere; `ttl = 0` turns the cache off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_core::session::Session;

/// Entries beyond this are dropped wholesale; bounded memory beats a perfect hit rate.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
pub struct SessionCache {
    ttl_ms: i64,
    map: Mutex<HashMap<String, (Session, i64)>>,
    /// Moved on by every [`SessionCache::clear`], under the map's lock.
    generation: AtomicU64,
}

impl SessionCache {
    pub fn new(ttl_ms: i64) -> Self {
        SessionCache {
            ttl_ms,
            map: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The current generation: take it before reading the database, hand it to `put`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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

    /// Caches `session`, read from the database after `seen` was the generation; nothing is
    /// cached when a write cleared the cache since.
    pub fn put(&self, token_hash: &str, session: &Session, now: i64, seen: u64) {
        if self.ttl_ms <= 0 {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            if self.generation.load(Ordering::Acquire) != seen {
                return;
            }
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            // Never cache past the session's own expiry.
            let until = (now + self.ttl_ms).min(session.expires_at);
            map.insert(token_hash.to_string(), (session.clone(), until));
        }
    }

    /// For a write: clears now and again when the guard is dropped (after the write committed
    /// or failed), so a read racing with the write cannot leave the old row cached.
    pub fn clear_until_done(&self) -> ClearOnDrop<'_> {
        self.clear();
        ClearOnDrop(self)
    }

    pub fn clear(&self) {
        match self.map.lock() {
            Ok(mut map) => {
                map.clear();
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            // A poisoned lock: `get` and `put` no longer use the map, but the generation must
            // still move on for the caches built on this one.
            Err(_) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// Clears its cache when dropped (see [`SessionCache::clear_until_done`]).
#[must_use = "the cache is cleared again when this guard is dropped"]
pub struct ClearOnDrop<'a>(&'a SessionCache);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn session(expires_at: i64) -> Session {
        let id = Uuid::new_v4();
        Session {
            id,
            active: true,
            expires_at,
            authenticated_at: 0,
            authenticator_assurance_level: "aal1".into(),
            authentication_methods: vec![],
            issued_at: 0,
            identity_id: id,
            identity: None,
            devices: vec![],
        }
    }

    #[test]
    fn a_read_that_raced_with_a_write_is_not_cached() {
        let c = SessionCache::new(60_000);
        let seen = c.generation();
        // A revocation commits and clears while the read is in flight…
        c.clear();
        // …so the row the read saw (still active) must not come back.
        c.put("h", &session(i64::MAX), 0, seen);
        assert!(c.get("h", 1).is_none());
        let guard = c.clear_until_done();
        let during = c.generation();
        drop(guard);
        c.put("h", &session(i64::MAX), 0, during);
        assert!(
            c.get("h", 1).is_none(),
            "a read during a write is not cached"
        );
        // A read that began after the clear is cached.
        c.put("h", &session(i64::MAX), 0, c.generation());
        assert!(c.get("h", 1).is_some());
    }

    #[test]
    fn entries_end_with_the_ttl_or_the_session() {
        let c = SessionCache::new(1_000);
        c.put("a", &session(i64::MAX), 0, c.generation());
        c.put("b", &session(500), 0, c.generation());
        assert!(c.get("a", 999).is_some());
        assert!(c.get("a", 1_000).is_none());
        assert!(c.get("b", 499).is_some());
        assert!(c.get("b", 500).is_none());
        let off = SessionCache::new(0);
        off.put("a", &session(i64::MAX), 0, off.generation());
        assert!(off.get("a", 1).is_none());
    }
}
