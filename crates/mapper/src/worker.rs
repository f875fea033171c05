//! The worker process: locks itself down, then answers one request at a time on stdin/stdout.
//!
//! Sandbox layers (security review L9). Under the language sandbox, which is the barrier, the
//! worker is a separate process that starts with an empty environment (the server's DSN and
//! `SECRETS_*` are not there to read), with no descriptors but its pipes and stderr, no new
//! privileges, no capabilities, and limits on memory, CPU time, descriptors, processes and core
//! dumps. Where the kernel offers them it adds Landlock (no file can be opened by path, which
//! also keeps it out of the server's `/proc/<pid>/environ`; no TCP; from Linux 6.12 no signals
//! to other processes) and a seccomp filter (no sockets, no `execve`, no new processes or
//! threads, no `ptrace`, no io_uring). Both are best effort because both depend on the kernel:
//! Landlock needs 5.13 and the LSM enabled, and its network and signal rules 6.7 and 6.12; the
//! seccomp filter is built for x86-64 and aarch64 only. On a kernel without them the worker
//! runs with the other layers and says nothing. The seccomp filter is a short denylist, not an
//! allowlist: the system calls that glibc, the Rust standard library and jrsonnet make vary with
//! their versions and the kernel, and one missing from an allowlist would fail every
//! evaluation in production, while nothing on the denylist is needed to evaluate Jsonnet.
//! See [`crate::lockdown`] for the details and the order in which the layers are applied.

use crate::eval::{Evaluator, Failure};
use crate::lockdown;
use crate::wire::{
    MAX_REQUEST_BYTES, RequestIn, Response, WireFailure, read_frame_sync, write_frame_sync,
};
use std::ffi::OsString;
use std::fs::File;
use std::process::ExitCode;
use std::time::Duration;

/// The hidden subcommand of the `tessera` binary that runs [`run_worker`].
const WORKER_SUBCOMMAND: &str = "__mapper-worker";

/// The arguments that start the worker mode of the `tessera` binary, so a server can spawn
/// `std::env::current_exe()` with them. The pool appends `--memory-limit` and `--output-cap`.
pub fn worker_args() -> Vec<OsString> {
    vec![OsString::from(WORKER_SUBCOMMAND)]
}

/// Entry point for the hidden worker mode of the tessera binary: locks itself down (see
/// `lockdown.rs`: no inherited descriptors, `no_new_privs`, Landlock and seccomp where the
/// kernel has them, resource limits, no capabilities), then serves requests on stdin/stdout
/// until EOF. The pool starts it with an empty environment.
///
/// Call it before starting any async runtime or threads: the address-space limit counts every
/// thread's stack and allocator arena, the sandbox binds only threads started after it, and
/// stdout must carry nothing but protocol frames.
pub fn run_worker(memory_limit_bytes: u64, output_cap: usize) -> ExitCode {
    let budget = Duration::from_secs(lockdown::CPU_RETIRE_SECS);
    run_worker_retiring_after(memory_limit_bytes, output_cap, budget)
}

/// [`run_worker`] with a CPU budget other than its 600 s (`lockdown::CPU_RETIRE_SECS`), for
/// tests of workers that retire.
#[doc(hidden)]
pub fn run_worker_retiring_after(
    memory_limit_bytes: u64,
    output_cap: usize,
    cpu_budget: Duration,
) -> ExitCode {
    match lockdown::apply(memory_limit_bytes) {
        Ok(locked) => serve(locked.output, output_cap, cpu_budget),
        Err(e) => {
            eprintln!("tessera mapper worker: cannot lock itself down: {e}");
            ExitCode::from(3)
        }
    }
}

fn serve(mut output: File, output_cap: usize, cpu_budget: Duration) -> ExitCode {
    let mut input = std::io::stdin().lock();
    let mut evaluator = Evaluator::new();
    let mut cpu = lockdown::CpuBudget::retiring_after(cpu_budget);
    loop {
        let frame = match read_frame_sync(&mut input, MAX_REQUEST_BYTES) {
            Ok(Some(frame)) => frame,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tessera mapper worker: cannot read a request: {e}");
                return ExitCode::from(3);
            }
        };
        let mut response = handle(&mut evaluator, &frame, output_cap);
        // Replaced before its lifetime CPU limit can end it mid-request. Not on an "unknown id"
        // answer: the pool sends that request again, with the source, to this same worker.
        if !response.unknown_id {
            response.retire |= cpu.spent();
        }
        let retire = response.retire;
        let body = serde_json::to_vec(&response).unwrap_or_else(|e| {
            let fallback = failed(Failure::Runtime(format!(
                "the worker could not encode the output: {e}"
            )));
            serde_json::to_vec(&fallback).unwrap_or_default()
        });
        if let Err(e) = write_frame_sync(&mut output, &body) {
            eprintln!("tessera mapper worker: cannot write a response: {e}");
            return ExitCode::from(3);
        }
        if retire {
            return ExitCode::SUCCESS;
        }
    }
}

fn failed(failure: Failure) -> Response {
    Response {
        failure: Some(WireFailure::from(failure)),
        ..Response::default()
    }
}

fn handle(evaluator: &mut Evaluator, frame: &[u8], output_cap: usize) -> Response {
    let request: RequestIn = match serde_json::from_slice(frame) {
        Ok(r) => r,
        Err(e) => {
            return failed(Failure::Runtime(format!(
                "the claims could not be passed to the mapper: {e}"
            )));
        }
    };
    if !evaluator.is_cached(&request.id) {
        let Some(source) = &request.source else {
            return Response {
                unknown_id: true,
                ..Response::default()
            };
        };
        if let Err(failure) = evaluator.prepare(&request.id, source) {
            return failed(failure);
        }
    }
    let mut response = match evaluator.evaluate(&request.id, request.claims, output_cap) {
        None => Response {
            unknown_id: true,
            ..Response::default()
        },
        Some(Ok((output, _size))) => Response {
            output: Some(output),
            ..Response::default()
        },
        Some(Err(failure)) => failed(failure),
    };
    response.retire = evaluator.poisoned();
    response
}
