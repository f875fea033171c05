//! The OpenID Provider's `form_post` answer (OAuth 2.0 Form Post Response Mode): an
//! auto-submitting form to the app. It is a transport rather than a page, so it has its own
//! minimal markup and CSP (the one inline line that submits it, allowed by its hash, and a
//! button for browsers without JavaScript). Every page the user reads — consent, errors, "Sign out?", "signed out" — is a
//! hosted UI page (`crate::ui`).

use crate::inline::{csp_hash, esc};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;

/// An auto-submitting `form_post` answer.
#[derive(Debug, Clone)]
pub struct FormPostView {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

/// The one script: submit the form.
const SCRIPT: &str = "document.forms[0].submit()";

/// The page's CSP: [`SCRIPT`] by its hash, and a post to the app's redirect URI (any http(s)
/// origin: the URI was checked exactly against the app's registration before this page).
static CSP_FORM_POST: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src 'self'; script-src {}; form-action http: https:; frame-ancestors 'none'; base-uri 'none'",
        csp_hash(SCRIPT)
    )
});

pub fn form_post(v: &FormPostView) -> Response {
    let fields: String = v
        .fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            )
        })
        .collect();
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Returning to the app…</title></head><body><form method=\"post\" action=\"{}\">{fields}<noscript><p>JavaScript is off: press the button to return to the app.</p><button type=\"submit\">Continue to the app</button></noscript></form><script>{SCRIPT}</script></body></html>",
        esc(&v.action),
    );
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let h = resp.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&CSP_FORM_POST) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn form_post_escapes_fields_and_offers_a_button_without_javascript() {
        let resp = form_post(&FormPostView {
            action: "https://app.example/cb?a=1&b=2".into(),
            fields: vec![("state".into(), "x\"><script>".into())],
        });
        let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("form-action http: https:"), "{csp}");
        // The script by its hash, never any inline script.
        assert!(
            csp.contains(&format!("script-src {}", csp_hash(SCRIPT)))
                && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(html.contains("action=\"https://app.example/cb?a=1&amp;b=2\""));
        assert!(html.contains("name=\"state\" value=\"x&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("<button type=\"submit\">Continue to the app</button>"));
    }
}
