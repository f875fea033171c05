//! Lookups and writes of the verification and recovery flows: who owns an address, and
//! marking one verified.

use crate::{Store, db_err};
use sqlx::Row;
use tessera_core::Error;
use uuid::Uuid;

/// Which address list a lookup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Verifiable,
    Recovery,
}

impl Store {
    /// The identity holding `value` (as normalised) as an address of `kind` sent `via`.
    pub async fn address_owner(
        &self,
        kind: AddressKind,
        via: &str,
        value: &str,
    ) -> Result<Option<Uuid>, Error> {
        let table = match kind {
            AddressKind::Verifiable => "identity_verifiable_addresses",
            AddressKind::Recovery => "identity_recovery_addresses",
        };
        let row = sqlx::query(&format!(
            "SELECT identity_id FROM {table} WHERE via = $1 AND value = $2"
        ))
        .bind(via)
        .bind(value)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        match row {
            Some(r) => {
                let id: String = r.try_get("identity_id").map_err(db_err)?;
                Uuid::parse_str(&id)
                    .map(Some)
                    .map_err(|e| Error::internal(format!("corrupt identity id: {e}")))
            }
            None => Ok(None),
        }
    }

    /// Binds a flow made without a browser (an administrator's recovery code) to the first
    /// browser that opens its link; false when another browser already holds it.
    pub async fn bind_flow_csrf(&self, flow: Uuid, csrf_secret: &str) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE selfservice_flows SET csrf_hash = $1 WHERE id = $2 AND csrf_hash = ''",
        )
        .bind(crate::flows::csrf_hash(csrf_secret))
        .bind(flow.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks an identity's address verified (`status: completed`); false when the identity no
    /// longer has it (the address changed after the code was sent).
    pub async fn mark_address_verified(
        &self,
        identity: Uuid,
        via: &str,
        value: &str,
        now: i64,
    ) -> Result<bool, Error> {
        let _cleared = self.sessions.clear_until_done();
        let done = sqlx::query(
            "UPDATE identity_verifiable_addresses SET verified = 1, status = 'completed', verified_at = $1, updated_at = $2 WHERE identity_id = $3 AND via = $4 AND value = $5",
        )
        .bind(now)
        .bind(now)
        .bind(identity.to_string())
        .bind(via)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
