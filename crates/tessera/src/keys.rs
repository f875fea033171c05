//! `tessera keys rotate`: acts on the database directly (like `migrate`), with the same
//! configuration as `serve` (the DSN, and `secrets.cipher` to seal the new private key).
//! Running servers pick the new key up within seconds; the old key stays in the JWKS for
//! `oidc_provider.key_rotation_overlap`.

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_store::Store;

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a new signing key and retire the current one (it stays published for the
    /// rotation overlap).
    Rotate {
        /// Configuration file(s), as for `serve`.
        #[arg(short, long = "config")]
        config: Vec<PathBuf>,
        /// Use the development defaults (./tessera.db, ./tessera.secret), as `serve --dev`.
        #[arg(long)]
        dev: bool,
        /// ES256 or RS256; defaults to `oidc_provider.signing_alg`.
        #[arg(long)]
        alg: Option<String>,
    },
}

pub async fn run(args: KeysArgs) -> Result<()> {
    match args.cmd {
        Cmd::Rotate { config, dev, alg } => {
            let (settings, _) = crate::serve::load_settings(&config, dev)?;
            let alg: tessera_op::SigningAlg = alg
                .unwrap_or_else(|| settings.op.signing_alg.clone())
                .to_ascii_uppercase()
                .parse()
                .map_err(|e| anyhow!("--alg: {e}"))?;
            let store = Store::connect(&settings.dsn)
                .await
                .map_err(|e| anyhow!(e.reason))?;
            if !store.is_migrated().await.map_err(|e| anyhow!(e.reason))? {
                return Err(anyhow!(
                    "the database schema is not up to date: run `tessera migrate sql up` first"
                ));
            }
            let cipher = tessera_core::crypto::Cipher::new(&settings.secrets.cipher);
            let kid = tessera_op::keys::add_key(&store, &cipher, alg, false)
                .await
                .map_err(|e| anyhow!(e.description))?
                .ok_or_else(|| anyhow!("no key was added"))?;
            let overlap = settings.op.key_rotation_overlap;
            let dropped = store
                .op_drop_keys_retired_before(
                    tessera_core::timefmt::now_ms() - overlap.as_millis() as i64,
                )
                .await
                .map_err(|e| anyhow!(e.reason))?;
            println!("new signing key: {kid} ({alg})");
            println!(
                "previous key retired; it stays in the JWKS for {}s; {dropped} expired key(s) removed",
                overlap.as_secs()
            );
            Ok(())
        }
    }
}
