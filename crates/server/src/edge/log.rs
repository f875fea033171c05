//! The request log: one line per answered request (`serve.*.request_log`), and a span around
//! the handler so every line a request logs carries its request id, method and route.
//!
//! Part of the edge's one observing layer ([`super::Edge`]) rather than tower-http's
//! `TraceLayer`: the line needs the matched route and the `disable_for_health` decision, and
//! the same start time and labels serve the metrics, so they are taken once per request.

use super::Listener;
use axum::http::HeaderValue;
use tracing::Span;

/// What one request's log needs, taken before the handler runs. Nothing here allocates:
/// the route is the router's shared template, the path is the request URI's shared bytes.
pub struct RequestLog {
    pub span: Span,
    /// The path without its query: queries carry codes, states and tokens.
    path: axum::http::Uri,
    log: bool,
}

impl RequestLog {
    pub fn start(
        listener: Listener,
        log_health: bool,
        request_id: &HeaderValue,
        method: &'static str,
        route: &str,
        uri: &axum::http::Uri,
    ) -> RequestLog {
        let path = uri.path();
        let health = path.starts_with("/health/") || path.starts_with("/admin/health/");
        // The same rendering as before the edge was one layer: values unquoted, but the
        // listener's name.
        let span = tracing::info_span!(
            "request",
            request_id = %request_id.to_str().unwrap_or_default(),
            listener = listener.as_str(),
            method = %method,
            route = %route,
        );
        RequestLog {
            span,
            path: uri.clone(),
            log: log_health || !health,
        }
    }

    /// The line for an answered request; call it inside the request's span.
    pub fn answered(&self, status: u16, took_secs: f64) {
        if !self.log {
            return;
        }
        let took_ms = took_secs * 1000.0;
        let path = self.path.path();
        if status >= 500 {
            tracing::error!(target: "tessera::request", status, took_ms, path = %path, "request answered");
        } else {
            tracing::info!(target: "tessera::request", status, took_ms, path = %path, "request answered");
        }
    }
}
