//! Security headers on every answer, and the hosted pages' Content-Security-Policy.
//!
//! A page only says where its forms may end up ([`FormTargets`], a response extension); the CSP
//! itself is computed here, once, from the settings in force, so no page can forget it.

use crate::AppState;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Origins (given as URLs) a hosted page's forms may submit or redirect to beyond this server,
/// the providers and the return URLs: the app an OpenID Provider page answers.
#[derive(Debug, Clone, Default)]
pub struct FormTargets(pub Vec<String>);

/// Origins a hosted page may load in iframes: only the signed-out page sets it, with the
/// front-channel logout pages of the apps the session signed in to. Without it a page's CSP
/// frames nothing (`default-src 'none'`).
#[derive(Debug, Clone, Default)]
pub struct FrameSources(pub Vec<String>);

/// For answers that are not pages (JSON, redirects, stylesheets): nothing may run or load.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers (and the CSP) an answer does not set itself.
pub fn add_security_headers(st: &AppState, resp: &mut Response) {
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/html"));
    // Computed only when missing: a page's CSP costs a string per answer, an API answer none.
    if !resp.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
        let csp = if html {
            let targets = resp
                .extensions()
                .get::<FormTargets>()
                .map(|t| t.0.as_slice())
                .unwrap_or_default();
            let mut csp = crate::ui::content_security_policy_for(st, targets);
            if let Some(FrameSources(origins)) = resp.extensions().get::<FrameSources>()
                && !origins.is_empty()
            {
                let mut origins = origins.clone();
                origins.sort();
                origins.dedup();
                csp.push_str("; frame-src ");
                csp.push_str(&origins.join(" "));
            }
            HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(API_CSP))
        } else {
            HeaderValue::from_static(API_CSP)
        };
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    let h = resp.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    if html {
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
}
