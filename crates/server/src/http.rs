//! Request/response helpers shared by handlers: body parsing (JSON or HTML form, size-capped),
//! cookies, session lookup, content negotiation.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use serde_json::{Map, Value};
use tessera_core::Error;
use tessera_core::session::Session;
use tessera_flows::Engine;

/// Largest request body accepted (Kratos-compatible 1 MiB).
pub const MAX_BODY: usize = 1024 * 1024;
pub const CSRF_COOKIE: &str = "tessera_csrf_token";

/// Most fields a form body may carry. The largest real form (registration with every trait of a
/// rich schema) has a few dozen; the cap keeps a 1 MiB body of empty fields from costing more
/// than a real submission.
pub const MAX_FORM_FIELDS: usize = 1000;
/// Longest form key, in bytes. Kratos's longest keys (`traits.address.street_address`) are short.
pub const MAX_FORM_KEY_BYTES: usize = 256;
/// Most dot-separated segments in a form key. Each segment is one level of nesting in the value
/// the key builds, and serde_json drops values recursively: an unbounded key depth is a stack
/// overflow, which aborts the whole process (not just the request).
pub const MAX_FORM_KEY_SEGMENTS: usize = 16;
/// Deepest nesting accepted in a JSON body (see [`tessera_core::schema::MAX_DEPTH`]).
pub const MAX_JSON_DEPTH: usize = tessera_core::schema::MAX_DEPTH;

/// Reads a JSON or `application/x-www-form-urlencoded` body into a JSON value. Form keys with
/// dots (`traits.email`) become nested objects, as Kratos's form decoder does, within the
/// bounds of [`decode_form`].
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
        return Ok(decode_json(&bytes)?);
    }
    if ctype.starts_with("application/x-www-form-urlencoded") {
        return Ok(decode_form(&bytes)?);
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

/// Parses a JSON body and refuses one nested deeper than [`MAX_JSON_DEPTH`].
pub fn decode_json(bytes: &[u8]) -> Result<Value, Error> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        Error::bad_request(format!(
            "The request body is not valid JSON: {e} (line {}, column {}).",
            e.line(),
            e.column()
        ))
    })?;
    check_depth(&v, "The request body")?;
    Ok(v)
}

/// Refuses a value nested deeper than [`MAX_JSON_DEPTH`]. `what` names it in the message.
pub fn check_depth(v: &Value, what: &str) -> Result<(), Error> {
    tessera_core::schema::check_depth(v, what)
}

/// Decodes an `application/x-www-form-urlencoded` body into a JSON object, nesting dotted keys.
///
/// Bounded so that no body can build a value the server cannot afford: at most
/// [`MAX_FORM_FIELDS`] fields, keys of at most [`MAX_FORM_KEY_BYTES`] bytes and
/// [`MAX_FORM_KEY_SEGMENTS`] segments, no empty segment (`a..b`, `.a`, `a.`, or an empty key).
pub fn decode_form(bytes: &[u8]) -> Result<Value, Error> {
    let mut out = Value::Object(Map::new());
    for (n, (k, v)) in url::form_urlencoded::parse(bytes).enumerate() {
        if n >= MAX_FORM_FIELDS {
            return Err(Error::bad_request(format!(
                "The form has more than {MAX_FORM_FIELDS} fields: send only the fields of the flow."
            )));
        }
        if k.len() > MAX_FORM_KEY_BYTES {
            return Err(Error::bad_request(format!(
                "Form field `{}…` has a name longer than {MAX_FORM_KEY_BYTES} bytes: use the field names of the flow.",
                shorten(&k)
            )));
        }
        if k.split('.').any(str::is_empty) {
            return Err(Error::bad_request(format!(
                "Form field `{}` has an empty name or an empty segment between dots: use names such as `traits.email`.",
                shorten(&k)
            )));
        }
        if k.split('.').count() > MAX_FORM_KEY_SEGMENTS {
            return Err(Error::bad_request(format!(
                "Form field `{}…` is nested more than {MAX_FORM_KEY_SEGMENTS} levels deep: use the field names of the flow.",
                shorten(&k)
            )));
        }
        tessera_core::schema::set_path(&mut out, &k, form_value(&v));
    }
    Ok(out)
}

/// The start of an attacker-sized key, for an error message.
fn shorten(k: &str) -> &str {
    let mut end = k.len().min(48);
    while !k.is_char_boundary(end) {
        end -= 1;
    }
    &k[..end]
}

fn form_value(v: &str) -> Value {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(v.to_string()),
    }
}

/// The address a request came from, for rate limits: the connection's peer, or with
/// `limits.trusted_proxy_hops: N` the N-th entry from the right of `X-Forwarded-For` (each
/// trusted proxy appends the address it saw; entries further left are the client's to forge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl axum::extract::FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        st: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let crate::extract::Cfg(running) = crate::extract::Cfg::from_request_parts(parts, st)
            .await
            .unwrap_or_else(|never| match never {});
        let hops = running.engine.settings.limits.trusted_proxy_hops;
        Ok(ClientAddr::with_hops(
            &parts.headers,
            &parts.extensions,
            hops,
        ))
    }
}

impl ClientAddr {
    /// The address of a request, for a layer (outside a handler's configuration snapshot).
    pub fn of(st: &AppState, headers: &HeaderMap, extensions: &axum::http::Extensions) -> Self {
        let hops = st.live.running().engine.settings.limits.trusted_proxy_hops;
        ClientAddr::with_hops(headers, extensions, hops)
    }

    /// The address of a request, from its headers and the connection info axum recorded.
    fn with_hops(headers: &HeaderMap, extensions: &axum::http::Extensions, hops: u32) -> Self {
        let peer = extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        ClientAddr(client_addr(headers, peer, hops as usize))
    }
}

/// See [`ClientAddr`].
pub fn client_addr(
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    trusted_hops: usize,
) -> Option<std::net::IpAddr> {
    if trusted_hops == 0 {
        return peer;
    }
    let chain: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    chain
        .len()
        .checked_sub(trusted_hops)
        .and_then(|i| chain.get(i))
        .and_then(|a| a.parse().ok())
        .or(peer)
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one, as browsers send
/// the most specific path first).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}

/// True when the caller asked for JSON (SDKs, SPAs); otherwise browsers get redirects.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

/// A `Set-Cookie` value under the session cookie's path, domain, `SameSite` and `Secure` rules.
pub fn set_cookie(e: &Engine, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let s = &e.settings.session.cookie;
    let same_site = same_site(s.same_site);
    let mut c = cookie::Cookie::build((name, value))
        .path(s.path.as_str())
        .http_only(true)
        .same_site(same_site)
        // Browsers drop a SameSite=None cookie that is not Secure.
        .secure(s.secure || same_site == cookie::SameSite::None);
    if let Some(d) = &s.domain {
        c = c.domain(d.as_str());
    }
    if let Some(age) = max_age {
        c = c.max_age(time::Duration::seconds(age));
    }
    header_value(c.build())
}

/// `session.cookie.same_site`, as the `cookie` crate spells it.
fn same_site(v: tessera_config::SameSite) -> cookie::SameSite {
    match v {
        tessera_config::SameSite::Lax => cookie::SameSite::Lax,
        tessera_config::SameSite::Strict => cookie::SameSite::Strict,
        tessera_config::SameSite::None => cookie::SameSite::None,
    }
}

/// A `Set-Cookie` value. Names and values are ours (tokens in URL-safe base64) and the path and
/// domain are checked at load, so this cannot fail in practice; if it did, the cookie is
/// cleared rather than sent malformed or empty.
pub fn header_value(c: cookie::Cookie<'_>) -> HeaderValue {
    HeaderValue::try_from(c.to_string()).unwrap_or_else(|_| {
        tracing::error!(
            cookie = c.name(),
            "a cookie could not be encoded; clearing it"
        );
        let mut gone = cookie::Cookie::new(c.name().to_string(), "");
        gone.make_removal();
        HeaderValue::try_from(gone.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("tessera_invalid=; Max-Age=0"))
    })
}

pub fn session_cookie(e: &Engine, token: &str, session: &Session) -> HeaderValue {
    let age = e
        .settings
        .session
        .cookie
        .persistent
        .then(|| (session.expires_at - tessera_core::timefmt::now_ms()) / 1000);
    set_cookie(e, &e.settings.session.cookie.name, token, age)
}

pub fn clear_session_cookie(e: &Engine) -> HeaderValue {
    set_cookie(e, &e.settings.session.cookie.name, "", Some(0))
}

/// The session token a request carries: `X-Session-Token`, `Authorization: Bearer`, or the
/// session cookie (named by the request's configuration snapshot).
pub fn token_in<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Option<&'a str> {
    headers
        .get("x-session-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .or_else(|| cookie(headers, cookie_name))
        .filter(|t| !t.is_empty())
}

/// The paging parameters every list endpoint takes: `page_size` (or the older `per_page`) and
/// `page_token`, as Kratos names them. Flattened into each endpoint's query struct.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    page_size: Option<String>,
    per_page: Option<String>,
    pub page_token: Option<String>,
}

impl PageQuery {
    /// `page_size` as Kratos: default 250, at most 500.
    pub fn size(&self) -> Result<usize, Error> {
        match self.page_size.as_ref().or(self.per_page.as_ref()) {
            None => Ok(250),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => Ok(n),
                _ => Err(Error::bad_request(format!(
                    "page_size `{s}` is invalid: use a number from 1 to 500."
                ))),
            },
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.page_token.as_deref()
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nested_and_flat_keys_decode_like_kratos() {
        let v = decode_form(
            b"traits.email=a%40b.c&traits.name.first=Ann&method=password&remember=true",
        )
        .expect("valid form");
        assert_eq!(v["traits"]["email"], "a@b.c");
        assert_eq!(v["traits"]["name"]["first"], "Ann");
        assert_eq!(v["method"], "password");
        assert_eq!(v["remember"], true);
    }

    #[test]
    fn a_deep_key_is_refused_without_building_it() {
        // The report's attack: 60,000 dots aborted the process when the value was dropped.
        let body = format!("{}=x", ".".repeat(60_000));
        let e = decode_form(body.as_bytes()).expect_err("refused");
        assert!(e.reason.contains("longer than"), "{}", e.reason);
        let e = decode_form(b"a....b=x").expect_err("refused");
        assert!(e.reason.contains("empty"), "{}", e.reason);
        let body = format!("{}=x", vec!["a"; 10_000].join("."));
        let e = decode_form(body.as_bytes()).expect_err("refused");
        assert!(e.reason.contains("longer than"), "{}", e.reason);
        let body = format!("{}=x", vec!["a"; MAX_FORM_KEY_SEGMENTS + 1].join("."));
        let e = decode_form(body.as_bytes()).expect_err("refused");
        assert!(e.reason.contains("levels deep"), "{}", e.reason);
        let body = format!("{}=x", vec!["a"; MAX_FORM_KEY_SEGMENTS].join("."));
        assert!(decode_form(body.as_bytes()).is_ok());
    }

    #[test]
    fn empty_segments_and_too_many_fields_are_refused() {
        for key in ["", "a..b", ".a", "a.", "traits..email"] {
            let body = format!(
                "{}=x",
                url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
            );
            assert!(
                decode_form(body.as_bytes()).is_err(),
                "key {key:?} accepted"
            );
        }
        let many: Vec<String> = (0..=MAX_FORM_FIELDS).map(|i| format!("f{i}=1")).collect();
        let e = decode_form(many.join("&").as_bytes()).expect_err("refused");
        assert!(e.reason.contains("fields"), "{}", e.reason);
        assert!(decode_form(many[..MAX_FORM_FIELDS].join("&").as_bytes()).is_ok());
    }

    #[test]
    fn deep_json_is_refused() {
        let deep = format!(
            "{}1{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        let e = decode_json(deep.as_bytes()).expect_err("refused");
        assert!(e.reason.contains("levels deep"), "{}", e.reason);
        let ok = format!(
            "{}1{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(decode_json(ok.as_bytes()).is_ok());
        // Past serde_json's own recursion limit: a parse error, not a crash.
        let deeper = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(decode_json(deeper.as_bytes()).is_err());
    }

    #[test]
    fn the_client_address_is_the_peer_unless_proxies_are_trusted() {
        let peer: std::net::IpAddr = "10.0.0.9".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7"),
        );
        assert_eq!(
            client_addr(&h, Some(peer), 0),
            Some(peer),
            "untrusted header ignored"
        );
        assert_eq!(
            client_addr(&h, Some(peer), 1),
            Some("203.0.113.7".parse().unwrap()),
            "the address the trusted proxy saw, not the forged one"
        );
        assert_eq!(
            client_addr(&h, Some(peer), 2),
            Some("6.6.6.6".parse().unwrap())
        );
        assert_eq!(
            client_addr(&h, Some(peer), 3),
            Some(peer),
            "too short: the peer"
        );
        assert_eq!(client_addr(&HeaderMap::new(), None, 1), None);
    }

    fn form_key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_.]{0,40}",
            proptest::collection::vec("[a-z]{0,3}", 0..40).prop_map(|p| p.join(".")),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn form_decoding_never_panics_and_stays_shallow(
            pairs in proptest::collection::vec((form_key(), any::<String>()), 0..50),
            raw in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            for bytes in [body.as_bytes(), &raw[..]] {
                if let Ok(v) = decode_form(bytes) {
                    prop_assert!(tessera_core::schema::depth(&v) <= MAX_FORM_KEY_SEGMENTS);
                }
            }
        }

        #[test]
        fn json_decoding_never_panics(
            text in "[\\[\\]{}\",:0-9a-z ]{0,300}",
            depth in 0usize..300,
        ) {
            let _ = decode_json(text.as_bytes());
            let nested = format!("{}{}", "{\"a\":".repeat(depth), "1") + &"}".repeat(depth);
            match decode_json(nested.as_bytes()) {
                Ok(v) => prop_assert!(tessera_core::schema::depth(&v) <= MAX_JSON_DEPTH),
                Err(e) => prop_assert!(!e.reason.is_empty()),
            }
        }

        #[test]
        fn cookie_parsing_never_panics(header in any::<String>(), name in "[a-z_]{1,20}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&header) {
                h.insert(header::COOKIE, v);
            }
            let _ = cookie(&h, &name);
            let _ = wants_json(&h);
        }
    }
}
