//! Single-use JWT ids (`op_used_jtis`): the `jti` of each `private_key_jwt` client assertion
//! (RFC 7523 §3) and DPoP proof (RFC 9449 §11.1) the OpenID Provider accepted, so a captured
//! one cannot be replayed while it is still valid.

use crate::{Store, db_err, retry_busy};
use tessera_core::Error;

impl Store {
    /// Records a used `jti` (the caller hashes its kind, owner and value into `jti_hash`) until
    /// `expires_at`; false when it was recorded before. The primary key decides, so two
    /// instances racing on one replayed token cannot both accept it. Expired entries are
    /// deleted on the way.
    pub async fn op_use_jti(
        &self,
        jti_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, Error> {
        retry_busy(|| {
            sqlx::query("DELETE FROM op_used_jtis WHERE expires_at < $1")
                .bind(now)
                .execute(&self.pool)
        })
        .await
        .map_err(db_err)?;
        let done = retry_busy(|| {
            sqlx::query("INSERT INTO op_used_jtis (jti_hash, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(jti_hash)
                .bind(expires_at)
                .execute(&self.pool)
        })
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
}
