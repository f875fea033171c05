//! `tessera identity-config get|update`: the "download the config, add a provider, upload it"
//! workflow of `ory get|update identity-config`, against a running server's admin API.

use crate::admin_client::{Endpoint, client, send};
use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Args)]
pub struct IdentityConfigArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the running configuration (files plus environment overrides) with secrets
    /// replaced by `<redacted:…>` placeholders, which `update` puts back.
    Get {
        #[arg(long, value_enum, default_value = "yaml")]
        format: Format,
    },
    /// Validate a configuration file (YAML or JSON) like `serve` does at start, write it over
    /// the server's configuration file and apply it without a restart; or print every problem
    /// and change nothing.
    Update {
        #[arg(short, long)]
        file: PathBuf,
    },
}

pub async fn run(args: IdentityConfigArgs) -> Result<()> {
    let base = args.endpoint.base();
    let url = format!("{base}/admin/identity-config");
    let http = client(60)?;
    match args.cmd {
        Cmd::Get { format } => {
            let doc = answer(send(http.get(&url), &base).await?).await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
                Format::Yaml => print!("{}", tessera_config::document::to_yaml(&doc)),
            }
            Ok(())
        }
        Cmd::Update { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let req = http
                .put(&url)
                .header("content-type", content_type(&file))
                .body(text);
            let report = answer(send(req, &base).await?).await?;
            for w in report["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or_default());
            }
            println!("The configuration was updated and is in force.");
            let restart: Vec<&str> = report["restart_required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !restart.is_empty() {
                println!(
                    "These changes take effect at the next restart: {}",
                    restart.join(", ")
                );
            }
            Ok(())
        }
    }
}

fn content_type(file: &std::path::Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => "application/json",
        _ => "application/yaml",
    }
}

/// The JSON body of a successful answer.
async fn answer(resp: reqwest::Response) -> Result<Value> {
    let status = resp.status();
    resp.json()
        .await
        .map_err(|e| anyhow!("the admin API answered HTTP {status} without JSON: {e}"))
}
