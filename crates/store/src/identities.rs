//! Identity persistence. An identity, its credentials (with their identifiers) and its addresses
//! are always written together in one transaction.

use crate::{Page, Store, db_err, placeholders};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::collections::{BTreeMap, HashMap};
use tessera_core::identity::{
    Credential, Identity, IdentityState, RecoveryAddress, VerifiableAddress,
};
use tessera_core::{Error, timefmt};
use uuid::Uuid;

const PAGE_TOKEN_PREFIX: &str = "tessera/v1/identities/";

fn json_col(row: &AnyRow, col: &str) -> Value {
    row.try_get::<Option<String>, _>(col)
        .ok()
        .flatten()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

fn uuid_col(row: &AnyRow, col: &str) -> Result<Uuid, Error> {
    let s: String = row.try_get(col).map_err(db_err)?;
    Uuid::parse_str(&s).map_err(|_| Error::internal(format!("corrupt id `{s}` in column {col}")))
}

fn opt_json(v: &Value) -> Option<String> {
    if v.is_null() {
        None
    } else {
        Some(v.to_string())
    }
}

/// Encodes the keyset position so clients treat it as opaque.
pub fn encode_page_token(prefix: &str, last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{prefix}{last}"))
}

/// Decodes a page token minted by `encode_page_token` with the same prefix; anything else is the
/// client's mistake, reported as such.
pub fn decode_page_token(prefix: &str, token: &str) -> Result<String, Error> {
    let bad = || {
        Error::bad_request(format!(
            "The page_token `{token}` is invalid: use the page_token from the Link header of the previous response, unmodified."
        ))
        .with_id(tessera_core::error::ErrorId::InvalidPageToken)
    };
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    text.strip_prefix(prefix).map(String::from).ok_or_else(bad)
}

impl Store {
    pub async fn insert_identity(&self, identity: &Identity) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO identities (id, schema_id, state, state_changed_at, traits, metadata_public, metadata_admin, created_at, updated_at, external_id, organization_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(identity.id.to_string())
        .bind(&identity.schema_id)
        .bind(identity.state.as_str())
        .bind(identity.state_changed_at)
        .bind(identity.traits.to_string())
        .bind(opt_json(&identity.metadata_public))
        .bind(opt_json(&identity.metadata_admin))
        .bind(identity.created_at)
        .bind(identity.updated_at)
        .bind(identity.external_id.as_deref())
        .bind(identity.organization_id.map(|o| o.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // The organization an identity is created in is one it belongs to: access rules and
        // claims read memberships, so the identity is a member from its first transaction.
        if let Some(org) = identity.organization_id {
            sqlx::query("INSERT INTO organization_members (organization_id, identity_id, source, rule_id, created_at) VALUES ($1, $2, 'manual', NULL, $3)")
                .bind(org.to_string())
                .bind(identity.id.to_string())
                .bind(identity.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        write_children(&mut tx, identity).await?;
        tx.commit().await.map_err(db_err)
    }

    /// Replaces an identity's fields, credentials and addresses, only if nobody wrote the
    /// identity since it was read with `updated_at == read_at` (an optimistic check, issue
    /// 21): a request that read, changed and writes back a whole identity must not undo what
    /// a racing request wrote in between (a settings profile change putting back the password
    /// hash a concurrent password change replaced). It is the only way to update an identity,
    /// so no write can skip the check. The write moves `updated_at` past `read_at` even when
    /// the caller left it, so every write is seen by the next. `Ok(false)`: written by someone
    /// else meanwhile (or deleted); nothing was written.
    pub async fn update_identity_if_unchanged(
        &self,
        identity: &Identity,
        read_at: i64,
    ) -> Result<bool, Error> {
        self.write_identity(identity, read_at).await
    }

    async fn write_identity(&self, identity: &Identity, read_at: i64) -> Result<bool, Error> {
        let _cleared = self.sessions.clear_until_done();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let sql = "UPDATE identities SET schema_id = $1, state = $2, state_changed_at = $3, traits = $4, metadata_public = $5, metadata_admin = $6, updated_at = $7, external_id = $9 WHERE id = $8 AND updated_at = $10";
        let updated_at = identity.updated_at.max(read_at + 1);
        let done = sqlx::query(sql)
            .bind(&identity.schema_id)
            .bind(identity.state.as_str())
            .bind(identity.state_changed_at)
            .bind(identity.traits.to_string())
            .bind(opt_json(&identity.metadata_public))
            .bind(opt_json(&identity.metadata_admin))
            .bind(updated_at)
            .bind(identity.id.to_string())
            .bind(identity.external_id.as_deref())
            .bind(read_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let id = identity.id.to_string();
        for table in [
            "identity_credentials",
            "identity_verifiable_addresses",
            "identity_recovery_addresses",
            "identity_credential_identifiers",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE identity_id = $1"))
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        write_children(&mut tx, identity).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    pub async fn delete_identity(&self, id: Uuid) -> Result<(), Error> {
        let _cleared = self.sessions.clear_until_done();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let sid = id.to_string();
        // The apps its sessions signed in to hear that they ended.
        crate::logout_notices::queue_for_identity(&mut tx, &sid, None).await?;
        // Explicit child deletes keep this correct even where foreign keys are off.
        for table in [
            "sessions",
            "identity_credential_identifiers",
            "identity_credentials",
            "identity_verifiable_addresses",
            "identity_recovery_addresses",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE identity_id = $1"))
                .bind(&sid)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let done = sqlx::query("DELETE FROM identities WHERE id = $1")
            .bind(&sid)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(identity_not_found(id));
        }
        tx.commit().await.map_err(db_err)
    }

    /// Loads one identity with its addresses and credentials (callers redact configs).
    pub async fn get_identity(&self, id: Uuid) -> Result<Identity, Error> {
        let row = sqlx::query("SELECT * FROM identities WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or_else(|| identity_not_found(id))?;
        let mut list = vec![identity_from_row(&row)?];
        self.load_children(&mut list, true).await?;
        list.pop().ok_or_else(|| identity_not_found(id))
    }

    /// Identity owning a credential identifier of the given type (identifiers are stored
    /// normalised, so the caller passes a normalised value).
    pub async fn find_identity_by_identifier(
        &self,
        kind: &str,
        identifier: &str,
    ) -> Result<Option<Identity>, Error> {
        let row = sqlx::query("SELECT identity_id FROM identity_credential_identifiers WHERE type = $1 AND identifier = $2")
            .bind(kind)
            .bind(identifier)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row {
            Some(r) => Ok(Some(self.get_identity(uuid_col(&r, "identity_id")?).await?)),
            None => Ok(None),
        }
    }

    /// The identity whose `external_id` is `external_id`, with its credentials.
    pub async fn find_identity_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Option<Identity>, Error> {
        let row = sqlx::query("SELECT id FROM identities WHERE external_id = $1")
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row {
            Some(r) => Ok(Some(self.get_identity(uuid_col(&r, "id")?).await?)),
            None => Ok(None),
        }
    }

    /// Whether the start-up data fix `name` (a row of `startup_backfills`, inserted by the
    /// migration that needs it) has yet to run.
    pub async fn backfill_pending(&self, name: &str) -> Result<bool, Error> {
        let row = sqlx::query("SELECT done_at FROM startup_backfills WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(match row {
            Some(r) => r
                .try_get::<Option<i64>, _>("done_at")
                .map_err(db_err)?
                .is_none(),
            None => false,
        })
    }

    /// Records the start-up data fix `name` as done, so it never runs again.
    pub async fn finish_backfill(&self, name: &str) -> Result<(), Error> {
        sqlx::query("UPDATE startup_backfills SET done_at = $1 WHERE name = $2")
            .bind(timefmt::now_ms())
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Adds identifiers to an identity's credential of type `kind`, creating the credential
    /// (config `{}`) when it has none. An identifier another identity already holds is skipped,
    /// not an error (the back-fill must finish even where old data collides); the ones added
    /// are returned. Runs in one transaction, and a credential left without any identifier is
    /// not created.
    pub async fn add_credential_identifiers(
        &self,
        identity_id: Uuid,
        kind: &str,
        identifiers: &[String],
    ) -> Result<Vec<String>, Error> {
        self.sessions.clear();
        let id = identity_id.to_string();
        let now = timefmt::now_ms();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let existing =
            sqlx::query("SELECT id FROM identity_credentials WHERE identity_id = $1 AND type = $2")
                .bind(&id)
                .bind(kind)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let (cid, created) = match existing {
            Some(r) => (r.try_get::<String, _>("id").map_err(db_err)?, false),
            None => {
                let cid = Uuid::new_v4().to_string();
                sqlx::query("INSERT INTO identity_credentials (id, identity_id, type, config, version, created_at, updated_at) VALUES ($1, $2, $3, '{}', 0, $4, $5)")
                    .bind(&cid)
                    .bind(&id)
                    .bind(kind)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                (cid, true)
            }
        };
        let mut added = Vec::new();
        for ident in identifiers {
            // ON CONFLICT DO NOTHING (SQLite and PostgreSQL alike): a taken identifier leaves
            // the transaction usable, where a failed insert would abort it on PostgreSQL.
            let done = sqlx::query("INSERT INTO identity_credential_identifiers (id, credential_id, identity_id, type, identifier, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
                .bind(Uuid::new_v4().to_string())
                .bind(&cid)
                .bind(&id)
                .bind(kind)
                .bind(ident)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            if done.rows_affected() > 0 {
                added.push(ident.clone());
            }
        }
        if added.is_empty() && created {
            // Nothing to hold: roll back the empty credential.
            return Ok(added);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(added)
    }

    /// Lists identities ordered by id, `page_size` at a time, optionally only the one owning an
    /// identifier (any credential type).
    pub async fn list_identities(
        &self,
        page_size: usize,
        page_token: Option<&str>,
        identifier: Option<&str>,
    ) -> Result<Page<Identity>, Error> {
        let after = match page_token {
            Some(t) => decode_page_token(PAGE_TOKEN_PREFIX, t)?,
            None => String::new(),
        };
        let limit = page_size as i64 + 1;
        let rows = match identifier {
            Some(ident) => sqlx::query(
                "SELECT i.* FROM identities i WHERE i.id > $1 AND i.id IN (SELECT identity_id FROM identity_credential_identifiers WHERE identifier = $2) ORDER BY i.id LIMIT $3",
            )
            .bind(&after)
            .bind(ident)
            .bind(limit)
            .fetch_all(&self.pool)
            .await,
            None => sqlx::query("SELECT * FROM identities WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(&after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await,
        }
        .map_err(db_err)?;
        let mut items = rows
            .iter()
            .map(identity_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > page_size {
            items.truncate(page_size);
            items
                .last()
                .map(|i| encode_page_token(PAGE_TOKEN_PREFIX, &i.id.to_string()))
        } else {
            None
        };
        self.load_children(&mut items, true).await?;
        Ok(Page { items, next })
    }

    pub async fn count_identities(&self) -> Result<i64, Error> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM identities")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        row.try_get::<i64, _>("n").map_err(db_err)
    }

    /// Fills addresses (and credentials when asked) for a batch of identities with one query per
    /// table, not one per identity.
    pub(crate) async fn load_children(
        &self,
        list: &mut [Identity],
        with_credentials: bool,
    ) -> Result<(), Error> {
        if list.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = list.iter().map(|i| i.id.to_string()).collect();
        let index: HashMap<Uuid, usize> = list.iter().enumerate().map(|(n, i)| (i.id, n)).collect();
        let ph = placeholders(1, ids.len());

        let fetch = |sql: String| {
            let ids = ids.clone();
            let pool = self.pool.clone();
            async move {
                let mut q = sqlx::query(&sql);
                for id in &ids {
                    q = q.bind(id.clone());
                }
                q.fetch_all(&pool).await.map_err(db_err)
            }
        };

        for row in fetch(format!("SELECT * FROM identity_verifiable_addresses WHERE identity_id IN ({ph}) ORDER BY created_at, value")).await? {
            let owner = uuid_col(&row, "identity_id")?;
            if let Some(&n) = index.get(&owner) {
                list[n].verifiable_addresses.push(VerifiableAddress {
                    id: uuid_col(&row, "id")?,
                    value: row.try_get("value").map_err(db_err)?,
                    verified: row.try_get::<i64, _>("verified").map_err(db_err)? != 0,
                    via: row.try_get("via").map_err(db_err)?,
                    status: row.try_get("status").map_err(db_err)?,
                    verified_at: row.try_get("verified_at").map_err(db_err)?,
                    created_at: row.try_get("created_at").map_err(db_err)?,
                    updated_at: row.try_get("updated_at").map_err(db_err)?,
                });
            }
        }
        for row in fetch(format!("SELECT * FROM identity_recovery_addresses WHERE identity_id IN ({ph}) ORDER BY created_at, value")).await? {
            let owner = uuid_col(&row, "identity_id")?;
            if let Some(&n) = index.get(&owner) {
                list[n].recovery_addresses.push(RecoveryAddress {
                    id: uuid_col(&row, "id")?,
                    value: row.try_get("value").map_err(db_err)?,
                    via: row.try_get("via").map_err(db_err)?,
                    created_at: row.try_get("created_at").map_err(db_err)?,
                    updated_at: row.try_get("updated_at").map_err(db_err)?,
                });
            }
        }
        if !with_credentials {
            return Ok(());
        }
        let mut cred_ids: HashMap<String, (usize, String)> = HashMap::new();
        for row in fetch(format!(
            "SELECT * FROM identity_credentials WHERE identity_id IN ({ph})"
        ))
        .await?
        {
            let owner = uuid_col(&row, "identity_id")?;
            let Some(&n) = index.get(&owner) else {
                continue;
            };
            let kind: String = row.try_get("type").map_err(db_err)?;
            let cred = Credential {
                kind: kind.clone(),
                identifiers: vec![],
                config: json_col(&row, "config"),
                version: row.try_get("version").map_err(db_err)?,
                created_at: row.try_get("created_at").map_err(db_err)?,
                updated_at: row.try_get("updated_at").map_err(db_err)?,
            };
            cred_ids.insert(row.try_get("id").map_err(db_err)?, (n, kind.clone()));
            list[n]
                .credentials
                .get_or_insert_with(BTreeMap::new)
                .insert(kind, cred);
        }
        for row in fetch(format!("SELECT * FROM identity_credential_identifiers WHERE identity_id IN ({ph}) ORDER BY identifier")).await? {
            let cid: String = row.try_get("credential_id").map_err(db_err)?;
            if let Some((n, kind)) = cred_ids.get(&cid)
                && let Some(c) = list[*n].credentials.as_mut().and_then(|m| m.get_mut(kind))
            {
                c.identifiers.push(row.try_get("identifier").map_err(db_err)?);
            }
        }
        Ok(())
    }
}

pub(crate) fn identity_not_found(id: Uuid) -> Error {
    Error::not_found(format!("Identity `{id}` does not exist."))
}

pub(crate) fn identity_from_row(row: &AnyRow) -> Result<Identity, Error> {
    let state: String = row.try_get("state").map_err(db_err)?;
    Ok(Identity {
        id: uuid_col(row, "id")?,
        external_id: row
            .try_get::<Option<String>, _>("external_id")
            .map_err(db_err)?,
        schema_id: row.try_get("schema_id").map_err(db_err)?,
        schema_url: String::new(),
        state: IdentityState::parse(&state).unwrap_or(IdentityState::Inactive),
        state_changed_at: row.try_get("state_changed_at").map_err(db_err)?,
        traits: json_col(row, "traits"),
        verifiable_addresses: vec![],
        recovery_addresses: vec![],
        metadata_public: json_col(row, "metadata_public"),
        metadata_admin: json_col(row, "metadata_admin"),
        credentials: None,
        created_at: row.try_get("created_at").map_err(db_err)?,
        updated_at: row.try_get("updated_at").map_err(db_err)?,
        organization_id: row
            .try_get::<Option<String>, _>("organization_id")
            .map_err(db_err)?
            .and_then(|o| Uuid::parse_str(&o).ok()),
    })
}

async fn write_children(
    tx: &mut Transaction<'static, Any>,
    identity: &Identity,
) -> Result<(), Error> {
    let id = identity.id.to_string();
    let now = timefmt::now_ms();
    if let Some(creds) = &identity.credentials {
        for (kind, cred) in creds {
            let cid = Uuid::new_v4().to_string();
            sqlx::query("INSERT INTO identity_credentials (id, identity_id, type, config, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&cid)
                .bind(&id)
                .bind(kind)
                .bind(if cred.config.is_null() { "{}".to_string() } else { cred.config.to_string() })
                .bind(cred.version)
                .bind(cred.created_at)
                .bind(cred.updated_at)
                .execute(&mut **tx)
                .await
                .map_err(db_err)?;
            for ident in &cred.identifiers {
                sqlx::query("INSERT INTO identity_credential_identifiers (id, credential_id, identity_id, type, identifier, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(Uuid::new_v4().to_string())
                    .bind(&cid)
                    .bind(&id)
                    .bind(kind)
                    .bind(ident)
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map_err(db_err)?;
            }
        }
    }
    for a in &identity.verifiable_addresses {
        sqlx::query("INSERT INTO identity_verifiable_addresses (id, identity_id, via, value, verified, status, verified_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(a.id.to_string())
            .bind(&id)
            .bind(&a.via)
            .bind(&a.value)
            .bind(i64::from(a.verified))
            .bind(&a.status)
            .bind(a.verified_at)
            .bind(a.created_at)
            .bind(a.updated_at)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    for a in &identity.recovery_addresses {
        sqlx::query("INSERT INTO identity_recovery_addresses (id, identity_id, via, value, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(a.id.to_string())
            .bind(&id)
            .bind(&a.via)
            .bind(&a.value)
            .bind(a.created_at)
            .bind(a.updated_at)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}
