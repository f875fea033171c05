//! The HTTP edge: everything a request passes through before (and after) its handler, as tower
//! layers, one stack per listener.
//!
//! Outermost first, in one [`Edge`] service: request id (taken from `X-Request-Id` when sane,
//! else generated; echoed on the answer and recorded on every log line of the request) →
//! request log and metrics (one start time, one method and route label for both) → security
//! headers and CSP → bare layer answers reshaped into the surface's error format → timeout;
//! then the body limit, and per route CORS (public listener: Kratos's `serve.public.cors` on
//! the self-service API, per-app origins on the OpenID Provider's browser-facing endpoints)
//! and per-address limits on the routes that store something → the handler.
//!
//! The hot path allocates next to nothing: the route label is the router's shared template,
//! metrics handles are resolved once per worker thread, and the whole stack is one boxed
//! future per request (bench/README.md has the figures).
//!
//! Invariant: nothing here knows a flow or a token; the edge sees requests, routes, statuses and
//! the settings in force, and handlers never repeat what a layer does.

pub mod cors;
pub mod headers;
pub mod hooks;
pub mod log;
pub mod metrics;
pub mod serve;

use crate::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;
use tessera_core::{Error, ErrorKind};
use tower_http::limit::RequestBodyLimitLayer;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest `X-Request-Id` taken from a client or proxy; a longer one is replaced (it is copied
/// into every log line of the request).
const MAX_REQUEST_ID: usize = 128;

/// Which listener a stack serves (they differ in CORS and in the routes a request log skips).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Public,
    Admin,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Public => "public",
            Listener::Admin => "admin",
        }
    }
}

/// Wraps a listener's routes (already merged, with their fallback) in the edge stack.
///
/// The whole stack is one `Router::layer` call: axum boxes every route once per layer it is
/// given, so one layer (the [`Edge`] service around the body limit) costs one box per request
/// instead of one per concern.
pub fn stack(router: Router<AppState>, st: &AppState, listener: Listener) -> Router {
    let log_health = match listener {
        Listener::Public => st.engine().settings.edge.public.log_health,
        Listener::Admin => st.engine().settings.edge.admin.log_health,
    };
    let edge = EdgeLayer {
        st: st.clone(),
        listener,
        log_health,
    };
    let router = match listener {
        Listener::Public => router.layer(axum::middleware::from_fn_with_state(
            st.clone(),
            hooks::hook_request,
        )),
        Listener::Admin => router,
    };
    router
        .layer(
            tower::ServiceBuilder::new()
                .layer(edge)
                .layer(RequestBodyLimitLayer::new(crate::http::MAX_BODY)),
        )
        .with_state(st.clone())
}

/// The edge as one tower layer: request id, request log and span, metrics, bare answers
/// reshaped, timeout and security headers, in that order from the outside in. One service
/// rather than one `from_fn` middleware per concern, because each of those clones and boxes
/// the rest of the stack on every request; here the start time, method and route are taken
/// once and shared by the log and the metrics.
#[derive(Clone)]
pub struct EdgeLayer {
    st: AppState,
    listener: Listener,
    log_health: bool,
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`EdgeLayer`].
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

impl<S> tower::Service<Request> for Edge<S>
where
    S: tower::Service<Request, Error = std::convert::Infallible>,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = request_id(&mut req);
        let method = metrics::method_label(req.method());
        let route = req.extensions().get::<MatchedPath>().cloned();
        let route_str = route.as_ref().map_or("unmatched", |m| m.as_str());
        let log = log::RequestLog::start(
            self.layer.listener,
            self.layer.log_health,
            &request_id,
            method,
            route_str,
            req.uri(),
        );
        let oauth = req.uri().path().starts_with("/oidc/");
        let st = self.layer.st.clone();
        let listener = self.layer.listener;
        let limit = st.live.running().engine.settings.limits.request_timeout;
        // The inner call (routing, extractors' synchronous part) runs inside the span too.
        let inner = log.span.in_scope(|| self.inner.call(req));
        let span = log.span.clone();
        Box::pin(
            async move {
                let mut resp = match tokio::time::timeout(limit, inner).await {
                    Ok(Ok(resp)) => resp.into_response(),
                    Ok(Err(never)) => match never {},
                    Err(_) => timed_out(limit),
                };
                if resp.status().is_client_error() || resp.status().is_server_error() {
                    resp = reshape_bare_error(resp, oauth);
                }
                headers::add_security_headers(&st, &mut resp);
                let status = resp.status().as_u16();
                let took = started.elapsed().as_secs_f64();
                metrics::record(
                    listener,
                    method,
                    route.as_ref().map_or("unmatched", |m| m.as_str()),
                    status,
                    took,
                );
                log.answered(status, took);
                resp.headers_mut().insert(REQUEST_ID, request_id);
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

/// The request's id: the client's `X-Request-Id` when it is short printable ASCII, otherwise a
/// fresh UUID (it ends up in logs and in the answer). Set on the request for the handler.
fn request_id(req: &mut Request) -> HeaderValue {
    if let Some(v) = req.headers().get(&REQUEST_ID)
        && v.len() <= MAX_REQUEST_ID
        && !v.is_empty()
        && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return v.clone();
    }
    let mut buf = uuid::Uuid::encode_buffer();
    // From the thread's userspace generator rather than `new_v4`'s `getrandom(2)`: a system
    // call per request for an id that only has to be unique, not secret.
    let id = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf);
    let v = HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    req.headers_mut().insert(REQUEST_ID, v.clone());
    v
}

/// Bounds how long any request may take (`limits.request_timeout`): the handler's future is
/// dropped, so its work stops at its next await point, and this answer goes out instead.
fn timed_out(limit: std::time::Duration) -> Response {
    tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
    ApiError(Error::new(
        ErrorKind::Unavailable,
        format!(
            "The request took longer than {} s and was stopped. Try again; if it keeps happening, the server or an upstream it calls is overloaded (limits.request_timeout).",
            limit.as_secs()
        ),
    )
    // A clear 503 says when to come back (issue 21): a hung database or upstream usually
    // recovers within seconds.
    .with_retry_after(5))
    .into_response()
}

/// Layers answer some refusals themselves (the body limit's 413, a CORS refusal, axum's own
/// 405): those bodies are plain text. Every error answer leaves in the format of the surface it
/// came from, so a bare one is rewritten: OAuth JSON under `/oidc/`, Kratos JSON elsewhere.
fn reshape_bare_error(resp: Response, oauth: bool) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || has_format(&resp) {
        return resp;
    }
    let reason = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "The request body is larger than {} bytes.",
            crate::http::MAX_BODY
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            "This endpoint does not accept the request's HTTP method; see docs/api.md.".into()
        }
        _ => format!(
            "The request was refused ({}).",
            status.canonical_reason().unwrap_or("error")
        ),
    };
    let mut out = if oauth {
        let code = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request"
        };
        axum::Json(serde_json::json!({"error": code, "error_description": reason})).into_response()
    } else {
        ApiError(Error::new(kind_of(status), reason)).into_response()
    };
    // Keep what the layer said beyond the body (`Allow` on a 405, `Retry-After`).
    for (k, v) in resp.headers() {
        if k != axum::http::header::CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().entry(k.clone()).or_insert(v.clone());
        }
    }
    *out.status_mut() = status;
    out
}

fn has_format(resp: &Response) -> bool {
    resp.headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json") || c.starts_with("text/html"))
}

/// The inverse of `error::status_of`, from the same table.
fn kind_of(status: StatusCode) -> ErrorKind {
    crate::error::kind_of(status)
}

/// Each request to a route that stores a row before anyone signs in (a new flow, a pending
/// authorization, a callback's error) counts against its address (`limits.*_per_minute`), so
/// no loop can fill the database. Applied with `route_layer` on exactly those routes:
/// `from_fn_with_state((state, "flows"), edge::limit_stored)`.
pub async fn limit_stored(
    State((st, kind)): State<(AppState, &'static str)>,
    req: Request,
    next: Next,
) -> Response {
    let client = crate::http::ClientAddr::of(&st, req.headers(), req.extensions());
    match st.engine().limits.stored_request(kind, client.0) {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_timed_out_request_is_a_503_that_says_when_to_retry() {
        let resp = super::timed_out(std::time::Duration::from_secs(3));
        assert_eq!(resp.status().as_u16(), 503);
        assert_eq!(
            resp.headers()
                .get(axum::http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
    }
}
