//! The worker process: limits itself, then answers one request at a time on stdin/stdout.

use crate::eval::{Evaluator, Failure};
use crate::wire::{
    MAX_REQUEST_BYTES, RequestIn, Response, WireFailure, read_frame_sync, write_frame_sync,
};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

/// The hidden subcommand of the `tessera` binary that runs [`run_worker`].
const WORKER_SUBCOMMAND: &str = "__mapper-worker";

/// The arguments that start the worker mode of the `tessera` binary, so a server can spawn
/// `std::env::current_exe()` with them. The pool appends `--memory-limit` and `--output-cap`.
pub fn worker_args() -> Vec<OsString> {
    vec![OsString::from(WORKER_SUBCOMMAND)]
}

/// Entry point for the hidden worker mode of the tessera binary: sets rlimits, then serves
/// requests on stdin/stdout until EOF.
///
/// Call it before starting any async runtime or threads: the address-space limit counts every
/// thread's stack and allocator arena, and stdout must carry nothing but protocol frames.
pub fn run_worker(memory_limit_bytes: u64, output_cap: usize) -> ExitCode {
    if let Err(e) = limit_resources(memory_limit_bytes) {
        eprintln!("tessera mapper worker: cannot set resource limits: {e}");
        return ExitCode::from(3);
    }
    exit_with_parent();
    serve(output_cap)
}

fn limit_resources(memory_limit_bytes: u64) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    // One arena: glibc reserves 64 MiB of address space per extra arena, which the address-space
    // limit would count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    set_limit(libc::RLIMIT_CORE, 0)?;
    if memory_limit_bytes > 0 {
        set_limit(libc::RLIMIT_AS, memory_limit_bytes)?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_os = "linux"))]
type Resource = libc::c_int;

fn set_limit(resource: Resource, bytes: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A worker stuck in a loop never reads its stdin again, so it would not notice its parent is
/// gone; this watchdog ends it when it is re-parented.
fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    let _ = std::thread::Builder::new()
        .name("parent-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                if std::os::unix::process::parent_id() != parent {
                    // SAFETY: _exit ends the process at once, without running any Rust code that
                    // could observe the evaluation thread's state.
                    unsafe { libc::_exit(1) }
                }
            }
        });
}

fn serve(output_cap: usize) -> ExitCode {
    let mut input = std::io::stdin().lock();
    // Unbuffered: one write per response. (Stdout's own line buffering would split a frame
    // wherever its bytes happen to contain a newline.)
    let mut output = match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            eprintln!("tessera mapper worker: cannot use stdout: {e}");
            return ExitCode::from(3);
        }
    };
    let mut evaluator = Evaluator::new();
    loop {
        let frame = match read_frame_sync(&mut input, MAX_REQUEST_BYTES) {
            Ok(Some(frame)) => frame,
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tessera mapper worker: cannot read a request: {e}");
                return ExitCode::from(3);
            }
        };
        let response = handle(&mut evaluator, &frame, output_cap);
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
