//! `tessera serve` and `tessera migrate sql`.

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tessera_config::{Settings, load};
use tessera_server::live::{ConfigSource, Live};
use tessera_server::{Listeners, app};
use tessera_store::Store;

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (YAML or JSON); repeat to layer files, later ones win.
    #[arg(short, long = "config")]
    config: Vec<PathBuf>,
    /// Development mode: plain-HTTP cookies, a generated secret, SQLite `./tessera.db`, automatic migrations.
    #[arg(long)]
    dev: bool,
    /// Accepted for Kratos compatibility: `serve` always runs the courier's worker.
    #[arg(long = "watch-courier")]
    watch_courier: bool,
}

#[derive(Args)]
pub struct MigrateArgs {
    /// `[up|down|status] [DSN]`: the direction defaults to up (so Kratos's `migrate sql <DSN>`
    /// works); the DSN may instead come from -e (the DSN environment variable) or --config.
    #[arg(num_args = 0..=2, value_names = ["DIRECTION", "DSN"])]
    args: Vec<String>,
    /// Read the DSN from the DSN environment variable.
    #[arg(short = 'e', long = "read-from-env")]
    from_env: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    yes: bool,
    /// How many migrations `down` reverts.
    #[arg(long, default_value_t = 1)]
    steps: usize,
    #[arg(short, long = "config")]
    config: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Up,
    Down,
    Status,
}

fn env_map() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// In `--dev`, a secret is generated once and kept in `./tessera.secret` (mode 0600) so sessions
/// survive restarts.
pub(crate) fn dev_secret(dir: &Path) -> Result<String> {
    let path = dir.join("tessera.secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if s.len() >= 32 {
            return Ok(s);
        }
    }
    let secret = tessera_core::crypto::random_token();
    write_private(&path, &secret)
        .with_context(|| format!("cannot write the generated secret to {}", path.display()))?;
    Ok(secret)
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())
}

/// Keeps the log writer's thread alive; dropping it writes out what is still pending, so the
/// last lines before an orderly exit (or a refusal to start) are not lost.
#[must_use = "the log lines still pending are lost when this is dropped"]
pub(crate) struct LogGuard(
    #[allow(dead_code)] Option<crate::log_writer::LogGuard<std::io::Stderr>>,
);

/// Log lines go to stderr in batches written by a thread of their own ([`crate::log_writer`]):
/// a request pays for formatting its line, not for a `write(2)` or a thread wake-up of its own
/// (the request log at `info` was a third of whoami's cost, bench/README.md). Nothing is
/// dropped when the writer falls behind: requests then write the batch themselves. Colours only
/// when stderr is a terminal, so log files and collectors get plain text.
pub(crate) fn init_logging(settings: &Settings) -> LogGuard {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},sqlx=warn,hyper=warn", settings.log.level))
    });
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = match crate::log_writer::log_writer(std::io::stderr()) {
        Ok((w, g)) => (
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(w),
            Some(g),
        ),
        Err(e) => {
            eprintln!(
                "warning: cannot start the log writer thread ({e}); writing log lines directly"
            );
            (
                tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
                None,
            )
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let installed = if settings.log.json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A subscriber already installed (tests, `demo` after `serve`) keeps its writer; this
    // one's thread then has nothing to write.
    LogGuard(guard.filter(|_| installed.is_ok()))
}

/// A configuration loaded and resolved, with how it was resolved (for later updates).
pub struct Prepared {
    pub settings: Settings,
    pub source: ConfigSource,
    pub document: serde_json::Value,
    pub warnings: Vec<String>,
}

pub fn prepare(config: &[PathBuf], dev: bool) -> Result<Prepared> {
    let env = env_map();
    let loaded = load(config, &env).map_err(|e| anyhow!("invalid configuration:\n{e}"))?;
    let needs_secret =
        dev && loaded.config.secrets.default.is_empty() && loaded.config.secrets.cookie.is_empty();
    let generated_secret = if needs_secret {
        Some(dev_secret(Path::new("."))?)
    } else {
        None
    };
    let source = ConfigSource {
        files: config.to_vec(),
        dev,
        generated_secret,
        env,
    };
    let settings = source
        .resolve(&loaded)
        .map_err(|e| anyhow!("invalid configuration:\n{e}"))?;
    Ok(Prepared {
        settings,
        source,
        document: loaded.raw,
        warnings: loaded.warnings,
    })
}

pub fn load_settings(config: &[PathBuf], dev: bool) -> Result<(Settings, Vec<String>)> {
    let p = prepare(config, dev)?;
    Ok((p.settings, p.warnings))
}

pub async fn serve(args: ServeArgs) -> Result<()> {
    // Kratos runs its courier in `serve` only with this flag; Tessera's `serve` always runs
    // one (several workers can share a database safely), so the flag changes nothing.
    let _ = args.watch_courier;
    run(&args.config, args.dev, None, "").await
}

/// Serves a configuration until SIGTERM or Ctrl-C. `listeners` are used when the caller bound
/// them already (`tessera demo` must know its ports before writing its configuration); `note`
/// is printed after the ready lines.
pub async fn run(
    config: &[PathBuf],
    dev: bool,
    listeners: Option<Listeners>,
    note: &str,
) -> Result<()> {
    let started = Instant::now();
    let prepared = prepare(config, dev)?;
    let settings = prepared.settings;
    let _log = init_logging(&settings);
    for w in &prepared.warnings {
        tracing::warn!("{w}");
    }
    if dev {
        tracing::warn!(
            "running in --dev mode: cookies are not marked Secure; never use this in production"
        );
    }
    let public = settings.serve.public_base_url.clone();
    let admin = settings.serve.admin_base_url.clone();
    let binds = (
        settings.serve.public_bind.clone(),
        settings.serve.admin_bind.clone(),
    );
    let engine = app::build_engine(settings, dev)
        .await
        .map_err(|e| anyhow!(e))?;
    // An app whose `sub` users can change would let one user sign in to it as another: such a
    // configuration does not start (the security model, docs/security.md).
    let unstable = tessera_server::provider(&engine)
        .unstable_subjects()
        .await
        .map_err(|e| anyhow!(e.reason))?;
    if !unstable.is_empty() {
        return Err(anyhow!(
            "refusing to start: {} app(s) take their `sub` from a value users can change:\n  - {}\nFix: mark the trait read-only in the identity schema (`\"tessera\": {{\"read_only\": true}}` on its property) and start again; users then cannot change it in settings. You can then move the app to another subject with `PUT /admin/clients/{{id}}`.",
            unstable.len(),
            unstable.join("\n  - ")
        ));
    }
    let listeners = match listeners {
        Some(l) => l,
        None => Listeners::bind((&binds.0.0, binds.0.1), (&binds.1.0, binds.1.1)).await?,
    };
    let (pa, aa) = listeners.addrs();
    println!(
        "Tessera {} is ready in {} ms",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_millis()
    );
    println!("  public API: {public}  (listening on {pa})");
    println!("  admin API:  {admin}  (listening on {aa})");
    if !note.is_empty() {
        println!("{note}");
    }
    tracing::info!(public = %pa, admin = %aa, "serving");

    // The OpenID Provider's first signing key is generated on first start, after "ready" (an
    // RSA key takes a moment); requests that need it before then wait for the same key.
    let op = tessera_server::provider(&engine);
    tokio::spawn(async move {
        if let Err(e) = op.key_set().await {
            tracing::error!(error = %e.description, "cannot load or create the OpenID Provider's signing keys");
        }
        release_start_up_memory();
    });
    let store = engine.store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            let cutoff = tessera_core::timefmt::now_ms() - 24 * 3600 * 1000;
            if let Err(e) = store.delete_expired_flows(cutoff).await {
                tracing::warn!(error = %e, "could not delete expired flows");
            }
            let now = tessera_core::timefmt::now_ms();
            if let Err(e) = store.delete_stale_social(now, cutoff).await {
                tracing::warn!(error = %e, "could not delete stale social sign-in attempts and errors");
            }
            if let Err(e) = store.limit_delete_before(cutoff).await {
                tracing::warn!(error = %e, "could not delete old rate-limit counters");
            }
            if let Err(e) = store.op_delete_stale(cutoff).await {
                tracing::warn!(error = %e, "could not delete expired OpenID Provider codes and tokens");
            }
        }
    });
    let live = Arc::new(Live::new(engine, prepared.document, Some(prepared.source)));
    tessera_server::serve_live(live, listeners, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Start-up (the configuration, schemas and templates parsed, migrations run, the first signing
/// key made) frees a few MB that glibc keeps in its arenas for later; an idle server would carry
/// them for good. Handing them back once, when start-up is over, makes the idle RSS what the
/// server actually uses (bench/README.md).
fn release_start_up_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it is thread-safe in glibc.
    unsafe {
        libc::malloc_trim(0);
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

pub async fn migrate(args: MigrateArgs) -> Result<()> {
    let (direction, dsn_arg) = match args.args.first().map(String::as_str) {
        Some("up") => (Direction::Up, args.args.get(1).cloned()),
        Some("down") => (Direction::Down, args.args.get(1).cloned()),
        Some("status") => (Direction::Status, args.args.get(1).cloned()),
        Some(other) if args.args.len() == 1 && other.contains(':') || other == "memory" => {
            (Direction::Up, Some(other.to_string()))
        }
        Some(other) => bail!("unknown migration direction `{other}`: use up, down or status"),
        None => (Direction::Up, None),
    };
    let dsn = match (&dsn_arg, args.from_env) {
        (Some(d), _) => d.clone(),
        (None, true) => std::env::var("DSN")
            .map_err(|_| anyhow!("-e was given but the DSN environment variable is not set"))?,
        (None, false) if !args.config.is_empty() => load_settings(&args.config, false)
            .map(|(s, _)| s.dsn)
            .or_else(|_| {
                let loaded = load(&args.config, &env_map())
                    .map_err(|e| anyhow!("invalid configuration:\n{e}"))?;
                Ok::<_, anyhow::Error>(loaded.config.dsn)
            })?,
        (None, false) => bail!(
            "give the DSN as an argument, or -e to read the DSN environment variable, or --config FILE"
        ),
    };
    let store = Store::connect(&dsn).await.map_err(|e| anyhow!(e.reason))?;
    match direction {
        Direction::Status => {
            println!("{:<16} {:<24} STATUS", "VERSION", "NAME");
            for m in store
                .migration_status()
                .await
                .map_err(|e| anyhow!(e.reason))?
            {
                println!(
                    "{:<16} {:<24} {}",
                    m.version,
                    m.name,
                    if m.applied { "Applied" } else { "Pending" }
                );
            }
        }
        Direction::Up => {
            if !args.yes && !confirm("Apply pending migrations?")? {
                bail!("aborted; pass --yes to skip the question");
            }
            let n = store.migrate_up().await.map_err(|e| anyhow!(e.reason))?;
            println!("Applied {n} migration(s).");
        }
        Direction::Down => {
            if !args.yes
                && !confirm(&format!(
                    "Revert the newest {} migration(s)? This deletes data.",
                    args.steps
                ))?
            {
                bail!("aborted; pass --yes to skip the question");
            }
            let n = store
                .migrate_down(args.steps)
                .await
                .map_err(|e| anyhow!(e.reason))?;
            println!("Reverted {n} migration(s).");
        }
    }
    Ok(())
}

fn confirm(question: &str) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        bail!("{question} Cannot ask without a terminal: pass --yes");
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
