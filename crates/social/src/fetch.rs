//! Fetching the documents a configuration names by URL (identity schemas, mappers).
//!
//! `tessera_config::source` reads what is local and checks the URL's scheme against the
//! configuration's [`SourcePolicy`]; what needs the network comes here, so the outbound rules
//! live in one crate: the [`upstream`](crate::upstream) limits (no redirects, a time limit, a
//! size cap enforced while the body streams in) plus the address rule of `sources:` (only
//! public addresses unless `sources.allow_private_networks`, and the connection goes to the
//! address that was checked, not to what a second lookup might say).

use crate::upstream::{DEFAULT_TIMEOUT as TIMEOUT, MAX_RESPONSE_BYTES};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tessera_config::source::{Document, MAX_DOCUMENT_BYTES, SourceError, SourcePolicy, read_local};

/// Reads a document from any source the configuration may name: `base64://` and `file://`
/// through `tessera_config::source`, `https://` (or `http://` when allowed) over the network.
pub async fn document(
    url: &str,
    base_dir: Option<&Path>,
    policy: &SourcePolicy,
) -> Result<Vec<u8>, SourceError> {
    match read_local(url, base_dir, policy)? {
        Document::Bytes(bytes) => Ok(bytes),
        Document::Remote(parsed) => fetch(url, &parsed, policy).await,
    }
}

async fn fetch(
    url: &str,
    parsed: &url::Url,
    policy: &SourcePolicy,
) -> Result<Vec<u8>, SourceError> {
    let refused = |reason: &str| SourceError::Refused {
        url: url.into(),
        reason: reason.into(),
    };
    let failed = |reason: String| SourceError::Http {
        url: url.into(),
        reason,
    };
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("Tessera/", env!("CARGO_PKG_VERSION")))
        // A redirect could lead anywhere the address check below did not look.
        .redirect(reqwest::redirect::Policy::none());
    if !policy.allow_private_networks {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| failed(format!("cannot resolve `{host}`: {e}")))?
            .collect();
        let Some(first) = addrs
            .first()
            .copied()
            .filter(|_| addrs.iter().all(|a| is_public(a.ip())))
        else {
            return Err(refused(
                "it resolves to a loopback, private or otherwise non-public address (set sources.allow_private_networks: true to allow it)",
            ));
        };
        builder = builder.resolve(bare, first);
    }
    let client = builder.build().map_err(|e| failed(e.to_string()))?;
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            failed(format!("no answer within {} s", TIMEOUT.as_secs()))
        } else {
            failed(e.to_string())
        }
    };
    let mut resp = client.get(url).send().await.map_err(classify)?;
    let status = resp.status();
    if status.is_redirection() {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("(no Location)");
        return Err(failed(format!(
            "HTTP {status}, a redirect to {location}; redirects are not followed: use the final URL"
        )));
    }
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    let cap = MAX_DOCUMENT_BYTES.min(MAX_RESPONSE_BYTES);
    if resp.content_length().is_some_and(|l| l > cap as u64) {
        return Err(SourceError::TooLarge);
    }
    // Streamed against the cap, so an answer without Content-Length (chunked) cannot grow
    // without bound.
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > cap {
            return Err(SourceError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether an address is on the public internet (not loopback, private, link-local, shared,
/// documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
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
}
