//! A bare axum hello-world server: the baseline the whoami benchmark is measured against.
//!
//! Usage: `bench-baseline [PORT]` (default 18080). Listens on 127.0.0.1 only, serves
//! `GET /` with the body `hello`, on a multi-thread tokio runtime.

use axum::{Router, routing::get};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("invalid port {arg:?}"),
            )
        })?,
        None => 18080,
    };
    let app = Router::new().route("/", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("bench-baseline listening on http://127.0.0.1:{port}/");
    axum::serve(listener, app).await
}
