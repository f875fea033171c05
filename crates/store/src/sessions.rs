//! Session persistence. Only the SHA-256 of a session token is stored.

use crate::identities::{decode_page_token, encode_page_token, identity_from_row};
use crate::{Page, Store, db_err};
use sqlx::Row;
use sqlx::any::AnyRow;
use tessera_core::Error;
use tessera_core::session::Session;
use uuid::Uuid;

const PAGE_TOKEN_PREFIX: &str = "tessera/v1/sessions/";

fn session_from_row(row: &AnyRow) -> Result<Session, Error> {
    let id: String = row.try_get("id").map_err(db_err)?;
    let identity_id: String = row.try_get("identity_id").map_err(db_err)?;
    let methods: String = row.try_get("methods").map_err(db_err)?;
    Ok(Session {
        id: Uuid::parse_str(&id).map_err(|_| Error::internal("corrupt session id"))?,
        active: row.try_get::<i64, _>("active").map_err(db_err)? != 0,
        expires_at: row.try_get("expires_at").map_err(db_err)?,
        authenticated_at: row.try_get("authenticated_at").map_err(db_err)?,
        authenticator_assurance_level: row.try_get("aal").map_err(db_err)?,
        authentication_methods: serde_json::from_str(&methods).unwrap_or_default(),
        issued_at: row.try_get("issued_at").map_err(db_err)?,
        identity: None,
        devices: vec![],
        identity_id: Uuid::parse_str(&identity_id)
            .map_err(|_| Error::internal("corrupt identity id"))?,
    })
}

pub fn session_not_found(id: Uuid) -> Error {
    Error::not_found(format!("Session `{id}` does not exist."))
}

impl Store {
    pub async fn insert_session(&self, s: &Session, token_hash: &str) -> Result<(), Error> {
        sqlx::query("INSERT INTO sessions (id, token_hash, identity_id, active, issued_at, authenticated_at, expires_at, aal, methods) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(s.id.to_string())
            .bind(token_hash)
            .bind(s.identity_id.to_string())
            .bind(i64::from(s.active))
            .bind(s.issued_at)
            .bind(s.authenticated_at)
            .bind(s.expires_at)
            .bind(&s.authenticator_assurance_level)
            .bind(serde_json::to_string(&s.authentication_methods).unwrap_or_else(|_| "[]".into()))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// The session for a token hash, with its identity (addresses included, no credentials) —
    /// one join plus the address queries, as this is the hottest path (`whoami`).
    pub async fn session_by_token_hash(&self, token_hash: &str) -> Result<Option<Session>, Error> {
        let now = tessera_core::timefmt::now_ms();
        if let Some(s) = self.sessions.get(token_hash, now) {
            return Ok(Some(s));
        }
        let seen = self.sessions.generation();
        let found = self.session_by_token_hash_uncached(token_hash).await?;
        if let Some(s) = &found
            && s.is_valid_at(now)
        {
            self.sessions.put(token_hash, s, now, seen);
        }
        Ok(found)
    }

    async fn session_by_token_hash_uncached(
        &self,
        token_hash: &str,
    ) -> Result<Option<Session>, Error> {
        let row = sqlx::query(
            "SELECT s.id AS s_id, s.identity_id AS s_identity_id, s.active, s.issued_at, s.authenticated_at, s.expires_at, s.aal, s.methods, i.* FROM sessions s JOIN identities i ON i.id = s.identity_id WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let mut identity = identity_from_row(&row)?;
        let methods: String = row.try_get("methods").map_err(db_err)?;
        let sid: String = row.try_get("s_id").map_err(db_err)?;
        self.load_children(std::slice::from_mut(&mut identity), false)
            .await?;
        Ok(Some(Session {
            id: Uuid::parse_str(&sid).map_err(|_| Error::internal("corrupt session id"))?,
            active: row.try_get::<i64, _>("active").map_err(db_err)? != 0,
            expires_at: row.try_get("expires_at").map_err(db_err)?,
            authenticated_at: row.try_get("authenticated_at").map_err(db_err)?,
            authenticator_assurance_level: row.try_get("aal").map_err(db_err)?,
            authentication_methods: serde_json::from_str(&methods).unwrap_or_default(),
            issued_at: row.try_get("issued_at").map_err(db_err)?,
            identity_id: identity.id,
            identity: Some(identity),
            devices: vec![],
        }))
    }

    pub async fn get_session(&self, id: Uuid) -> Result<Session, Error> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| session_not_found(id))?;
        session_from_row(&row)
    }

    /// Sessions ordered by id; filtered by identity and/or active state.
    pub async fn list_sessions(
        &self,
        identity: Option<Uuid>,
        active: Option<bool>,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<Page<Session>, Error> {
        let after = match page_token {
            Some(t) => decode_page_token(PAGE_TOKEN_PREFIX, t)?,
            None => String::new(),
        };
        let mut sql = String::from("SELECT * FROM sessions WHERE id > $1");
        let mut n = 2;
        if identity.is_some() {
            sql.push_str(&format!(" AND identity_id = ${n}"));
            n += 1;
        }
        if active.is_some() {
            sql.push_str(&format!(" AND active = ${n}"));
            n += 1;
        }
        sql.push_str(&format!(" ORDER BY id LIMIT ${n}"));
        let mut q = sqlx::query(&sql).bind(after);
        if let Some(i) = identity {
            q = q.bind(i.to_string());
        }
        if let Some(a) = active {
            q = q.bind(i64::from(a));
        }
        let rows = q
            .bind(page_size as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut items = rows
            .iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > page_size {
            items.truncate(page_size);
            items
                .last()
                .map(|s| encode_page_token(PAGE_TOKEN_PREFIX, &s.id.to_string()))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    /// Sessions that are active and not yet expired (the `tessera_sessions_active` gauge).
    pub async fn count_active_sessions(&self) -> Result<i64, Error> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE active = 1 AND expires_at > $1")
                .bind(tessera_core::timefmt::now_ms())
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        row.try_get::<i64, _>("n").map_err(db_err)
    }

    /// Ending a session (`active = false`) also queues the back-channel logout notices of the
    /// apps it signed in to, in the same transaction.
    pub async fn set_session_active(&self, id: Uuid, active: bool) -> Result<(), Error> {
        let _cleared = self.sessions.clear_until_done();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done = sqlx::query("UPDATE sessions SET active = $1 WHERE id = $2")
            .bind(i64::from(active))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(session_not_found(id));
        }
        if !active {
            crate::logout_notices::queue_for_session(&mut tx, &id.to_string()).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    pub async fn set_session_expiry(&self, id: Uuid, expires_at: i64) -> Result<(), Error> {
        let _cleared = self.sessions.clear_until_done();
        let done = sqlx::query("UPDATE sessions SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            Err(session_not_found(id))
        } else {
            Ok(())
        }
    }

    /// Deactivates every session of an identity except `keep`; returns how many were revoked.
    pub async fn revoke_identity_sessions(
        &self,
        identity: Uuid,
        keep: Option<Uuid>,
    ) -> Result<u64, Error> {
        let _cleared = self.sessions.clear_until_done();
        let keep = keep.map(|k| k.to_string());
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        crate::logout_notices::queue_for_identity(&mut tx, &identity.to_string(), keep.as_deref())
            .await?;
        let done = sqlx::query(
            "UPDATE sessions SET active = 0 WHERE identity_id = $1 AND active = 1 AND id <> $2",
        )
        .bind(identity.to_string())
        .bind(keep.unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
