//! Jsonnet claim mappers (Kratos's `mapper_url`): `std.extVar('claims')` in, `{identity: …}` out.
//!
//! > Architecture invariant: user code runs only inside worker processes with limits (time,
//! > address space, output size; no imports, no `std.native`); the calling process only parses,
//! > and parsing runs no user code. A hostile mapper can at worst kill its own worker, which the
//! > [`MapperPool`] replaces. (`evaluate_in_process` exists for tests and benchmarks only.)
//!
//! The worker is the `tessera` binary itself in a hidden mode ([`worker_args`], [`run_worker`]),
//! speaking length-prefixed JSON frames over stdin/stdout. Workers cache parsed mappers by
//! [`Mapper::id`]; the pool sends a mapper's source to a worker only the first time.

mod error;
mod eval;
mod lockdown;
mod mapper;
mod pool;
#[cfg(test)]
mod tests;
mod wire;
mod worker;

pub use error::MapperError;
pub use mapper::Mapper;
pub use pool::{MapperPool, PoolConfig};
#[doc(hidden)]
pub use worker::run_worker_retiring_after;
pub use worker::{run_worker, worker_args};

/// Same evaluation the worker does, in this process, with no limits except the import ban — for
/// tests and benchmarks only: a hostile mapper can hang or exhaust this process.
pub fn evaluate_in_process(
    mapper: &Mapper,
    claims: &serde_json::Value,
) -> Result<serde_json::Value, MapperError> {
    eval::evaluate_in_process(mapper, claims)
}
