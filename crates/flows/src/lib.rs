//! The self-service engine: login, registration, settings and logout flows with the password
//! method, session issuance, and the identity administration rules behind the admin API.
//!
//! Architecture invariant: no HTTP types here. Handlers translate requests into calls on
//! [`Engine`] and its results back into responses; every business rule (CSRF binding, flow
//! expiry, schema validation, password policy, which identifier belongs to whom) lives here.
//! Data walks one way: engine → store.

pub mod admin;
pub mod backfill;
pub mod code_auth;
pub mod engine;
pub mod forms;
pub mod hooks;
pub mod lifecycle;
pub mod lifecycle_link;
pub mod limits;
pub mod login;
pub mod lookup;
pub mod mfa;
pub mod orgs;
pub mod registration;
pub mod sessions;
pub mod settings;
pub mod social;
pub mod submit;

pub use engine::{Engine, Outcome, Schemas};

#[cfg(test)]
mod code_auth_tests;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod mfa_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod update_race_tests;
pub use social::CallbackOutcome;
