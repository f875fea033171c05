//! The parent side: a fixed number of worker slots, each holding at most one live worker process.
//! A caller takes an idle slot, (re)spawns its worker if needed, and exchanges one request under
//! the time limit. A worker that times out, dies or answers nonsense is killed and its slot left
//! empty, so the next caller gets a fresh one; other slots are never touched.

use crate::MapperError;
use crate::eval::Failure;
use crate::mapper::Mapper;
use crate::wire::{
    FrameTooLarge, MAX_REQUEST_BYTES, RESPONSE_SLACK, RequestOut, Response, read_frame, write_frame,
};
use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::BufReader;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many mapper ids a parent remembers per worker; past it, it forgets them all and resends
/// sources (the worker's own cache is smaller still, and answers "unknown id" when it evicted).
const MAX_KNOWN_IDS: usize = 1024;

/// How long a dead worker gets to report its exit status.
const REAP_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The `tessera` binary (for a server: `std::env::current_exe()`).
    pub program: PathBuf,
    /// Arguments that start its worker mode: [`crate::worker_args`].
    pub args: Vec<OsString>,
    /// Worker processes, at most (default 2). Each evaluates one mapper at a time.
    pub workers: usize,
    /// Time limit per evaluation (default 1 s); the worker is killed when it passes.
    pub timeout: Duration,
    /// Address-space limit of each worker (`RLIMIT_AS`, default 256 MiB). It counts the mapped
    /// binary, the stacks and the heap, not just live data; 0 means no limit.
    pub memory_limit_bytes: u64,
    /// Largest mapper output, as compact JSON (default 256 KiB).
    pub output_cap: usize,
    /// How long a caller waits for an idle worker before getting `Unavailable` (default 10 s).
    pub queue_timeout: Duration,
}

impl PoolConfig {
    pub fn new(program: PathBuf, args: Vec<OsString>) -> Self {
        PoolConfig {
            program,
            args,
            workers: 2,
            timeout: Duration::from_secs(1),
            memory_limit_bytes: 256 * 1024 * 1024,
            output_cap: 256 * 1024,
            queue_timeout: Duration::from_secs(10),
        }
    }
}

/// Worker processes are spawned lazily, kill_on_drop.
#[derive(Clone)]
pub struct MapperPool(Arc<Shared>);

struct Shared {
    cfg: PoolConfig,
    /// One permit per slot in `idle`: holding a permit guarantees a slot to pop.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Slot>>,
}

#[derive(Default)]
struct Slot {
    worker: Option<Worker>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Mapper ids whose source this worker has been sent and accepted.
    known: HashSet<String>,
}

/// Why an exchange with a worker ended without a response.
enum Broken {
    /// The pipe closed: the worker died.
    Died(io::Error),
    TooLarge(usize),
    Garbled(String),
}

impl MapperPool {
    pub fn new(cfg: PoolConfig) -> Self {
        let workers = cfg.workers.max(1);
        let idle = (0..workers).map(|_| Slot::default()).collect();
        MapperPool(Arc::new(Shared {
            cfg,
            permits: Arc::new(Semaphore::new(workers)),
            idle: Mutex::new(idle),
        }))
    }

    /// Evaluates with `std.extVar('claims')` = claims (passed as a value, not re-parsed text).
    /// Output must be a JSON object.
    pub async fn evaluate(
        &self,
        mapper: &Mapper,
        claims: &serde_json::Value,
    ) -> Result<serde_json::Value, MapperError> {
        let cfg = &self.0.cfg;
        let name = mapper.name();
        let with_source = request(mapper, claims, true)?;
        let permit = tokio::time::timeout(cfg.queue_timeout, self.0.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                MapperError::Unavailable(format!(
                    "all {} mapper workers stayed busy for {:?}; raise the number of workers or make the mappers cheaper",
                    cfg.workers.max(1),
                    cfg.queue_timeout
                ))
            })?
            .map_err(|_| MapperError::Unavailable("the mapper pool is shutting down".into()))?;
        let mut lease = Lease::new(&self.0, permit);
        lease.ensure_worker(cfg).await?;
        lease.in_flight = true;
        let Some(worker) = lease.worker() else {
            return Err(MapperError::Unavailable(
                "internal error: no worker after spawning one".into(),
            ));
        };
        let exchanged = tokio::time::timeout(
            cfg.timeout,
            exchange(worker, mapper, claims, &with_source, cfg),
        )
        .await;
        let response = match exchanged {
            Err(_elapsed) => {
                lease.discard(Duration::ZERO).await;
                return Err(MapperError::Timeout {
                    name: name.to_owned(),
                    limit: cfg.timeout,
                });
            }
            Ok(Err(Broken::Died(e))) => {
                // The pipe closes a moment before the process is gone.
                let status = lease.discard(Duration::from_millis(200)).await;
                let detail = describe_death(status, &e, cfg.memory_limit_bytes);
                tracing::warn!(mapper = name, %detail, "mapper worker died");
                return Err(MapperError::ResourceLimit {
                    name: name.to_owned(),
                    detail,
                });
            }
            Ok(Err(Broken::TooLarge(bytes))) => {
                lease.discard(Duration::ZERO).await;
                return Err(MapperError::OutputTooLarge {
                    name: name.to_owned(),
                    bytes,
                    cap: cfg.output_cap,
                });
            }
            Ok(Err(Broken::Garbled(what))) => {
                lease.discard(Duration::ZERO).await;
                return Err(MapperError::Unavailable(format!(
                    "the mapper worker answered {name} with {what}; it was replaced"
                )));
            }
            Ok(Ok(response)) => response,
        };
        lease.in_flight = false;
        if response.retire {
            lease.discard(Duration::ZERO).await;
        }
        if let Some(failure) = response.failure {
            return Err(failure.into_failure().into_error(name));
        }
        match response.output {
            Some(output @ serde_json::Value::Object(_)) => Ok(output),
            Some(other) => Err(Failure::NotAnObject(json_type(&other)).into_error(name)),
            None => Err(MapperError::Unavailable(format!(
                "the mapper worker answered {name} with neither output nor error"
            ))),
        }
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

fn request(
    mapper: &Mapper,
    claims: &serde_json::Value,
    with_source: bool,
) -> Result<Vec<u8>, MapperError> {
    let body = serde_json::to_vec(&RequestOut {
        id: mapper.id(),
        source: with_source.then(|| mapper.source()),
        claims,
    })
    .map_err(|e| MapperError::Runtime {
        name: mapper.name().to_owned(),
        message: format!("the claims cannot be encoded: {e}"),
    })?;
    if body.len() > MAX_REQUEST_BYTES {
        return Err(MapperError::Runtime {
            name: mapper.name().to_owned(),
            message: format!(
                "the claims and source are {} bytes; at most {MAX_REQUEST_BYTES} bytes can be passed to a mapper",
                body.len()
            ),
        });
    }
    Ok(body)
}

/// One request/response, resending the source when the worker does not know the mapper.
async fn exchange(
    worker: &mut Worker,
    mapper: &Mapper,
    claims: &serde_json::Value,
    with_source: &[u8],
    cfg: &PoolConfig,
) -> Result<Response, Broken> {
    let known = worker.known.contains(mapper.id());
    let first = if known {
        // Cannot fail where `with_source` succeeded: it is the same request minus the source.
        request(mapper, claims, false).map_err(|e| Broken::Garbled(e.to_string()))?
    } else {
        with_source.to_vec()
    };
    let mut response = round_trip(worker, &first, cfg).await?;
    if response.unknown_id {
        if !known {
            return Err(Broken::Garbled(
                "\"unknown id\" to a request that carried the source".into(),
            ));
        }
        worker.known.remove(mapper.id());
        response = round_trip(worker, with_source, cfg).await?;
        if response.unknown_id {
            return Err(Broken::Garbled(
                "\"unknown id\" to a request that carried the source".into(),
            ));
        }
    }
    if worker.known.len() >= MAX_KNOWN_IDS {
        worker.known.clear();
    }
    // A source that failed to parse is not cached by the worker; it is resent next time, and
    // fails the same way.
    if !matches!(
        response.failure,
        Some(crate::wire::WireFailure::Syntax { .. })
    ) {
        worker.known.insert(mapper.id().to_owned());
    }
    Ok(response)
}

async fn round_trip(
    worker: &mut Worker,
    body: &[u8],
    cfg: &PoolConfig,
) -> Result<Response, Broken> {
    write_frame(&mut worker.stdin, body)
        .await
        .map_err(Broken::Died)?;
    let frame = read_frame(&mut worker.stdout, cfg.output_cap + RESPONSE_SLACK)
        .await
        .map_err(Broken::Died)?;
    let frame = frame.map_err(|FrameTooLarge(len)| Broken::TooLarge(len))?;
    serde_json::from_slice(&frame)
        .map_err(|e| Broken::Garbled(format!("an unreadable response ({e})")))
}

fn describe_death(status: Option<ExitStatus>, io_error: &io::Error, memory_limit: u64) -> String {
    use std::os::unix::process::ExitStatusExt;
    let limit = if memory_limit == 0 {
        "no memory limit".to_owned()
    } else {
        format!("memory limit {} MiB", memory_limit / (1024 * 1024))
    };
    match status {
        Some(s) => match s.signal() {
            Some(sig) => format!("killed by signal {sig} ({}), {limit}", signal_name(sig)),
            None => format!("exited with status {}, {limit}", s.code().unwrap_or(-1)),
        },
        None => format!("pipe closed: {io_error}, {limit}"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => "SIGABRT: an allocation failed or the stack overflowed",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        _ => "a signal",
    }
}

/// A slot taken out of the pool. Dropping it puts the slot back; if a request was in flight (the
/// caller's future was cancelled mid-exchange) the worker is killed first, because its pipes may
/// hold half a frame.
struct Lease {
    shared: Arc<Shared>,
    slot: Option<Slot>,
    in_flight: bool,
    // Released after `Drop::drop` returned the slot.
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    fn new(shared: &Arc<Shared>, permit: OwnedSemaphorePermit) -> Self {
        let slot = shared
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        Lease {
            shared: shared.clone(),
            slot: Some(slot),
            in_flight: false,
            _permit: permit,
        }
    }

    fn worker(&mut self) -> Option<&mut Worker> {
        self.slot.as_mut().and_then(|s| s.worker.as_mut())
    }

    /// Spawns the slot's worker unless a live one is there.
    async fn ensure_worker(&mut self, cfg: &PoolConfig) -> Result<(), MapperError> {
        let Some(slot) = self.slot.as_mut() else {
            return Err(MapperError::Unavailable(
                "internal error: empty lease".into(),
            ));
        };
        if let Some(worker) = &mut slot.worker {
            // It may have died while idle (the kernel's OOM killer, an operator's kill).
            if matches!(worker.child.try_wait(), Ok(None)) {
                return Ok(());
            }
            slot.worker = None;
        }
        slot.worker = Some(spawn(cfg)?);
        Ok(())
    }

    /// Kills and reaps the worker, after `grace` to exit on its own; the slot goes back empty.
    /// Returns how the process ended.
    async fn discard(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.in_flight = false;
        let mut worker = self.slot.as_mut()?.worker.take()?;
        if let Ok(Ok(status)) = tokio::time::timeout(grace, worker.child.wait()).await {
            return Some(status);
        }
        let _ = worker.child.start_kill();
        tokio::time::timeout(REAP_WAIT, worker.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(mut slot) = self.slot.take() else {
            return;
        };
        if self.in_flight {
            // kill_on_drop: the process is killed and reaped in the background.
            slot.worker = None;
        }
        self.shared
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(slot);
    }
}

fn spawn(cfg: &PoolConfig) -> Result<Worker, MapperError> {
    let mut child = Command::new(&cfg.program)
        .args(&cfg.args)
        .arg("--memory-limit")
        .arg(cfg.memory_limit_bytes.to_string())
        .arg("--output-cap")
        .arg(cfg.output_cap.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Mapper `std.trace` output and crash messages; never the protocol stream.
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            MapperError::Unavailable(format!(
                "cannot start the mapper worker `{}`: {e}",
                cfg.program.display()
            ))
        })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(MapperError::Unavailable(
            "the mapper worker was started without pipes".into(),
        ));
    };
    Ok(Worker {
        child,
        stdin,
        stdout: BufReader::new(stdout),
        known: HashSet::new(),
    })
}
