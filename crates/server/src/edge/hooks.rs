//! What self-service hooks see of the request (`ctx.request_method`, `request_url`,
//! `request_headers`, `request_cookies`): taken here, once, and handed to the engine through
//! `tessera_flows::hooks::scope`, so no handler or engine signature carries HTTP types.
//! Only Kratos's allow-listed headers are kept; the engine drops session and flow cookies.

use crate::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tessera_flows::hooks::{HookRequest, scope};

/// Public listener only: the admin API runs no self-service hooks.
pub async fn hook_request(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut hr = HookRequest {
        method: req.method().as_str().to_string(),
        ..Default::default()
    };
    let base = &st.engine().settings.serve.public_base_url;
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    hr.url = format!("{}{}", base.origin().ascii_serialization(), path);
    for (name, value) in req.headers() {
        let Ok(v) = value.to_str() else { continue };
        if name == axum::http::header::COOKIE {
            for c in cookie::Cookie::split_parse(v.to_string()).flatten() {
                hr.cookies
                    .insert(c.name().to_string(), c.value().to_string());
            }
        } else {
            hr.allow_header(name.as_str(), v);
        }
    }
    scope(hr, next.run(req)).await
}
