//! Persistence for identities, sessions and self-service flows, on SQLite (default) or
//! PostgreSQL through one set of queries.
//!
//! Architecture invariant: the store knows nothing about HTTP, flows' business rules or
//! configuration files. It stores and loads the core model; every write that spans tables runs in
//! one transaction, so a failure leaves nothing half-written. All instances share state only
//! through the database.

pub mod apis;
mod cache;
pub mod courier;
pub mod device;
mod dsn;
pub mod flows;
mod identities;
mod jtis;
pub mod lifecycle;
mod limits;
pub mod logout_notices;
mod migrations;
pub mod oidc;
pub mod op;
pub mod orgs;
pub mod par;
mod sessions;

pub use dsn::{Backend, ParsedDsn, parse_dsn};
pub use migrations::MigrationStatus;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use std::sync::Once;
use tessera_core::Error;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    sessions: std::sync::Arc<cache::SessionCache>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Page of results with the key to continue after, for keyset pagination.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl Store {
    /// Opens a pool for a Kratos-style DSN (`memory`, `sqlite://…`, `postgres://…`).
    pub async fn connect(dsn: &str) -> Result<Store, Error> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let parsed = parse_dsn(dsn).map_err(Error::bad_request)?;
        let backend = parsed.backend;
        let mut opts = AnyPoolOptions::new()
            .max_connections(parsed.max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        if parsed.keep_alive {
            // An in-memory database lives only while a connection to it is open.
            opts = opts
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        if backend == Backend::Sqlite {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    for pragma in [
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA busy_timeout = 10000",
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = NORMAL",
                    ] {
                        conn.execute(pragma).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = opts.connect(&parsed.url).await.map_err(|e| {
            Error::unavailable(format!(
                "cannot open the database ({}): {e}",
                parsed.redacted()
            ))
        })?;
        Ok(Store {
            pool,
            backend,
            sessions: Default::default(),
        })
    }

    /// Enables the session read-through cache (see `cache.rs` for its coherence rules).
    pub fn with_session_cache(mut self, ttl: std::time::Duration) -> Store {
        self.sessions = std::sync::Arc::new(cache::SessionCache::new(ttl.as_millis() as i64));
        self
    }

    /// Moves on whenever a write may have changed what a cached session means (see
    /// `cache.rs`): a cache of anything derived from sessions keeps an entry only while this
    /// has not moved since the entry was read.
    pub fn session_generation(&self) -> u64 {
        self.sessions.generation()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Readiness probe: one round trip to the database.
    pub async fn ping(&self) -> Result<(), Error> {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        match tokio::time::timeout(PING_TIMEOUT, ping).await {
            Ok(r) => r.map(|_| ()).map_err(db_err),
            Err(_) => Err(Error::unavailable(format!(
                "The database did not answer within {} s.",
                PING_TIMEOUT.as_secs()
            ))
            .with_retry_after(RETRY_AFTER_SECS)),
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Maps database errors: uniqueness violations are the caller's conflict, the rest are ours.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return Error::conflict("This identity conflicts with another identity that already exists: one of its identifiers (email, phone, username, …) or addresses is already taken.")
            .with_id(tessera_core::error::ErrorId::IdentityConflict);
    }
    if is_unavailable(&e) {
        tracing::warn!(error = %e, "database unavailable");
        return Error::unavailable(
            "The database is unavailable or busy right now, so nothing was done. Try again in a few seconds.",
        )
        .with_retry_after(RETRY_AFTER_SECS);
    }
    tracing::error!(error = %e, "database error");
    Error::internal("A database error occurred. The server log has the details.")
}

/// What `Retry-After` says when the database is away: a stopped PostgreSQL or a locked SQLite
/// file usually comes back within seconds.
const RETRY_AFTER_SECS: u64 = 5;

/// How long a request waits for a database connection before it is answered 503 (sqlx's
/// default is 30 s, as long as the whole request may take): with the database away, requests
/// fail fast instead of piling up (issue 21).
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the readiness probe waits for its round trip.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Errors that say the database cannot be reached or is busy right now, not that the request
/// or the data is wrong: the same request may succeed later (503 + `Retry-After`, not 500).
/// The connection failed or was lost, the pool waited too long for one, SQLite answered
/// BUSY/LOCKED after its busy timeout, or PostgreSQL is shutting down, starting or full
/// (SQLSTATE classes 08 and 57P0x, 53300).
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                d.code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| matches!(c & 0xff, 5 | 6))
            } else {
                d.code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P0") || c == "53300")
            }
        }
        _ => false,
    }
}

/// SQLite's "busy" answers (SQLITE_BUSY and its extended codes, such as BUSY_SNAPSHOT): the
/// statement did nothing and may be run again.
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && d.code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .is_some_and(|c| c & 0xff == 5)
        }
        _ => false,
    }
}

/// Runs a statement again while SQLite answers "busy" ([`is_busy`]). In WAL mode a write
/// statement that reads first (an `UPDATE … WHERE`) gets SQLITE_BUSY_SNAPSHOT at once, without
/// its busy timeout, when another connection committed between its read and its write: two
/// requests racing for the same code or refresh token do exactly that.
pub(crate) async fn retry_busy<T, F, Fut>(mut run: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0u64;
    loop {
        match run().await {
            Err(e) if attempt < 8 && is_busy(&e) => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(2 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// Builds `$from, $from+1, …` placeholders for an IN list.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::ErrorKind;

    #[test]
    fn an_unreachable_database_is_a_503_with_retry_after_not_a_500() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            let mapped = db_err(e);
            assert_eq!(mapped.kind, ErrorKind::Unavailable, "{mapped:?}");
            assert_eq!(mapped.retry_after.map(|s| s.get()), Some(5));
        }
        let other = db_err(sqlx::Error::RowNotFound);
        assert_eq!(other.kind, ErrorKind::Internal);
        assert_eq!(other.retry_after, None);
    }

    #[tokio::test]
    async fn sqlite_locked_by_another_writer_is_a_503() {
        use sqlx::Connection;
        let dir =
            std::env::temp_dir().join(format!("tessera-store-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut holder)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut holder)
            .await
            .unwrap();
        let mut writer = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut writer)
            .await
            .unwrap();
        let e = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut writer)
            .await
            .unwrap_err();
        let mapped = db_err(e);
        assert_eq!(mapped.kind, ErrorKind::Unavailable, "{mapped:?}");
        assert!(mapped.retry_after.is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}
