//! Metrics for operators, exposed at `/metrics/prometheus` on the admin listener (Kratos's
//! path) in the Prometheus text format.
//!
//! Every crate counts through the `metrics` facade (`metrics::counter!`), so `flows`, `social`,
//! `mapper` and `op` record what they know without depending on an exporter; this module
//! installs the one process-wide recorder and renders it. Names follow Prometheus conventions
//! (`tessera_` prefix, `_total` counters, `_seconds` histograms, base units), and every label
//! has a bounded set of values: routes are the matched route templates, never raw paths.
//! The list of names lives in docs/operations.md; the Grafana dashboard in
//! docs/grafana-dashboard.json reads them.

use super::Listener;
use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Seconds; from a cache hit to a slow upstream.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric Tessera records (the dashboard and docs/operations.md use only these).
pub const NAMES: &[&str] = &[
    "tessera_build_info",
    "tessera_http_requests_total",
    "tessera_http_request_duration_seconds",
    "tessera_signins_total",
    "tessera_registrations_total",
    "tessera_upstream_requests_total",
    "tessera_upstream_request_duration_seconds",
    "tessera_mapper_evaluations_total",
    "tessera_op_tokens_issued_total",
    "tessera_sessions_active",
    "tessera_connections_refused_total",
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use. `None` when something else installed a
/// recorder first (an embedding program): metrics then go to that recorder and this endpoint
/// says so.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics/prometheus stays empty");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "tessera_http_requests_total",
        "HTTP requests answered, by listener, method, route template and status"
    );
    describe_histogram!(
        "tessera_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by listener, method and route template"
    );
    describe_counter!(
        "tessera_signins_total",
        "Sessions issued by a sign-in, by method (password, oidc) and provider"
    );
    describe_counter!(
        "tessera_registrations_total",
        "Identities registered through self-service, by method and provider"
    );
    describe_counter!(
        "tessera_upstream_requests_total",
        "Calls to social sign-in providers, by provider and outcome (ok, error)"
    );
    describe_histogram!(
        "tessera_upstream_request_duration_seconds",
        Unit::Seconds,
        "Time an upstream provider took to answer, by provider"
    );
    describe_counter!(
        "tessera_mapper_evaluations_total",
        "Jsonnet mapper evaluations, by outcome (ok, error)"
    );
    describe_counter!(
        "tessera_op_tokens_issued_total",
        "Token responses of the OpenID Provider, by grant type"
    );
    describe_gauge!(
        "tessera_sessions_active",
        "Sessions that are active and not expired (computed at each scrape)"
    );
    describe_counter!(
        "tessera_connections_refused_total",
        "Connections closed as soon as accepted, by the limit reached (max_connections, max_connections_per_address)"
    );
    metrics::gauge!("tessera_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// The HTTP series of one (listener, method, route, status), resolved once per worker thread.
struct Series {
    listener: Listener,
    method: &'static str,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

thread_local! {
    /// Route template → the series seen for it on this thread. Looking a series up is a hash
    /// of the route and a short scan, with no allocation and no lock shared between threads;
    /// only the first request of a series registers it with the recorder.
    static SERIES: std::cell::RefCell<std::collections::HashMap<Box<str>, Vec<Series>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// A bound on the series cached per thread: routes, methods and statuses are bounded, but
/// should that ever fail (a bug), memory stays bounded too.
const MAX_CACHED_ROUTES: usize = 1024;

/// Counts and times an answered request (`route` is the matched template or `unmatched`).
pub fn record(listener: Listener, method: &'static str, route: &str, status: u16, secs: f64) {
    if handle().is_none() {
        return;
    }
    let hit = SERIES.with(|cache| {
        let cache = cache.borrow();
        cache.get(route).and_then(|list| {
            list.iter()
                .find(|s| s.listener == listener && s.method == method && s.status == status)
                .map(|s| {
                    s.requests.increment(1);
                    s.duration.record(secs);
                })
        })
    });
    if hit.is_some() {
        return;
    }
    let labels = [
        ("listener", listener.as_str().to_string()),
        ("method", method.to_string()),
        ("route", route.to_string()),
    ];
    let duration = metrics::histogram!("tessera_http_request_duration_seconds", &labels);
    let mut with_status = labels.to_vec();
    with_status.push(("status", status.to_string()));
    let requests = metrics::counter!("tessera_http_requests_total", &with_status);
    requests.increment(1);
    duration.record(secs);
    SERIES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= MAX_CACHED_ROUTES {
            cache.clear();
        }
        cache.entry(route.into()).or_default().push(Series {
            listener,
            method,
            status,
            requests,
            duration,
        });
    });
}

/// The method as a label: the standard ones by name, anything else as `other` (a client
/// choosing methods must not choose label values).
pub fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `GET /metrics/prometheus` (admin listener).
pub async fn prometheus(State(st): State<AppState>) -> Response {
    let Some(h) = handle() else {
        return crate::error::ApiError(tessera_core::Error::new(
            tessera_core::ErrorKind::Unavailable,
            "Metrics are not available: the program embedding Tessera installed its own metrics recorder.",
        ))
        .into_response();
    };
    match st.engine().store.count_active_sessions().await {
        Ok(n) => metrics::gauge!("tessera_sessions_active").set(n as f64),
        Err(e) => tracing::warn!(reason = %e.reason, "metrics: cannot count active sessions"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        h.render(),
    )
        .into_response()
}
