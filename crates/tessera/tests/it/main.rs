//! The `tessera` crate's end-to-end tests, in one test binary.
//!
//! Each module was a test binary of its own (`tests/<name>.rs`); every one of them linked the
//! whole server, sqlx, reqwest and jrsonnet again, the largest avoidable build cost on a small
//! machine. Now one link serves them all. Test names keep their former file as the module
//! path, e.g. `op_flows::refresh_token_reuse_revokes_the_family_sqlite`, so
//! `cargo nextest run -p tessera -E 'test(/^op_flows::/)'` runs one former file, and
//! `cargo nextest run -p tessera op_flows::` does too.
//!
//! Nothing here needs a process of its own: nextest runs every test in a separate process
//! anyway, no test sets environment variables or other process-global state (the one `static`,
//! `hosted_ui::OPENED_BY`, is keyed by page URL), and the tests that start the built binary
//! (`cli`, `demo`, `identity_config`, `mapper_cli`, `op_clients`, `op_peers`, the mapper pool)
//! find it through `CARGO_BIN_EXE_tessera`, which Cargo sets for every integration test.
//! `api_flows::a_flood_of_wrong_passwords_keeps_memory_bounded` reads this process's peak
//! memory; under `cargo test` (all tests in one process) other tests' memory counts against
//! its bound too, as it already did when it shared `api_flows` with 14 others, and the bound
//! (400 MiB against 1.5 GiB unbounded) leaves room for that.

mod admin_api;
mod api_flows;
mod bad_input;
mod browser_flows;
mod cli;
mod courier;
// `tessera demo` exists only with the (default) `demo` feature.
#[cfg(feature = "demo")]
mod demo;
mod edge;
mod extractors;
mod hooks;
mod hosted_ui;
mod identity_config;
mod kratos_identities;
mod kratos_quickstart;
mod lifecycle;
mod lifecycle_link;
mod mapper_cli;
mod mapper_sandbox;
mod mfa;
mod multi_instance;
mod op_apis;
mod op_backchannel;
mod op_bad_input;
mod op_client_assertions;
mod op_clients;
mod op_common;
mod op_device;
mod op_dpop;
mod op_flows;
mod op_frontchannel;
mod op_jar;
mod op_logto_sdk;
mod op_peers;
mod op_rbac;
mod op_registration;
mod op_token_exchange;
mod organizations;
mod ory_sdk;
mod passwordless_code;
mod passwordless_code_hooks;
mod provider_dingtalk;
mod provider_github;
mod provider_telegram_widget;
mod provider_vk;
mod providers_cn_ru;
mod providers_cn_ru2;
mod providers_cn_ru3;
mod providers_global;
mod providers_global2;
mod providers_global3;
mod providers_global4;
mod providers_global5;
mod providers_global6;
mod providers_global7;
mod schemas;
mod sms;
mod social_oidc_provider;
mod social_signin;
mod test_cleanup;
mod ui_browser;
mod ui_browser_mfa;
mod whoami_cache;

/// The seed-004 GitHub data mapper, verbatim: the file `tessera demo` ships.
const GITHUB_MAPPER: &str = include_str!("../../demo/github.jsonnet");
