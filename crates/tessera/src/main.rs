//! The `tessera` command: a thin shell over the library crates. It parses arguments, loads
//! configuration, and either serves or talks to a running server's admin API.

mod admin_client;
mod apis;
mod clients;
mod courier;
#[cfg(feature = "demo")]
mod demo;
#[cfg(not(feature = "demo"))]
#[path = "demo_disabled.rs"]
mod demo;
mod identities;
mod identity_config;
mod keys;
mod log_writer;
mod mapper;
mod orgs;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Self-hosted identity server: Kratos-compatible self-service, social sign-in and an OpenID Provider"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the public (:4433) and admin (:4434) APIs.
    Serve(serve::ServeArgs),
    /// Database migrations.
    Migrate {
        #[command(subcommand)]
        what: MigrateCmd,
    },
    /// Manage identities through a running server's admin API.
    Identities(identities::IdentitiesArgs),
    /// Download or replace a running server's configuration (`get`, `update --file`).
    #[command(name = "identity-config")]
    IdentityConfig(identity_config::IdentityConfigArgs),
    /// Try Tessera offline: the server plus DingTalk, VK, VK ID and GitHub emulators.
    Demo(demo::DemoArgs),
    /// Apps of the OpenID Provider, through a running server's admin API.
    Clients(clients::ClientsArgs),
    /// Organizations (a tree), their members, roles, domains and rules, through the admin API.
    Orgs(orgs::OrgsArgs),
    /// Groups and their members, through the admin API.
    Groups(orgs::GroupsArgs),
    /// APIs that accept the OpenID Provider's JWT access tokens, through the admin API.
    Apis(apis::ApisArgs),
    /// The OpenID Provider's signing keys (`keys rotate`), on the database directly.
    Keys(keys::KeysArgs),
    /// The courier: `courier watch` sends queued messages (as `serve` does too).
    Courier(courier::CourierArgs),
    /// Jsonnet claim mappers: `mapper test` dry-runs one on a claims file.
    Mapper(mapper::MapperArgs),
    /// The mapper sandbox: serves evaluation requests on stdin/stdout. Started by the server.
    #[command(name = "__mapper-worker", hide = true)]
    MapperWorker(MapperWorkerArgs),
    /// Print the version.
    Version,
}

#[derive(clap::Args)]
struct MapperWorkerArgs {
    /// Address-space limit (RLIMIT_AS) in bytes; 0 for none.
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    memory_limit: u64,
    /// Largest mapper output in bytes of JSON.
    #[arg(long, default_value_t = 256 * 1024)]
    output_cap: usize,
}

#[derive(Subcommand)]
enum MigrateCmd {
    /// SQL migrations: `up` (default), `down`, `status`.
    Sql(serve::MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any runtime or thread exists: the worker limits its own address space, and its
    // stdout carries only protocol frames (no logging is set up here).
    if let Command::MapperWorker(args) = &cli.command {
        return tessera_mapper::run_worker(args.memory_limit, args.output_cap);
    }
    // Each password hash allocates `hashers.argon2.memory` (19 MiB by default) at once. Once
    // glibc's adaptive mmap threshold has grown past that size, such blocks come from per-thread
    // arenas, which keep them: 48 concurrent sign-ins left ~900 MiB resident although the
    // hashing queue let only 13 run at a time. A fixed threshold sends every block of 1 MiB or
    // more to mmap, which returns it to the system when it is freed, so memory follows the
    // queue's bound. Set before any thread exists.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; no allocation is in flight on another thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let result = match cli.command {
            Command::Serve(args) => serve::serve(args).await,
            Command::Migrate {
                what: MigrateCmd::Sql(args),
            } => serve::migrate(args).await,
            Command::Identities(args) => identities::run(args).await,
            Command::IdentityConfig(args) => identity_config::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Clients(args) => clients::run(args).await,
            Command::Apis(args) => apis::run(args).await,
            Command::Orgs(args) => orgs::run_orgs(args).await,
            Command::Groups(args) => orgs::run_groups(args).await,
            Command::Keys(args) => keys::run(args).await,
            Command::Courier(args) => courier::run(args).await,
            // Its own exit statuses: 1 for a failing mapper or invalid traits, 2 for usage.
            Command::Mapper(args) => return mapper::run(args).await,
            Command::MapperWorker(_) => Ok(()),
            Command::Version => {
                println!("tessera {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
