//! Documents addressed by URL in the configuration (identity schemas, later mappers):
//! `file://`, `base64://` and `https://`. They are read once at load, never per request, and
//! size-capped so a wrong URL cannot exhaust memory.

use base64::Engine;
use std::path::Path;

/// Largest document accepted from any source.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("unsupported URL scheme in `{0}`: use file://, base64:// or https://")]
    Scheme(String),
    #[error("cannot read `{path}`: {reason}")]
    Read { path: String, reason: String },
    #[error("`base64://` content is not valid base64: {0}")]
    Base64(String),
    #[error("document is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("fetching `{url}` failed: {reason}")]
    Http { url: String, reason: String },
}

/// Reads a document. Relative `file://` paths resolve against `base_dir` (the directory of the
/// configuration file that named them), as Kratos resolves them against its working directory.
pub async fn fetch(url: &str, base_dir: Option<&Path>) -> Result<Vec<u8>, SourceError> {
    if let Some(rest) = url.strip_prefix("base64://") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(rest.trim()))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(rest.trim()))
            .map_err(|e| SourceError::Base64(e.to_string()))?;
        return cap(bytes);
    }
    if let Some(rest) = url.strip_prefix("file://") {
        let path = Path::new(rest);
        let path = match base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        };
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| SourceError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        return cap(bytes);
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| SourceError::Http {
                url: url.into(),
                reason: e.to_string(),
            })?;
        let resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| SourceError::Http {
                url: url.into(),
                reason: e.to_string(),
            })?;
        if !resp.status().is_success() {
            return Err(SourceError::Http {
                url: url.into(),
                reason: format!("HTTP {}", resp.status()),
            });
        }
        if resp
            .content_length()
            .is_some_and(|l| l as usize > MAX_DOCUMENT_BYTES)
        {
            return Err(SourceError::TooLarge);
        }
        let bytes = resp.bytes().await.map_err(|e| SourceError::Http {
            url: url.into(),
            reason: e.to_string(),
        })?;
        return cap(bytes.to_vec());
    }
    Err(SourceError::Scheme(url.to_string()))
}

fn cap(bytes: Vec<u8>) -> Result<Vec<u8>, SourceError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        Err(SourceError::TooLarge)
    } else {
        Ok(bytes)
    }
}
