//! The `tessera` command: a thin shell over the library crates. It parses arguments, loads
//! configuration, and either serves or talks to a running server's admin API.

mod identities;
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
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum MigrateCmd {
    /// SQL migrations: `up` (default), `down`, `status`.
    Sql(serve::MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::serve(args).await,
            Command::Migrate {
                what: MigrateCmd::Sql(args),
            } => serve::migrate(args).await,
            Command::Identities(args) => identities::run(args).await,
            Command::Version => {
                println!("tessera {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
