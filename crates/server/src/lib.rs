//! The HTTP server: Kratos's public API (:4433) and admin API (:4434) over the flow engine.
//!
//! Architecture invariant: handlers only translate HTTP ↔ engine calls (parse the request, call
//! one engine method, shape the response). What every request needs — request id, request log,
//! metrics, timeouts, body limit, security headers, CORS, per-address limits — is a layer of
//! the [`edge`], never handler code. Cookies and request bodies are handled by the helpers in
//! [`http`].

pub mod admin;
pub mod admin_apis;
pub mod admin_courier;
pub mod admin_orgs;
pub mod admin_recovery;
pub mod app;
pub mod edge;
pub mod error;
pub mod extract;
pub mod http;
mod inline;
pub mod live;
pub mod oidc;
pub mod oidc_bridge;
pub mod op;
pub mod op_pages;
pub mod public;
pub mod ui;

use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tessera_flows::Engine;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct AppState {
    pub live: Arc<live::Live>,
}

/// The OpenID Provider over an engine's settings, store, cipher and mapper sandbox.
pub fn provider(engine: &Engine) -> tessera_op::Provider {
    tessera_op::Provider::new(
        engine.settings.clone(),
        engine.store.clone(),
        engine.cipher.clone(),
        engine.social.pool().clone(),
        read_only_traits(&engine.schemas),
    )
}

/// Trait paths that every identity schema marks read-only for self-service: an app may take
/// its `sub` from those only (a trait editable under any schema could be changed by someone).
pub fn read_only_traits(schemas: &tessera_flows::engine::Schemas) -> Vec<String> {
    let mut all = schemas.by_id.values();
    let Some(first) = all.next() else {
        return vec![];
    };
    let mut paths: Vec<String> = first.read_only_paths().map(String::from).collect();
    for s in all {
        let other: Vec<&str> = s.read_only_paths().collect();
        paths.retain(|p| other.contains(&p.as_str()));
    }
    paths
}

impl AppState {
    /// For an engine assembled in code: no configuration file to update.
    pub fn new(engine: Engine) -> AppState {
        AppState {
            live: Arc::new(live::Live::new(engine, serde_json::Value::Null, None)),
        }
    }

    /// The configuration in force: take it once per request (see [`live`]).
    pub fn engine(&self) -> Arc<Engine> {
        self.live.running().engine.clone()
    }

    /// The OpenID Provider for apps (`/oidc`, `/admin/clients`) of the configuration in force.
    pub fn op(&self) -> tessera_op::Provider {
        self.live.running().op.clone()
    }
}

/// Both routers over a running configuration that `PUT /admin/identity-config` can replace.
pub fn routers_live(live: Arc<live::Live>) -> (Router, Router) {
    let state = AppState { live };
    (public::router(state.clone()), admin::router(state))
}

/// Both routers for an engine assembled in code (no configuration file to update).
pub fn routers(engine: Engine) -> (Router, Router) {
    let state = AppState::new(engine);
    (public::router(state.clone()), admin::router(state))
}

/// Connections the kernel may hold for a listener before the server accepts them (capped by
/// `net.core.somaxconn`). tokio's `TcpListener::bind` asks for 1,024: a burst of a few thousand
/// connections (issue 21's connection abuse) overflowed it, and the connections past it were
/// left half-open by the kernel for seconds, out of reach of every timeout the server sets.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `host:port` (the first address it resolves to that can be bound) with
/// [`LISTEN_BACKLOG`], `SO_REUSEADDR` as `TcpListener::bind` sets it.
async fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// Listening sockets bound before serving, so "ready" is printed only when both accept.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    pub async fn bind(public: (&str, u16), admin: (&str, u16)) -> std::io::Result<Listeners> {
        let p = listen(public.0, public.1).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {}:{} (serve.public): {e}",
                    public.0, public.1
                ),
            )
        })?;
        let a = listen(admin.0, admin.1).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {}:{} (serve.admin): {e}",
                    admin.0, admin.1
                ),
            )
        })?;
        Ok(Listeners {
            public: p,
            admin: a,
        })
    }
    pub fn addrs(&self) -> (SocketAddr, SocketAddr) {
        (
            self.public
                .local_addr()
                .expect("bound socket has an address"),
            self.admin
                .local_addr()
                .expect("bound socket has an address"),
        )
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    engine: Engine,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_live(
        Arc::new(live::Live::new(engine, serde_json::Value::Null, None)),
        listeners,
        shutdown,
    )
    .await
}

/// [`serve`] over a running configuration that can be replaced while serving.
///
/// The listeners' TLS, CORS and connection limits are read once here: changing them needs a
/// restart (`PUT /admin/identity-config` reports so).
pub async fn serve_live(
    live: Arc<live::Live>,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_live_wrapped(live, listeners, shutdown, |r| r).await
}

/// [`serve`] with `wrap` applied to both finished routers (edge layers included). Tests use it
/// to look at every answer as it leaves (testkit checks Kratos's OpenAPI document); `tessera
/// serve` never wraps.
pub async fn serve_wrapped(
    engine: Engine,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    wrap: impl Fn(Router) -> Router,
) -> std::io::Result<()> {
    serve_live_wrapped(
        Arc::new(live::Live::new(engine, serde_json::Value::Null, None)),
        listeners,
        shutdown,
        wrap,
    )
    .await
}

async fn serve_live_wrapped(
    live: Arc<live::Live>,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    wrap: impl Fn(Router) -> Router,
) -> std::io::Result<()> {
    // Installed before the first request so every counter is recorded.
    let _ = edge::metrics::handle();
    let settings = live.running().engine.settings.clone();
    let public_tls = match &settings.edge.public.tls {
        Some(pem) => Some(edge::serve::tls_config(pem, "serve.public.tls")?),
        None => None,
    };
    let admin_tls = match &settings.edge.admin.tls {
        Some(pem) => Some(edge::serve::tls_config(pem, "serve.admin.tls")?),
        None => None,
    };
    if let Some(cors) = &settings.edge.public.cors
        && cors.allow_credentials
        && cors
            .origins
            .contains(&tessera_config::edge::OriginPattern::Any)
    {
        tracing::warn!(
            "serve.public.cors allows every origin with credentials (allowed_origins is empty or `*`, as in Kratos): any web site can call the public API with its visitors' session cookies where browsers send them; list your apps' origins in serve.public.cors.allowed_origins"
        );
    }
    let conn_limits = edge::serve::ConnectionLimits::of(&settings.limits);
    // The courier's worker sends what flows queue, with the courier settings in force.
    let worker_live = live.clone();
    let http_live = live.clone();
    let courier = tokio::spawn(tessera_courier::worker::run(
        live.running().engine.store.clone(),
        Arc::new(move || Arc::new(worker_live.running().engine.settings.courier.clone())),
        Arc::new(move || Some(http_live.running().engine.social.clone())),
        std::future::pending(),
    ));
    // Back-channel logout notices go out from every instance (each notice is leased to one).
    let bcl_live = live.clone();
    let backchannel = tokio::spawn(tessera_op::backchannel::run(
        move || bcl_live.running().op.clone(),
        std::future::pending(),
    ));
    let (public, admin) = routers_live(live);
    let (public, admin) = (wrap(public), wrap(admin));
    let public_handle = axum_server::Handle::new();
    let admin_handle = axum_server::Handle::new();
    let p = edge::serve::serve(
        listeners.public,
        public,
        public_tls,
        conn_limits,
        public_handle.clone(),
    );
    let a = edge::serve::serve(
        listeners.admin,
        admin,
        admin_tls,
        conn_limits,
        admin_handle.clone(),
    );
    let trigger = tokio::spawn(async move {
        shutdown.await;
        // Stop accepting; requests in flight finish (each is bounded by limits.request_timeout).
        public_handle.graceful_shutdown(None);
        admin_handle.graceful_shutdown(None);
    });
    let (r1, r2) = tokio::join!(p, a);
    trigger.abort();
    courier.abort();
    backchannel.abort();
    r1?;
    r2
}
