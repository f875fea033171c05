//! Evaluations per second of seed 004's GitHub mapper (`bench/mapper/github.jsonnet` on
//! `claims.json`), measured two ways for a fixed duration each:
//!
//! - `pool`: through the real `MapperPool` (2 worker processes of the release `tessera` binary,
//!   8 concurrent callers, as concurrent sign-ins would be): what a sign-in pays;
//! - `inprocess`: `evaluate_in_process` on 2 threads: the evaluator alone, without process
//!   isolation.
//!
//! Usage: `tessera-bench-mapper [TESSERA_BIN]` (or the `TESSERA_BIN` environment variable);
//! `BENCH_DURATION` (default `5s`); `BENCH_ONLY=pool|inprocess` measures one side (for
//! profiling). Prints `pool_evals_per_sec=N` and `inprocess_evals_per_sec=N` on stdout for
//! `bench/mapper.sh`, and a readable summary on stderr.

use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tessera_mapper::{Mapper, MapperPool, PoolConfig, evaluate_in_process, worker_args};

const MAPPER: &str = include_str!("../github.jsonnet");
const CLAIMS: &str = include_str!("../claims.json");
const EXPECTED: &str = include_str!("../expected.json");

/// Matches the pool's two workers, and this machine's two cores.
const THREADS: usize = 2;
/// Callers in flight against the pool: enough to fill both workers' pipelines (4 requests each).
const POOL_CALLERS: usize = 8;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-mapper: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let duration =
        parse_duration(&std::env::var("BENCH_DURATION").unwrap_or_else(|_| "5s".into()))?;
    let program: PathBuf = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("TESSERA_BIN"))
        .map(PathBuf::from)
        .ok_or("give the tessera binary as the first argument or in TESSERA_BIN")?;
    if !program.is_file() {
        return Err(format!("no tessera binary at {}", program.display()));
    }
    let mapper = Mapper::compile("bench mapper", MAPPER).map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_str(CLAIMS).map_err(|e| format!("claims.json: {e}"))?;
    let expected: Value =
        serde_json::from_str(EXPECTED).map_err(|e| format!("expected.json: {e}"))?;

    // For profiling one side: BENCH_ONLY=pool or BENCH_ONLY=inprocess.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let pool = if only == "inprocess" {
        0.0
    } else {
        pool_rate(&program, &mapper, &claims, &expected, duration)?
    };
    let inproc = if only == "pool" {
        0.0
    } else {
        in_process_rate(&mapper, &claims, &expected, duration)?
    };
    eprintln!(
        "bench-mapper: {:.1}s each: pool ({THREADS} workers) {pool:.0} evals/s, in-process ({THREADS} threads) {inproc:.0} evals/s",
        duration.as_secs_f64()
    );
    println!("pool_evals_per_sec={pool:.0}");
    println!("inprocess_evals_per_sec={inproc:.0}");
    Ok(())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("BENCH_DURATION `{s}`: expected e.g. 5s, 500ms or 1m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("BENCH_DURATION `{s}`: the unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("BENCH_DURATION `{s}` must be a positive duration"))
}

fn pool_rate(
    program: &std::path::Path,
    mapper: &Mapper,
    claims: &Value,
    expected: &Value,
    duration: Duration,
) -> Result<f64, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async {
        let mut cfg = PoolConfig::new(program.to_path_buf(), worker_args());
        cfg.workers = THREADS;
        let pool = MapperPool::new(cfg);
        // Start both workers, let them parse the mapper, and check the answer.
        let warm: Vec<_> = (0..THREADS * 4)
            .map(|_| {
                let (pool, mapper, claims) = (pool.clone(), mapper.clone(), claims.clone());
                tokio::spawn(async move { pool.evaluate(&mapper, &claims).await })
            })
            .collect();
        for w in warm {
            let out = w
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if &out != expected {
                return Err(format!("the pool returned {out}, expected {expected}"));
            }
        }
        let count = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + duration;
        let callers: Vec<_> = (0..POOL_CALLERS)
            .map(|_| {
                let (pool, mapper, claims) = (pool.clone(), mapper.clone(), claims.clone());
                let count = count.clone();
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        pool.evaluate(&mapper, &claims)
                            .await
                            .map_err(|e| e.to_string())?;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        for c in callers {
            c.await.map_err(|e| e.to_string())??;
        }
        Ok(count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
    })
}

fn in_process_rate(
    mapper: &Mapper,
    claims: &Value,
    expected: &Value,
    duration: Duration,
) -> Result<f64, String> {
    let out = evaluate_in_process(mapper, claims).map_err(|e| e.to_string())?;
    if &out != expected {
        return Err(format!(
            "in-process evaluation returned {out}, expected {expected}"
        ));
    }
    let started = Instant::now();
    let deadline = started + duration;
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (mapper, claims) = (mapper.clone(), claims.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    evaluate_in_process(&mapper, &claims).map_err(|e| e.to_string())?;
                    n += 1;
                }
                Ok::<u64, String>(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in threads {
        total += t.join().map_err(|_| "an in-process thread panicked")??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
