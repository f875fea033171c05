//! `tessera mapper test` (Kratos issue #391): runs a Jsonnet mapper on a claims file in the same
//! sandbox the server uses, prints the output, checks `identity.traits` against the identity
//! schema and says how long it took.

use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tessera_config::Loaded;
use tessera_core::schema::{IdentitySchema, default_schema};
use tessera_mapper::{Mapper, MapperPool, PoolConfig, worker_args};

/// The traits are invalid, or the mapper failed.
const EXIT_INVALID: u8 = 1;
/// The command line, a file or the configuration is wrong.
const EXIT_USAGE: u8 = 2;

#[derive(Args)]
pub struct MapperArgs {
    #[command(subcommand)]
    cmd: MapperCmd,
}

#[derive(Subcommand)]
enum MapperCmd {
    /// Dry-run a Jsonnet mapper on claims: prints the output (stdout), then the identity schema
    /// verdict and the evaluation time (stderr). Exit status 0 when the traits are valid, 1 when
    /// the mapper fails or the traits are invalid, 2 for usage or configuration errors.
    Test(TestArgs),
}

#[derive(Args)]
struct TestArgs {
    /// The mapper (Jsonnet file).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "provider",
        conflicts_with = "provider"
    )]
    mapper: Option<PathBuf>,
    /// Test the `mapper_url` of this `selfservice.methods.oidc.config.providers[]` entry (by id).
    #[arg(long, value_name = "ID", requires = "config")]
    provider: Option<String>,
    /// Configuration file (YAML or JSON), for --provider and the identity schemas; repeat to
    /// layer files.
    #[arg(short, long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
    /// The claims as JSON: the object the mapper reads with `std.extVar('claims')`.
    #[arg(long, value_name = "FILE")]
    claims: PathBuf,
    /// Identity schema to validate the traits against [default: the configuration's
    /// `identity.default_schema_id`, or the built-in schema without a configuration].
    #[arg(long, value_name = "ID")]
    schema: Option<String>,
}

/// A failure with the exit status it maps to.
struct Fail(u8, String);

fn usage(msg: impl Into<String>) -> Fail {
    Fail(EXIT_USAGE, msg.into())
}

pub async fn run(args: MapperArgs) -> ExitCode {
    let MapperCmd::Test(args) = args.cmd;
    match test(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            if !msg.is_empty() {
                eprintln!("error: {msg}");
            }
            ExitCode::from(code)
        }
    }
}

async fn test(args: TestArgs) -> Result<(), Fail> {
    let claims = read_claims(&args.claims)?;
    let loaded = if args.config.is_empty() {
        None
    } else {
        let env = std::env::vars().collect();
        Some(
            tessera_config::load(&args.config, &env)
                .map_err(|e| usage(format!("invalid configuration:\n{e}")))?,
        )
    };
    let (name, source) = match (&args.mapper, &args.provider, &loaded) {
        (Some(path), _, _) => {
            let source = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read the mapper {}: {e}", path.display())))?;
            (format!("mapper `{}`", path.display()), source)
        }
        (None, Some(id), Some(loaded)) => provider_mapper(loaded, id).await?,
        _ => {
            return Err(usage(
                "give --mapper FILE, or --provider ID with --config FILE",
            ));
        }
    };
    let (schema_id, schema) = load_schema(loaded.as_ref(), args.schema.as_deref()).await?;

    let mapper = Mapper::compile(&name, &source).map_err(|e| Fail(EXIT_INVALID, e.to_string()))?;
    let program = std::env::current_exe().map_err(|e| {
        usage(format!(
            "cannot locate the tessera binary for the sandbox: {e}"
        ))
    })?;
    let mut cfg = PoolConfig::new(program, worker_args());
    cfg.workers = 1;
    let pool = MapperPool::new(cfg);

    // The first run starts the sandbox worker and parses the mapper there; the second is what
    // every later sign-in costs.
    let started = Instant::now();
    let output = pool
        .evaluate(&mapper, &claims)
        .await
        .map_err(|e| Fail(EXIT_INVALID, e.to_string()))?;
    let cold = started.elapsed();
    let started = Instant::now();
    let warm = pool
        .evaluate(&mapper, &claims)
        .await
        .ok()
        .map(|_| started.elapsed());

    let pretty = serde_json::to_string_pretty(&output).unwrap_or_else(|_| output.to_string());
    println!("{pretty}");

    let verdict = match output.get("identity").and_then(|i| i.get("traits")) {
        None => Err(vec![
            "the output has no `identity.traits`; a mapper returns {identity: {traits: {…}}}"
                .to_owned(),
        ]),
        Some(traits) => {
            let problems: Vec<String> = schema
                .validate_traits(traits)
                .into_iter()
                .map(|e| {
                    format!(
                        "{}: {} (message id {})",
                        e.field.as_deref().unwrap_or("traits"),
                        e.message.text,
                        e.message.id
                    )
                })
                .collect();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems)
            }
        }
    };
    match &verdict {
        Ok(()) => eprintln!("valid: identity.traits match identity schema `{schema_id}`"),
        Err(problems) => {
            eprintln!(
                "invalid: identity.traits do not match identity schema `{schema_id}` ({} problem{}):",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            for p in problems {
                eprintln!("  - {p}");
            }
            eprintln!(
                "  (at sign-in, Tessera would send the user to the registration form to fill these in)"
            );
        }
    }
    match warm {
        Some(warm) => eprintln!(
            "evaluated in {} ms (first run, including starting the sandbox: {} ms)",
            ms(warm),
            ms(cold)
        ),
        None => eprintln!("evaluated in {} ms", ms(cold)),
    }
    verdict.map_err(|_| Fail(EXIT_INVALID, String::new()))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn read_claims(path: &Path) -> Result<Value, Fail> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read the claims file {}: {e}",
            path.display()
        ))
    })?;
    let claims: Value = serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "the claims file {} is not valid JSON: {e}",
            path.display()
        ))
    })?;
    if !claims.is_object() {
        return Err(usage(format!(
            "the claims file {} must hold a JSON object (the mapper's `std.extVar('claims')`), such as {{\"sub\": \"1\", \"email\": \"a@example.com\", \"email_verified\": true}}",
            path.display()
        )));
    }
    Ok(claims)
}

/// The mapper of a configured provider, fetched from its `mapper_url` as the server would.
async fn provider_mapper(loaded: &Loaded, id: &str) -> Result<(String, String), Fail> {
    let prefix = "selfservice.methods.oidc.config.providers";
    let providers = &loaded.config.selfservice.methods.oidc.config.providers;
    let found = providers
        .iter()
        .enumerate()
        .find(|(_, p)| p.get("id").and_then(Value::as_str) == Some(id));
    let Some((i, entry)) = found else {
        let ids: Vec<&str> = providers
            .iter()
            .filter_map(|p| p.get("id").and_then(Value::as_str))
            .collect();
        return Err(usage(if ids.is_empty() {
            format!("no provider `{id}`: the configuration has no `{prefix}` entries")
        } else {
            format!(
                "no provider `{id}` in `{prefix}`; configured ids: {}",
                ids.join(", ")
            )
        }));
    };
    let key = format!("{prefix}.{i}.mapper_url");
    let url = entry
        .get("mapper_url")
        .and_then(Value::as_str)
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| {
            usage(format!(
                "provider `{id}` has no `mapper_url` ({}); set it to base64://…, file://… or https://…",
                loaded.location(&format!("{prefix}.{i}"))
            ))
        })?;
    let bytes = tessera_social::fetch::document(
        url,
        tessera_config::load::base_dir(loaded, &key).as_deref(),
        &tessera_config::source::SourcePolicy::default(),
    )
    .await
    .map_err(|e| usage(format!("`{key}` ({}): {e}", loaded.location(&key))))?;
    let source = String::from_utf8(bytes)
        .map_err(|_| usage(format!("`{key}`: the mapper is not UTF-8 text")))?;
    Ok((format!("provider `{id}` mapper"), source))
}

/// The identity schema to check traits against, loaded as the server loads it.
async fn load_schema(
    loaded: Option<&Loaded>,
    wanted: Option<&str>,
) -> Result<(String, IdentitySchema), Fail> {
    let (default_id, schemas) = match loaded {
        Some(l) => (
            l.config.identity.default_schema_id.clone(),
            l.config.identity.schemas.clone(),
        ),
        None => ("default".to_owned(), Vec::new()),
    };
    let id = wanted.map_or(default_id.clone(), str::to_owned);
    if schemas.is_empty() {
        if id != default_id {
            return Err(usage(format!(
                "no identity schema `{id}`: {}",
                if loaded.is_some() {
                    format!(
                        "the configuration defines none, so only the built-in `{default_id}` exists"
                    )
                } else {
                    format!("without --config only the built-in `{default_id}` exists")
                }
            )));
        }
        let schema = IdentitySchema::compile(&id, default_schema())
            .map_err(|e| usage(format!("built-in schema: {e}")))?;
        return Ok((id, schema));
    }
    let Some((i, entry)) = schemas.iter().enumerate().find(|(_, s)| s.id == id) else {
        let ids: Vec<&str> = schemas.iter().map(|s| s.id.as_str()).collect();
        return Err(usage(format!(
            "no identity schema `{id}` in `identity.schemas`; configured ids: {}",
            ids.join(", ")
        )));
    };
    let key = format!("identity.schemas.{i}.url");
    let base_dir = loaded.and_then(|l| tessera_config::load::base_dir(l, &key));
    let bytes = tessera_social::fetch::document(
        &entry.url,
        base_dir.as_deref(),
        &tessera_config::source::SourcePolicy::default(),
    )
    .await
    .map_err(|e| usage(format!("`{key}` (schema `{id}`): {e}")))?;
    let raw: Value = serde_json::from_slice(&bytes)
        .map_err(|e| usage(format!("`{key}` (schema `{id}`): not valid JSON: {e}")))?;
    let schema = IdentitySchema::compile(&id, raw)
        .map_err(|e| usage(format!("`{key}` (schema `{id}`): {e}")))?;
    Ok((id, schema))
}
