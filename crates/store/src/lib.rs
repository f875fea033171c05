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
        let mut opts = AnyPoolOptions::new().max_connections(parsed.max_connections);
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
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_err)
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
    tracing::error!(error = %e, "database error");
    Error::internal("A database error occurred. The server log has the details.")
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
