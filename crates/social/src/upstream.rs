//! The one outbound HTTP layer every provider uses, so timeouts, size caps, redirect refusal and
//! error shapes are handled once and tested once.

use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// Largest upstream answer read; anything bigger is refused, not truncated.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Whole-request time limit, connection included, unless `limits.upstream_timeout` says
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an upstream step failed. `Display` is the reason written to the log (never contains a
/// token or secret); [`UpstreamError::user_message`] is what the person signing in reads.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{endpoint}: request failed: {detail}")]
    Unreachable { endpoint: String, detail: String },
    #[error("{endpoint}: no answer within {} s", after.as_secs_f64())]
    Timeout { endpoint: String, after: Duration },
    #[error("{endpoint}: HTTP {status}: {excerpt}")]
    Status {
        endpoint: String,
        status: u16,
        excerpt: String,
    },
    #[error(
        "{endpoint}: answered with a redirect to {location}; upstream redirects are not followed"
    )]
    Redirected { endpoint: String, location: String },
    #[error("{endpoint}: answer is larger than {} bytes", MAX_RESPONSE_BYTES)]
    TooLarge { endpoint: String },
    #[error("{endpoint}: answer is not valid JSON: {detail}")]
    InvalidJson { endpoint: String, detail: String },
    #[error("{endpoint}: answer lacks {what}")]
    Missing { endpoint: String, what: String },
    /// An OAuth 2.0 / provider error the upstream reported (`error`, `error_description`).
    #[error("{endpoint}: upstream error `{error}`: {description}")]
    OAuth {
        endpoint: String,
        error: String,
        description: String,
    },
    #[error("id_token rejected: {0}")]
    IdToken(String),
    /// A signed answer whose signature is missing or does not verify (Alipay signs every
    /// gateway answer with its RSA key): nothing in it is believed.
    #[error("{endpoint}: answer signature not verified: {detail}")]
    Unverified { endpoint: String, detail: String },
    /// The callback itself is wrong (missing code, wrong `iss`, ...).
    #[error("callback rejected: {0}")]
    Callback(String),
}

impl UpstreamError {
    /// A stable code for [`Self::user_message`], so a UI can say the same in the user's
    /// language: `upstream_denied`, `upstream_refused`, `upstream_timeout`,
    /// `upstream_unreachable`, `upstream_unverified`, `upstream_callback` or `upstream_failed`.
    pub fn user_code(&self) -> &'static str {
        match self {
            UpstreamError::OAuth { error, .. } if is_cancel(error) => "upstream_denied",
            UpstreamError::OAuth { .. } => "upstream_refused",
            UpstreamError::Timeout { .. } => "upstream_timeout",
            UpstreamError::Unreachable { .. } => "upstream_unreachable",
            UpstreamError::IdToken(_) | UpstreamError::Unverified { .. } => "upstream_unverified",
            UpstreamError::Callback(_) => "upstream_callback",
            _ => "upstream_failed",
        }
    }

    /// A sentence for the person signing in: what happened and what they can do.
    pub fn user_message(&self, label: &str) -> String {
        match self {
            UpstreamError::OAuth {
                error, description, ..
            } if is_cancel(error) => {
                let d = if description.is_empty() {
                    String::new()
                } else {
                    format!(" ({description})")
                };
                format!(
                    "Sign-in with {label} was cancelled or denied{d}. Try again, or choose another way to sign in."
                )
            }
            UpstreamError::OAuth {
                error, description, ..
            } => format!(
                "{label} refused the sign-in: {error}{}. Try again; if it keeps happening, contact the site's administrator.",
                if description.is_empty() {
                    String::new()
                } else {
                    format!(" — {description}")
                }
            ),
            UpstreamError::Timeout { .. } => {
                format!("{label} did not answer in time. Try again in a moment.")
            }
            UpstreamError::Unreachable { .. } => {
                format!("{label} could not be reached. Try again in a moment.")
            }
            UpstreamError::IdToken(_) | UpstreamError::Unverified { .. } => format!(
                "The sign-in answer from {label} could not be verified, so it was not accepted. Try again; if it keeps happening, contact the site's administrator."
            ),
            UpstreamError::Callback(reason) => {
                format!("The sign-in with {label} could not be completed: {reason}. Start again.")
            }
            _ => format!(
                "{label} sent an answer Tessera could not use, so the sign-in stopped. Try again; if it keeps happening, contact the site's administrator."
            ),
        }
    }
}

/// Whether an upstream's `error` means the person said no: RFC 6749's `access_denied`, or
/// Apple's `user_cancelled_authorize`.
fn is_cancel(error: &str) -> bool {
    matches!(error, "access_denied" | "user_cancelled_authorize")
}

/// Shared HTTP client for upstream calls.
#[derive(Clone, Debug)]
pub struct Upstream {
    client: reqwest::Client,
    /// The provider id calls are counted under (`tessera_upstream_*` metrics).
    provider: std::sync::Arc<str>,
    /// The client's whole-request time limit, named in timeout errors.
    timeout: Duration,
}

impl Upstream {
    /// The client every upstream call goes through: no redirects, a whole-request timeout, a
    /// connect timeout. A builder failure (no TLS backend, say) is an error, never a default
    /// client, which would follow redirects and wait forever.
    pub fn new() -> Result<Self, reqwest::Error> {
        Upstream::with_timeout(DEFAULT_TIMEOUT)
    }

    /// The same with `timeout` for each whole call (`limits.upstream_timeout`); connecting
    /// takes at most 5 s of it.
    pub fn with_timeout(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("Tessera/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Upstream {
            client,
            provider: "".into(),
            timeout,
        })
    }

    /// The same client, counting its calls under provider `id`.
    pub fn for_provider(&self, id: &str) -> Upstream {
        Upstream {
            client: self.client.clone(),
            provider: id.into(),
            timeout: self.timeout,
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends a request and reads at most [`MAX_RESPONSE_BYTES`]. Redirects are errors.
    pub async fn send(
        &self,
        endpoint: &str,
        req: RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), UpstreamError> {
        let started = std::time::Instant::now();
        let result = self.send_once(endpoint, req).await;
        let provider = self.provider.to_string();
        metrics::histogram!("tessera_upstream_request_duration_seconds", "provider" => provider.clone())
            .record(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok((status, _)) if status.is_success() => "ok",
            _ => "error",
        };
        metrics::counter!("tessera_upstream_requests_total", "provider" => provider, "outcome" => outcome)
            .increment(1);
        result
    }

    async fn send_once(
        &self,
        endpoint: &str,
        req: RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), UpstreamError> {
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                UpstreamError::Timeout {
                    endpoint: endpoint.to_string(),
                    after: self.timeout,
                }
            } else {
                UpstreamError::Unreachable {
                    endpoint: endpoint.to_string(),
                    detail: without_url(&e),
                }
            }
        };
        let mut resp = req.send().await.map_err(classify)?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or("(no Location)")
                .to_string();
            return Err(UpstreamError::Redirected {
                endpoint: endpoint.to_string(),
                location,
            });
        }
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_RESPONSE_BYTES as u64)
        {
            return Err(UpstreamError::TooLarge {
                endpoint: endpoint.to_string(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(UpstreamError::TooLarge {
                    endpoint: endpoint.to_string(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// Sends and parses a JSON answer. Non-2xx answers become [`UpstreamError::OAuth`] when
    /// they carry an OAuth `error`, [`UpstreamError::Status`] otherwise.
    pub async fn json(&self, endpoint: &str, req: RequestBuilder) -> Result<Value, UpstreamError> {
        self.json_with(endpoint, req, oauth_or_status).await
    }

    /// [`Self::json`] for an upstream with its own error shape: a non-2xx answer is read by
    /// `read_error` (DingTalk's `{code, message}`, say).
    pub async fn json_with(
        &self,
        endpoint: &str,
        req: RequestBuilder,
        read_error: ReadError,
    ) -> Result<Value, UpstreamError> {
        let (status, body) = self.send(endpoint, req).await?;
        if !status.is_success() {
            return Err(read_error(endpoint, status.as_u16(), &body));
        }
        serde_json::from_slice(&body).map_err(|e| UpstreamError::InvalidJson {
            endpoint: endpoint.to_string(),
            detail: format!("{e} (body starts with {:?})", excerpt(&body)),
        })
    }
}

/// Reads a non-2xx answer of `endpoint` (HTTP `status`, `body`) as the error it reports.
pub type ReadError = fn(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError;

/// The OAuth 2.0 reading of a non-2xx answer: its `{error, error_description}` when it has
/// one, else the status with the start of the body.
pub fn oauth_or_status(endpoint: &str, status: u16, body: &[u8]) -> UpstreamError {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| oauth_error(endpoint, &v))
        .unwrap_or_else(|| UpstreamError::Status {
            endpoint: endpoint.to_string(),
            status,
            excerpt: excerpt(body),
        })
}

/// Reads an OAuth 2.0 error object (`{error, error_description}`), which some providers send
/// with HTTP 200.
pub fn oauth_error(endpoint: &str, v: &Value) -> Option<UpstreamError> {
    let error = v.get("error").and_then(Value::as_str)?;
    Some(UpstreamError::OAuth {
        endpoint: endpoint.to_string(),
        error: error.to_string(),
        description: v
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

/// A string field of an upstream answer; an empty string counts as absent.
pub fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A [`text`] field the answer must have (an access token, say): without it the answer is
/// [`UpstreamError::Missing`], naming the endpoint and the field.
pub fn required_text<'a>(
    v: &'a Value,
    key: &str,
    endpoint: &str,
) -> Result<&'a str, UpstreamError> {
    text(v, key).ok_or_else(|| UpstreamError::Missing {
        endpoint: endpoint.to_string(),
        what: format!("an {key}"),
    })
}

/// The start of a body for a log line: bounded and on one line.
pub fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.replace(['\n', '\r'], " ")
}

/// reqwest errors print the URL, which may carry a query with secrets; keep only the cause.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "(url)");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
