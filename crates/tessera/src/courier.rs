//! `tessera courier watch`: the courier's worker alone (Kratos's command), for deployments that
//! send mail from a separate process. It acts on the database directly with the configuration
//! of `serve`; any number of workers (and servers, which run one too) can share a database,
//! because each message is claimed by one of them at a time.

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use tessera_store::Store;

#[derive(Args)]
pub struct CourierArgs {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send queued messages until stopped (SIGTERM or Ctrl-C).
    Watch {
        /// Configuration file(s), as for `serve`.
        #[arg(short, long = "config")]
        config: Vec<PathBuf>,
        /// Use the development defaults (./tessera.db, ./tessera.secret), as `serve --dev`.
        #[arg(long)]
        dev: bool,
        /// Accepted for Kratos compatibility (metrics are served by `serve`).
        #[arg(long = "expose-metrics-port")]
        expose_metrics_port: Option<u16>,
    },
}

pub async fn run(args: CourierArgs) -> Result<()> {
    match args.cmd {
        Cmd::Watch { config, dev, .. } => {
            let (settings, warnings) = crate::serve::load_settings(&config, dev)?;
            let _log = crate::serve::init_logging(&settings);
            for w in &warnings {
                tracing::warn!("{w}");
            }
            let store = Store::connect(&settings.dsn)
                .await
                .map_err(|e| anyhow!(e.reason))?;
            if !store.is_migrated().await.map_err(|e| anyhow!(e.reason))? {
                return Err(anyhow!(
                    "the database schema is not up to date: run `tessera migrate sql up` first"
                ));
            }
            // The HTTP channels' bodies run in the mapper sandbox, as in `serve`.
            let pool = tessera_server::app::mapper_pool(None).map_err(|e| anyhow!(e))?;
            let social = Arc::new(
                tessera_social::Social::build(&settings, pool)
                    .await
                    .map_err(|e| anyhow!(e.to_string()))?,
            );
            let courier = Arc::new(settings.courier);
            if courier.smtp.is_none() && courier.channel("email").is_none() {
                tracing::warn!(
                    "courier.smtp.connection_uri is not set: emails stay queued until it is"
                );
            }
            println!("Tessera courier worker is running");
            tessera_courier::worker::run(
                store,
                Arc::new(move || courier.clone()),
                Arc::new(move || Some(social.clone())),
                crate::serve::shutdown_signal(),
            )
            .await;
            Ok(())
        }
    }
}
