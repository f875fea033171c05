//! Limits on what clients can make the server do (`limits:` in the configuration): a bounded
//! queue for password hashing, failed password sign-ins per identifier and per address
//! (counted in the database, so across instances), and per-minute counters kept in each
//! instance for cheap, high-rate checks (new flows, failed token requests).
//!
//! Every limit counts failures or work, never successful sign-ins, and ends with its window:
//! an attacker can slow guessing down to a crawl but cannot lock an account for good, and the
//! per-address limits do not hold up the account's owner at another address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tessera_config::resolve::LimitSettings;
use tessera_core::timefmt::now_ms;
use tessera_core::{Error, ErrorKind, crypto};
use tessera_store::Store;

/// How long a request waits for a hashing slot before it is answered 503.
const HASH_WAIT: Duration = Duration::from_secs(10);

/// Per-minute counters kept before the oldest are dropped.
const MAX_COUNTERS: usize = 100_000;

pub struct Limits {
    pub settings: LimitSettings,
    hashing: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    per_minute: Mutex<HashMap<String, (i64, u32)>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn busy(reason: &str) -> Error {
    Error::new(ErrorKind::Unavailable, reason)
        .with_id(tessera_core::error::ErrorId::ServerBusy)
        .with_retry_after(1)
}

/// The answer when a limit is reached: 429, with the seconds until its window ends.
pub fn limited(retry_after: u64) -> Error {
    let minutes = retry_after.div_ceil(60);
    Error::new(
        ErrorKind::TooManyRequests,
        format!("Too many failed attempts. Wait {minutes} minute(s) and try again."),
    )
    .with_id(tessera_core::error::ErrorId::SelfServiceRateLimited)
    .with_details(serde_json::json!({ "retry_after_seconds": retry_after }))
    .with_retry_after(retry_after)
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Limits {
        Limits {
            settings: settings.clone(),
            hashing: tokio::sync::Semaphore::new(settings.hashing_concurrency.max(1)),
            waiting: AtomicUsize::new(0),
            per_minute: Mutex::new(HashMap::new()),
        }
    }

    /// Runs a password hash or check on the blocking pool, at most `hashing_concurrency` at a
    /// time (each holds `hashers.argon2.memory`), with at most `hashing_queue` requests
    /// waiting; beyond that, or after waiting too long, 503 with `Retry-After`. Without this a
    /// burst of wrong passwords costs memory without bound (48 took 3 GB).
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let mut _permit = None;
        if self.settings.enabled {
            let permit = match self.hashing.try_acquire() {
                Ok(p) => Some(p),
                Err(_) => {
                    let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
                    let p = if ahead >= self.settings.hashing_queue {
                        None
                    } else {
                        tokio::time::timeout(HASH_WAIT, self.hashing.acquire())
                            .await
                            .ok()
                            .and_then(Result::ok)
                    };
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    p
                }
            };
            let Some(permit) = permit else {
                return Err(busy(
                    "The server is busy checking passwords. Try again in a moment.",
                ));
            };
            // Held until the work is done.
            _permit = Some(permit);
        }
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::internal(format!("password hashing failed: {e}")))
    }

    fn window(&self) -> (i64, u64) {
        let len = self.settings.failed_login_window.as_millis().max(1) as i64;
        let now = now_ms();
        let start = now - now.rem_euclid(len);
        (start, ((start + len - now) / 1000).max(1) as u64)
    }

    /// The counters a password sign-in touches, with the limit of each: per identifier (never
    /// stored in the clear), and with a known address per identifier and address and per
    /// address.
    fn login_counters(&self, identifier: &str, address: Option<IpAddr>) -> Vec<(String, u32)> {
        let s = &self.settings;
        let id = crypto::token_hash(&format!("login-identifier\0{identifier}"));
        let mut out = vec![(format!("login:id:{id}"), s.failed_per_identifier)];
        if let Some(addr) = address {
            let both = crypto::token_hash(&format!("{id}\0{addr}"));
            out.push((
                format!("login:idaddr:{both}"),
                s.failed_per_identifier_and_address,
            ));
            out.push((format!("login:addr:{addr}"), s.failed_per_address));
        }
        out
    }

    /// Refuses a password sign-in before any hashing when the identifier or the address has
    /// failed too often in the current window.
    pub async fn check_login(
        &self,
        store: &Store,
        identifier: &str,
        address: Option<IpAddr>,
    ) -> Result<(), Error> {
        if !self.settings.enabled {
            return Ok(());
        }
        let (start, left) = self.window();
        let counters = self.login_counters(identifier, address);
        let keys: Vec<&str> = counters.iter().map(|(k, _)| k.as_str()).collect();
        let counts = store.limit_counts(&keys, start).await?;
        if counts
            .iter()
            .zip(&counters)
            .any(|(count, (_, max))| *count >= i64::from(*max))
        {
            return Err(limited(left));
        }
        Ok(())
    }

    /// Counts a failed password sign-in against the identifier and the address.
    pub async fn record_login_failure(
        &self,
        store: &Store,
        identifier: &str,
        address: Option<IpAddr>,
    ) -> Result<(), Error> {
        if !self.settings.enabled {
            return Ok(());
        }
        let (start, _) = self.window();
        for (key, _) in self.login_counters(identifier, address) {
            store.limit_hit(&key, start).await?;
        }
        Ok(())
    }

    /// Counts a request from `address` that stores a row before anyone is known (a new flow,
    /// a pending OP authorization, an error for an unmatched callback), under
    /// `limits.flows_per_address_per_minute`; `kind` names the counter. Without an address
    /// (a test router without a socket) nothing is counted.
    pub fn stored_request(&self, kind: &str, address: Option<IpAddr>) -> Result<(), Error> {
        match address {
            Some(addr) => self.per_minute(
                &format!("{kind}:{addr}"),
                self.settings.flows_per_address_per_minute,
                true,
            ),
            None => Ok(()),
        }
    }

    /// A per-minute counter of this instance: counts one more event for `key` when `count`,
    /// and refuses (429) once the minute's count has reached `max`.
    pub fn per_minute(&self, key: &str, max: u32, count: bool) -> Result<(), Error> {
        if !self.settings.enabled {
            return Ok(());
        }
        let now = now_ms();
        let minute = now / 60_000;
        let left = (60 - (now / 1000) % 60).max(1) as u64;
        let mut map = self
            .per_minute
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_COUNTERS {
            map.retain(|_, (m, _)| *m == minute);
        }
        let entry = map.entry(key.to_string()).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= max {
            return Err(Error::new(
                ErrorKind::TooManyRequests,
                "Too many requests from this client. Wait a minute and try again.",
            )
            .with_id(tessera_core::error::ErrorId::RateLimited)
            .with_retry_after(left));
        }
        if count {
            entry.1 += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(concurrency: usize, queue: usize) -> LimitSettings {
        LimitSettings {
            enabled: true,
            hashing_concurrency: concurrency,
            hashing_queue: queue,
            failed_login_window: Duration::from_secs(900),
            failed_per_identifier_and_address: 3,
            failed_per_identifier: 5,
            failed_per_address: 5,
            flows_per_address_per_minute: 2,
            token_failures_per_client_per_minute: 2,
            trusted_proxy_hops: 0,
            request_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_address: 512,
            upstream_timeout: Duration::from_secs(10),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_runs_a_bounded_number_at_once_and_turns_the_overflow_away() {
        let limits = std::sync::Arc::new(Limits::new(&settings(2, 3)));
        let running = std::sync::Arc::new(AtomicUsize::new(0));
        let peak = std::sync::Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..12 {
            let (limits, running, peak) = (limits.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                limits
                    .hash(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => {}
                Err(e) => {
                    assert_eq!(e.kind, ErrorKind::Unavailable);
                    assert_eq!(e.retry_after.map(|s| s.get()), Some(1));
                    refused += 1;
                }
            }
        }
        assert!(peak.load(Ordering::SeqCst) <= 2, "at most 2 at once");
        // 2 running + 3 queued are served; the rest are turned away at once.
        assert_eq!(refused, 12 - 5, "refused {refused}");
    }

    #[test]
    fn per_minute_counts_and_refuses_with_retry_after() {
        let limits = Limits::new(&settings(1, 1));
        assert!(limits.per_minute("a", 2, true).is_ok());
        assert!(limits.per_minute("a", 2, true).is_ok());
        let e = limits.per_minute("a", 2, true).expect_err("third");
        assert_eq!(e.kind, ErrorKind::TooManyRequests);
        assert!(e.retry_after.is_some_and(|s| (1..=60).contains(&s.get())));
        assert!(
            limits.per_minute("b", 2, true).is_ok(),
            "other keys unaffected"
        );
        let mut off = settings(1, 1);
        off.enabled = false;
        let off = Limits::new(&off);
        for _ in 0..10 {
            assert!(off.per_minute("a", 1, true).is_ok());
        }
    }
}
