use std::time::Duration;

/// Every way a mapper can fail. `name` is the caller's description of the mapper (for example
/// "provider `github` mapper"), so each message says which mapper, where, and what to change.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum MapperError {
    #[error("{name}, line {line} column {column}: {message}")]
    Syntax {
        name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{name} failed: {message}")]
    Runtime { name: String, message: String },
    #[error(
        "{name} did not finish within {limit:?} and was stopped; look for unbounded recursion or loops over large ranges"
    )]
    Timeout { name: String, limit: Duration },
    #[error(
        "{name} was stopped because its worker process died ({detail}); the mapper most likely exceeded the memory limit or the stack: make it build smaller values"
    )]
    ResourceLimit { name: String, detail: String },
    #[error(
        "{name} produced more than {cap} bytes of JSON (at least {bytes}); map only the fields the identity schema needs"
    )]
    OutputTooLarge {
        name: String,
        bytes: usize,
        cap: usize,
    },
    #[error(
        "{name} returned {found}, but a mapper must return an object such as {{identity: {{traits: {{…}}}}}}"
    )]
    NotAnObject { name: String, found: &'static str },
    #[error("no mapper worker is available: {0}")]
    Unavailable(String),
}

/// Jsonnet's type names, as `&'static str` so they survive the trip through the worker protocol.
pub(crate) fn type_name(name: &str) -> &'static str {
    [
        "array", "string", "number", "boolean", "null", "function", "object",
    ]
    .into_iter()
    .find(|t| *t == name)
    .unwrap_or("unknown")
}

/// "an array", for `NotAnObject`.
pub(crate) fn type_phrase(type_name: &str) -> &'static str {
    match type_name {
        "array" => "an array",
        "string" => "a string",
        "number" => "a number",
        "boolean" => "a boolean",
        "null" => "null",
        "function" => "a function",
        "object" => "an object",
        _ => "a value that is not an object",
    }
}
