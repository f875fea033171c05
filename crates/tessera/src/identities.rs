//! `tessera identities …`: talks to a running server's admin API, as Kratos's CLI does.

use crate::admin_client::{Endpoint, client, error_text, next_link};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct IdentitiesArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Import Kratos identity JSON files (one identity, or an array of them, per file).
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List identities (JSON).
    List {
        #[arg(long, default_value_t = 250)]
        page_size: usize,
    },
    /// Show one identity (JSON).
    Get {
        /// The identity's id, or with `--external` its external id.
        id: String,
        /// Look the identity up by its `external_id` (`/admin/identities/by/external/…`).
        #[arg(long)]
        external: bool,
        /// Include credential configs of this type (password, oidc).
        #[arg(long = "include-credentials")]
        include_credentials: Vec<String>,
    },
    /// Delete identities.
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

pub async fn run(args: IdentitiesArgs) -> Result<()> {
    let base = args.endpoint.base();
    let http = client(30)?;
    match args.cmd {
        Cmd::Import { files } => import(&http, &base, &files).await,
        Cmd::List { page_size } => {
            let mut url = format!("{base}/admin/identities?page_size={page_size}");
            let mut all = Vec::new();
            loop {
                let resp = http
                    .get(&url)
                    .send()
                    .await
                    .with_context(|| format!("cannot reach the admin API at {base}"))?;
                if !resp.status().is_success() {
                    bail!(error_text(resp).await);
                }
                let next = resp
                    .headers()
                    .get("link")
                    .and_then(|l| l.to_str().ok())
                    .and_then(next_link);
                let page: Vec<Value> = resp.json().await?;
                all.extend(page);
                match next {
                    Some(n) => url = n,
                    None => break,
                }
            }
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(())
        }
        Cmd::Get {
            id,
            external,
            include_credentials,
        } => {
            let mut url = url::Url::parse(&format!("{base}/admin/identities/"))
                .with_context(|| format!("`{base}` is not a URL"))?;
            {
                // Each part a path segment of its own, percent-encoded: an external id may hold
                // `/`, `?` or spaces.
                let mut path = url
                    .path_segments_mut()
                    .map_err(|()| anyhow!("`{base}` cannot take a path"))?;
                path.pop_if_empty();
                if external {
                    path.extend(["by", "external"]);
                }
                path.push(&id);
            }
            for c in &include_credentials {
                url.query_pairs_mut().append_pair("include_credential", c);
            }
            let resp = http
                .get(url.as_str())
                .send()
                .await
                .with_context(|| format!("cannot reach the admin API at {base}"))?;
            if !resp.status().is_success() {
                bail!(error_text(resp).await);
            }
            let v: Value = resp.json().await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Cmd::Delete { ids } => {
            let mut failed = 0;
            for id in ids {
                let resp = http
                    .delete(format!("{base}/admin/identities/{id}"))
                    .send()
                    .await
                    .with_context(|| format!("cannot reach the admin API at {base}"))?;
                if resp.status().is_success() {
                    println!("{id}");
                } else {
                    failed += 1;
                    eprintln!("{id}: {}", error_text(resp).await);
                }
            }
            if failed > 0 {
                Err(anyhow!("{failed} identity(ies) could not be deleted"))
            } else {
                Ok(())
            }
        }
    }
}

/// Imports every identity, reporting each failure with its file and position and carrying on.
async fn import(http: &reqwest::Client, base: &str, files: &[PathBuf]) -> Result<()> {
    let mut entries: Vec<(String, Value)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{}: cannot read: {e}", f.display()));
                continue;
            }
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => entries.extend(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{}[{i}]", f.display()), v)),
            ),
            Ok(v) => entries.push((f.display().to_string(), v)),
            Err(e) => failures.push(format!(
                "{}: not valid JSON: {e} (line {}, column {})",
                f.display(),
                e.line(),
                e.column()
            )),
        }
    }
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(entries.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} identities {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let mut imported = 0usize;
    for (origin, body) in entries {
        let resp = http
            .post(format!("{base}/admin/identities"))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {base}"))?;
        if resp.status().is_success() {
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            imported += 1;
            bar.println(format!(
                "{origin}: imported {}",
                v.get("id").and_then(Value::as_str).unwrap_or("?")
            ));
        } else {
            failures.push(format!("{origin}: {}", error_text(resp).await));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for f in &failures {
        eprintln!("failed: {f}");
    }
    println!("{imported} imported, {} failed", failures.len());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "{} identity(ies) could not be imported",
            failures.len()
        ))
    }
}
