//! Serving a listener: plain TCP or TLS (`serve.*.tls`, rustls with the ring provider),
//! HTTP/1.1 with bounds on what one client can hold (how long it may take to send its headers,
//! how long an answer may wait for it to read, how many connections a listener keeps: see
//! [`ConnectionLimits`]), and graceful shutdown (stop accepting, let requests in flight
//! finish).

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

/// What bounds one listener's connections: how many, and how long a client may stall them.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest a client may take to send a request's headers (hyper's header read timeout,
    /// which also closes a keep-alive connection idle that long).
    pub header_read_timeout: Duration,
    /// Longest an answer may wait for a client that reads nothing ([`Guarded`]).
    pub write_stall_timeout: Duration,
    /// Connections held open at once ([`Guard`]).
    pub max_connections: usize,
}

impl ConnectionLimits {
    pub fn of(limits: &tessera_config::resolve::LimitSettings) -> Self {
        ConnectionLimits {
            header_read_timeout: limits.header_read_timeout,
            write_stall_timeout: limits.write_stall_timeout,
            max_connections: limits.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `handle` is told to shut down.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<RustlsConfig>,
    limits: ConnectionLimits,
    handle: Handle<SocketAddr>,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    let guard = Guard::new(limits);
    match tls {
        Some(config) => {
            // The guard sees the TCP stream first, so a refused connection costs no handshake.
            let mut server = axum_server::from_tcp_rustls(listener, config)?
                .handle(handle)
                .http1_only()
                .map(|tls| tls.acceptor(guard));
            server
                .http_builder()
                .http1()
                .header_read_timeout(limits.header_read_timeout);
            server.serve(app).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener)?
                .handle(handle)
                .http1_only()
                .acceptor(guard);
            server
                .http_builder()
                .http1()
                .header_read_timeout(limits.header_read_timeout);
            server.serve(app).await
        }
    }
}

/// The acceptor that bounds connections: it takes one of `max_connections` permits for each
/// connection (given back when the connection ends) and closes a connection at once when none
/// is left; the stream it hands on gives up a write that stalls (see [`Guarded`]).
///
/// Without it, idle or slow clients could hold as many connections as the process has file
/// descriptors, and the database pool, the upstream calls and the mapper workers would then
/// fail to open theirs.
#[derive(Clone, Debug)]
pub struct Guard {
    permits: Arc<tokio::sync::Semaphore>,
    write_stall_timeout: Duration,
}

impl Guard {
    pub fn new(limits: ConnectionLimits) -> Self {
        Guard {
            permits: Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1))),
            write_stall_timeout: limits.write_stall_timeout,
        }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for Guard {
    type Stream = Guarded<I>;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(Guarded<I>, S)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        std::future::ready(match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok((
                Guarded {
                    inner: stream,
                    _permit: permit,
                    stall_limit: self.write_stall_timeout,
                    stalled: None,
                },
                service,
            )),
            Err(_) => {
                metrics::counter!("tessera_connections_refused_total").increment(1);
                // Dropping the stream closes the connection.
                Err(std::io::Error::other("limits.max_connections reached"))
            }
        })
    }
}

/// A connection's stream that holds its [`Guard`] permit, and fails a write that could not
/// make progress for `stall_limit` (a client that stopped reading): hyper then closes the
/// connection. The timer runs only while a write waits, so a slow but reading client is never
/// cut off, and an idle keep-alive connection is hyper's header read timeout's business.
pub struct Guarded<I> {
    inner: I,
    _permit: tokio::sync::OwnedSemaphorePermit,
    stall_limit: Duration,
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<I> Guarded<I> {
    /// Passes a write's result on; while it is pending, fails it once the stall limit passes.
    fn watch<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        r: std::task::Poll<std::io::Result<T>>,
    ) -> std::task::Poll<std::io::Result<T>> {
        use std::future::Future;
        use std::task::Poll;
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let limit = self.stall_limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stalled = None;
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client read nothing for limits.write_stall_timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Guarded<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Guarded<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
