//! Tessera's domain model: identities, credentials, sessions, self-service flows and their UI
//! nodes, identity schemas and password rules.
//!
//! Architecture invariant: this crate knows nothing about HTTP, SQL or configuration files. It
//! holds the shapes that every other crate agrees on (serialised exactly as Ory Kratos does) and
//! the pure rules that decide what is valid.

pub mod crypto;
pub mod duration;
pub mod error;
pub mod flow;
pub mod identity;
pub mod org;
pub mod password;
pub mod schema;
pub mod session;
pub mod template;
pub mod text;
pub mod timefmt;
pub mod ui;

pub use error::{Error, ErrorId, ErrorKind, Result, StoredError};
