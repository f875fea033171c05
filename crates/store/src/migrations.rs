//! Embedded, versioned migrations for each backend, run through sqlx's migrator so `tessera
//! migrate sql status` and a Kratos-style `migrate sql up` behave as operators expect.

use crate::{Backend, Store, db_err};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migrate, Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use tessera_core::Error;

macro_rules! embedded {
    ($dir:literal, $($version:literal $name:literal),* $(,)?) => {
        &[$(($version, $name,
            include_str!(concat!("../migrations/", $dir, "/", stringify!($version), "_", $name, ".up.sql")),
            include_str!(concat!("../migrations/", $dir, "/", stringify!($version), "_", $name, ".down.sql")),
        )),*]
    };
}

type Embedded = &'static [(i64, &'static str, &'static str, &'static str)];

const SQLITE: Embedded = embedded!("sqlite", 20261101000001 "identities", 20261101000002 "sessions_flows", 20261101000003 "oidc", 20261101000004 "op", 20261203000001 "op_subjects", 20261203000002 "rate_limits", 20261203000003 "op_revoked_grants", 20261204000001 "external_id_backfills", 20261204000002 "op_apis_par", 20261205000001 "courier", 20261205000004 "organizations", 20261205000006 "op_used_jtis", 20261205000010 "identity_organization", 20261205000011 "op_backchannel_logout", 20261205000012 "op_device_grants", 20261205000013 "op_frontchannel_logout", 20261205000014 "courier_template_data");
const POSTGRES: Embedded = embedded!("postgres", 20261101000001 "identities", 20261101000002 "sessions_flows", 20261101000003 "oidc", 20261101000004 "op", 20261203000001 "op_subjects", 20261203000002 "rate_limits", 20261203000003 "op_revoked_grants", 20261204000001 "external_id_backfills", 20261204000002 "op_apis_par", 20261205000001 "courier", 20261205000004 "organizations", 20261205000006 "op_used_jtis", 20261205000010 "identity_organization", 20261205000011 "op_backchannel_logout", 20261205000012 "op_device_grants", 20261205000013 "op_frontchannel_logout", 20261205000014 "courier_template_data");

#[derive(Debug)]
struct Source(Embedded);

impl<'s> MigrationSource<'s> for Source {
    fn resolve(self) -> futures_core::future::BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (version, name, up, down) in self.0 {
                out.push(Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::ReversibleUp,
                    Cow::Borrowed(*up),
                    false,
                ));
                out.push(Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::ReversibleDown,
                    Cow::Borrowed(*down),
                    false,
                ));
            }
            Ok(out)
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MigrationStatus {
    pub version: i64,
    pub name: String,
    pub applied: bool,
}

impl Store {
    async fn migrator(&self) -> Result<Migrator, Error> {
        let src = match self.backend {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        };
        Migrator::new(Source(src))
            .await
            .map_err(|e| Error::internal(format!("migrations: {e}")))
    }

    /// Applies all pending migrations.
    pub async fn migrate_up(&self) -> Result<usize, Error> {
        let before = self
            .migration_status()
            .await?
            .iter()
            .filter(|m| m.applied)
            .count();
        self.migrator()
            .await?
            .run(&self.pool)
            .await
            .map_err(|e| Error::internal(format!("applying migrations failed: {e}")))?;
        let after = self
            .migration_status()
            .await?
            .iter()
            .filter(|m| m.applied)
            .count();
        Ok(after - before)
    }

    /// Reverts the newest `steps` applied migrations.
    pub async fn migrate_down(&self, steps: usize) -> Result<usize, Error> {
        let status = self.migration_status().await?;
        let applied: Vec<i64> = status
            .iter()
            .filter(|m| m.applied)
            .map(|m| m.version)
            .collect();
        if steps == 0 || applied.is_empty() {
            return Ok(0);
        }
        let keep = applied.len().saturating_sub(steps);
        let target = if keep == 0 { 0 } else { applied[keep - 1] };
        self.migrator()
            .await?
            .undo(&self.pool, target)
            .await
            .map_err(|e| Error::internal(format!("reverting migrations failed: {e}")))?;
        Ok(applied.len() - keep)
    }

    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, Error> {
        let migrator = self.migrator().await?;
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        conn.ensure_migrations_table()
            .await
            .map_err(|e| Error::internal(format!("migrations table: {e}")))?;
        let applied = conn
            .list_applied_migrations()
            .await
            .map_err(|e| Error::internal(format!("reading applied migrations: {e}")))?;
        Ok(migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .map(|m| MigrationStatus {
                version: m.version,
                name: m.description.to_string(),
                applied: applied.iter().any(|a| a.version == m.version),
            })
            .collect())
    }

    /// True when every embedded migration has been applied (checked before serving).
    pub async fn is_migrated(&self) -> Result<bool, Error> {
        Ok(self.migration_status().await?.iter().all(|m| m.applied))
    }
}
