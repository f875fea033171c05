//! Social sign-in attempts in flight, and stored user-facing errors.

use crate::{Store, db_err};
use serde_json::Value;
use sqlx::Row;
use tessera_core::{Error, StoredError};
use uuid::Uuid;

/// One sign-in attempt, created when the browser is sent upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcState {
    /// SHA-256 of the `state` parameter; the parameter itself is only in the browser's URL.
    pub state_hash: String,
    pub flow_id: Uuid,
    pub provider: String,
    /// SHA-256 of the continuity cookie that binds the round trip to the browser that began it;
    /// empty for API flows (native apps have no cookie jar shared with the system browser).
    pub continuity_hash: String,
    pub code_verifier: String,
    pub nonce: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What a callback's state came to ([`Store::take_oidc_state`]).
#[derive(Debug)]
pub enum TakenState {
    /// Taken by this callback: it is used up.
    Taken(OidcState),
    /// No such state: unknown, expired and cleaned up, or used.
    Unknown,
    /// The state belongs to another provider's sign-in; left in place.
    OtherProvider(String),
    /// The callback's browser does not hold the attempt's continuity cookie; left in place.
    OtherBrowser,
}

impl Store {
    pub async fn insert_oidc_state(&self, s: &OidcState) -> Result<(), Error> {
        sqlx::query("INSERT INTO oidc_states (state_hash, flow_id, provider, continuity_hash, code_verifier, nonce, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&s.state_hash)
            .bind(s.flow_id.to_string())
            .bind(&s.provider)
            .bind(&s.continuity_hash)
            .bind(&s.code_verifier)
            .bind(&s.nonce)
            .bind(s.created_at)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Takes a state for a callback of `provider` from a browser whose continuity cookie
    /// hashes to `continuity_hash` (`None`: it sent none): returns it and deletes it in one
    /// statement, so two callbacks carrying the same state cannot both get it (single use even
    /// across instances). A state is taken only by the browser that holds its continuity
    /// cookie (API flows have none to hold), so a stranger who opens a leaked callback URL is
    /// refused without spending the state of the person still signing in; what was wrong is
    /// then read without taking anything.
    pub async fn take_oidc_state(
        &self,
        state_hash: &str,
        provider: &str,
        continuity_hash: Option<&str>,
    ) -> Result<TakenState, Error> {
        let row = sqlx::query("DELETE FROM oidc_states WHERE state_hash = $1 AND provider = $2 AND (continuity_hash = '' OR continuity_hash = $3) RETURNING state_hash, flow_id, provider, continuity_hash, code_verifier, nonce, created_at, expires_at")
            .bind(state_hash)
            .bind(provider)
            .bind(continuity_hash.unwrap_or_default())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            let left = sqlx::query("SELECT provider FROM oidc_states WHERE state_hash = $1")
                .bind(state_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            return Ok(match left {
                None => TakenState::Unknown,
                Some(r) => {
                    let held_by: String = r.try_get("provider").map_err(db_err)?;
                    if held_by == provider {
                        TakenState::OtherBrowser
                    } else {
                        TakenState::OtherProvider(held_by)
                    }
                }
            });
        };
        let s = |c: &str| row.try_get::<String, _>(c).map_err(db_err);
        Ok(TakenState::Taken(OidcState {
            state_hash: s("state_hash")?,
            flow_id: Uuid::parse_str(&s("flow_id")?)
                .map_err(|e| Error::internal(format!("corrupt oidc state: {e}")))?,
            provider: s("provider")?,
            continuity_hash: s("continuity_hash")?,
            code_verifier: s("code_verifier")?,
            nonce: s("nonce")?,
            created_at: row.try_get("created_at").map_err(db_err)?,
            expires_at: row.try_get("expires_at").map_err(db_err)?,
        }))
    }

    /// Housekeeping: drops sign-in attempts that expired before `now`, and stored errors and
    /// unredeemed token exchanges created before `cutoff`. Returns how many rows went.
    pub async fn delete_stale_social(&self, now: i64, cutoff: i64) -> Result<u64, Error> {
        let mut total = 0;
        for (sql, at) in [
            ("DELETE FROM oidc_states WHERE expires_at < $1", now),
            (
                "DELETE FROM selfservice_errors WHERE created_at < $1",
                cutoff,
            ),
            (
                "DELETE FROM session_token_exchanges WHERE created_at < $1",
                cutoff,
            ),
        ] {
            let done = sqlx::query(sql)
                .bind(at)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            total += done.rows_affected();
        }
        Ok(total)
    }

    /// Stores an error for the error page, which loads it by id.
    pub async fn insert_error(&self, error: &StoredError, now: i64) -> Result<Uuid, Error> {
        let error = serde_json::to_value(error).map_err(|e| Error::internal(e.to_string()))?;
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO selfservice_errors (id, error, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(error.to_string())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(id)
    }

    pub async fn get_error(&self, id: Uuid) -> Result<Option<(Value, i64)>, Error> {
        let row = sqlx::query("SELECT error, created_at FROM selfservice_errors WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let e: String = row.try_get("error").map_err(db_err)?;
        Ok(Some((
            serde_json::from_str(&e).unwrap_or(Value::Null),
            row.try_get("created_at").map_err(db_err)?,
        )))
    }
}

impl Store {
    /// Registers a native app's init code (hashed) for an API flow.
    pub async fn insert_token_exchange(
        &self,
        init_hash: &str,
        flow_id: Uuid,
        now: i64,
    ) -> Result<(), Error> {
        sqlx::query("INSERT INTO session_token_exchanges (init_hash, flow_id, created_at) VALUES ($1, $2, $3)")
            .bind(init_hash)
            .bind(flow_id.to_string())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Records the finished sign-in of a flow: the return code's hash and the sealed session
    /// token. Returns false when the flow has no exchange (the app did not ask for one).
    pub async fn complete_token_exchange(
        &self,
        flow_id: Uuid,
        return_hash: &str,
        sealed_token: &str,
        session_id: Uuid,
    ) -> Result<bool, Error> {
        let done = sqlx::query("UPDATE session_token_exchanges SET return_hash = $1, sealed_token = $2, session_id = $3 WHERE flow_id = $4 AND return_hash IS NULL")
            .bind(return_hash)
            .bind(sealed_token)
            .bind(session_id.to_string())
            .bind(flow_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Redeems both codes once: returns the sealed token and the session id, and deletes the row.
    pub async fn take_token_exchange(
        &self,
        init_hash: &str,
        return_hash: &str,
    ) -> Result<Option<(String, Uuid)>, Error> {
        let row = sqlx::query("DELETE FROM session_token_exchanges WHERE init_hash = $1 AND return_hash = $2 RETURNING sealed_token, session_id")
            .bind(init_hash)
            .bind(return_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let token: Option<String> = row.try_get("sealed_token").map_err(db_err)?;
        let session: Option<String> = row.try_get("session_id").map_err(db_err)?;
        Ok(
            match (token, session.and_then(|s| Uuid::parse_str(&s).ok())) {
                (Some(t), Some(s)) => Some((t, s)),
                _ => None,
            },
        )
    }
}
