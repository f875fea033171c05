//! Serving a listener: plain TCP or TLS (`serve.*.tls`, rustls with the ring provider),
//! HTTP/1.1 with bounds on what one client can hold (how long it may take to send its headers,
//! how long an answer may wait for it to read, how many connections a listener keeps, and how
//! many of them one client address may hold: see [`ConnectionLimits`]), and graceful shutdown
//! (stop accepting, let requests in flight finish).

use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
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
    /// Connections one client address (an IPv6 /64) may hold open at once; `None` when the
    /// peers are reverse proxies (`limits.trusted_proxy_hops` > 0), whose one address stands
    /// for every client, or when limits are off.
    pub max_connections_per_address: Option<usize>,
}

impl ConnectionLimits {
    pub fn of(limits: &tessera_config::resolve::LimitSettings) -> Self {
        ConnectionLimits {
            header_read_timeout: limits.header_read_timeout,
            write_stall_timeout: limits.write_stall_timeout,
            max_connections: limits.max_connections,
            max_connections_per_address: (limits.enabled && limits.trusted_proxy_hops == 0)
                .then_some(limits.max_connections_per_address),
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
/// connection, and one of its address's `max_connections_per_address` places (both given back
/// when the connection ends), and closes a connection at once when either is used up; the
/// stream it hands on gives up a write that stalls (see [`Guarded`]).
///
/// Without the first bound, idle or slow clients could hold as many connections as the process
/// has file descriptors, and the database pool, the upstream calls and the mapper workers would
/// then fail to open theirs. Without the second, one address holding every permit would lock
/// every newcomer out (the reliability suite's `abuse` soak found it).
#[derive(Clone, Debug)]
pub struct Guard {
    permits: Arc<tokio::sync::Semaphore>,
    per_address: Option<Arc<PerAddress>>,
    write_stall_timeout: Duration,
}

impl Guard {
    pub fn new(limits: ConnectionLimits) -> Self {
        Guard {
            permits: Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1))),
            per_address: limits.max_connections_per_address.map(|max| {
                Arc::new(PerAddress {
                    max: max.max(1),
                    open: Mutex::new(HashMap::new()),
                })
            }),
            write_stall_timeout: limits.write_stall_timeout,
        }
    }

    /// A connection's two places, or why it gets none (the limit's key, for the metric).
    fn admit(&self, peer: Option<IpAddr>) -> Result<Places, &'static str> {
        let address = match (&self.per_address, peer) {
            (Some(table), Some(ip)) => {
                Some(PerAddress::take(table, ip).ok_or("max_connections_per_address")?)
            }
            _ => None,
        };
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| "max_connections")?;
        Ok(Places {
            _permit: permit,
            _address: address,
        })
    }
}

impl<S> axum_server::accept::Accept<tokio::net::TcpStream, S> for Guard {
    type Stream = Guarded<tokio::net::TcpStream>;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(Guarded<tokio::net::TcpStream>, S)>>;

    fn accept(&self, stream: tokio::net::TcpStream, service: S) -> Self::Future {
        let peer = stream.peer_addr().ok().map(|a| a.ip());
        std::future::ready(match self.admit(peer) {
            Ok(places) => Ok((
                Guarded {
                    inner: stream,
                    _places: places,
                    stall_limit: self.write_stall_timeout,
                    stalled: None,
                },
                service,
            )),
            Err(limit) => {
                metrics::counter!("tessera_connections_refused_total", "limit" => limit)
                    .increment(1);
                // Dropping the stream closes the connection.
                Err(std::io::Error::other(format!("limits.{limit} reached")))
            }
        })
    }
}

/// Connections open per client address. An IPv6 client is counted by its /64, which one
/// subscriber usually holds whole, so walking through its addresses gains nothing; an
/// IPv4-mapped IPv6 address counts as its IPv4 address.
#[derive(Debug)]
struct PerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
            v4 => v4,
        }
    }

    /// A place for one more connection from `ip`, or `None` when it holds `max` already.
    fn take(table: &Arc<PerAddress>, ip: IpAddr) -> Option<AddressPlace> {
        let key = PerAddress::key(ip);
        // A poisoned lock only means another thread panicked between two integer updates:
        // the counts are still whole.
        let mut open = table.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= table.max {
            return None;
        }
        *n += 1;
        Some(AddressPlace {
            table: table.clone(),
            key,
        })
    }
}

/// One connection's place in its address's count, given back when dropped; an address whose
/// count falls to zero leaves the table, so the table holds only addresses with connections.
#[derive(Debug)]
struct AddressPlace {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What an admitted connection holds until it ends.
#[derive(Debug)]
struct Places {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _address: Option<AddressPlace>,
}

/// A connection's stream that holds its [`Guard`] permit, and fails a write that could not
/// make progress for `stall_limit` (a client that stopped reading): hyper then closes the
/// connection. The timer runs only while a write waits, so a slow but reading client is never
/// cut off, and an idle keep-alive connection is hyper's header read timeout's business.
pub struct Guarded<I> {
    inner: I,
    _places: Places,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    #[test]
    fn an_ipv6_client_counts_by_its_slash_64_and_a_mapped_ipv4_as_ipv4() {
        let t = table(2);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _one = PerAddress::take(&t, a).unwrap();
        let _two = PerAddress::take(&t, b).unwrap();
        assert!(
            PerAddress::take(&t, a).is_none(),
            "a third place in one /64"
        );
        assert!(PerAddress::take(&t, other).is_some());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let _x = PerAddress::take(&t, v4).unwrap();
        let _y = PerAddress::take(&t, mapped).unwrap();
        assert!(PerAddress::take(&t, v4).is_none());
    }

    #[test]
    fn places_come_back_and_empty_addresses_leave_the_table() {
        let t = table(1);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let place = PerAddress::take(&t, ip).unwrap();
        assert!(PerAddress::take(&t, ip).is_none());
        drop(place);
        assert!(t.open.lock().unwrap().is_empty());
        assert!(PerAddress::take(&t, ip).is_some());
    }

    #[test]
    fn a_refused_global_permit_gives_the_address_place_back() {
        let guard = Guard::new(ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            write_stall_timeout: Duration::from_secs(1),
            max_connections: 1,
            max_connections_per_address: Some(5),
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let held = guard.admit(Some(a)).unwrap();
        assert_eq!(guard.admit(Some(b)).err(), Some("max_connections"));
        let counts = guard
            .per_address
            .as_ref()
            .unwrap()
            .open
            .lock()
            .unwrap()
            .clone();
        assert_eq!(counts.get(&b), None, "{counts:?}");
        drop(held);
        assert!(guard.admit(Some(b)).is_ok());
    }
}
