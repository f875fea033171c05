//! The parent side: a fixed number of worker slots, each holding at most one live worker process
//! and the task that drives it.
//!
//! A caller picks the least-loaded slot (an idle worker when there is one), and its request is
//! written to that worker's stdin. Under load a worker gets up to [`PIPELINE_DEPTH`] requests at
//! once, so it finds the next request waiting when it finishes one instead of sleeping until the
//! parent wakes up: context switches, not evaluation, are what a ping-pong protocol spends most
//! of its time on. Answers come back in order.
//!
//! The driver enforces the time limit on the request at the head of the line (the one being
//! evaluated; its clock starts when the previous answer arrived). A worker that times out, dies
//! or answers nonsense is killed: the request it was evaluating fails, the requests queued
//! behind it had not started and are retried on another worker, and the slot is respawned on
//! demand. Other slots are never touched.

use crate::MapperError;
use crate::eval::Failure;
use crate::mapper::Mapper;
use crate::wire::{
    FrameTooLarge, MAX_REQUEST_BYTES, RESPONSE_SLACK, Response, WireFailure, read_frame,
    request_body, write_frame,
};
use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::BufReader;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

/// Requests a worker holds at once: the one it evaluates and those queued behind it. Measured
/// with `bench/mapper.sh` on 2 cores: 1 gives about 54k evaluations/s, 2 about 76k, 4 about
/// 94k. The price: under load, a hostile mapper delays up to 3 others by its time limit before
/// they are moved to another worker.
const PIPELINE_DEPTH: usize = 4;

/// How often one evaluation may be moved to another worker because the one it waited on was
/// killed for another request's sake (within the queue timeout).
const MAX_ATTEMPTS: usize = 16;

/// How many mapper ids a parent remembers per worker; past it, it forgets them all and resends
/// sources (the worker's own cache is smaller still, and answers "unknown id" when it evicted).
const MAX_KNOWN_IDS: usize = 1024;

/// How long a worker whose pipe closed gets to report its exit status.
const DEATH_GRACE: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The `tessera` binary (for a server: `std::env::current_exe()`). Give a path: workers
    /// start with an empty environment, so a bare name is not looked up in the server's `PATH`.
    pub program: PathBuf,
    /// Arguments that start its worker mode: [`crate::worker_args`].
    pub args: Vec<OsString>,
    /// Worker processes, at most (default 2). Each evaluates one mapper at a time.
    pub workers: usize,
    /// Time limit per evaluation (default 1 s); the worker is killed when it passes. Keep it
    /// well under a minute: a worker's lifetime CPU limit leaves 60 s of CPU to the last request
    /// it starts before it retires (see `lockdown::CPU_RETIRE_SECS`).
    pub timeout: Duration,
    /// Address-space limit of each worker (`RLIMIT_AS`, default 256 MiB). It counts the mapped
    /// binary, the stacks and the heap, not just live data; 0 means no limit.
    pub memory_limit_bytes: u64,
    /// Largest mapper output, as compact JSON (default 256 KiB).
    pub output_cap: usize,
    /// How long a caller waits for a worker with room before getting `Unavailable` (default
    /// 10 s).
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
    cfg: Arc<PoolConfig>,
    /// `workers × PIPELINE_DEPTH` permits; a request holds one until it is answered, so some
    /// slot always has room for a permit holder.
    permits: Arc<Semaphore>,
    slots: Mutex<Vec<Option<Handle>>>,
}

/// The pool's side of a live worker.
#[derive(Clone)]
struct Handle {
    jobs: mpsc::UnboundedSender<Job>,
    /// Requests sent to this worker (or on their way) and not answered yet.
    load: Arc<AtomicUsize>,
}

struct Job {
    mapper: Mapper,
    claims_json: Arc<[u8]>,
    reply: oneshot::Sender<Outcome>,
    load: Arc<AtomicUsize>,
    _permit: OwnedSemaphorePermit,
}

impl Job {
    /// Answers the caller (who may have gone) and frees the job's place.
    fn finish(self, outcome: Outcome) {
        self.load.fetch_sub(1, Ordering::AcqRel);
        let _ = self.reply.send(outcome);
    }
}

enum Outcome {
    Answered(Response),
    Timeout,
    Died(String),
    TooLarge(usize),
    Garbled(String),
    /// The worker ended before it started on this request: send it elsewhere.
    Retry,
}

impl MapperPool {
    pub fn new(cfg: PoolConfig) -> Self {
        let workers = cfg.workers.max(1);
        MapperPool(Arc::new(Shared {
            cfg: Arc::new(cfg),
            permits: Arc::new(Semaphore::new(workers * PIPELINE_DEPTH)),
            slots: Mutex::new(vec![None; workers]),
        }))
    }

    /// Evaluates with `std.extVar('claims')` = claims (passed as a value, not re-parsed text).
    /// Output must be a JSON object.
    pub async fn evaluate(
        &self,
        mapper: &Mapper,
        claims: &serde_json::Value,
    ) -> Result<serde_json::Value, MapperError> {
        let result = self.evaluate_once(mapper, claims).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(MapperError::Timeout { .. }) => "timeout",
            Err(MapperError::ResourceLimit { .. } | MapperError::OutputTooLarge { .. }) => "limit",
            Err(MapperError::Unavailable(_)) => "unavailable",
            Err(_) => "error",
        };
        metrics::counter!("tessera_mapper_evaluations_total", "outcome" => outcome).increment(1);
        result
    }

    async fn evaluate_once(
        &self,
        mapper: &Mapper,
        claims: &serde_json::Value,
    ) -> Result<serde_json::Value, MapperError> {
        let cfg = &self.0.cfg;
        let name = mapper.name();
        let claims_json: Arc<[u8]> = serialize_claims(mapper, claims)?.into();
        let queue_deadline = Instant::now() + cfg.queue_timeout;
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 && Instant::now() >= queue_deadline {
                break;
            }
            let permit = tokio::time::timeout_at(
                queue_deadline,
                self.0.permits.clone().acquire_owned(),
            )
            .await
            .map_err(|_| {
                MapperError::Unavailable(format!(
                    "all {} mapper workers stayed busy for {:?}; raise the number of workers or make the mappers cheaper",
                    cfg.workers.max(1),
                    cfg.queue_timeout
                ))
            })?
            .map_err(|_| MapperError::Unavailable("the mapper pool is shutting down".into()))?;
            let handle = self.pick()?;
            let (reply, answer) = oneshot::channel();
            let job = Job {
                mapper: mapper.clone(),
                claims_json: claims_json.clone(),
                reply,
                load: handle.load.clone(),
                _permit: permit,
            };
            if let Err(mpsc::error::SendError(job)) = handle.jobs.send(job) {
                // Its driver just ended.
                job.finish(Outcome::Retry);
                continue;
            }
            // The driver always answers; the bound only guards against a bug there.
            let bound = cfg.timeout * (PIPELINE_DEPTH as u32 + 1) + Duration::from_secs(5);
            let outcome = match tokio::time::timeout(bound, answer).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(_)) => Outcome::Retry,
                Err(_) => {
                    return Err(MapperError::Unavailable(format!(
                        "the mapper worker did not answer {name} within {bound:?}"
                    )));
                }
            };
            return match outcome {
                Outcome::Retry => continue,
                Outcome::Answered(response) => answered(name, response),
                Outcome::Timeout => Err(MapperError::Timeout {
                    name: name.to_owned(),
                    limit: cfg.timeout,
                }),
                Outcome::Died(detail) => {
                    tracing::warn!(mapper = name, %detail, "mapper worker died");
                    Err(MapperError::ResourceLimit {
                        name: name.to_owned(),
                        detail,
                    })
                }
                Outcome::TooLarge(bytes) => Err(MapperError::OutputTooLarge {
                    name: name.to_owned(),
                    bytes,
                    cap: cfg.output_cap,
                }),
                Outcome::Garbled(what) => Err(MapperError::Unavailable(format!(
                    "the mapper worker answered {name} with {what}; it was replaced"
                ))),
            };
        }
        Err(MapperError::Unavailable(format!(
            "{name} waited more than {:?} for a mapper worker: other mappers kept making the workers fail; try again",
            cfg.queue_timeout
        )))
    }

    /// The live worker with the least load (an idle one if any, preferring low slot numbers so
    /// a light load stays on warm workers), spawning one into an empty slot when every live
    /// worker is busy.
    fn pick(&self) -> Result<Handle, MapperError> {
        let mut slots = self
            .0
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for slot in slots.iter_mut() {
            if slot.as_ref().is_some_and(|h| h.jobs.is_closed()) {
                *slot = None;
            }
        }
        let best = slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|h| (h.load.load(Ordering::Acquire), i)))
            .min();
        let empty = slots.iter().position(Option::is_none);
        let index = match (best, empty) {
            (Some((0, i)), _) | (Some((_, i)), None) => i,
            (_, Some(i)) => {
                slots[i] = Some(spawn(&self.0.cfg)?);
                i
            }
            (None, None) => {
                return Err(MapperError::Unavailable(
                    "internal error: the pool has no worker slots".into(),
                ));
            }
        };
        let Some(handle) = slots[index].clone() else {
            return Err(MapperError::Unavailable(
                "internal error: empty worker slot".into(),
            ));
        };
        handle.load.fetch_add(1, Ordering::AcqRel);
        Ok(handle)
    }
}

fn answered(name: &str, response: Response) -> Result<serde_json::Value, MapperError> {
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

fn serialize_claims(mapper: &Mapper, claims: &serde_json::Value) -> Result<Vec<u8>, MapperError> {
    let json = serde_json::to_vec(claims).map_err(|e| MapperError::Runtime {
        name: mapper.name().to_owned(),
        message: format!("the claims cannot be encoded: {e}"),
    })?;
    let limit = MAX_REQUEST_BYTES.saturating_sub(mapper.source().len() + 1024);
    if json.len() > limit {
        return Err(MapperError::Runtime {
            name: mapper.name().to_owned(),
            message: format!(
                "the claims are {} bytes of JSON; at most {limit} bytes can be passed to this mapper",
                json.len()
            ),
        });
    }
    Ok(json)
}

fn spawn(cfg: &Arc<PoolConfig>) -> Result<Handle, MapperError> {
    let mut child = Command::new(&cfg.program)
        // Nothing from the server's environment (its DSN, `SECRETS_*`): the worker needs none of
        // it, not even PATH (`program` is a path, and the worker starts nothing).
        .env_clear()
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
    let (jobs, receiver) = mpsc::unbounded_channel();
    let driver = Driver {
        cfg: cfg.clone(),
        child,
        stdin,
        jobs: receiver,
        queue: VecDeque::new(),
        known: HashSet::new(),
    };
    tokio::spawn(driver.run(stdout));
    Ok(Handle {
        jobs,
        load: Arc::new(AtomicUsize::new(0)),
    })
}

/// A request written to the worker and not answered yet.
struct Sent {
    job: Job,
    with_source: bool,
}

/// Owns one worker process: writes its requests, matches its answers (in order) and enforces
/// the time limit.
struct Driver {
    cfg: Arc<PoolConfig>,
    child: Child,
    stdin: ChildStdin,
    jobs: mpsc::UnboundedReceiver<Job>,
    queue: VecDeque<Sent>,
    /// Mapper ids whose source this worker was sent.
    known: HashSet<String>,
}

/// Why a driver stops, with the outcome for the request at the head of its queue.
struct End(Option<Outcome>);

impl Driver {
    async fn run(mut self, stdout: ChildStdout) {
        // Frames are read by a task of their own: reading a frame is not cancellable midway,
        // and the driver must stay free to notice a timeout.
        let (frames_tx, mut frames) = mpsc::channel(PIPELINE_DEPTH + 1);
        let cap = self.cfg.output_cap + RESPONSE_SLACK;
        let reader = tokio::spawn(async move {
            let mut stdout = BufReader::new(stdout);
            loop {
                let frame = read_frame(&mut stdout, cap).await;
                let more = matches!(frame, Ok(Ok(_)));
                if frames_tx.send(frame).await.is_err() || !more {
                    break;
                }
            }
        });
        // When the request at the head of the queue started: when it was written to an idle
        // worker, or when the answer before it arrived.
        let mut head_started = Instant::now();
        let end = loop {
            let deadline = head_started + self.cfg.timeout;
            tokio::select! {
                biased;
                frame = frames.recv() => {
                    let frame = match frame {
                        Some(Ok(Ok(body))) => body,
                        Some(Ok(Err(FrameTooLarge(len)))) => break End(Some(Outcome::TooLarge(len))),
                        Some(Err(e)) => break self.died(&e).await,
                        None => break self.died(&io::Error::other("no answer")).await,
                    };
                    head_started = Instant::now();
                    if let Err(end) = self.answer(&frame, head_started).await {
                        break end;
                    }
                }
                () = tokio::time::sleep_until(deadline), if !self.queue.is_empty() => {
                    break End(Some(Outcome::Timeout));
                }
                job = self.jobs.recv(), if self.queue.len() < PIPELINE_DEPTH => {
                    let Some(job) = job else {
                        // The pool is gone.
                        break End(None);
                    };
                    if job.reply.is_closed() {
                        // The caller gave up while the job waited.
                        job.finish(Outcome::Retry);
                        continue;
                    }
                    if self.queue.is_empty() {
                        head_started = Instant::now();
                    }
                    let with_source = !self.known.contains(job.mapper.id());
                    if let Err(end) = self.send(job, with_source, head_started).await {
                        break end;
                    }
                }
            }
        };
        self.stop(end, reader).await;
    }

    /// Writes a request; the write may wait for the worker to read, but never past the head
    /// request's deadline.
    async fn send(
        &mut self,
        job: Job,
        with_source: bool,
        head_started: Instant,
    ) -> Result<(), End> {
        if with_source {
            if self.known.len() >= MAX_KNOWN_IDS {
                self.known.clear();
            }
            // Optimistically: requests right behind this one need not carry the source again.
            self.known.insert(job.mapper.id().to_owned());
        }
        let source = with_source.then(|| job.mapper.source());
        let body = request_body(job.mapper.id(), source, &job.claims_json);
        self.queue.push_back(Sent { job, with_source });
        let deadline = head_started + self.cfg.timeout;
        match tokio::time::timeout_at(deadline, write_frame(&mut self.stdin, &body)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.died(&e).await),
            Err(_) => Err(End(Some(Outcome::Timeout))),
        }
    }

    /// Matches an answer to the request at the head of the queue.
    async fn answer(&mut self, frame: &[u8], now: Instant) -> Result<(), End> {
        let response: Response = serde_json::from_slice(frame).map_err(|e| {
            End(Some(Outcome::Garbled(format!(
                "an unreadable response ({e})"
            ))))
        })?;
        let Some(head) = self.queue.pop_front() else {
            return Err(End(Some(Outcome::Garbled(
                "an answer nobody asked for".into(),
            ))));
        };
        if response.unknown_id {
            if head.with_source {
                self.queue.push_front(head);
                return Err(End(Some(Outcome::Garbled(
                    "\"unknown id\" to a request that carried the source".into(),
                ))));
            }
            // The worker evicted it: send it again with the source, at the back of the line.
            self.known.remove(head.job.mapper.id());
            return self.send(head.job, true, now).await;
        }
        if matches!(response.failure, Some(WireFailure::Syntax { .. })) {
            // Not cached by the worker: the source goes along next time too.
            self.known.remove(head.job.mapper.id());
        }
        let retire = response.retire;
        head.job.finish(Outcome::Answered(response));
        if retire {
            return Err(End(None));
        }
        Ok(())
    }

    /// The worker's pipe closed: find out how it ended.
    async fn died(&mut self, e: &io::Error) -> End {
        let status = tokio::time::timeout(DEATH_GRACE, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        if status.is_some_and(|s| s.success()) {
            // It retired (its answer asked to be replaced) while the next request was being
            // written to it: nothing it was asked failed, so every request it had not answered
            // yet goes to another worker (evaluations are pure, so a repeat is harmless).
            return End(None);
        }
        End(Some(Outcome::Died(describe_death(
            status,
            e,
            self.cfg.memory_limit_bytes,
        ))))
    }

    /// Kills the worker, answers the request it was on with `end`, and sends every other
    /// request of this worker elsewhere.
    async fn stop(mut self, end: End, reader: tokio::task::JoinHandle<()>) {
        self.jobs.close();
        let _ = self.child.start_kill();
        reader.abort();
        let mut queue = std::mem::take(&mut self.queue).into_iter();
        if let (Some(outcome), Some(head)) = (end.0, queue.next()) {
            head.job.finish(outcome);
        }
        for sent in queue {
            sent.job.finish(Outcome::Retry);
        }
        while let Ok(job) = self.jobs.try_recv() {
            job.finish(Outcome::Retry);
        }
        // Reap it, so no zombie is left behind.
        let _ = self.child.wait().await;
    }
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
        libc::SIGXCPU => "SIGXCPU: the worker's lifetime CPU limit",
        _ => "a signal",
    }
}
