//! Pushed authorization requests (RFC 9126): stored by the hash of their `request_uri`, taken
//! once with `DELETE … RETURNING` so two instances racing on one request_uri cannot both use it.

use crate::{Store, db_err, retry_busy};
use serde_json::Value;
use sqlx::Row;
use tessera_core::Error;

/// A pushed request taken from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct PushedRow {
    pub client_id: String,
    pub params: Value,
    pub expires_at: i64,
}

impl Store {
    /// Stores a pushed request; expired ones (never used) are deleted on the way.
    pub async fn op_insert_par(
        &self,
        uri_hash: &str,
        client_id: &str,
        params: &Value,
        now: i64,
        expires_at: i64,
    ) -> Result<(), Error> {
        sqlx::query("DELETE FROM op_par_requests WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        sqlx::query("INSERT INTO op_par_requests (uri_hash, client_id, params, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(uri_hash)
            .bind(client_id)
            .bind(params.to_string())
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Takes a pushed request: it is gone afterwards, whoever asked first.
    pub async fn op_take_par(&self, uri_hash: &str) -> Result<Option<PushedRow>, Error> {
        let row = retry_busy(|| {
            sqlx::query("DELETE FROM op_par_requests WHERE uri_hash = $1 RETURNING client_id, params, expires_at")
                .bind(uri_hash)
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let params: String = row.try_get("params").map_err(db_err)?;
        Ok(Some(PushedRow {
            client_id: row.try_get("client_id").map_err(db_err)?,
            params: serde_json::from_str(&params)
                .map_err(|e| Error::internal(format!("corrupt pushed request: {e}")))?,
            expires_at: row.try_get("expires_at").map_err(db_err)?,
        }))
    }
}
