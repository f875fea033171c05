//! Documents addressed by URL in the configuration (identity schemas, mappers): `file://`,
//! `base64://` and `https://`. They are read once at load, never per request, and size-capped
//! so a wrong URL cannot exhaust memory.
//!
//! This module reads what is local and checks the rest ([`read_local`]); it opens no socket.
//! `https://` documents are fetched by `tessera_social::fetch`, on the same outbound rules as
//! every other upstream call (no redirects, timeouts, a streaming size cap), under the
//! [`SourcePolicy`] defined here.

use base64::Engine;
use std::path::Path;

/// Largest document accepted from any source.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// What documents a configuration may point at. At start the configuration comes from the
/// operator's files; through `PUT /admin/identity-config` it comes over the network, so its URLs
/// must not become a way to read the server's files, probe its network, or see what a secret
/// file contains.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePolicy {
    /// `file://` documents must lie inside this folder (the configuration's) when set.
    pub confine_files_to: Option<std::path::PathBuf>,
    /// Plain `http://` URLs (`sources.allow_http`): off by default; documents are fetched once
    /// and trusted, so they come over TLS.
    pub allow_http: bool,
    /// Loopback, private, link-local and other non-global addresses
    /// (`sources.allow_private_networks`): off by default, so a URL cannot reach what only
    /// the server can reach.
    pub allow_private_networks: bool,
    /// Errors about a fetched document say only where it is wrong (line and column), never
    /// what it contains.
    pub hide_content_in_errors: bool,
}

impl Default for SourcePolicy {
    /// The policy for the operator's own files at start: their folder is not enforced and
    /// errors are shown whole; the network rules hold.
    fn default() -> Self {
        SourcePolicy {
            confine_files_to: None,
            allow_http: false,
            allow_private_networks: false,
            hide_content_in_errors: false,
        }
    }
}

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
    #[error("`{url}` is refused: {reason}")]
    Refused { url: String, reason: String },
}

/// A document reference resolved as far as this crate goes: what is local (`base64://`,
/// `file://`) is read here; what needs the network is handed back as a checked URL for the
/// caller's fetcher (`tessera_social::fetch`), so this crate never opens a socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// The document's bytes, at most [`MAX_DOCUMENT_BYTES`].
    Bytes(Vec<u8>),
    /// An `https://` URL (or `http://` under `sources.allow_http`) still to be fetched.
    Remote(url::Url),
}

/// Reads a local document or checks a remote one's URL against `policy`. Relative `file://`
/// paths resolve against `base_dir` (the directory of the configuration file that named them),
/// as Kratos resolves them against its working directory.
pub fn read_local(
    url: &str,
    base_dir: Option<&Path>,
    policy: &SourcePolicy,
) -> Result<Document, SourceError> {
    if let Some(rest) = url.strip_prefix("base64://") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(rest.trim()))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(rest.trim()))
            .map_err(|e| SourceError::Base64(e.to_string()))?;
        return cap(bytes).map(Document::Bytes);
    }
    if let Some(rest) = url.strip_prefix("file://") {
        return read_file(url, rest, base_dir, policy).map(Document::Bytes);
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        let parsed = url::Url::parse(url).map_err(|e| SourceError::Http {
            url: url.into(),
            reason: e.to_string(),
        })?;
        if parsed.scheme() == "http" && !policy.allow_http {
            return Err(SourceError::Refused {
                url: url.into(),
                reason: "documents are fetched over https only (set sources.allow_http: true to allow http)".into(),
            });
        }
        return Ok(Document::Remote(parsed));
    }
    Err(SourceError::Scheme(url.to_string()))
}

fn read_file(
    url: &str,
    rest: &str,
    base_dir: Option<&Path>,
    policy: &SourcePolicy,
) -> Result<Vec<u8>, SourceError> {
    use std::io::Read;
    let path = Path::new(rest);
    let path = match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    };
    if let Some(root) = &policy.confine_files_to {
        // Compared after resolving `..` and symbolic links, so neither leads out.
        let inside = match (std::fs::canonicalize(&path), std::fs::canonicalize(root)) {
            (Ok(p), Ok(r)) => p.starts_with(r),
            _ => false,
        };
        if !inside {
            return Err(SourceError::Refused {
                url: url.into(),
                reason: format!(
                    "a configuration uploaded through the admin API may only name files in its own folder ({}), and this one is not there or does not exist",
                    root.display()
                ),
            });
        }
    }
    let failed = |e: std::io::Error| SourceError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    // Read through a limit, so a device or a growing file cannot be read without end.
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .map_err(failed)?
        .take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    cap(bytes)
}

fn cap(bytes: Vec<u8>) -> Result<Vec<u8>, SourceError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        Err(SourceError::TooLarge)
    } else {
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(url: &str, dir: Option<&Path>, p: &SourcePolicy) -> Result<Document, SourceError> {
        read_local(url, dir, p)
    }

    #[test]
    fn files_outside_the_folder_are_refused_when_confined() {
        let dir = std::env::temp_dir().join(format!("tessera-src-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/ok.json"), "{}").unwrap();
        let p = SourcePolicy {
            confine_files_to: Some(dir.clone()),
            ..SourcePolicy::default()
        };
        assert_eq!(
            read("file://sub/ok.json", Some(&dir), &p).unwrap(),
            Document::Bytes(b"{}".to_vec())
        );
        for url in [
            "file:///etc/passwd",
            "file://../../../../etc/passwd",
            "file://sub/../../x",
        ] {
            assert!(
                matches!(read(url, Some(&dir), &p), Err(SourceError::Refused { .. })),
                "{url}"
            );
        }
        // Unconfined (the operator's own files at start), a path anywhere is read.
        assert!(
            read("file:///etc/hostname", None, &SourcePolicy::default()).is_ok()
                || !Path::new("/etc/hostname").exists()
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn files_and_inline_documents_are_capped_while_read() {
        let big = "x".repeat(MAX_DOCUMENT_BYTES + 1);
        assert!(matches!(
            read(
                &format!(
                    "base64://{}",
                    base64::engine::general_purpose::STANDARD.encode(&big)
                ),
                None,
                &SourcePolicy::default()
            ),
            Err(SourceError::TooLarge)
        ));
        // A device that never ends is cut at the cap instead of read forever.
        if Path::new("/dev/zero").exists() {
            assert!(matches!(
                read("file:///dev/zero", None, &SourcePolicy::default()),
                Err(SourceError::TooLarge)
            ));
        }
    }

    #[test]
    fn urls_are_checked_and_handed_back_not_fetched() {
        let p = SourcePolicy::default();
        assert!(matches!(
            read("http://example.com/x.json", None, &p),
            Err(SourceError::Refused { .. })
        ));
        assert!(matches!(
            read("ftp://example.com/x.json", None, &p),
            Err(SourceError::Scheme(_))
        ));
        let Ok(Document::Remote(url)) = read("https://example.com/x.json", None, &p) else {
            panic!("an https URL is for the fetcher");
        };
        assert_eq!(url.as_str(), "https://example.com/x.json");
        let http = SourcePolicy {
            allow_http: true,
            ..SourcePolicy::default()
        };
        assert!(matches!(
            read("http://example.com/x.json", None, &http),
            Ok(Document::Remote(_))
        ));
    }
}
