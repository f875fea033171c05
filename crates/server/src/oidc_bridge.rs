//! The fragment bridge: for an upstream that returns its answer in the callback URL's fragment
//! (Telegram's Login Widget redirect: `…/callback/{id}?state=…#tgAuthResult=…`), which browsers
//! never send to a server, the callback first answers with this page. Its one inline script
//! reads the fragment, drops it from the address bar and history, and posts the value back to
//! the callback with the query's `state`; the engine then checks it as any callback. Without
//! JavaScript the page says so in the person's language.
//!
//! The page is a transport, like the OpenID Provider's `form_post` page: minimal markup and a
//! CSP of its own that allows exactly this script by its SHA-256 (no `'unsafe-inline'`) and
//! the same `form-action` targets as the hosted pages, since the post ends in a redirect to the
//! flow's page or to the app.

use crate::inline::{csp_hash, esc};
use crate::ui::i18n::{Lang, t};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;
use tessera_core::flow::FlowKind;
use tessera_flows::Engine;

/// The script: the fragment's value of the field marked `data-fragment` (percent-decoded when
/// it can be), the address without the fragment, then the post. Static, so its hash is too.
pub const SCRIPT: &str = "(function(){var f=document.getElementById('bridge'),i=f.querySelector('input[data-fragment]'),v='',h=location.hash.replace(/^#/,'').split('&');for(var k=0;k<h.length;k++){var p=h[k].split('=');if(p[0]===i.name){v=p.slice(1).join('=');try{v=decodeURIComponent(v)}catch(e){}}}i.value=v;try{history.replaceState(null,'',location.pathname+location.search)}catch(e){}f.submit()})()";

/// `'sha256-…'` of [`SCRIPT`], for the CSP.
static SCRIPT_HASH: LazyLock<String> = LazyLock::new(|| csp_hash(SCRIPT));

/// The bridge page for provider `provider_id` (called `label`), whose answer is the fragment
/// parameter `param`, with the callback query's `state`.
pub fn page(
    e: &Engine,
    lang: Lang,
    provider_id: &str,
    label: &str,
    param: &str,
    state: &str,
) -> Response {
    let action = e.oidc_redirect_uri(provider_id);
    // A state longer than any Tessera issues is not worth carrying back.
    let state = if state.len() > 512 { "" } else { state };
    let restart = e
        .settings
        .serve
        .public_base_url
        .join("self-service/login/browser")
        .map(|u| u.to_string())
        .unwrap_or_default();
    let provider = [("provider", label.to_string())];
    let title = t(lang, "bridge.title", &provider);
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title}</title></head><body><h1>{title}</h1><form id=\"bridge\" method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"state\" value=\"{state}\"><input type=\"hidden\" name=\"{param}\" value=\"\" data-fragment><noscript><p role=\"alert\">{noscript}</p><p><a href=\"{restart}\">{back}</a></p></noscript></form><script>{SCRIPT}</script></body></html>",
        lang = lang.tag(),
        title = esc(&title),
        action = esc(&action),
        state = esc(state),
        param = esc(param),
        noscript = esc(&t(lang, "bridge.noscript", &provider)),
        restart = esc(&restart),
        back = esc(&t(lang, "bridge.restart", &[])),
    );
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    // Where the post may end up: the hosted pages' targets, and the pages a callback sends
    // the browser to, wherever they are hosted.
    let extra: Vec<String> = [FlowKind::Login, FlowKind::Registration, FlowKind::Settings]
        .into_iter()
        .map(|k| e.ui_url(k).to_string())
        .chain([e.settings.flows.error_ui_url.to_string()])
        .collect();
    let mut form_action = String::from("'self'");
    for o in crate::ui::form_action_origins(e, &extra) {
        form_action.push(' ');
        form_action.push_str(&o);
    }
    let csp = format!(
        "default-src 'none'; script-src {}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        *SCRIPT_HASH
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_hash_is_the_scripts() {
        assert_eq!(*SCRIPT_HASH, csp_hash(SCRIPT));
        assert!(
            !SCRIPT.contains("</"),
            "the script cannot end its own element"
        );
    }
}
