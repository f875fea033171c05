//! The HTTP server: Kratos's public API (:4433) and admin API (:4434) over the flow engine.
//!
//! Architecture invariant: handlers only translate HTTP ↔ engine calls (parse the request, call
//! one engine method, shape the response). Errors become HTTP in exactly one place
//! ([`error::ApiError`]); cookies and request bodies are handled by the helpers in [`http`].

pub mod admin;
pub mod app;
pub mod error;
pub mod http;
pub mod live;
pub mod oidc;
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

/// Listening sockets bound before serving, so "ready" is printed only when both accept.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    pub async fn bind(public: (&str, u16), admin: (&str, u16)) -> std::io::Result<Listeners> {
        let p = TcpListener::bind((public.0, public.1)).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot listen on {}:{} (serve.public): {e}",
                    public.0, public.1
                ),
            )
        })?;
        let a = TcpListener::bind((admin.0, admin.1)).await.map_err(|e| {
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
pub async fn serve_live(
    live: Arc<live::Live>,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (public, admin) = routers_live(live);
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut rx1 = tx.subscribe();
    let mut rx2 = tx.subscribe();
    let p = axum::serve(
        listeners.public,
        public.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = rx1.recv().await;
    });
    let a = axum::serve(
        listeners.admin,
        admin.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = rx2.recv().await;
    });
    let trigger = tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    let (r1, r2) = tokio::join!(p.into_future(), a.into_future());
    trigger.abort();
    r1?;
    r2
}
