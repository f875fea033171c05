//! Request/response helpers shared by handlers: body parsing (JSON or HTML form, size-capped),
//! cookies, session lookup, content negotiation.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use serde_json::{Map, Value};
use tessera_core::Error;
use tessera_core::session::Session;

/// Largest request body accepted (Kratos-compatible 1 MiB).
pub const MAX_BODY: usize = 1024 * 1024;
pub const CSRF_COOKIE: &str = "tessera_csrf_token";

/// Reads a JSON or `application/x-www-form-urlencoded` body into a JSON value. Form keys with
/// dots (`traits.email`) become nested objects, as Kratos's form decoder does.
pub async fn read_body(headers: &HeaderMap, body: Body) -> ApiResult<Value> {
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError(Error::new(
            tessera_core::ErrorKind::PayloadTooLarge,
            format!("The request body is larger than {MAX_BODY} bytes."),
        ))
    })?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ctype.starts_with("application/json")
        || (ctype.is_empty() && bytes.first().is_some_and(|b| *b == b'{' || *b == b'['))
    {
        return serde_json::from_slice(&bytes).map_err(|e| {
            ApiError(Error::bad_request(format!(
                "The request body is not valid JSON: {e} (line {}, column {}).",
                e.line(),
                e.column()
            )))
        });
    }
    if ctype.starts_with("application/x-www-form-urlencoded") {
        let mut out = Value::Object(Map::new());
        for (k, v) in url::form_urlencoded::parse(&bytes) {
            tessera_core::schema::set_path(&mut out, &k, form_value(&v));
        }
        return Ok(out);
    }
    if bytes.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    Err(ApiError(Error::new(
        tessera_core::ErrorKind::UnsupportedMediaType,
        format!(
            "Content-Type `{ctype}` is not supported: send application/json or application/x-www-form-urlencoded."
        ),
    )))
}

fn form_value(v: &str) -> Value {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(v.to_string()),
    }
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// True when the caller asked for JSON (SDKs, SPAs); otherwise browsers get redirects.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let s = &state.engine().settings;
    let mut c = format!(
        "{name}={value}; Path={}; HttpOnly; SameSite={}",
        s.session_cookie_path, s.session_cookie_same_site
    );
    if let Some(d) = &s.session_cookie_domain {
        c.push_str(&format!("; Domain={d}"));
    }
    if s.secure_cookies || s.session_cookie_same_site == "None" {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn session_cookie(state: &AppState, token: &str, session: &Session) -> HeaderValue {
    let age = state
        .engine()
        .settings
        .session_cookie_persistent
        .then(|| (session.expires_at - tessera_core::timefmt::now_ms()) / 1000);
    set_cookie(
        state,
        &state.engine().settings.session_cookie_name,
        token,
        age,
    )
}

pub fn clear_session_cookie(state: &AppState) -> HeaderValue {
    set_cookie(
        state,
        &state.engine().settings.session_cookie_name,
        "",
        Some(0),
    )
}

/// The session token a request carries: `X-Session-Token`, `Authorization: Bearer`, or the
/// session cookie.
pub fn session_token<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    headers
        .get("x-session-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .or_else(|| cookie(headers, &state.engine().settings.session_cookie_name))
        .filter(|t| !t.is_empty())
}

pub async fn current_session(state: &AppState, headers: &HeaderMap) -> ApiResult<Option<Session>> {
    match session_token(state, headers) {
        Some(t) => Ok(state.engine().session_from_token(t).await?),
        None => Ok(None),
    }
}

/// The browser's CSRF secret, or a fresh one (with the cookie to set) if it has none yet.
pub fn csrf_for(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, CSRF_COOKIE).filter(|v| v.len() >= 32) {
        Some(v) => (v.to_string(), None),
        None => {
            let token = tessera_core::crypto::random_token();
            let c = set_cookie(state, CSRF_COOKIE, &token, Some(365 * 24 * 3600));
            (token, Some(c))
        }
    }
}

pub fn parse_uuid(what: &str, s: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|_| ApiError(Error::invalid_uuid(what, s)))
}

/// `page_size` as Kratos: default 250, at most 500.
pub fn page_size(q: &std::collections::HashMap<String, String>) -> ApiResult<usize> {
    match q.get("page_size").or_else(|| q.get("per_page")) {
        None => Ok(250),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(ApiError(Error::bad_request(format!(
                "page_size `{s}` is invalid: use a number from 1 to 500."
            )))),
        },
    }
}

/// RFC 8288 Link header for keyset pagination (Kratos's shape: `first` and `next`).
pub fn link_header(
    base: &url::Url,
    path: &str,
    size: usize,
    next: Option<&str>,
    extra: &[(&str, &str)],
) -> Option<HeaderValue> {
    let mk = |token: Option<&str>| {
        let mut u = base.join(path.trim_start_matches('/')).ok()?;
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("page_size", &size.to_string());
            if let Some(t) = token {
                q.append_pair("page_token", t);
            }
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        Some(u.to_string())
    };
    let mut parts = vec![format!("<{}>; rel=\"first\"", mk(None)?)];
    if let Some(t) = next {
        parts.push(format!("<{}>; rel=\"next\"", mk(Some(t))?));
    }
    HeaderValue::from_str(&parts.join(",")).ok()
}

/// A JSON list response with its pagination `Link` header — the one shape every list endpoint
/// answers with.
pub fn paged(
    body: impl serde::Serialize,
    base: &url::Url,
    path: &str,
    size: usize,
    next: Option<&str>,
    extra: &[(&str, &str)],
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut resp = axum::Json(body).into_response();
    if let Some(l) = link_header(base, path, size, next, extra) {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}
