//! Documents addressed by URL in the configuration (identity schemas, later mappers):
//! `file://`, `base64://` and `https://`. They are read once at load, never per request, and
//! size-capped so a wrong URL cannot exhaust memory.

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

/// Reads a document. Relative `file://` paths resolve against `base_dir` (the directory of the
/// configuration file that named them), as Kratos resolves them against its working directory.
pub async fn fetch(url: &str, base_dir: Option<&Path>) -> Result<Vec<u8>, SourceError> {
    fetch_with(url, base_dir, &SourcePolicy::default()).await
}

/// [`fetch`] under a [`SourcePolicy`].
pub async fn fetch_with(
    url: &str,
    base_dir: Option<&Path>,
    policy: &SourcePolicy,
) -> Result<Vec<u8>, SourceError> {
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
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| SourceError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        return cap(bytes);
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return fetch_http(url, policy).await;
    }
    Err(SourceError::Scheme(url.to_string()))
}

async fn fetch_http(url: &str, policy: &SourcePolicy) -> Result<Vec<u8>, SourceError> {
    let refused = |reason: &str| SourceError::Refused {
        url: url.into(),
        reason: reason.into(),
    };
    let failed = |reason: String| SourceError::Http {
        url: url.into(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| failed(e.to_string()))?;
    if parsed.scheme() == "http" && !policy.allow_http {
        return Err(refused(
            "documents are fetched over https only (set sources.allow_http: true to allow http)",
        ));
    }
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        // A redirect could lead anywhere the checks below did not look.
        .redirect(reqwest::redirect::Policy::none());
    if !policy.allow_private_networks {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| failed(format!("cannot resolve `{host}`: {e}")))?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !is_public(a.ip())) {
            return Err(refused(
                "it resolves to a loopback, private or otherwise non-public address (set sources.allow_private_networks: true to allow it)",
            ));
        }
        // Connect to the address that was checked, not to what a second lookup might say.
        builder = builder.resolve(bare, addrs[0]);
    }
    let client = builder.build().map_err(|e| failed(e.to_string()))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if resp.status().is_redirection() {
        return Err(failed(format!(
            "HTTP {} (redirects are not followed: use the final URL)",
            resp.status()
        )));
    }
    if !resp.status().is_success() {
        return Err(failed(format!("HTTP {}", resp.status())));
    }
    if resp
        .content_length()
        .is_some_and(|l| l as usize > MAX_DOCUMENT_BYTES)
    {
        return Err(SourceError::TooLarge);
    }
    // Streamed with the cap, so a body without Content-Length cannot grow without bound.
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| failed(e.to_string()))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(SourceError::TooLarge);
        }
    }
    Ok(body)
}

/// Whether an address is on the public internet (not loopback, private, link-local, shared,
/// documentation, multicast or unspecified).
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared (CGNAT)
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)) // documentation
        }
    }
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

    #[test]
    fn only_public_addresses_are_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    #[tokio::test]
    async fn the_network_rules_refuse_before_connecting() {
        let p = SourcePolicy::default();
        for url in [
            "http://example.com/x.json",
            "https://127.0.0.1:1/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
        ] {
            match fetch_with(url, None, &p).await {
                Err(SourceError::Refused { .. }) => {}
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn files_outside_the_folder_are_refused_when_confined() {
        let dir = std::env::temp_dir().join(format!("tessera-src-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/ok.json"), "{}").unwrap();
        let p = SourcePolicy {
            confine_files_to: Some(dir.clone()),
            ..SourcePolicy::default()
        };
        assert!(
            fetch_with("file://sub/ok.json", Some(&dir), &p)
                .await
                .is_ok()
        );
        for url in [
            "file:///etc/passwd",
            "file://../../../../etc/passwd",
            "file://sub/../../x",
        ] {
            assert!(
                matches!(
                    fetch_with(url, Some(&dir), &p).await,
                    Err(SourceError::Refused { .. })
                ),
                "{url}"
            );
        }
        // Unconfined (the operator's own files at start), a path anywhere is read.
        assert!(
            fetch_with("file:///etc/hostname", None, &SourcePolicy::default())
                .await
                .is_ok()
                || !Path::new("/etc/hostname").exists()
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
