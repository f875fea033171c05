//! `tessera apis …`: the OpenID Provider's APIs (resource servers that accept JWT access
//! tokens, RFC 8707/9068), through a running server's admin API (`/admin/apis`).

use crate::admin_client::{Endpoint, client, delete_each, next_page, segment, send};
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

#[derive(Args)]
pub struct ApisArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Register an API; prints its id (or the whole API with --json).
    Create(CreateArgs),
    /// List APIs (JSON), every page.
    List,
    /// Show one API (JSON).
    Get { id: String },
    /// Delete APIs by id.
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// The API's identifier: its audience URI (`aud` of its tokens), e.g. https://api.example.com.
    #[arg(long)]
    identifier: String,
    /// A name people recognise the API by.
    #[arg(long)]
    name: String,
    /// A scope the API defines (repeat for several), e.g. read:books.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Lifetime of its access tokens in seconds (60 to 86400; default 3600).
    #[arg(long = "access-token-ttl")]
    access_token_ttl: Option<i64>,
    /// RS256 or ES256 (default: the algorithm of the current signing key).
    #[arg(long = "signing-alg")]
    signing_alg: Option<String>,
    /// Make it the default API: token requests that name no resource get tokens for it.
    #[arg(long)]
    default: bool,
    /// Role-based access: `ROLE=SCOPE[,SCOPE…]` (repeat per role). Users then get only the
    /// scopes their app roles and organization roles grant.
    #[arg(long = "role-scopes", value_name = "ROLE=SCOPES")]
    role_scopes: Vec<String>,
    /// Print the whole created API as JSON.
    #[arg(long)]
    json: bool,
}

fn body(a: &CreateArgs) -> Result<Value> {
    let mut roles = Map::new();
    for r in &a.role_scopes {
        let Some((role, scopes)) = r.split_once('=') else {
            anyhow::bail!(
                "--role-scopes `{r}` is not ROLE=SCOPE[,SCOPE…], e.g. --role-scopes editor=read:books,write:books"
            );
        };
        let scopes: Vec<&str> = scopes.split(',').filter(|s| !s.is_empty()).collect();
        roles.insert(role.to_string(), json!(scopes));
    }
    let mut m = Map::new();
    if !roles.is_empty() {
        m.insert("role_scopes".into(), Value::Object(roles));
    }
    m.insert("identifier".into(), json!(a.identifier));
    m.insert("name".into(), json!(a.name));
    m.insert("scopes".into(), json!(a.scopes));
    if let Some(t) = a.access_token_ttl {
        m.insert("access_token_ttl".into(), json!(t));
    }
    if let Some(s) = &a.signing_alg {
        m.insert("signing_alg".into(), json!(s));
    }
    m.insert("default".into(), json!(a.default));
    Ok(Value::Object(m))
}

pub async fn run(args: ApisArgs) -> Result<()> {
    let base = args.endpoint.base();
    let http = client(30)?;
    match args.cmd {
        Cmd::Create(a) => {
            let v: Value = send(
                http.post(format!("{base}/admin/apis")).json(&body(&a)?),
                &base,
            )
            .await?
            .json()
            .await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}", v["id"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        Cmd::List => {
            let mut all = Vec::new();
            let mut url = Some(format!("{base}/admin/apis?page_size=500"));
            while let Some(u) = url.take() {
                let resp = send(http.get(&u), &base).await?;
                url = next_page(&resp);
                let page: Vec<Value> = resp.json().await?;
                all.extend(page);
            }
            println!("{}", serde_json::to_string_pretty(&all)?);
            Ok(())
        }
        Cmd::Get { id } => {
            let v: Value = send(
                http.get(format!("{base}/admin/apis/{}", segment(&id))),
                &base,
            )
            .await?
            .json()
            .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Cmd::Delete { ids } => delete_each(&http, &base, "/admin/apis", ids, "API(s)").await,
    }
}
