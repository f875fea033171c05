//! Back-channel logout's bookkeeping (OIDC Back-Channel Logout 1.0): which apps a session
//! signed in to, and the notices owed to them once it ends.
//!
//! A notice is queued in the same transaction that ends the session (see
//! [`queue_for_session`] and [`queue_for_identity`]), so a crash can neither end a session
//! silently nor announce an end that did not happen. Delivery is the OpenID Provider's job: it
//! leases due notices ([`Store::op_lease_logout_notices`]), so one instance sends each, and
//! records the outcome.

use crate::{Store, db_err};
use sqlx::{Any, Row, Transaction};
use tessera_core::Error;
use tessera_core::timefmt::now_ms;
use uuid::Uuid;

/// A notice on its way to an app.
#[derive(Debug, Clone, PartialEq)]
pub struct LogoutNotice {
    pub id: String,
    pub client_id: String,
    pub sub: String,
    pub sid: String,
    pub attempts: i64,
}

/// Where a notice ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeState {
    Pending,
    Delivered,
    /// Retries ran out, or the app no longer has a back-channel URI.
    Abandoned,
}

impl NoticeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeState::Pending => "pending",
            NoticeState::Delivered => "delivered",
            NoticeState::Abandoned => "abandoned",
        }
    }
}

/// Turns the app links of one session into notices (the notice id is the session and app, so
/// ending a session twice queues nothing twice).
pub(crate) async fn queue_for_session(
    tx: &mut Transaction<'static, Any>,
    session: &str,
) -> Result<(), Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO op_logout_notices (id, client_id, sub, sid, state, attempts, next_attempt_at, lease_until, last_error, created_at, updated_at) \
         SELECT session_id || ':' || client_id, client_id, sub, token_sid, 'pending', 0, $1, 0, NULL, $1, $1 FROM op_session_apps WHERE session_id = $2 AND backchannel = 1 \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(now)
    .bind(session)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query("DELETE FROM op_session_apps WHERE session_id = $1")
        .bind(session)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The same for every active session of an identity but `keep`.
pub(crate) async fn queue_for_identity(
    tx: &mut Transaction<'static, Any>,
    identity: &str,
    keep: Option<&str>,
) -> Result<(), Error> {
    let sessions: Vec<String> = sqlx::query(
        "SELECT DISTINCT a.session_id FROM op_session_apps a JOIN sessions s ON s.id = a.session_id WHERE s.identity_id = $1 AND s.active = 1 AND s.id <> $2",
    )
    .bind(identity)
    .bind(keep.unwrap_or_default())
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?
    .iter()
    .map(|r| r.try_get::<String, _>("session_id"))
    .collect::<Result<_, _>>()
    .map_err(db_err)?;
    for s in sessions {
        queue_for_session(tx, &s).await?;
    }
    Ok(())
}

impl Store {
    /// Records that `session` signed in to an app that wants back-channel or front-channel
    /// logout, with the `sub` its tokens carry; `backchannel` says whether ending the session
    /// queues a notice for it (a later sign-in updates it, so the app's current choice counts).
    pub async fn op_link_session_app(
        &self,
        session: Uuid,
        client_id: &str,
        sub: &str,
        backchannel: bool,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO op_session_apps (session_id, client_id, sub, token_sid, created_at, backchannel) VALUES ($1, $2, $3, $1, $4, $5) ON CONFLICT (session_id, client_id) DO UPDATE SET backchannel = $5",
        )
        .bind(session.to_string())
        .bind(client_id)
        .bind(sub)
        .bind(now_ms())
        .bind(i64::from(backchannel))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// The apps `session` signed in to (that wanted a logout channel), each with the `sid` its
    /// id_tokens carry: `(client_id, token_sid)`, oldest first.
    pub async fn op_session_apps(&self, session: Uuid) -> Result<Vec<(String, String)>, Error> {
        sqlx::query(
            "SELECT client_id, token_sid FROM op_session_apps WHERE session_id = $1 ORDER BY created_at, client_id",
        )
        .bind(session.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| Ok((r.try_get("client_id")?, r.try_get("token_sid")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_err)
    }

    /// Leases up to `limit` due notices for `lease_ms`: another instance skips them until the
    /// lease runs out, so a worker that dies mid-send only delays a notice.
    pub async fn op_lease_logout_notices(
        &self,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<LogoutNotice>, Error> {
        let now = now_ms();
        // One statement: the outer WHERE re-checks the lease row by row, so two workers that
        // pick the same candidates never both take one (PostgreSQL re-evaluates it on a row
        // another transaction just updated; SQLite runs writers one at a time).
        let rows = sqlx::query(
            "UPDATE op_logout_notices SET lease_until = $1 \
             WHERE state = 'pending' AND lease_until <= $2 AND id IN ( \
               SELECT id FROM op_logout_notices \
               WHERE state = 'pending' AND next_attempt_at <= $2 AND lease_until <= $2 \
               ORDER BY next_attempt_at LIMIT $3) \
             RETURNING id, client_id, sub, sid, attempts",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(LogoutNotice {
                    id: row.try_get("id").map_err(db_err)?,
                    client_id: row.try_get("client_id").map_err(db_err)?,
                    sub: row.try_get("sub").map_err(db_err)?,
                    sid: row.try_get("sid").map_err(db_err)?,
                    attempts: row.try_get::<i64, _>("attempts").map_err(db_err)?,
                })
            })
            .collect()
    }

    /// Records an attempt: delivered, abandoned, or to be retried at `next_attempt_at`.
    pub async fn op_record_logout_attempt(
        &self,
        id: &str,
        state: NoticeState,
        next_attempt_at: i64,
        error: Option<&str>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE op_logout_notices SET state = $1, attempts = attempts + 1, next_attempt_at = $2, lease_until = 0, last_error = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(state.as_str())
        .bind(next_attempt_at)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// The notices of an app, newest first: what the admin API shows and the tests read.
    pub async fn op_logout_notices_of(
        &self,
        client_id: &str,
    ) -> Result<Vec<(LogoutNotice, String, Option<String>)>, Error> {
        let rows = sqlx::query(
            "SELECT id, client_id, sub, sid, attempts, state, last_error FROM op_logout_notices WHERE client_id = $1 ORDER BY created_at DESC, id LIMIT 500",
        )
        .bind(client_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok((
                    LogoutNotice {
                        id: row.try_get("id").map_err(db_err)?,
                        client_id: row.try_get("client_id").map_err(db_err)?,
                        sub: row.try_get("sub").map_err(db_err)?,
                        sid: row.try_get("sid").map_err(db_err)?,
                        attempts: row.try_get::<i64, _>("attempts").map_err(db_err)?,
                    },
                    row.try_get("state").map_err(db_err)?,
                    row.try_get("last_error").map_err(db_err)?,
                ))
            })
            .collect()
    }

    /// A step-up replaced `old` with `new`: the apps signed in through `old` stay linked (with
    /// the `sid` their tokens carry), and `old` ends without announcing a logout.
    pub async fn retire_replaced_session(&self, old: Uuid, new: Uuid) -> Result<(), Error> {
        let _cleared = self.sessions.clear_until_done();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("UPDATE op_session_apps SET session_id = $1 WHERE session_id = $2")
            .bind(new.to_string())
            .bind(old.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("UPDATE sessions SET active = 0 WHERE id = $1")
            .bind(old.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }
}
