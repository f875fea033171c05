//! Counters for rate limits that must hold across instances (failed password sign-ins).

use crate::{Store, db_err};
use sqlx::Row;
use tessera_core::Error;

impl Store {
    /// Counts one more event for `key` in the window that starts at `window_start` (ms) and
    /// returns the count so far.
    pub async fn limit_hit(&self, key: &str, window_start: i64) -> Result<i64, Error> {
        // Failed sign-ins arrive together (that is the point of counting them): an upsert that
        // races another one may be answered "busy" by SQLite and is run again.
        crate::retry_busy(|| {
            sqlx::query(
                "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1) \
                 ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 \
                 RETURNING count",
            )
            .bind(key)
            .bind(window_start)
            .fetch_one(&self.pool)
        })
        .await
        .map_err(db_err)?
        .try_get::<i64, _>("count")
        .map_err(db_err)
    }

    /// The count of each of `keys` in the window that starts at `window_start` (0 when none).
    pub async fn limit_counts(&self, keys: &[&str], window_start: i64) -> Result<Vec<i64>, Error> {
        let sql = format!(
            "SELECT key, count FROM rate_limits WHERE window_start = $1 AND key IN ({})",
            crate::placeholders(2, keys.len())
        );
        let mut q = sqlx::query(&sql).bind(window_start);
        for k in keys {
            q = q.bind(*k);
        }
        let rows = q.fetch_all(&self.pool).await.map_err(db_err)?;
        Ok(keys
            .iter()
            .map(|k| {
                rows.iter()
                    .find(|r| r.try_get::<String, _>("key").is_ok_and(|rk| rk == *k))
                    .and_then(|r| r.try_get::<i64, _>("count").ok())
                    .unwrap_or(0)
            })
            .collect())
    }

    /// Forgets the counters of windows that started before `cutoff` (ms).
    pub async fn limit_delete_before(&self, cutoff: i64) -> Result<u64, Error> {
        Ok(
            sqlx::query("DELETE FROM rate_limits WHERE window_start < $1")
                .bind(cutoff)
                .execute(&self.pool)
                .await
                .map_err(db_err)?
                .rows_affected(),
        )
    }
}
