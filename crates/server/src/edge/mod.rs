//! The HTTP edge: everything a request passes through before (and after) its handler, as tower
//! layers, one stack per listener.
//!
//! Outermost first: request id (taken from `X-Request-Id` when sane, else generated; echoed on
//! the answer and recorded on every log line of the request) → request log → metrics → bare
//! layer answers reshaped into the surface's error format → timeout → body limit → security
//! headers and CSP → CORS (public listener: Kratos's `serve.public.cors` on the self-service API,
//! per-app origins on the OpenID Provider's browser-facing endpoints) → per-address limits on
//! the routes that store something → the handler.
//!
//! Invariant: nothing here knows a flow or a token; the edge sees requests, routes, statuses and
//! the settings in force, and handlers never repeat what a layer does.

pub mod cors;
pub mod headers;
pub mod log;
pub mod metrics;
pub mod serve;

use crate::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tessera_core::{Error, ErrorKind};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

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
pub fn stack(router: Router<AppState>, st: &AppState, listener: Listener) -> Router {
    let log_health = match listener {
        Listener::Public => st.engine().settings.edge.public.log_health,
        Listener::Admin => st.engine().settings.edge.admin.log_health,
    };
    router
        .layer(middleware::from_fn_with_state(
            st.clone(),
            headers::security_headers,
        ))
        .layer(RequestBodyLimitLayer::new(crate::http::MAX_BODY))
        .layer(middleware::from_fn_with_state(st.clone(), timeout))
        .layer(middleware::from_fn(reshape_bare_errors))
        .layer(middleware::from_fn_with_state(listener, metrics::record))
        .layer(middleware::from_fn_with_state(
            log::LogSettings::new(listener, log_health),
            log::log_request,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::map_request(drop_unusable_request_id))
        .with_state(st.clone())
}

/// A client's `X-Request-Id` is kept only when it is short printable ASCII; otherwise a fresh id
/// replaces it (it ends up in logs and in the answer).
async fn drop_unusable_request_id(mut req: Request) -> Request {
    let usable = req.headers().get(&REQUEST_ID).is_none_or(|v| {
        v.len() <= MAX_REQUEST_ID
            && !v.is_empty()
            && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    });
    if !usable {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

/// Bounds how long any request may take (`limits.request_timeout`). The handler's future is
/// dropped, so its work stops at its next await point.
async fn timeout(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let limit = st.engine().settings.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
            ApiError(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "The request took longer than {} s and was stopped. Try again; if it keeps happening, the server or an upstream it calls is overloaded (limits.request_timeout).",
                    limit.as_secs()
                ),
            ))
            .into_response()
        }
    }
}

/// Layers answer some refusals themselves (the body limit's 413, a CORS refusal, axum's own
/// 405): those bodies are plain text. Every error answer leaves in the format of the surface it
/// came from, so a bare one is rewritten: OAuth JSON under `/oidc/`, Kratos JSON elsewhere.
async fn reshape_bare_errors(req: Request, next: Next) -> Response {
    let oauth = req.uri().path().starts_with("/oidc/");
    let resp = next.run(req).await;
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
