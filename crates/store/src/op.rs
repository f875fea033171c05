//! Storage for the OpenID Provider: signing keys, apps (clients), who may use them, consents,
//! pending authorization requests, authorization codes and tokens. Codes and tokens are stored
//! only as hashes; single use is enforced by conditional updates, so two instances racing on the
//! same code or refresh token cannot both win.

use crate::{Store, db_err};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use tessera_core::Error;
use uuid::Uuid;

/// A signing key as stored: the private half sealed with `secrets.cipher`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub private_sealed: String,
    pub public_jwk: Value,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// An app's registration (metadata JSON, owned by the provider crate).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRow {
    pub client_id: String,
    pub metadata: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An authorization code or a token, with the provider's data about it.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRow {
    pub hash: String,
    /// `code`, `access` or `refresh`.
    pub kind: String,
    pub grant_id: String,
    pub client_id: String,
    pub identity_id: Option<Uuid>,
    pub data: Value,
    pub used: bool,
    pub revoked: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

fn json_of(row: &AnyRow, col: &str) -> Result<Value, Error> {
    let s: String = row.try_get(col).map_err(db_err)?;
    serde_json::from_str(&s).map_err(|e| Error::internal(format!("corrupt {col}: {e}")))
}

fn key_from_row(row: &AnyRow) -> Result<KeyRow, Error> {
    Ok(KeyRow {
        kid: row.try_get("kid").map_err(db_err)?,
        alg: row.try_get("alg").map_err(db_err)?,
        private_sealed: row.try_get("private_sealed").map_err(db_err)?,
        public_jwk: json_of(row, "public_jwk")?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        retired_at: row.try_get("retired_at").map_err(db_err)?,
    })
}

fn client_from_row(row: &AnyRow) -> Result<ClientRow, Error> {
    Ok(ClientRow {
        client_id: row.try_get("client_id").map_err(db_err)?,
        metadata: json_of(row, "metadata")?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
    })
}

fn uuid_opt(s: Option<String>) -> Option<Uuid> {
    s.and_then(|s| Uuid::parse_str(&s).ok())
}

fn code_from_row(row: &AnyRow) -> Result<GrantRow, Error> {
    Ok(GrantRow {
        hash: row.try_get("code_hash").map_err(db_err)?,
        kind: "code".into(),
        grant_id: row.try_get("grant_id").map_err(db_err)?,
        client_id: row.try_get("client_id").map_err(db_err)?,
        identity_id: uuid_opt(row.try_get("identity_id").map_err(db_err)?),
        data: json_of(row, "data")?,
        used: row.try_get::<i64, _>("used").map_err(db_err)? != 0,
        revoked: false,
        created_at: row.try_get("created_at").map_err(db_err)?,
        expires_at: row.try_get("expires_at").map_err(db_err)?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<GrantRow, Error> {
    Ok(GrantRow {
        hash: row.try_get("token_hash").map_err(db_err)?,
        kind: row.try_get("kind").map_err(db_err)?,
        grant_id: row.try_get("grant_id").map_err(db_err)?,
        client_id: row.try_get("client_id").map_err(db_err)?,
        identity_id: uuid_opt(row.try_get("identity_id").map_err(db_err)?),
        data: json_of(row, "data")?,
        used: row.try_get::<i64, _>("used").map_err(db_err)? != 0,
        revoked: row.try_get::<i64, _>("revoked").map_err(db_err)? != 0,
        created_at: row.try_get("created_at").map_err(db_err)?,
        expires_at: row.try_get("expires_at").map_err(db_err)?,
    })
}

const TOKEN_COLS: &str = "token_hash, kind, grant_id, client_id, identity_id, data, used, revoked, created_at, expires_at";
const CODE_COLS: &str =
    "code_hash, grant_id, client_id, identity_id, data, used, created_at, expires_at";

/// Keys.
impl Store {
    pub async fn op_keys(&self) -> Result<Vec<KeyRow>, Error> {
        let rows = sqlx::query("SELECT kid, alg, private_sealed, public_jwk, created_at, retired_at FROM op_keys ORDER BY created_at DESC, kid")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    /// Adds a signing key and retires every other key at `now`, in one transaction. With
    /// `only_if_none`, does nothing when a signing key exists already (first start of several
    /// instances at once); returns whether the key was added.
    pub async fn op_add_key(&self, key: &KeyRow, only_if_none: bool) -> Result<bool, Error> {
        // The transaction reads before it writes, so on SQLite a concurrent writer (the first
        // token exchange creates the first key while another request revokes a grant) makes it
        // answer "busy" at once, without its busy timeout; nothing was written, so it runs again.
        crate::retry_busy(|| self.op_add_key_tx(key, only_if_none))
            .await
            .map_err(db_err)
    }

    async fn op_add_key_tx(&self, key: &KeyRow, only_if_none: bool) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if only_if_none {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM op_keys WHERE retired_at IS NULL")
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            if n > 0 {
                return Ok(false);
            }
        }
        sqlx::query("UPDATE op_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO op_keys (kid, alg, private_sealed, public_jwk, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, NULL)")
            .bind(&key.kid)
            .bind(&key.alg)
            .bind(&key.private_sealed)
            .bind(key.public_jwk.to_string())
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes keys retired before `cutoff` (no token they signed can still be valid).
    pub async fn op_drop_keys_retired_before(&self, cutoff: i64) -> Result<u64, Error> {
        let done =
            sqlx::query("DELETE FROM op_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
                .bind(cutoff)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    /// A value generated once and shared by all instances: inserts `value` unless `name` has
    /// one already, then returns the stored value.
    pub async fn op_meta_get_or_insert(&self, name: &str, value: &str) -> Result<String, Error> {
        crate::retry_busy(|| {
            sqlx::query(
                "INSERT INTO op_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .execute(&self.pool)
        })
        .await
        .map_err(db_err)?;
        sqlx::query("SELECT value FROM op_meta WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?
            .try_get("value")
            .map_err(db_err)
    }
}

/// Clients and who may use them.
impl Store {
    pub async fn op_insert_client(&self, c: &ClientRow) -> Result<(), Error> {
        sqlx::query("INSERT INTO op_clients (client_id, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(&c.client_id)
            .bind(c.metadata.to_string())
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(&self.pool)
            .await
            .map_err(|e| match db_err(e) {
                e if e.kind == tessera_core::ErrorKind::Conflict => Error::conflict(format!(
                    "An app with client_id `{}` exists already.",
                    c.client_id
                )),
                e => e,
            })?;
        Ok(())
    }

    pub async fn op_update_client(&self, c: &ClientRow) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE op_clients SET metadata = $1, updated_at = $2 WHERE client_id = $3",
        )
        .bind(c.metadata.to_string())
        .bind(c.updated_at)
        .bind(&c.client_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn op_get_client(&self, client_id: &str) -> Result<Option<ClientRow>, Error> {
        let row = sqlx::query(
            "SELECT client_id, metadata, created_at, updated_at FROM op_clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(client_from_row).transpose()
    }

    pub async fn op_list_clients(&self) -> Result<Vec<ClientRow>, Error> {
        let rows = sqlx::query(
            "SELECT client_id, metadata, created_at, updated_at FROM op_clients ORDER BY created_at, client_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(client_from_row).collect()
    }

    /// Deletes an app with everything issued to it (cascade).
    pub async fn op_delete_client(&self, client_id: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM op_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// The scopes an identity consented to for an app (space-separated), if any.
    pub async fn op_consent(
        &self,
        client_id: &str,
        identity: Uuid,
    ) -> Result<Option<String>, Error> {
        let row =
            sqlx::query("SELECT scope FROM op_consents WHERE client_id = $1 AND identity_id = $2")
                .bind(client_id)
                .bind(identity.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.map(|r| r.try_get("scope").map_err(db_err)).transpose()
    }

    pub async fn op_save_consent(
        &self,
        client_id: &str,
        identity: Uuid,
        scope: &str,
        now: i64,
    ) -> Result<(), Error> {
        sqlx::query("INSERT INTO op_consents (client_id, identity_id, scope, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (client_id, identity_id) DO UPDATE SET scope = excluded.scope, created_at = excluded.created_at")
            .bind(client_id)
            .bind(identity.to_string())
            .bind(scope)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// Pending authorization requests.
impl Store {
    pub async fn op_insert_request(
        &self,
        id: Uuid,
        client_id: &str,
        params: &Value,
        now: i64,
        expires_at: i64,
    ) -> Result<(), Error> {
        sqlx::query("INSERT INTO op_requests (id, client_id, params, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id.to_string())
            .bind(client_id)
            .bind(params.to_string())
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// A pending request: (client_id, params, created_at, expires_at).
    pub async fn op_get_request(
        &self,
        id: Uuid,
    ) -> Result<Option<(String, Value, i64, i64)>, Error> {
        let row = sqlx::query(
            "SELECT client_id, params, created_at, expires_at FROM op_requests WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((
            row.try_get("client_id").map_err(db_err)?,
            json_of(&row, "params")?,
            row.try_get("created_at").map_err(db_err)?,
            row.try_get("expires_at").map_err(db_err)?,
        )))
    }

    /// Removes a request once answered; true when this call removed it (single use).
    pub async fn op_delete_request(&self, id: Uuid) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM op_requests WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}

/// Codes and tokens.
impl Store {
    pub async fn op_insert_code(&self, c: &GrantRow) -> Result<(), Error> {
        sqlx::query(&format!(
            "INSERT INTO op_codes ({CODE_COLS}) VALUES ($1, $2, $3, $4, $5, 0, $6, $7)"
        ))
        .bind(&c.hash)
        .bind(&c.grant_id)
        .bind(&c.client_id)
        .bind(c.identity_id.map(|i| i.to_string()).unwrap_or_default())
        .bind(c.data.to_string())
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Redeems a code once: `Fresh` when this call redeemed it, `Replayed` when it was redeemed
    /// before, `Unknown` when there is no such code.
    pub async fn op_take_code(&self, hash: &str) -> Result<Taken<GrantRow>, Error> {
        let sql = format!(
            "UPDATE op_codes SET used = 1 WHERE code_hash = $1 AND used = 0 RETURNING {CODE_COLS}"
        );
        let row = crate::retry_busy(|| sqlx::query(&sql).bind(hash).fetch_optional(&self.pool))
            .await
            .map_err(db_err)?;
        if let Some(row) = row {
            return Ok(Taken::Fresh(code_from_row(&row)?));
        }
        let row = sqlx::query(&format!(
            "SELECT {CODE_COLS} FROM op_codes WHERE code_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(match row {
            Some(row) => Taken::Replayed(code_from_row(&row)?),
            None => Taken::Unknown,
        })
    }

    /// Stores tokens issued together, in one transaction. Returns false (and the tokens are
    /// revoked) when their grant was revoked meanwhile, by a request that saw the code or
    /// refresh token reused: checked *after* the insert, so whichever order the two requests
    /// run in, no token of a revoked grant stays live.
    pub async fn op_insert_tokens(&self, tokens: &[GrantRow]) -> Result<bool, Error> {
        let sql = format!(
            "INSERT INTO op_tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, $8)"
        );
        if let [t] = tokens {
            crate::retry_busy(|| self.op_insert_token_on(&sql, t, &self.pool))
                .await
                .map_err(db_err)?;
        } else {
            // Nothing is written when SQLite answers busy, so the transaction runs again.
            crate::retry_busy(|| self.op_insert_tokens_tx(&sql, tokens))
                .await
                .map_err(db_err)?;
        }
        let mut grants: Vec<&str> = tokens.iter().map(|t| t.grant_id.as_str()).collect();
        grants.dedup();
        for g in grants {
            let revoked = sqlx::query("SELECT 1 AS one FROM op_revoked_grants WHERE grant_id = $1")
                .bind(g)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?
                .is_some();
            if revoked {
                self.op_revoke_grant(g).await?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn op_insert_tokens_tx(&self, sql: &str, tokens: &[GrantRow]) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for t in tokens {
            self.op_insert_token_on(sql, t, &mut *tx).await?;
        }
        tx.commit().await
    }

    async fn op_insert_token_on<'e, E>(
        &self,
        sql: &str,
        t: &GrantRow,
        on: E,
    ) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        sqlx::query(sql)
            .bind(&t.hash)
            .bind(&t.kind)
            .bind(&t.grant_id)
            .bind(&t.client_id)
            .bind(t.identity_id.map(|i| i.to_string()))
            .bind(t.data.to_string())
            .bind(t.created_at)
            .bind(t.expires_at)
            .execute(on)
            .await?;
        Ok(())
    }

    pub async fn op_get_token(&self, hash: &str) -> Result<Option<GrantRow>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM op_tokens WHERE token_hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Uses a refresh token once (rotation). `Replayed` is a refresh token that was used or
    /// revoked already (its row says which); any other token is `Unknown`.
    pub async fn op_take_refresh(&self, hash: &str) -> Result<Taken<GrantRow>, Error> {
        let sql = format!(
            "UPDATE op_tokens SET used = 1 WHERE token_hash = $1 AND kind = 'refresh' AND used = 0 AND revoked = 0 RETURNING {TOKEN_COLS}"
        );
        let row = crate::retry_busy(|| sqlx::query(&sql).bind(hash).fetch_optional(&self.pool))
            .await
            .map_err(db_err)?;
        if let Some(row) = row {
            return Ok(Taken::Fresh(token_from_row(&row)?));
        }
        Ok(match self.op_get_token(hash).await? {
            Some(row) if row.kind == "refresh" => Taken::Replayed(row),
            Some(_) | None => Taken::Unknown,
        })
    }

    /// Revokes every token of a grant, now and any issued for it later (see
    /// [`Store::op_insert_tokens`]); returns how many were live.
    pub async fn op_revoke_grant(&self, grant_id: &str) -> Result<u64, Error> {
        let now = tessera_core::timefmt::now_ms();
        crate::retry_busy(|| {
            sqlx::query(
                "INSERT INTO op_revoked_grants (grant_id, revoked_at) VALUES ($1, $2) ON CONFLICT (grant_id) DO NOTHING",
            )
            .bind(grant_id)
            .bind(now)
            .execute(&self.pool)
        })
        .await
        .map_err(db_err)?;
        let done = crate::retry_busy(|| {
            sqlx::query("UPDATE op_tokens SET revoked = 1 WHERE grant_id = $1 AND revoked = 0")
                .bind(grant_id)
                .execute(&self.pool)
        })
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    pub async fn op_revoke_token(&self, hash: &str) -> Result<u64, Error> {
        let done = sqlx::query("UPDATE op_tokens SET revoked = 1 WHERE token_hash = $1")
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    /// Housekeeping: drops expired requests, codes and tokens (before `cutoff`).
    pub async fn op_delete_stale(&self, cutoff: i64) -> Result<u64, Error> {
        let mut total = 0;
        for sql in [
            "DELETE FROM op_requests WHERE expires_at < $1",
            "DELETE FROM op_codes WHERE expires_at < $1",
            "DELETE FROM op_tokens WHERE expires_at < $1",
            // Racing requests finish in well under this; the tokens of the grant are revoked.
            "DELETE FROM op_revoked_grants WHERE revoked_at < $1",
            // Links of sessions that expired (ended ones are removed when they end), and
            // notices whose fate is settled.
            "DELETE FROM op_session_apps WHERE session_id IN (SELECT id FROM sessions WHERE expires_at < $1)",
            "DELETE FROM op_logout_notices WHERE state <> 'pending' AND updated_at < $1",
            "DELETE FROM op_device_grants WHERE expires_at < $1",
        ] {
            total += sqlx::query(sql)
                .bind(cutoff)
                .execute(&self.pool)
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        Ok(total)
    }
}

/// Per-app subjects issued for good (see the `op_subjects` migration).
impl Store {
    /// The subject `identity_id` holds at `client_id`: the one bound earlier, or `subject`,
    /// bound now, or [`Bound::Taken`] when another identity holds `subject` there.
    pub async fn op_bind_subject(
        &self,
        client_id: &str,
        identity_id: Uuid,
        subject: &str,
        now: i64,
    ) -> Result<Bound, Error> {
        if let Some(held) = self.op_bound_subject(client_id, identity_id).await? {
            return Ok(Bound::Held(held));
        }
        let id = identity_id.to_string();
        let inserted = crate::retry_busy(|| {
            sqlx::query(
                "INSERT INTO op_subjects (client_id, identity_id, subject, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(client_id)
            .bind(&id)
            .bind(subject)
            .bind(now)
            .execute(&self.pool)
        })
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 1 {
            return Ok(Bound::Held(subject.to_string()));
        }
        // A concurrent request of the same identity may have won; otherwise the subject is
        // another identity's.
        match self.op_bound_subject(client_id, identity_id).await? {
            Some(held) => Ok(Bound::Held(held)),
            None => Ok(Bound::Taken),
        }
    }

    async fn op_bound_subject(
        &self,
        client_id: &str,
        identity_id: Uuid,
    ) -> Result<Option<String>, Error> {
        let row = sqlx::query(
            "SELECT subject FROM op_subjects WHERE client_id = $1 AND identity_id = $2",
        )
        .bind(client_id)
        .bind(identity_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| r.try_get::<String, _>("subject"))
            .transpose()
            .map_err(db_err)
    }

    /// Releases a subject at an app (an administrator's decision: the next identity it
    /// resolves for gets it). Returns whether one was bound.
    pub async fn op_release_subject(&self, client_id: &str, subject: &str) -> Result<bool, Error> {
        let done = sqlx::query("DELETE FROM op_subjects WHERE client_id = $1 AND subject = $2")
            .bind(client_id)
            .bind(subject)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}

/// What a single-use take ([`Store::op_take_code`], [`Store::op_take_refresh`]) found.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken<T> {
    /// Taken now, by this caller and no other.
    Fresh(T),
    /// It exists but was taken before (or revoked): a replay, whose row tells what to revoke.
    Replayed(T),
    /// No such code or token.
    Unknown,
}

/// What [`Store::op_bind_subject`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// The identity's subject at the app (bound earlier, or just now).
    Held(String),
    /// Another identity holds this subject at the app.
    Taken,
}
