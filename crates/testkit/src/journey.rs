//! Steps of a browser journey through the self-service flows, shared by the end-to-end tests
//! (password, social and per-provider suites) so each reads as the journey it checks.

use crate::{Browser, TestServer, csrf_of};
use serde_json::Value;

/// The `Location` of a redirect, or "" when there is none.
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The flow id in a UI URL (`…?flow=<id>`).
pub fn flow_id_of(loc: &str) -> String {
    loc.split("flow=").nth(1).unwrap_or_default().to_string()
}

/// A flow as JSON, fetched with the browser's cookies.
pub async fn flow_json(b: &Browser, s: &TestServer, kind: &str, id: &str) -> Value {
    get_json(
        b,
        &format!("{}/self-service/{kind}/flows?id={id}", s.public),
    )
    .await
}

/// A GET asking for JSON, with the browser's cookies; the answer's body.
async fn get_json(b: &Browser, url: &str) -> Value {
    b.get(url, true)
        .await
        .json()
        .await
        .unwrap_or_else(|e| panic!("{url}: not JSON: {e}"))
}

/// Opens a browser flow of `kind` as a single-page app would (JSON), with the browser's
/// cookies; returns the flow.
pub async fn open_flow(b: &Browser, s: &TestServer, kind: &str) -> Value {
    get_json(b, &format!("{}/self-service/{kind}/browser", s.public)).await
}

/// Submits `fields` to a flow's form (its `ui.action`), with the flow's CSRF token first, as
/// the hosted page's form would; `json` asks for a JSON answer instead of a redirect.
pub async fn submit(
    b: &Browser,
    flow: &Value,
    fields: &[(&str, &str)],
    json: bool,
) -> reqwest::Response {
    let csrf = csrf_of(flow);
    let mut all = vec![("csrf_token", csrf.as_str())];
    all.extend_from_slice(fields);
    b.post_form(
        flow["ui"]["action"]
            .as_str()
            .expect("the flow has a form action"),
        &all,
        json,
    )
    .await
}

/// `/sessions/whoami` with the browser's cookies (an error object when signed out).
pub async fn whoami(b: &Browser, s: &TestServer) -> Value {
    get_json(b, &format!("{}/sessions/whoami", s.public)).await
}

/// Opens a browser flow of `kind` (with `return_to`) and presses the social button of
/// `provider`; returns the upstream URL the browser is sent to.
pub async fn press_provider(
    b: &Browser,
    s: &TestServer,
    kind: &str,
    provider: &str,
    return_to: &str,
) -> String {
    let r = b
        .get(
            &format!(
                "{}/self-service/{kind}/browser?return_to={return_to}",
                s.public
            ),
            false,
        )
        .await;
    assert_eq!(r.status(), 303);
    let flow = flow_json(b, s, kind, &flow_id_of(&location(&r))).await;
    let r = b
        .post_form(
            flow["ui"]["action"].as_str().expect("action"),
            &[("csrf_token", &csrf_of(&flow)), ("provider", provider)],
            false,
        )
        .await;
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    location(&r)
}

/// An error page shown to the user: HTML with `status`, never a redirect, and saying `needle`;
/// returns the page.
pub async fn assert_error_page(r: reqwest::Response, status: u16, needle: &str) -> String {
    assert_eq!(r.status().as_u16(), status);
    assert!(r.headers().get("location").is_none(), "never redirected");
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let text = r.text().await.expect("page body");
    assert!(text.contains(needle), "page lacks {needle:?}: {text}");
    text
}

/// A redirect to the hosted error page of a stored error whose `reason` says `reason`, checked
/// through `/self-service/errors`; returns the page's URL and the error's id.
pub async fn assert_stored_error(
    s: &TestServer,
    r: &reqwest::Response,
    reason: &str,
) -> (String, String) {
    let loc = location(r);
    let prefix = format!("{}/ui/error?id=", s.public);
    let Some(id) = loc.strip_prefix(&prefix) else {
        panic!("expected a redirect to {prefix}…, got {loc:?}");
    };
    let err: Value = TestServer::client()
        .get(format!("{}/self-service/errors?id={id}", s.public))
        .send()
        .await
        .expect("GET /self-service/errors")
        .json()
        .await
        .expect("stored error json");
    let said = err["error"]["reason"].as_str().unwrap_or_default();
    assert!(said.contains(reason), "reason lacks {reason:?}: {err}");
    (loc.clone(), id.to_string())
}
