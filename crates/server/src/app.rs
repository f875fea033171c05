//! Assembling a running engine from resolved settings: schemas fetched and compiled, database
//! opened and (when asked) migrated. Shared by `tessera serve` and the test harness so tests run
//! exactly what production runs.

use std::collections::HashMap;
use std::sync::Arc;
use tessera_config::Settings;
use tessera_core::password::Hasher;
use tessera_core::schema::{IdentitySchema, default_schema};
use tessera_flows::{Engine, Schemas};
use tessera_store::Store;

/// Fetches and compiles every configured identity schema; an error names the schema's key.
pub async fn load_schemas(settings: &Settings) -> Result<Schemas, String> {
    let mut by_id = HashMap::new();
    if settings.schemas.is_empty() {
        let schema = IdentitySchema::compile(&settings.default_schema_id, default_schema())
            .map_err(|e| format!("built-in schema: {e}"))?;
        by_id.insert(settings.default_schema_id.clone(), schema);
    }
    for (i, s) in settings.schemas.iter().enumerate() {
        let key = format!("identity.schemas.{i}.url");
        let bytes = tessera_config::source::fetch(&s.url, s.base_dir.as_deref())
            .await
            .map_err(|e| format!("`{key}` (schema `{}`): {e}", s.id))?;
        let raw: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "`{key}` (schema `{}`): not valid JSON: {e} at line {}, column {}",
                s.id,
                e.line(),
                e.column()
            )
        })?;
        let schema = IdentitySchema::compile(&s.id, raw)
            .map_err(|e| format!("`{key}` (schema `{}`): {e}", s.id))?;
        by_id.insert(s.id.clone(), schema);
    }
    Ok(Schemas {
        default_id: settings.default_schema_id.clone(),
        by_id,
    })
}

/// Builds the engine. With `migrate`, pending migrations are applied first; without it an
/// unmigrated database is refused with the command that fixes it.
pub async fn build_engine(settings: Settings, migrate: bool) -> Result<Engine, String> {
    let schemas = load_schemas(&settings).await?;
    let store = Store::connect(&settings.dsn)
        .await
        .map_err(|e| e.reason)?
        .with_session_cache(settings.session_cache_ttl);
    if migrate {
        store.migrate_up().await.map_err(|e| e.reason)?;
    } else if !store.is_migrated().await.map_err(|e| e.reason)? {
        return Err("the database schema is not up to date: run `tessera migrate sql up -e --yes` (or start with --dev to migrate automatically)".into());
    }
    let hasher = Hasher::new(settings.argon2.clone());
    Ok(Engine {
        settings: Arc::new(settings),
        store,
        schemas: Arc::new(schemas),
        hasher: Arc::new(hasher),
    })
}

/// Gives tests access to the engine (and its store) of a running server.
#[derive(Clone)]
pub struct EngineHandle(pub Engine);
