//! Device authorization grants (RFC 8628): a TV or a CLI shows a short user code, the user
//! approves it in a browser, and the device polls the token endpoint until then. Every change
//! of state is a conditional `UPDATE`, so a grant is approved or denied once and redeemed once,
//! whatever instance serves each request.

use crate::{Store, db_err};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use tessera_core::Error;

/// A device grant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceGrantRow {
    pub device_hash: String,
    pub user_code_hash: String,
    pub client_id: String,
    /// What the device asked for (`scope`, `resource`).
    pub params: Value,
    /// `pending`, `approved`, `denied` or `used`.
    pub status: String,
    pub code_hash: Option<String>,
    pub interval_secs: i64,
    pub last_poll_at: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

const COLS: &str = "device_hash, user_code_hash, client_id, params, status, code_hash, interval_secs, last_poll_at, created_at, expires_at";

fn from_row(row: &AnyRow) -> Result<DeviceGrantRow, Error> {
    let params: String = row.try_get("params").map_err(db_err)?;
    Ok(DeviceGrantRow {
        device_hash: row.try_get("device_hash").map_err(db_err)?,
        user_code_hash: row.try_get("user_code_hash").map_err(db_err)?,
        client_id: row.try_get("client_id").map_err(db_err)?,
        params: serde_json::from_str(&params)
            .map_err(|e| Error::internal(format!("corrupt device grant params: {e}")))?,
        status: row.try_get("status").map_err(db_err)?,
        code_hash: row.try_get("code_hash").map_err(db_err)?,
        interval_secs: row.try_get("interval_secs").map_err(db_err)?,
        last_poll_at: row.try_get("last_poll_at").map_err(db_err)?,
        created_at: row.try_get("created_at").map_err(db_err)?,
        expires_at: row.try_get("expires_at").map_err(db_err)?,
    })
}

impl Store {
    /// Stores a new grant. Fails with a conflict when the user code is taken (the caller draws
    /// another).
    pub async fn op_insert_device_grant(&self, g: &DeviceGrantRow) -> Result<(), Error> {
        sqlx::query(&format!(
            "INSERT INTO op_device_grants ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&g.device_hash)
        .bind(&g.user_code_hash)
        .bind(&g.client_id)
        .bind(g.params.to_string())
        .bind(&g.status)
        .bind(g.code_hash.as_deref())
        .bind(g.interval_secs)
        .bind(g.last_poll_at)
        .bind(g.created_at)
        .bind(g.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    pub async fn op_device_by_user_code(
        &self,
        user_code_hash: &str,
    ) -> Result<Option<DeviceGrantRow>, Error> {
        sqlx::query(&format!(
            "SELECT {COLS} FROM op_device_grants WHERE user_code_hash = $1"
        ))
        .bind(user_code_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    pub async fn op_device_by_device_code(
        &self,
        device_hash: &str,
    ) -> Result<Option<DeviceGrantRow>, Error> {
        sqlx::query(&format!(
            "SELECT {COLS} FROM op_device_grants WHERE device_hash = $1"
        ))
        .bind(device_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Records a poll at `now` if the device waited its interval since the last one; otherwise
    /// lengthens the interval by 5 s (RFC 8628 §3.5 `slow_down`) and returns false.
    pub async fn op_device_poll(&self, device_hash: &str, now: i64) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE op_device_grants SET last_poll_at = $1 WHERE device_hash = $2 AND last_poll_at + interval_secs * 1000 <= $1",
        )
        .bind(now)
        .bind(device_hash)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        sqlx::query(
            "UPDATE op_device_grants SET interval_secs = interval_secs + 5, last_poll_at = $1 WHERE device_hash = $2",
        )
        .bind(now)
        .bind(device_hash)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(false)
    }

    /// The user's decision, once: true when this call moved the pending, unexpired grant.
    pub async fn op_device_decide(
        &self,
        user_code_hash: &str,
        approved: bool,
        code_hash: Option<&str>,
        now: i64,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE op_device_grants SET status = $1, code_hash = $2 WHERE user_code_hash = $3 AND status = 'pending' AND expires_at > $4",
        )
        .bind(if approved { "approved" } else { "denied" })
        .bind(code_hash)
        .bind(user_code_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Redeems an approved grant once: its authorization code's hash, or `None` when it was
    /// redeemed already (or is not approved).
    pub async fn op_device_take(&self, device_hash: &str) -> Result<Option<String>, Error> {
        let done = sqlx::query(
            "UPDATE op_device_grants SET status = 'used' WHERE device_hash = $1 AND status = 'approved'",
        )
        .bind(device_hash)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(self
            .op_device_by_device_code(device_hash)
            .await?
            .and_then(|g| g.code_hash))
    }
}
