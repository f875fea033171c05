//! The hosted sign-in experience: server-rendered pages (no JavaScript) for login,
//! registration, settings, errors, the landing page and the OpenID Provider's pages (consent,
//! its errors, "Sign out?" and "signed out", filled by `crate::op`).
//!
//! Pages are driven by the self-service flows exactly as the JSON API returns them — the flow's
//! UI nodes and messages are the single source of truth — and forms post to the same
//! `/self-service/…` endpoints. The sign-in experience (`experience:` in the config) decides
//! which method groups show, the provider order, the brand and the terms links. Replace these
//! pages by pointing `selfservice.flows.*.ui_url` at your own UI, as with Kratos.
//!
//! - [`render`]: the minijinja environment (templates embedded) and the view models;
//! - [`i18n`]: English, Simplified Chinese and Russian, and how a page picks one;
//!
//! Security: every page carries a CSP without inline script or style
//! (`default-src 'none'`), `frame-ancestors 'none'`, and every form the flow's CSRF token.
//! The brand colour is served as a tiny stylesheet (`/ui/theme.css`) rather than an inline
//! `<style>`, so the CSP needs no nonce or hash.

pub mod i18n;
pub mod render;

use crate::AppState;
use crate::extract::{Cfg, Csrf, KratosQuery, MaybeSession};
use crate::http::cookie;
use axum::Router;
use axum::extract::OriginalUri;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get};
use i18n::{LANG_COOKIE, Lang};
pub use render::{
    BackForm, ConsentView, DeviceDoneView, DeviceView, HiddenView, LogoutConfirmView, OpErrorView,
};
use render::{Chrome, ErrorPage, FlowContext, FlowPage, WelcomePage};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::LazyLock;
use tessera_core::flow::{Flow, FlowKind};
use tessera_core::session::Session;
use tessera_core::text::MessageId;
use tessera_flows::Engine;
use tessera_social::types::origin_of;

/// The stylesheet, served from `/ui/static/tessera.css?v=<hash>` with a year-long cache.
pub const CSS: &str = include_str!("static/tessera.css");

/// FNV-1a, enough to tell stylesheet versions apart in a cache-busting query.
fn short_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

static CSS_HREF: LazyLock<String> =
    LazyLock::new(|| format!("/ui/static/tessera.css?v={}", short_hash(CSS)));

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/login", flow_route(FlowKind::Login))
        .route("/ui/registration", flow_route(FlowKind::Registration))
        .route("/ui/settings", flow_route(FlowKind::Settings))
        .route("/ui/verification", flow_route(FlowKind::Verification))
        .route("/ui/recovery", flow_route(FlowKind::Recovery))
        .route("/ui/welcome", get(welcome))
        .route("/ui/error", get(error_page))
        .route("/ui/lang", get(switch_language))
        .route("/ui/static/tessera.css", get(stylesheet))
        .route("/ui/theme.css", get(theme))
}

/// The query of a hosted page: the flow or stored error it shows, and an app's `ui_locales`.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub flow: Option<String>,
    pub id: Option<String>,
    pub ui_locales: Option<String>,
}

/// The page language for this request (see [`i18n`] for the order).
pub fn page_lang(headers: &HeaderMap, ui_locales: Option<&str>) -> Lang {
    i18n::negotiate(
        ui_locales,
        cookie(headers, LANG_COOKIE),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// The language of a flow's page: the query's `ui_locales`, then the language cookie (the
/// switcher), then the `ui_locales` the flow was created with (so a mailed link opened in
/// another browser shows the language its mail was written in), then `Accept-Language`.
fn flow_page_lang(headers: &HeaderMap, ui_locales: Option<&str>, flow: &Flow) -> Lang {
    let asked = ui_locales
        .and_then(|s| s.split_whitespace().find_map(Lang::parse))
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse));
    let stored = || {
        let url = url::Url::parse(&flow.request_url).ok()?;
        let (_, v) = url.query_pairs().find(|(k, _)| k == "ui_locales")?;
        v.split_whitespace().find_map(Lang::parse)
    };
    asked
        .or_else(stored)
        .unwrap_or_else(|| page_lang(headers, None))
}

/// The frame every page shares: language links, brand, stylesheets.
pub fn chrome(e: &Engine, lang: Lang, here: &str) -> Chrome {
    let x = &e.settings.experience;
    Chrome::new(
        lang,
        x,
        here,
        &CSS_HREF,
        &format!("/ui/theme.css?v={}", short_hash(&x.primary_color)),
    )
}

/// The origins, besides `'self'`, that a hosted page's form submission may end up at (CSP
/// `form-action`, which browsers apply to the redirects after a POST too): the providers'
/// authorization endpoints (social buttons answer 303 upstream, see
/// `Social::authorization_origins`), the allowed return URLs (a completed sign-in answers
/// 303 there) and the origins of `extra_targets` (URLs). This server's own origin is left out:
/// `'self'` covers it.
pub fn form_action_origins(engine: &Engine, extra_targets: &[String]) -> BTreeSet<String> {
    let s = &engine.settings;
    let mut targets: BTreeSet<String> = extra_targets.iter().filter_map(|u| origin_of(u)).collect();
    for u in s
        .flows
        .allowed_return_urls
        .iter()
        .chain([&s.flows.default_return_url, &s.flows.logout_return_url])
    {
        // A native app's return URL (`exp://…`, `com.example.app:/cb`) has no web origin: CSP
        // names it by its scheme (config refuses `javascript:`, `data:` and the like).
        targets.extend(origin_of(u.as_str()).or_else(|| {
            (!matches!(u.scheme(), "http" | "https")).then(|| format!("{}:", u.scheme()))
        }));
    }
    targets.extend(engine.social.authorization_origins());
    if let Some(o) = origin_of(s.serve.public_base_url.as_str()) {
        targets.remove(&o);
    }
    targets
}

/// The page CSP. `form-action` lists where a form submission may end up, since browsers
/// apply it to the redirects after a POST too: this server, the providers' authorization
/// endpoints (social buttons answer 303 upstream) and the allowed return URLs (a completed
/// sign-in answers 303 there).
pub fn content_security_policy(st: &AppState) -> String {
    content_security_policy_for(st, &[])
}

/// [`content_security_policy`] with more `form-action` targets: the OpenID Provider's pages add
/// the origin of the app their form ends up at (consent and "Sign out?" answer 303 there, a
/// `form_post` "Back to the app" posts there).
///
/// It runs in the security-header layer, after the handler, so it takes the configuration in
/// force at that moment.
pub fn content_security_policy_for(st: &AppState, extra_targets: &[String]) -> String {
    let running = st.live.running();
    let engine = &running.engine;
    let s = &engine.settings;
    let targets = form_action_origins(engine, extra_targets);
    let mut form_action = String::from("'self'");
    for t in &targets {
        form_action.push(' ');
        form_action.push_str(t);
    }
    let logo = s
        .experience
        .logo_url
        .as_ref()
        .and_then(|u| origin_of(u.as_str()))
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:{logo}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// An HTML answer; the edge adds the security headers and the CSP
/// ([`crate::edge::headers`]).
pub fn html_response(status: StatusCode, body: String) -> Response {
    html_response_for(status, body, &[])
}

/// [`html_response`] whose forms may also end up at `extra_targets` (URLs; their origins are
/// added to the CSP's `form-action`).
pub fn html_response_for(status: StatusCode, body: String, extra_targets: &[String]) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    if !extra_targets.is_empty() {
        resp.extensions_mut()
            .insert(crate::edge::headers::FormTargets(extra_targets.to_vec()));
    }
    resp
}

fn rendered(result: Result<String, String>) -> Response {
    rendered_for(StatusCode::OK, result, &[])
}

fn rendered_for(
    status: StatusCode,
    result: Result<String, String>,
    extra_targets: &[String],
) -> Response {
    match result {
        Ok(html) => html_response_for(status, html, extra_targets),
        Err(e) => {
            tracing::error!(error = %e, "hosted UI template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// The OpenID Provider's pages (consent, its errors, "Sign out?", "signed out"): the request
/// they answer. The language comes from the app's `ui_locales`, then the
/// cookie, then `Accept-Language`; `here` is the page's own path for the language switcher;
/// `app_url` is where the page's form ends up (its origin joins the CSP's `form-action`).
pub struct OpPage<'a> {
    pub headers: &'a HeaderMap,
    pub ui_locales: Option<&'a str>,
    pub here: &'a str,
    pub app_url: Option<String>,
}

impl OpPage<'_> {
    fn lang(&self) -> Lang {
        page_lang(self.headers, self.ui_locales)
    }
    fn targets(&self) -> Vec<String> {
        self.app_url.iter().cloned().collect()
    }
}

/// The consent page: the same chrome, headers and language choice as every hosted page. A page
/// opened with `ui_locales` keeps that language for the rest of the journey.
pub fn consent_response(e: &Engine, p: &OpPage, view: ConsentView) -> Response {
    let lang = p.lang();
    let resp = rendered_for(
        StatusCode::OK,
        render::render_consent(chrome(e, lang, p.here), view),
        &p.targets(),
    );
    keep_ui_locales(e, resp, p.ui_locales)
}

/// An OpenID Provider error shown instead of going back to the app.
pub fn op_error_response(e: &Engine, p: &OpPage, view: OpErrorView) -> Response {
    let status = StatusCode::from_u16(view.status).unwrap_or(StatusCode::BAD_REQUEST);
    let lang = p.lang();
    rendered_for(
        status,
        render::render_op_error(chrome(e, lang, p.here), view),
        &p.targets(),
    )
}

/// "Sign out?" (RP-initiated logout without an `id_token_hint`).
pub fn logout_confirm_response(e: &Engine, p: &OpPage, view: LogoutConfirmView) -> Response {
    let lang = p.lang();
    rendered_for(
        StatusCode::OK,
        render::render_logout_confirm(chrome(e, lang, p.here), view),
        &p.targets(),
    )
}

/// The device page (RFC 8628): the code form, or the result of an approval.
pub fn device_response(e: &Engine, p: &OpPage, view: DeviceView) -> Response {
    let lang = p.lang();
    let resp = rendered_for(
        StatusCode::OK,
        render::render_device(chrome(e, lang, p.here), view),
        &[],
    );
    keep_ui_locales(e, resp, p.ui_locales)
}

/// "You are signed out" (a logout with nowhere to go back to).
pub fn signed_out_response(e: &Engine, p: &OpPage) -> Response {
    let lang = p.lang();
    rendered_for(
        StatusCode::OK,
        render::render_signed_out(chrome(e, lang, p.here)),
        &[],
    )
}

/// "You are signed out" loading each front-channel logout URL in an iframe (OIDC
/// Front-Channel Logout 1.0); `next` is the app's `post_logout_redirect_uri`, offered as a link
/// (the page has no script to follow it once the frames loaded). The CSP's `frame-src` lists
/// exactly the frames' origins ([`crate::edge::headers::FrameSources`]).
pub fn signed_out_frontchannel_response(
    e: &Engine,
    p: &OpPage,
    frames: Vec<String>,
    next: Option<String>,
) -> Response {
    let lang = p.lang();
    let origins: Vec<String> = frames.iter().filter_map(|u| origin_of(u)).collect();
    // `next` is a link, not a form: the CSP's `form-action` stays as it is.
    let mut resp = rendered_for(
        StatusCode::OK,
        render::render_signed_out_with(chrome(e, lang, p.here), frames, next),
        &[],
    );
    resp.extensions_mut()
        .insert(crate::edge::headers::FrameSources(origins));
    resp
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        CSS,
    )
        .into_response()
}

/// The brand colour as CSS custom properties (the link carries a hash of the colour, so a
/// changed colour is a new URL and the long cache is safe).
async fn theme(cfg: Cfg) -> Response {
    let c = &cfg.engine().settings.experience.primary_color;
    let strong = tessera_config::experience::parse_hex_color(c)
        .map(|[r, g, b]| {
            let d = |v: u8| (f32::from(v) * 0.82) as u8;
            format!("#{:02x}{:02x}{:02x}", d(r), d(g), d(b))
        })
        .unwrap_or_else(|| c.clone());
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        format!(":root{{--primary:{c};--primary-strong:{strong}}}\n"),
    )
        .into_response()
}

/// `GET /ui/lang?set=<tag>&back=<path>`: the switcher. Remembers the choice in a cookie and
/// goes back to the page (only to a path under `/ui/` or the OpenID Provider's `/oidc/`, never
/// elsewhere).
/// `GET /ui/lang`'s query.
#[derive(Deserialize)]
struct LangQuery {
    set: Option<String>,
    back: Option<String>,
}

async fn switch_language(cfg: Cfg, KratosQuery(q): KratosQuery<LangQuery>) -> Response {
    let back = q
        .back
        .filter(|b| {
            (b.starts_with("/ui/") || b.starts_with("/oidc/"))
                && !b.contains("//")
                && !b.contains('\\')
        })
        .unwrap_or_else(|| "/ui/welcome".into());
    let mut resp = Redirect::to(&back).into_response();
    if let Some(lang) = q.set.as_deref().and_then(Lang::parse) {
        remember_lang(cfg.engine(), &mut resp, lang);
    }
    resp
}

/// Sets the language cookie, so the next pages of the journey keep this language.
fn remember_lang(e: &Engine, resp: &mut Response, lang: Lang) {
    let mut c = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly",
        lang.tag()
    );
    if e.settings.session.cookie.secure {
        c.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A page opened with `ui_locales` (an app's wish, via the OpenID Provider) keeps that
/// language for the rest of the journey, whose later pages no longer carry the parameter.
fn keep_ui_locales(e: &Engine, mut resp: Response, ui_locales: Option<&str>) -> Response {
    if let Some(lang) = ui_locales.and_then(|l| l.split_whitespace().find_map(Lang::parse)) {
        remember_lang(e, &mut resp, lang);
    }
    resp
}

fn here(uri: &OriginalUri) -> String {
    uri.0
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.0.path().to_string())
}

fn browser_start(e: &Engine, kind: FlowKind, return_to: Option<&str>) -> String {
    let mut u = e
        .settings
        .serve
        .public_base_url
        .join(&format!("self-service/{}/browser", kind.as_str()))
        .unwrap_or_else(|_| e.settings.serve.public_base_url.clone());
    if let Some(r) = return_to {
        u.query_pairs_mut().append_pair("return_to", r);
    }
    u.to_string()
}

/// The identifier to show for a signed-in person: their email or username, else the id.
fn identifier_of(e: &Engine, session: &Session) -> String {
    let Some(identity) = &session.identity else {
        return session.identity_id.to_string();
    };
    if let Ok(schema) = e.schemas.get(&identity.schema_id) {
        for f in schema.fields.iter().filter(|f| f.password_identifier) {
            if let Some(Value::String(s)) = tessera_core::schema::lookup(&identity.traits, &f.path)
            {
                return s.clone();
            }
        }
    }
    for k in ["email", "username", "phone"] {
        if let Some(Value::String(s)) = identity.traits.get(k) {
            return s.clone();
        }
    }
    identity.id.to_string()
}

async fn flow_page(
    cfg: Cfg,
    kind: FlowKind,
    q: PageQuery,
    csrf: Csrf,
    session: Option<Session>,
    headers: HeaderMap,
    here: String,
) -> Response {
    let e = cfg.engine();
    let lang = page_lang(&headers, q.ui_locales.as_deref());
    let start = browser_start(e, kind, None);
    let Some(id) = q.flow.as_deref() else {
        return Redirect::to(&start).into_response();
    };
    let flow = match e.fetch_flow(kind, id, csrf.cookie()).await {
        Ok(f) => f,
        Err(err) if err.kind == tessera_core::ErrorKind::Gone => {
            return error_view(e, lang, &here, "self_service_flow_expired", "", &start);
        }
        // Unknown, or another browser's flow (a pasted or phished link): a fresh flow of our
        // own, never someone else's form.
        Err(err)
            if err.kind == tessera_core::ErrorKind::NotFound
                || err.id == Some(tessera_core::error::ErrorId::SecurityCsrfViolation) =>
        {
            return Redirect::to(&start).into_response();
        }
        Err(err) => return crate::error::ApiError(err).into_response(),
    };
    if flow.flow_type == tessera_core::flow::FlowType::Api {
        // API flows belong to an app's own screens and are bound to nobody: rendered here, a
        // form on this site's own domain could be handed to someone else to fill in.
        return error_view(e, lang, &here, "self_service_api_flow", "", &start);
    }
    let session = match (kind, session) {
        (FlowKind::Settings, Some(s)) if flow.identity_id == Some(s.identity_id) => Some(s),
        (FlowKind::Settings, _) => return Redirect::to(&start).into_response(),
        // A second-factor or refresh login is for the browser's signed-in person: the page
        // offers to sign out of it (looked up only then: other login pages need no session).
        (FlowKind::Login, _)
            if flow.requested_aal.as_deref() == Some("aal2") || flow.refresh == Some(true) =>
        {
            match crate::http::token_in(&headers, &e.settings.session.cookie.name) {
                Some(t) => e.session_from_token(t).await.ok().flatten(),
                None => None,
            }
        }
        (
            FlowKind::Login | FlowKind::Registration | FlowKind::Verification | FlowKind::Recovery,
            _,
        ) => None,
    };
    let lang = flow_page_lang(&headers, q.ui_locales.as_deref(), &flow);
    let resp = rendered(flow_html(e, lang, &here, &flow, session.as_ref()));
    keep_ui_locales(e, resp, q.ui_locales.as_deref())
}

/// Builds and renders a login, registration or settings page for a flow.
pub fn flow_html(
    e: &Engine,
    lang: Lang,
    here: &str,
    flow: &Flow,
    session: Option<&Session>,
) -> Result<String, String> {
    let x = &e.settings.experience;
    let schema = e.schemas.default_schema().ok();
    let provider_type = |id: &str| e.social.get(id).map(|p| p.kind);
    let enum_of = |name: &str| -> Vec<Value> {
        let Some(path) = name.strip_prefix("traits.") else {
            return vec![];
        };
        schema
            .and_then(|s| s.fields.iter().find(|f| f.path == path))
            .map(|f| f.enumeration.clone())
            .unwrap_or_default()
    };
    let identifier_is_email = schema.is_some_and(|s| {
        let ids: Vec<_> = s.fields.iter().filter(|f| f.password_identifier).collect();
        !ids.is_empty() && ids.iter().all(|f| f.format.as_deref() == Some("email"))
    });
    let code_vias: std::collections::BTreeSet<&str> = schema
        .map(|s| {
            s.fields
                .iter()
                .filter_map(|f| f.code_via.as_deref())
                .collect()
        })
        .unwrap_or_default();
    // Only when the code method is on and no password identifier names the field already.
    let code_via = match code_vias.len() {
        _ if !e.settings.code.passwordless => None,
        0 => None,
        1 => code_vias.into_iter().next(),
        _ => Some("email+sms"),
    };
    let cx = FlowContext {
        lang,
        experience: x,
        provider_type: &provider_type,
        enum_of: &enum_of,
        identifier_is_email,
        code_via,
    };
    let forms = render::flow_forms(flow, &cx);
    let messages = flow
        .ui
        .messages
        .iter()
        .map(|m| {
            let m = render::forms::localized_message(lang, m, &provider_type);
            render::message_view(lang, &m, false)
        })
        .collect();
    let brand = [("brand", x.brand_name.clone())];
    let return_to = flow.return_to.as_deref();
    let second_factor = flow.kind == FlowKind::Login
        && flow.requested_aal.as_deref() == Some("aal2")
        && session.is_some();
    let (page, template, title, subtitle, switch_href) = match flow.kind {
        FlowKind::Login => {
            let linking = flow
                .ui
                .messages
                .iter()
                .any(|m| matches!(m.id, MessageId::LOGIN_TO_LINK | MessageId::CONFIRM_LINK));
            (
                "login",
                "login.html",
                i18n::t(
                    lang,
                    if linking {
                        "page.login.link_title"
                    } else {
                        "page.login.title"
                    },
                    &[],
                ),
                i18n::t(lang, "page.login.subtitle", &brand),
                // A second-factor step belongs to someone signed in: no "create an account".
                if e.settings.flows.registration.enabled && !second_factor {
                    browser_start(e, FlowKind::Registration, return_to)
                } else {
                    String::new()
                },
            )
        }
        FlowKind::Registration => {
            let gaps = forms.iter().any(|f| f.kind == render::FormKind::Gaps);
            (
                "registration",
                "registration.html",
                i18n::t(
                    lang,
                    if gaps {
                        "page.registration.gaps_title"
                    } else {
                        "page.registration.title"
                    },
                    &[],
                ),
                if gaps {
                    i18n::t(lang, "page.registration.gaps_subtitle", &[])
                } else {
                    i18n::t(lang, "page.registration.subtitle", &brand)
                },
                browser_start(e, FlowKind::Login, return_to),
            )
        }
        FlowKind::Settings => (
            "settings",
            "settings.html",
            i18n::t(lang, "page.settings.title", &[]),
            String::new(),
            String::new(),
        ),
        // Verification and recovery: the address, then the code; once verified, only the
        // message and a link on (the flow's `continue` anchor).
        FlowKind::Verification | FlowKind::Recovery => {
            let (page, key) = if flow.kind == FlowKind::Verification {
                ("verification", "page.verification")
            } else {
                ("recovery", "page.recovery")
            };
            let next = flow
                .ui
                .nodes
                .iter()
                .find(|n| n.attributes.node_type == "a")
                .and_then(|n| n.attributes.href.clone())
                .unwrap_or_default();
            (
                page,
                "lifecycle.html",
                i18n::t(lang, &format!("{key}.title"), &[]),
                // Done: the message says it all; waiting for a code: ask for it; a link on
                // its way: say where it is.
                match (flow.state, flow.active.as_deref() == Some("link")) {
                    (tessera_core::flow::FlowState::PassedChallenge, _) => String::new(),
                    (tessera_core::flow::FlowState::SentEmail, false) => {
                        i18n::t(lang, &format!("{key}.code_subtitle"), &[])
                    }
                    (tessera_core::flow::FlowState::SentEmail, true) => {
                        i18n::t(lang, &format!("{key}.link_sent_subtitle"), &[])
                    }
                    (_, true) => i18n::t(lang, &format!("{key}.link_subtitle"), &[]),
                    _ => i18n::t(lang, &format!("{key}.subtitle"), &[]),
                },
                next,
            )
        }
    };
    let forms = if flow.state == tessera_core::flow::FlowState::PassedChallenge
        && matches!(flow.kind, FlowKind::Verification | FlowKind::Recovery)
    {
        Vec::new()
    } else {
        forms
    };
    let view = FlowPage {
        chrome: chrome(e, lang, here),
        page,
        title,
        subtitle,
        messages,
        forms,
        notice_html: if flow.kind == FlowKind::Login {
            render::agreement_html(lang, "notice", x)
        } else {
            String::new()
        },
        switch_href,
        logout_href: session.map(|s| e.public_logout_url(s)).unwrap_or_default(),
        home_href: e.settings.flows.default_return_url.to_string(),
        signed_in_as: session.map(|s| identifier_of(e, s)).unwrap_or_default(),
        // Recovery replaces a password; it does not help with a second factor.
        recovery_href: if flow.kind == FlowKind::Login
            && !second_factor
            && e.lifecycle(FlowKind::Recovery).is_ok()
        {
            browser_start(e, FlowKind::Recovery, None)
        } else {
            String::new()
        },
    };
    render::render(template, &view)
}

/// `/ui/login`, `/ui/registration` and `/ui/settings`: one handler, the flow kind as route
/// state. Only the settings page needs the caller's session.
fn flow_route(kind: FlowKind) -> MethodRouter<AppState> {
    match kind {
        FlowKind::Settings => get(
            move |cfg: Cfg,
                  KratosQuery(q): KratosQuery<PageQuery>,
                  csrf: Csrf,
                  s: Result<MaybeSession, crate::error::ApiError>,
                  h: HeaderMap,
                  u: OriginalUri| async move {
                // A failed session lookup sends the browser to sign in again.
                let s = s.ok().and_then(|m| m.0);
                flow_page(cfg, kind, q, csrf, s, h, here(&u)).await
            },
        ),
        FlowKind::Login | FlowKind::Registration | FlowKind::Verification | FlowKind::Recovery => {
            get(
                move |cfg: Cfg,
                      KratosQuery(q): KratosQuery<PageQuery>,
                      csrf: Csrf,
                      h: HeaderMap,
                      u: OriginalUri| async move {
                    flow_page(cfg, kind, q, csrf, None, h, here(&u)).await
                },
            )
        }
    }
}

async fn welcome(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<PageQuery>,
    session: Result<MaybeSession, crate::error::ApiError>,
    headers: HeaderMap,
    u: OriginalUri,
) -> Response {
    let e = cfg.engine();
    let lang = page_lang(&headers, q.ui_locales.as_deref());
    // A failed session lookup shows the signed-out page rather than an error.
    let session = session.ok().and_then(|s| s.0);
    let view = WelcomePage {
        chrome: chrome(e, lang, &here(&u)),
        page: "welcome",
        title: i18n::t(lang, "page.welcome.title", &[]),
        identifier: session.as_ref().map(|s| identifier_of(e, s)),
        settings_href: browser_start(e, FlowKind::Settings, None),
        logout_href: session
            .as_ref()
            .map(|s| e.public_logout_url(s))
            .unwrap_or_default(),
        login_href: browser_start(e, FlowKind::Login, None),
        registration_href: browser_start(e, FlowKind::Registration, None),
    };
    rendered(render::render("welcome.html", &view))
}

/// The error page for an error id (`self_service_flow_expired`, …) with a way forward.
fn error_view(
    e: &Engine,
    lang: Lang,
    here: &str,
    error_id: &str,
    code: &str,
    start_href: &str,
) -> Response {
    let key = format!("error.{error_id}");
    let message = if i18n::has(lang, &key) {
        i18n::t(lang, &key, &[])
    } else {
        i18n::t(lang, "error.self_service_error", &[])
    };
    let view = ErrorPage {
        chrome: chrome(e, lang, here),
        page: "error",
        title: i18n::t(lang, "page.error.title", &[]),
        message,
        code: code.to_string(),
        start_href: start_href.to_string(),
    };
    rendered(render::render("error.html", &view))
}

/// Shows a stored error (`?id=`, as Kratos's error UI) in the page language. Text from the URL
/// is never shown, so the page cannot display an attacker's message under this site's name.
async fn error_page(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<PageQuery>,
    headers: HeaderMap,
    u: OriginalUri,
) -> Response {
    let e = cfg.engine();
    let lang = page_lang(&headers, q.ui_locales.as_deref());
    let stored = match q.id.as_deref().map(uuid::Uuid::parse_str) {
        Some(Ok(id)) => e.store.get_error(id).await.ok().flatten(),
        _ => None,
    };
    let (error_id, code) = match &stored {
        Some((stored, _)) => {
            let body = crate::error::stored_error_body(stored);
            let code = body.get("code").and_then(Value::as_u64).unwrap_or(0);
            let id = match body.get("id").and_then(Value::as_str) {
                Some(id) => id.to_string(),
                None if code == 401 || code == 403 => "access_denied".into(),
                None => "self_service_error".into(),
            };
            (
                id,
                if code > 0 {
                    code.to_string()
                } else {
                    String::new()
                },
            )
        }
        None if q.id.is_some() => ("not_found".to_string(), String::new()),
        None => ("self_service_error".to_string(), String::new()),
    };
    let start = browser_start(e, FlowKind::Login, None);
    error_view(e, lang, &here(&u), &error_id, &code, &start)
}
