//! The reliability suite: the real `tessera` binary on loopback, under a steady mixed load,
//! killed, starved of its database and raced; afterwards, what it acknowledged is checked.
//!
//! ```text
//! cargo build -p tessera && cargo run -p tessera-reliability -- short     # CI's form, about 2 min
//! cargo run -p tessera-reliability -- soak                               # minutes per scenario
//! cargo run -p tessera-reliability -- short --only kill9 --backend sqlite
//! ```
//!
//! PostgreSQL runs need `TESSERA_TEST_POSTGRES_DSN` (as `scripts/postgres.sh` prints it).
//! Every scenario is bounded in time and sends traffic only to 127.0.0.1. Each prints its
//! figures (requests, acknowledged, errors by kind, p50/p99, memory, what was lost) and the
//! checks it made; the exit status is 1 when any check failed. See docs/reliability.md.

mod api;
mod proxy;
mod scenarios;
mod stats;
mod tessera;

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tessera_testkit::Backend;

/// How hard and how long one scenario runs.
#[derive(Debug, Clone)]
pub struct Run {
    pub backend: Backend,
    /// Racing requests in the concurrency scenario.
    pub concurrency: usize,
    /// Length of a load phase.
    pub duration: Duration,
    /// SIGKILLs in the kill -9 scenario.
    pub kills: u32,
    /// Load workers; each paces itself to about `1 / pace` operations per second.
    pub workers: usize,
    pub pace: Duration,
    /// How long the database stays away in the outage scenario.
    pub outage: Duration,
}

impl Run {
    fn new(form: &str, backend: Backend) -> Result<Run> {
        Ok(match form {
            "short" => Run {
                backend,
                concurrency: 100,
                duration: Duration::from_secs(7),
                kills: 3,
                workers: 4,
                pace: Duration::from_millis(60),
                outage: Duration::from_secs(3),
            },
            "soak" => Run {
                backend,
                concurrency: 200,
                duration: Duration::from_secs(120),
                kills: 20,
                workers: 8,
                pace: Duration::from_millis(60),
                outage: Duration::from_secs(20),
            },
            other => bail!("unknown form `{other}`: use `short` or `soak`"),
        })
    }

    /// A fresh database for this run's backend, in a fresh folder.
    pub async fn database(&self) -> Result<Database> {
        let dir = tessera_testkit::temp_dir();
        if self.backend == Backend::Postgres
            && std::env::var_os("TESSERA_TEST_POSTGRES_DSN").is_none()
        {
            bail!(
                "TESSERA_TEST_POSTGRES_DSN is not set: start PostgreSQL with `bash scripts/postgres.sh` and export the line it prints, or pass --backend sqlite"
            );
        }
        let dsn = tessera_testkit::fresh_dsn(self.backend, &dir).await;
        Ok(Database { dir, dsn })
    }
}

/// A scenario's database and folder.
pub struct Database {
    pub dir: PathBuf,
    pub dsn: String,
}

impl Database {
    /// Removes the PostgreSQL database and the folder (kept with TESSERA_KEEP_TEST_DIRS=1).
    pub fn drop_database(self) {
        tessera_testkit::drop_database(&self.dsn);
        if std::env::var_os("TESSERA_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What one scenario found: figures to print and checks that passed or failed.
pub struct Report {
    pub name: String,
    pub backend: Backend,
    pub figures: Vec<String>,
    pub checks: Vec<(bool, String)>,
}

impl Report {
    pub fn new(name: &str, backend: Backend) -> Report {
        Report {
            name: name.to_string(),
            backend,
            figures: Vec::new(),
            checks: Vec::new(),
        }
    }

    pub fn figure(&mut self, text: String) {
        println!("{text}");
        self.figures.push(text);
    }

    pub fn check(&mut self, ok: bool, what: String) {
        println!("  [{}] {what}", if ok { "ok" } else { "FAILED" });
        self.checks.push((ok, what));
    }

    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|(ok, _)| !ok).count()
    }
}

const SCENARIOS: [&str; 9] = [
    "concurrency",
    "kill9",
    "dbdown",
    "dbhang",
    "shutdown",
    "instances",
    "upstreams",
    "abuse",
    "upgrade",
];

struct Args {
    form: String,
    only: Option<String>,
    backends: Vec<Backend>,
}

fn args() -> Result<Args> {
    let mut form = "short".to_string();
    let mut only = None;
    let mut backends = vec![Backend::Sqlite, Backend::Postgres];
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "short" | "soak" => form = a,
            "--only" => {
                let s = it.next().context("--only needs a scenario name")?;
                if !SCENARIOS.contains(&s.as_str()) {
                    bail!("unknown scenario `{s}`: one of {SCENARIOS:?}");
                }
                only = Some(s);
            }
            "--backend" => {
                backends = match it.next().as_deref() {
                    Some("sqlite") => vec![Backend::Sqlite],
                    Some("postgres") => vec![Backend::Postgres],
                    Some("both") => vec![Backend::Sqlite, Backend::Postgres],
                    other => bail!("--backend takes sqlite, postgres or both, not {other:?}"),
                }
            }
            "-h" | "--help" => {
                println!(
                    "tessera-reliability [short|soak] [--only {}] [--backend sqlite|postgres|both]",
                    SCENARIOS.join("|")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    Ok(Args {
        form,
        only,
        backends,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    tessera::binary()?;
    let started = Instant::now();
    let mut reports = Vec::new();
    for scenario in SCENARIOS {
        if args.only.as_deref().is_some_and(|o| o != scenario) {
            continue;
        }
        for &backend in &args.backends {
            // A hung database is waited out through a request timeout: the soak form only, and
            // PostgreSQL only (a hung SQLite file is the lock `dbdown` holds).
            if scenario == "dbhang" && (args.form == "short" || backend == Backend::Sqlite) {
                continue;
            }
            // Connection abuse is the listener's business, not the database's: the short form
            // runs it once, on SQLite.
            if scenario == "abuse" && args.form == "short" && backend == Backend::Postgres {
                continue;
            }
            // Several instances share a PostgreSQL database (issue 21's scenario 2).
            if scenario == "instances" && backend == Backend::Sqlite {
                continue;
            }
            let run = Run::new(&args.form, backend)?;
            println!("\n== {scenario} on {backend:?} ({} form)", args.form);
            let t = Instant::now();
            let r = match scenario {
                "concurrency" => scenarios::concurrency::run(&run).await,
                "kill9" => scenarios::kill9::run(&run).await,
                "dbdown" => scenarios::dbdown::run(&run, false).await,
                "dbhang" => scenarios::dbdown::run(&run, true).await,
                "instances" => scenarios::instances::run(&run).await,
                "upstreams" => scenarios::upstreams::run(&run).await,
                "abuse" => scenarios::abuse::run(&run).await,
                "upgrade" => scenarios::upgrade::run(&run).await,
                _ => scenarios::shutdown::run(&run).await,
            };
            let r = r.with_context(|| format!("{scenario} on {backend:?}"))?;
            println!(
                "  ({scenario} on {backend:?} took {:.1} s)",
                t.elapsed().as_secs_f64()
            );
            reports.push(r);
        }
    }
    let failed: usize = reports.iter().map(Report::failed).sum();
    let checks: usize = reports.iter().map(|r| r.checks.len()).sum();
    println!(
        "\n== reliability ({} form): {} scenario runs, {checks} checks, {failed} failed, {:.1} s",
        args.form,
        reports.len(),
        started.elapsed().as_secs_f64()
    );
    for r in &reports {
        for (ok, what) in &r.checks {
            if !ok {
                println!("  FAILED {} on {:?}: {what}", r.name, r.backend);
            }
        }
    }
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
