//! A minimal hosted UI: plain server-rendered forms (no JavaScript) generated from the flows'
//! UI nodes, so `tessera serve --dev` works in a browser out of the box. It renders exactly the
//! nodes and messages the API returns — one source of truth — and is replaced by pointing
//! `selfservice.flows.*.ui_url` at your own UI, as with Kratos.

use crate::AppState;
use crate::http::current_session;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::Value;
use std::collections::HashMap;
use tessera_core::flow::{Flow, FlowKind};
use tessera_core::ui::Node;

type Q = Query<HashMap<String, String>>;

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:26rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}\
h1{font-size:1.5rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}\
input{width:100%;padding:.55rem;font-size:1rem;border:1px solid #767676;border-radius:4px;box-sizing:border-box}\
button{margin-top:1rem;width:100%;padding:.65rem;font-size:1rem;background:#0b57d0;color:#fff;border:0;border-radius:4px;cursor:pointer}\
button:focus,input:focus,a:focus{outline:3px solid #f9ab00;outline-offset:2px}\
.msg{padding:.5rem;border-radius:4px;margin:.4rem 0}.error{background:#fde7e9;color:#8a1c1c}.info{background:#e8f0fe}.success{background:#e6f4ea;color:#0d652d}\
nav{margin-top:1.5rem}nav a{margin-right:1rem;color:#0b57d0}pre{background:#f4f4f4;padding:.8rem;overflow:auto}";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/login", get(login))
        .route("/ui/registration", get(registration))
        .route("/ui/settings", get(settings))
        .route("/ui/welcome", get(welcome))
        .route("/ui/error", get(error_page))
        .route(
            "/ui/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], CSS) }),
        )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t} · Tessera</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    );
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn messages(list: &[tessera_core::text::Text]) -> String {
    list.iter()
        .map(|m| {
            let kind = match m.kind {
                tessera_core::text::TextType::Error => "error",
                tessera_core::text::TextType::Success => "success",
                tessera_core::text::TextType::Info => "info",
            };
            format!(
                "<div class=\"msg {kind}\" role=\"{}\" data-id=\"{}\">{}</div>",
                if kind == "error" { "alert" } else { "status" },
                m.id,
                esc(&m.text)
            )
        })
        .collect()
}

fn node_html(n: &Node, i: usize) -> String {
    let a = &n.attributes;
    let value = match &a.value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let label = n
        .meta
        .label
        .as_ref()
        .map(|l| l.text.clone())
        .unwrap_or_else(|| a.name.clone());
    match a.input_type.as_str() {
        "hidden" => format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(&a.name),
            esc(&value)
        ),
        "submit" | "button" => format!(
            "<button type=\"submit\" name=\"{}\" value=\"{}\">{}</button>",
            esc(&a.name),
            esc(&value),
            esc(&label)
        ),
        t => {
            let id = format!("f{i}");
            let err = messages(&n.messages);
            format!(
                "<label for=\"{id}\">{}</label><input id=\"{id}\" type=\"{}\" name=\"{}\" value=\"{}\"{}{}{}>{err}",
                esc(&label),
                esc(t),
                esc(&a.name),
                esc(&value),
                if a.required { " required" } else { "" },
                a.autocomplete
                    .as_ref()
                    .map(|v| format!(" autocomplete=\"{}\"", esc(v)))
                    .unwrap_or_default(),
                if n.messages.is_empty() {
                    String::new()
                } else {
                    format!(" aria-invalid=\"true\" aria-describedby=\"{id}-e\"")
                },
            )
        }
    }
}

/// Renders a flow's form; one `<form>` per method group so each submit posts its own fields.
fn flow_form(flow: &Flow) -> String {
    let mut out = messages(&flow.ui.messages);
    let hidden: Vec<&Node> = flow
        .ui
        .nodes
        .iter()
        .filter(|n| n.group == "default" && n.attributes.input_type == "hidden")
        .collect();
    let mut groups: Vec<&str> = Vec::new();
    let is_hidden = |n: &Node| n.group == "default" && n.attributes.input_type == "hidden";
    for n in &flow.ui.nodes {
        if !is_hidden(n) && !groups.contains(&n.group.as_str()) {
            groups.push(&n.group);
        }
    }
    for g in groups {
        out.push_str(&format!(
            "<form method=\"post\" action=\"{}\">",
            esc(&flow.ui.action)
        ));
        for n in &hidden {
            out.push_str(&node_html(n, 0));
        }
        for (i, n) in flow.ui.nodes.iter().enumerate().filter(|(_, n)| {
            // The identifier (group `default`) belongs to the password form only; social
            // buttons must not require it.
            n.group == g
                || (g == "password" && n.group == "default" && n.attributes.input_type != "hidden")
        }) {
            out.push_str(&node_html(n, i));
        }
        out.push_str("</form>");
    }
    out
}

async fn flow_page(
    st: AppState,
    kind: FlowKind,
    q: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    let start = st
        .engine
        .settings
        .public_base_url
        .join(&format!("self-service/{}/browser", kind.as_str()))
        .map(|u| u.to_string())
        .unwrap_or_default();
    let Some(id) = q.get("flow") else {
        return Redirect::to(&start).into_response();
    };
    let flow = match st.engine.fetch_flow(kind, id).await {
        Ok(f) => f,
        Err(e)
            if e.kind == tessera_core::ErrorKind::Gone
                || e.kind == tessera_core::ErrorKind::NotFound =>
        {
            return Redirect::to(&start).into_response();
        }
        Err(e) => return crate::error::ApiError(e).into_response(),
    };
    if kind == FlowKind::Settings {
        match current_session(&st, &headers).await {
            Ok(Some(s)) if flow.identity_id == Some(s.identity_id) => {}
            _ => return Redirect::to(&start).into_response(),
        }
    }
    // Switching between sign-in and sign-up keeps where the user is going (e.g. back to an app
    // of the OpenID Provider).
    let keep = flow
        .return_to
        .as_deref()
        .map(|r| {
            let enc: String = url::form_urlencoded::byte_serialize(r.as_bytes()).collect();
            esc(&format!("?return_to={enc}"))
        })
        .unwrap_or_default();
    let (title, nav) = match kind {
        FlowKind::Login => (
            "Sign in",
            format!(
                "<nav><a href=\"/self-service/registration/browser{keep}\">Create an account</a></nav>"
            ),
        ),
        FlowKind::Registration => (
            "Sign up",
            format!("<nav><a href=\"/self-service/login/browser{keep}\">Sign in instead</a></nav>"),
        ),
        FlowKind::Settings => (
            "Account settings",
            "<nav><a href=\"/ui/welcome\">Back</a></nav>".to_string(),
        ),
    };
    page(title, &format!("{}{nav}", flow_form(&flow)))
}

async fn login(State(st): State<AppState>, Query(q): Q, h: HeaderMap) -> Response {
    flow_page(st, FlowKind::Login, q, h).await
}
async fn registration(State(st): State<AppState>, Query(q): Q, h: HeaderMap) -> Response {
    flow_page(st, FlowKind::Registration, q, h).await
}
async fn settings(State(st): State<AppState>, Query(q): Q, h: HeaderMap) -> Response {
    flow_page(st, FlowKind::Settings, q, h).await
}

async fn welcome(State(st): State<AppState>, headers: HeaderMap) -> Response {
    match current_session(&st, &headers).await {
        Ok(Some(s)) => {
            let logout = st.engine.public_logout_url(&s);
            let who = serde_json::to_string_pretty(&s.identity.as_ref().map(|i| &i.traits))
                .unwrap_or_default();
            page(
                "Welcome",
                &format!(
                    "<p>You are signed in.</p><pre>{}</pre><nav><a href=\"/self-service/settings/browser\">Settings</a><a href=\"{}\">Sign out</a></nav>",
                    esc(&who),
                    esc(&logout)
                ),
            )
        }
        _ => page(
            "Welcome",
            "<p>You are not signed in.</p><nav><a href=\"/self-service/login/browser\">Sign in</a><a href=\"/self-service/registration/browser\">Create an account</a></nav>",
        ),
    }
}

/// Shows a stored error (`?id=`, as Kratos's error UI). Text from the URL is never shown, so
/// the page cannot be used to display an attacker's message under this site's name.
async fn error_page(State(st): State<AppState>, Query(q): Q) -> Response {
    let stored = match q.get("id").map(|i| uuid::Uuid::parse_str(i)) {
        Some(Ok(id)) => st.engine.store.get_error(id).await.ok().flatten(),
        _ => None,
    };
    let message = stored
        .as_ref()
        .and_then(|(e, _)| e.get("message").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| "Something went wrong. Start again.".into());
    page(
        "Error",
        &format!(
            "<div class=\"msg error\" role=\"alert\">{}</div><nav><a href=\"/self-service/login/browser\">Sign in</a> · <a href=\"/ui/welcome\">Start again</a></nav>",
            esc(&message)
        ),
    )
}
