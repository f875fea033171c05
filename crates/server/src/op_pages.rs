//! The OpenID Provider's pages: consent, errors shown instead of going back to an app, the
//! `form_post` answer, and "signed out". Each is rendered from a plain serialisable view struct,
//! so the hosted UI's templates can replace the markup without touching the logic. No
//! JavaScript, except the one line that auto-submits a `form_post` answer (with a button for
//! browsers without it).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The consent page.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentView {
    pub app_name: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// Who is signed in (their email or other identifier, else the identity id).
    pub user: String,
    pub action: String,
    pub csrf_token: String,
    pub request_id: String,
    pub ui_locales: Option<String>,
}

/// A link or form back to the app carrying an error.
#[derive(Debug, Clone, Serialize)]
pub struct BackView {
    /// For GET links (query or fragment answers).
    pub href: Option<String>,
    /// For `form_post` answers: the action and the fields.
    pub form_action: Option<String>,
    pub fields: Vec<(String, String)>,
}

/// An error shown to the user.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorView {
    pub status: u16,
    pub app_name: Option<String>,
    pub error: String,
    pub message: String,
    pub back: Option<BackView>,
}

/// An auto-submitting `form_post` answer (OAuth 2.0 Form Post Response Mode).
#[derive(Debug, Clone, Serialize)]
pub struct FormPostView {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn shell(status: StatusCode, title: &str, body: &str, csp: &'static str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t} · Tessera</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    );
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'";
const CSP_FORM_POST: &str = "default-src 'none'; style-src 'self'; script-src 'unsafe-inline'; form-action http: https:; frame-ancestors 'none'; base-uri 'none'";

fn hidden(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect()
}

fn scope_text(s: &str) -> &str {
    match s {
        "openid" => "Sign you in with your account",
        "profile" => "Your name and profile picture",
        "email" => "Your email address",
        "phone" => "Your phone number",
        "address" => "Your address",
        "offline_access" => "Stay signed in (keep access while you are away)",
        other => other,
    }
}

pub fn consent(v: &ConsentView) -> Response {
    let scopes: String = v
        .scopes
        .iter()
        .map(|s| format!("<li data-scope=\"{}\">{}</li>", esc(s), esc(scope_text(s))))
        .collect();
    let body = format!(
        "<p><strong>{app}</strong> wants to use your account <strong>{user}</strong>.</p><p>It asks for:</p><ul>{scopes}</ul>\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\"><input type=\"hidden\" name=\"request\" value=\"{req}\">\
<button type=\"submit\" name=\"decision\" value=\"accept\">Allow</button><button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        app = esc(&v.app_name),
        user = esc(&v.user),
        action = esc(&v.action),
        csrf = esc(&v.csrf_token),
        req = esc(&v.request_id),
    );
    shell(
        StatusCode::OK,
        &format!("Sign in to {}", v.app_name),
        &body,
        CSP,
    )
}

pub fn error(v: &ErrorView) -> Response {
    let status = StatusCode::from_u16(v.status).unwrap_or(StatusCode::BAD_REQUEST);
    let app = v
        .app_name
        .as_deref()
        .map(|a| format!("<p>App: <strong>{}</strong></p>", esc(a)))
        .unwrap_or_default();
    let back = match &v.back {
        Some(BackView { href: Some(h), .. }) => {
            format!("<nav><a href=\"{}\">Back to the app</a></nav>", esc(h))
        }
        Some(BackView {
            form_action: Some(a),
            fields,
            ..
        }) => format!(
            "<form method=\"post\" action=\"{}\">{}<button type=\"submit\">Back to the app</button></form>",
            esc(a),
            hidden(fields)
        ),
        _ => String::new(),
    };
    let body = format!(
        "{app}<div class=\"msg error\" role=\"alert\" data-error=\"{code}\">{msg}</div><p><small>Error: {code}</small></p>{back}",
        code = esc(&v.error),
        msg = esc(&v.message),
    );
    shell(status, "Cannot sign in", &body, CSP)
}

pub fn form_post(v: &FormPostView) -> Response {
    let body = format!(
        "<form method=\"post\" action=\"{}\">{}<noscript><button type=\"submit\">Continue</button></noscript></form><script>document.forms[0].submit()</script>",
        esc(&v.action),
        hidden(&v.fields)
    );
    shell(StatusCode::OK, "Signing you in…", &body, CSP_FORM_POST)
}

/// "Sign out?" — asked when an app starts a logout without an `id_token_hint`, so that another
/// site cannot sign the user out behind their back.
#[derive(Debug, Clone, Serialize)]
pub struct LogoutConfirmView {
    pub action: String,
    pub csrf_token: String,
    /// The logout request's parameters, carried through the form.
    pub fields: Vec<(String, String)>,
}

pub fn logout_confirm(v: &LogoutConfirmView) -> Response {
    let body = format!(
        "<p>Do you want to sign out of your account?</p><form method=\"post\" action=\"{}\">{}<input type=\"hidden\" name=\"csrf_token\" value=\"{}\"><button type=\"submit\" name=\"confirm\" value=\"yes\">Sign out</button></form>",
        esc(&v.action),
        hidden(&v.fields),
        esc(&v.csrf_token)
    );
    shell(StatusCode::OK, "Sign out", &body, CSP)
}

pub fn signed_out() -> Response {
    shell(
        StatusCode::OK,
        "You are signed out",
        "<p>You have been signed out. You can close this window.</p>",
        CSP,
    )
}
