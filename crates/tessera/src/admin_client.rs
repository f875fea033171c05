//! What every command that talks to a running server's admin API shares: where it is
//! (`--endpoint`, `TESSERA_ADMIN_URL`), the HTTP client, and turning a refusal into one line.

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::Value;

#[derive(Args)]
pub struct Endpoint {
    /// Admin API URL.
    #[arg(
        long,
        env = "TESSERA_ADMIN_URL",
        default_value = "http://127.0.0.1:4434",
        global = true
    )]
    endpoint: String,
}

impl Endpoint {
    /// The base URL without a trailing slash.
    pub fn base(&self) -> String {
        self.endpoint.trim_end_matches('/').to_string()
    }
}

/// `timeout` bounds each request: validating a configuration upload fetches its mappers, so
/// it may take longer than an identity lookup.
pub fn client(timeout_secs: u64) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout_secs))
        .build()
        .context("HTTP client")
}

/// Sends a request and returns a successful answer; anything else becomes one error line.
pub async fn send(req: reqwest::RequestBuilder, base: &str) -> Result<reqwest::Response> {
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach the admin API at {base}"))?;
    if !resp.status().is_success() {
        bail!(error_text(resp).await);
    }
    Ok(resp)
}

/// "HTTP 400 Bad Request: <the server's reason>".
pub async fn error_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let reason = body
        .pointer("/error/reason")
        .and_then(Value::as_str)
        .unwrap_or("no details");
    format!("HTTP {status}: {reason}")
}

/// `s` percent-encoded as one path segment, so an id holding `/`, `?` or `#` names one
/// resource and nothing else.
pub fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The `rel="next"` target of a `Link` header value (the admin API's pagination), if any.
pub fn next_link(header: &str) -> Option<String> {
    header
        .split(',')
        .find(|p| p.contains("rel=\"next\""))
        .and_then(|p| p.split(';').next())
        .map(|u| {
            u.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
}

/// The `rel="next"` target of an answer's `Link` header, if any.
pub fn next_page(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::LINK)
        .and_then(|l| l.to_str().ok())
        .and_then(next_link)
}

/// Deletes `{base}{collection}/{id}` for each id, printing each deleted id and each refusal,
/// and carrying on past failures; fails at the end when any deletion failed, naming how many
/// `what` could not be deleted.
pub async fn delete_each(
    http: &reqwest::Client,
    base: &str,
    collection: &str,
    ids: Vec<String>,
    what: &str,
) -> Result<()> {
    let mut failed = 0;
    for id in ids {
        match send(
            http.delete(format!("{base}{collection}/{}", segment(&id))),
            base,
        )
        .await
        {
            Ok(_) => println!("{id}"),
            Err(e) => {
                failed += 1;
                eprintln!("{id}: {e}");
            }
        }
    }
    if failed > 0 {
        Err(anyhow!("{failed} {what} could not be deleted"))
    } else {
        Ok(())
    }
}
