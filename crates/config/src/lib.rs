//! Tessera configuration: Kratos-compatible YAML/JSON files, environment overrides, and
//! validation whose every message names the key and where it was set (file and line, or the
//! environment variable).
//!
//! Architecture invariant: this crate reads files and the environment and nothing else; it never
//! opens a database or a socket. For URL-addressed documents (schemas, mappers) `source` reads
//! `file://` and `base64://` and checks an `https://` URL against the `SourcePolicy`; the
//! network fetch itself is `tessera_social::fetch`.

pub mod account;
pub mod channels;
pub mod courier;
pub mod document;
pub mod edge;
pub mod experience;
pub mod flows;
pub mod hooks;
pub mod lifecycle;
pub mod load;
pub mod methods;
pub mod mfa;
pub mod model;
pub mod resolve;
pub mod serve;
pub mod session;
pub mod source;
pub mod yaml;

pub use experience::Experience;
pub use load::{ConfigError, Loaded, Location, load, load_document, load_str};
pub use mfa::{MfaSettings, RequiredAal};
pub use model::*;
pub use resolve::{LimitSettings, OpSettings, ProviderSource, SchemaSource, Settings, resolve};
pub use session::{CookieSettings, SameSite, SessionSettings};
