//! Serving a listener: plain TCP or TLS (`serve.*.tls`, rustls with the ring provider),
//! HTTP/1.1 with a bound on how long a client may take to send its headers, and graceful
//! shutdown (stop accepting, let requests in flight finish).

use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_config::edge::TlsPem;
use tokio::net::TcpListener;

/// A TLS configuration from the settings' PEM (already checked to parse at load). The error
/// names the key so an operator can fix it.
pub fn tls_config(pem: &TlsPem, key: &str) -> std::io::Result<RustlsConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let certs = CertificateDer::pem_slice_iter(&pem.cert_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("`{key}.cert` is not a PEM certificate chain: {e}")))?;
    let private = PrivateKeyDer::from_pem_slice(&pem.key)
        .map_err(|e| bad(format!("`{key}.key` is not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("`{key}`: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| {
            bad(format!(
                "`{key}`: the certificate and the key do not form a usable pair: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

/// Serves `router` on `listener` until `handle` is told to shut down.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<RustlsConfig>,
    header_read_timeout: Duration,
    handle: Handle<SocketAddr>,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            let mut server = axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .http1_only();
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_read_timeout);
            server.serve(app).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?.handle(handle).http1_only();
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_read_timeout);
            server.serve(app).await
        }
    }
}
