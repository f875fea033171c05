//! The `jti`s of `private_key_jwt` client assertions already used (RFC 7523 §3), so a captured
//! assertion cannot be replayed while it is still valid.

use crate::{Store, db_err, retry_busy};
use tessera_core::Error;

impl Store {
    /// Records a client assertion's `jti` (hashed) until it expires; false when the app has
    /// used it before. The primary key decides, so two instances racing on one replayed
    /// assertion cannot both accept it. Expired entries are deleted on the way.
    pub async fn op_use_assertion(
        &self,
        client_id: &str,
        jti_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, Error> {
        retry_busy(|| {
            sqlx::query("DELETE FROM op_client_assertions WHERE expires_at < $1")
                .bind(now)
                .execute(&self.pool)
        })
        .await
        .map_err(db_err)?;
        let done = retry_busy(|| {
            sqlx::query("INSERT INTO op_client_assertions (client_id, jti_hash, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(client_id)
                .bind(jti_hash)
                .bind(expires_at)
                .execute(&self.pool)
        })
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
