//! The request log: one line per answered request (`serve.*.request_log`), and a span around
//! the handler so every line a request logs carries its request id, method and route.
//!
//! A small middleware rather than tower-http's `TraceLayer`: the line needs the matched route
//! and the `disable_for_health` decision, which `TraceLayer`'s response callback cannot see.

use super::{Listener, REQUEST_ID};
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

#[derive(Clone, Copy)]
pub struct LogSettings {
    listener: Listener,
    log_health: bool,
}

impl LogSettings {
    pub fn new(listener: Listener, log_health: bool) -> Self {
        LogSettings {
            listener,
            log_health,
        }
    }
}

/// The route a request matched (`/sessions/{id}`, never the id itself), or `unmatched`.
pub fn route_of(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into())
}

pub async fn log_request(
    axum::extract::State(s): axum::extract::State<LogSettings>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let method = req.method().clone();
    let route = route_of(&req);
    // The path without its query: queries carry codes, states and tokens.
    let path = req.uri().path().to_string();
    let health = path.starts_with("/health/") || path.starts_with("/admin/health/");
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        listener = s.listener.as_str(),
        method = %method,
        route = %route,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    if s.log_health || !health {
        let status = resp.status().as_u16();
        let took_ms = started.elapsed().as_secs_f64() * 1000.0;
        span.in_scope(|| {
            if status >= 500 {
                tracing::error!(target: "tessera::request", status, took_ms, path = %path, "request answered");
            } else {
                tracing::info!(target: "tessera::request", status, took_ms, path = %path, "request answered");
            }
        });
    }
    resp
}
