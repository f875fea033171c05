//! Assembling a running engine from resolved settings: schemas fetched and compiled, database
//! opened and (when asked) migrated. Shared by `tessera serve` and the test harness so tests run
//! exactly what production runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use tessera_config::{ConfigError, Settings};
use tessera_core::password::Hasher;
use tessera_core::schema::{IdentitySchema, default_schema};
use tessera_flows::{Engine, Schemas};
use tessera_store::Store;

/// Why an engine could not be built. Kept typed up to where it is shown (the CLI's error line,
/// the log, `PUT /admin/identity-config`'s problem list), so a provider's problems keep their
/// keys and file lines and a schema's problem its key.
#[derive(Debug)]
pub enum BuildError {
    /// Providers (and their mappers) that do not hold up: every problem with key and location.
    Config(ConfigError),
    /// An identity schema that cannot be read or compiled, named by its key
    /// (`identity.schemas.0.url`) and id.
    Schema {
        key: String,
        id: String,
        message: String,
    },
    /// Something that is not the configuration's content: the database, migrations, the mapper
    /// sandbox's program, the built-in schema.
    Setup(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(e) => e.fmt(f),
            BuildError::Schema { key, id, message } => {
                write!(f, "`{key}` (schema `{id}`): {message}")
            }
            BuildError::Setup(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

/// Fetches and compiles every configured identity schema; an error names the schema's key.
pub async fn load_schemas(settings: &Settings) -> Result<Schemas, BuildError> {
    let mut by_id = HashMap::new();
    if settings.identity.schemas.is_empty() {
        let schema =
            IdentitySchema::compile(&settings.identity.default_schema_id, default_schema())
                .map_err(|e| BuildError::Setup(format!("built-in schema: {e}")))?;
        by_id.insert(settings.identity.default_schema_id.clone(), schema);
    }
    for (i, s) in settings.identity.schemas.iter().enumerate() {
        let key = format!("identity.schemas.{i}.url");
        let problem = |message: String| BuildError::Schema {
            key: key.clone(),
            id: s.id.clone(),
            message,
        };
        let policy = &settings.sources;
        let bytes = tessera_social::fetch::document(&s.url, s.base_dir.as_deref(), policy)
            .await
            .map_err(|e| problem(e.to_string()))?;
        // An uploaded configuration's errors never show what a fetched document contains
        // (it could be a file the uploader should not read); `base64://` is their own text.
        let hide = policy.hide_content_in_errors && !s.url.starts_with("base64://");
        let raw: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            problem(format!(
                "not valid JSON at line {}, column {}{}",
                e.line(),
                e.column(),
                if hide {
                    String::new()
                } else {
                    format!(": {e}")
                }
            ))
        })?;
        let schema = IdentitySchema::compile(&s.id, raw).map_err(|e| {
            if hide {
                problem("not a valid identity schema (details are not shown for documents fetched for an uploaded configuration; check it with the server's own files)".into())
            } else {
                problem(e.to_string())
            }
        })?;
        by_id.insert(s.id.clone(), schema);
    }
    Ok(Schemas {
        default_id: settings.identity.default_schema_id.clone(),
        by_id,
    })
}

/// The program and arguments that start a mapper worker: this very binary in its hidden worker
/// mode. Tests running the server in-process pass the `tessera` binary explicitly, since their
/// own executable is a test harness.
pub fn mapper_pool(
    program: Option<std::path::PathBuf>,
) -> Result<tessera_mapper::MapperPool, String> {
    let program = match program {
        Some(p) => p,
        None => std::env::current_exe().map_err(|e| {
            format!("cannot locate the tessera binary to start mapper workers: {e}")
        })?,
    };
    Ok(tessera_mapper::MapperPool::new(
        tessera_mapper::PoolConfig::new(program, tessera_mapper::worker_args()),
    ))
}

/// Builds the engine. With `migrate`, pending migrations are applied first; without it an
/// unmigrated database is refused with the command that fixes it.
pub async fn build_engine(settings: Settings, migrate: bool) -> Result<Engine, BuildError> {
    build_engine_with(settings, migrate, None).await
}

/// [`build_engine`] with an explicit mapper worker program (see [`mapper_pool`]).
pub async fn build_engine_with(
    settings: Settings,
    migrate: bool,
    mapper_program: Option<std::path::PathBuf>,
) -> Result<Engine, BuildError> {
    let pool = mapper_pool(mapper_program).map_err(BuildError::Setup)?;
    let (schemas, social) = load_documents(&settings, pool).await?;
    let setup = |e: tessera_core::Error| BuildError::Setup(e.reason);
    let store = Store::connect(&settings.dsn)
        .await
        .map_err(setup)?
        .with_session_cache(settings.session.cache_ttl);
    if migrate {
        store.migrate_up().await.map_err(setup)?;
    } else if !store.is_migrated().await.map_err(setup)? {
        return Err(BuildError::Setup("the database schema is not up to date: run `tessera migrate sql up -e --yes` (or start with --dev to migrate automatically)".into()));
    }
    let limits = Arc::new(tessera_flows::limits::Limits::new(&settings.limits));
    let engine = assemble(settings, store, schemas, social, limits);
    // Data fixes that need the schemas (one query when none is pending).
    engine.run_backfills().await.map_err(setup)?;
    Ok(engine)
}

/// Schemas and providers (with their mappers) fetched and compiled: everything a configuration
/// refers to by URL, so a bad reference fails here and never during a request.
async fn load_documents(
    settings: &Settings,
    pool: tessera_mapper::MapperPool,
) -> Result<(Schemas, tessera_social::Social), BuildError> {
    let schemas = load_schemas(settings).await?;
    let social = tessera_social::Social::build(settings, pool).await?;
    Ok((schemas, social))
}

fn assemble(
    settings: Settings,
    store: Store,
    schemas: Schemas,
    social: tessera_social::Social,
    limits: Arc<tessera_flows::limits::Limits>,
) -> Engine {
    let cipher = tessera_core::crypto::Cipher::new(&settings.secrets.cipher);
    let hasher = Hasher::new(settings.password.argon2.clone());
    Engine {
        settings: Arc::new(settings),
        store,
        schemas: Arc::new(schemas),
        hasher: Arc::new(hasher),
        social: Arc::new(social),
        cipher: Arc::new(cipher),
        limits,
        whoami_answers: Default::default(),
    }
}

/// A new engine for new settings on the running one's database and mapper workers (a
/// configuration update; the database and listeners change only on restart).
pub async fn rebuild_engine(settings: Settings, current: &Engine) -> Result<Engine, BuildError> {
    let (schemas, social) = load_documents(&settings, current.social.pool().clone()).await?;
    // The same limits (and their counters and hashing queue) unless they were changed.
    let limits = if settings.limits == current.settings.limits {
        current.limits.clone()
    } else {
        Arc::new(tessera_flows::limits::Limits::new(&settings.limits))
    };
    Ok(assemble(
        settings,
        current.store.clone(),
        schemas,
        social,
        limits,
    ))
}

/// Gives tests access to the engine (and its store) of a running server.
#[derive(Clone)]
pub struct EngineHandle(pub Engine);
