//! The OpenID Provider's HTTP side: `/oidc/*` (discovery, JWKS, authorization, token, userinfo,
//! revocation, introspection, logout) and `/ui/consent` on the public port, `/admin/clients` on
//! the admin port. Handlers parse the request, call one `tessera_op::Provider` method and shape
//! its answer; OAuth errors are rendered here in RFC 6749 §5.2 shape.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Cfg, Csrf, IdentityId, KratosBody, KratosPath, KratosQuery, MaybeSession};
use crate::http;
use crate::op_pages::{self, FormPostView};
use crate::ui::{self, BackForm, ConsentView, HiddenView, LogoutConfirmView, OpErrorView, OpPage};
use axum::body::Body;
use axum::extract::{OriginalUri, Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use tessera_core::Error;
use tessera_flows::Engine;
use tessera_op::authorize::{RawParams, raw_params};
use tessera_op::client::ClientAuth;
use tessera_op::dpop::{DpopRequest, Presented};
use tessera_op::{
    Authorize, ClientInput, ErrorCode, Logout, LogoutRequest, OpError, PageReason, Reply,
    ResponseMode,
};

/// The OP's public routes. A valid authorization request stores a pending authorization, so
/// `/oidc/auth` is bounded per address like new flows (`edge::limit_stored`).
pub fn public_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/oidc/.well-known/openid-configuration", get(discovery))
        .route("/oidc/jwks", get(jwks))
        .route(
            "/oidc/auth",
            get(authorize)
                .post(authorize)
                .route_layer(axum::middleware::from_fn_with_state(
                    (state.clone(), "flows"),
                    crate::edge::limit_stored,
                )),
        )
        .route("/oidc/auth/resume", get(resume))
        .route("/oidc/token", post(token))
        .route("/oidc/me", get(userinfo).post(userinfo))
        .route("/oidc/token/revocation", post(revocation))
        .route("/oidc/token/introspection", post(introspection))
        // A pushed request stores a row too: bounded per address like `/oidc/auth`.
        .route(
            "/oidc/par",
            post(pushed_authorization_request).route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), "flows"),
                crate::edge::limit_stored,
            )),
        )
        // Dynamic client registration (RFC 7591/7592): 404 unless enabled; each app is a row.
        .route(
            "/oidc/reg",
            post(register).route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), "flows"),
                crate::edge::limit_stored,
            )),
        )
        .route(
            "/oidc/reg/{client_id}",
            get(read_registration)
                .put(update_registration)
                .delete(delete_registration),
        )
        .route("/oidc/session/end", get(end_session).post(end_session))
        // The device grant (RFC 8628): a new device code stores a row, and the page that takes
        // user codes is where codes could be guessed; both are bounded per address.
        .route(
            "/oidc/device/auth",
            post(device_authorization).route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), "flows"),
                crate::edge::limit_stored,
            )),
        )
        .route(
            "/ui/device",
            get(device_page)
                .post(device_submit)
                .route_layer(axum::middleware::from_fn_with_state(
                    (state.clone(), "device"),
                    crate::edge::limit_stored,
                )),
        )
        .route("/ui/consent", get(consent_page).post(consent_submit))
}

pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/admin/clients", get(list_clients).post(create_client))
        .route(
            "/admin/clients/{id}",
            get(get_client).put(update_client).delete(delete_client),
        )
        .route("/admin/clients/{id}/secrets", post(add_secret))
        .route(
            "/admin/clients/{id}/secrets/{secret}",
            axum::routing::delete(delete_secret),
        )
        .route(
            "/admin/clients/{id}/subjects/{subject}",
            axum::routing::delete(release_subject),
        )
        .route(
            "/admin/clients/{id}/logout-notices",
            get(list_logout_notices),
        )
        .route("/admin/clients/{id}/assignments", get(list_assignments))
        .route(
            "/admin/clients/{id}/assignments/{identity}",
            put(assign).delete(unassign),
        )
}

/// Where an OP error is shown: a protocol endpoint's JSON answer or a hosted page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// `/oidc/token`, PAR, device authorization, revocation, introspection, userinfo,
    /// registration and the admin API: RFC 6749 §5.2's error JSON.
    Json,
    /// A page a person reads in the browser.
    Page,
}

/// The HTTP status of an OP error: RFC 6749 §5.2 (400, and 401 for `invalid_client`), RFC
/// 6750 §3.1 (401 `invalid_token`, 403 `insufficient_scope`), and the usual statuses for the
/// rest. The one place that decides it, for JSON answers and pages alike: they differ only for
/// `access_denied`, which RFC 6749 §5.2 (and RFC 8628 §3.5, a device whose user said no) makes
/// a 400 at the token endpoint, while a page telling a person they may not use an app is a 403.
fn status_of(code: ErrorCode, surface: Surface) -> StatusCode {
    match code {
        ErrorCode::AccessDenied => match surface {
            Surface::Json => StatusCode::BAD_REQUEST,
            Surface::Page => StatusCode::FORBIDDEN,
        },
        ErrorCode::InvalidRequest
        | ErrorCode::InvalidGrant
        | ErrorCode::UnauthorizedClient
        | ErrorCode::UnsupportedGrantType
        | ErrorCode::UnsupportedResponseType
        | ErrorCode::InvalidScope
        | ErrorCode::InvalidTarget
        | ErrorCode::ConsentRequired
        | ErrorCode::InteractionRequired
        | ErrorCode::RequestNotSupported
        | ErrorCode::RequestUriNotSupported
        | ErrorCode::InvalidClientMetadata
        | ErrorCode::InvalidRequestObject
        | ErrorCode::InvalidDpopProof
        | ErrorCode::UseDpopNonce
        | ErrorCode::AuthorizationPending
        | ErrorCode::SlowDown
        | ErrorCode::ExpiredToken => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidClient | ErrorCode::InvalidToken | ErrorCode::LoginRequired => {
            StatusCode::UNAUTHORIZED
        }
        ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The status of an authorization error page: 403 when the user may not use the app, 400 for
/// a request that cannot go on.
fn page_status(reason: PageReason) -> StatusCode {
    match reason {
        PageReason::InvalidRequest
        | PageReason::UnknownApp
        | PageReason::AppGone
        | PageReason::RedirectUri
        | PageReason::RequestExpired
        | PageReason::UserCode => StatusCode::BAD_REQUEST,
        PageReason::NoSubject | PageReason::NotAssigned => StatusCode::FORBIDDEN,
    }
}

/// An OAuth error as JSON (RFC 6749 §5.2): the one renderer of [`OpError`] for the protocol
/// endpoints. `WWW-Authenticate` goes with every 401 (`Bearer` for a bad access token, `Basic`
/// for client authentication, the only scheme the token endpoint takes in a header), and
/// `Retry-After` when a limit says when to come back. DPoP errors carry a fresh `DPoP-Nonce`;
/// at a resource endpoint (userinfo) they are 401 with a `DPoP` challenge (RFC 9449 §7.1).
struct OAuthError(OpError, Option<u64>, DpopReply);

/// What a DPoP error adds to its answer.
#[derive(Default)]
struct DpopReply {
    nonce: Option<String>,
    at_resource: bool,
}

impl From<OpError> for OAuthError {
    fn from(e: OpError) -> Self {
        OAuthError(e, None, DpopReply::default())
    }
}

impl OAuthError {
    fn retry_after(mut self, secs: Option<u64>) -> Self {
        self.1 = secs;
        self
    }

    /// Attaches a nonce to a DPoP error (the app retries with it).
    fn dpop(mut self, op: &tessera_op::Provider, at_resource: bool) -> Self {
        if matches!(
            self.0.code,
            ErrorCode::UseDpopNonce | ErrorCode::InvalidDpopProof
        ) {
            self.2 = DpopReply {
                nonce: op.dpop_nonce(),
                at_resource,
            };
        }
        self
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let e = &self.0;
        let dpop_error = matches!(
            e.code,
            ErrorCode::UseDpopNonce | ErrorCode::InvalidDpopProof
        );
        let status = if dpop_error && self.2.at_resource {
            StatusCode::UNAUTHORIZED
        } else {
            status_of(e.code, Surface::Json)
        };
        if status.is_server_error() {
            tracing::error!(error = e.code.as_str(), reason = %e.description, "OP request failed");
        }
        let mut resp = (
            status,
            Json(json!({"error": e.code.as_str(), "error_description": e.description})),
        )
            .into_response();
        let h = resp.headers_mut();
        no_store(h);
        if let Some(secs) = self.1 {
            h.insert(header::RETRY_AFTER, secs.into());
        }
        if let Some(v) = self
            .2
            .nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            h.insert("dpop-nonce", v);
        }
        let challenge = match e.code {
            ErrorCode::UseDpopNonce | ErrorCode::InvalidDpopProof if self.2.at_resource => {
                Some(format!(
                    "DPoP error=\"{}\", error_description=\"{}\", algs=\"{}\"",
                    e.code.as_str(),
                    e.description.replace('"', "'"),
                    tessera_op::dpop::DPOP_ALGS.join(" ")
                ))
            }
            ErrorCode::InvalidToken => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                e.description.replace('"', "'")
            )),
            ErrorCode::InvalidClient | ErrorCode::LoginRequired => {
                Some("Basic realm=\"tessera\"".to_string())
            }
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidGrant
            | ErrorCode::UnauthorizedClient
            | ErrorCode::UnsupportedGrantType
            | ErrorCode::UnsupportedResponseType
            | ErrorCode::InvalidScope
            | ErrorCode::InvalidTarget
            | ErrorCode::AccessDenied
            | ErrorCode::ConsentRequired
            | ErrorCode::InteractionRequired
            | ErrorCode::RequestNotSupported
            | ErrorCode::RequestUriNotSupported
            | ErrorCode::InsufficientScope
            | ErrorCode::InvalidClientMetadata
            | ErrorCode::InvalidRequestObject
            | ErrorCode::InvalidDpopProof
            | ErrorCode::UseDpopNonce
            | ErrorCode::AuthorizationPending
            | ErrorCode::SlowDown
            | ErrorCode::ExpiredToken
            | ErrorCode::ServerError
            | ErrorCode::TemporarilyUnavailable
            | ErrorCode::RateLimited
            | ErrorCode::NotFound
            | ErrorCode::Conflict => None,
        };
        if let Some(v) = challenge.and_then(|v| HeaderValue::from_str(&v).ok()) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// The one `DPoP` header of a request, if any (RFC 9449 §4.3: more than one is an error).
fn dpop_header(headers: &HeaderMap) -> Result<Option<&str>, OpError> {
    let mut all = headers.get_all("dpop").iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(OpError::new(
            ErrorCode::InvalidDpopProof,
            "DPoP proof refused: send exactly one `DPoP` header.",
        ));
    }
    first
        .map(|v| {
            v.to_str().map_err(|_| {
                OpError::new(
                    ErrorCode::InvalidDpopProof,
                    "DPoP proof refused: the `DPoP` header is not ASCII.",
                )
            })
        })
        .transpose()
}

/// A fresh nonce for the app's next proof (RFC 9449 §8.2).
fn add_nonce(h: &mut HeaderMap, op: &tessera_op::Provider) {
    if let Some(v) = op.dpop_nonce().and_then(|n| HeaderValue::from_str(&n).ok()) {
        h.insert("dpop-nonce", v);
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

async fn discovery(cfg: Cfg) -> Result<Response, OAuthError> {
    Ok(Json(cfg.op().discovery_now().await?).into_response())
}

async fn jwks(cfg: Cfg) -> Result<Response, OAuthError> {
    Ok(Json(cfg.op().jwks().await?).into_response())
}

/// A form body's fields, keeping repeats. Only `application/x-www-form-urlencoded` is accepted.
async fn form_fields(headers: &HeaderMap, body: Body) -> Result<RawParams, OpError> {
    let bytes = axum::body::to_bytes(body, http::MAX_BODY)
        .await
        .map_err(|_| OpError::invalid_request("The request body is too large."))?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !bytes.is_empty() && !ctype.starts_with("application/x-www-form-urlencoded") {
        return Err(OpError::invalid_request(
            "Send the parameters as application/x-www-form-urlencoded (RFC 6749 §3.2).",
        ));
    }
    if url::form_urlencoded::parse(&bytes)
        .nth(http::MAX_FORM_FIELDS)
        .is_some()
    {
        return Err(OpError::invalid_request(format!(
            "The request has more than {} parameters.",
            http::MAX_FORM_FIELDS
        )));
    }
    Ok(raw_params(
        url::form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), v.into_owned())),
    ))
}

/// Single-valued parameters; a repeated one is `invalid_request`.
fn single(raw: RawParams) -> Result<HashMap<String, String>, OpError> {
    let mut out = HashMap::new();
    for (k, mut v) in raw {
        if v.len() > 1 {
            return Err(OpError::invalid_request(format!(
                "The `{k}` parameter is repeated; send it once."
            )));
        }
        out.insert(k, v.pop().unwrap_or_default());
    }
    Ok(out)
}

/// The parameters of an endpoint that takes GET (query) and POST (form) alike.
async fn request_params(
    method: &Method,
    q: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<RawParams, OpError> {
    if method == Method::POST {
        form_fields(headers, body).await
    } else {
        Ok(query_params(q))
    }
}

fn query_params(q: Option<String>) -> RawParams {
    raw_params(
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned())),
    )
}

fn reply_response(r: &Reply) -> Response {
    match r.mode {
        ResponseMode::FormPost => op_pages::form_post(&FormPostView {
            action: r.redirect_uri.clone(),
            fields: r.params.clone(),
        }),
        _ => Redirect::to(&r.url()).into_response(),
    }
}

/// What the OP's pages need from their request: the headers (language cookie,
/// `Accept-Language`), the app's `ui_locales` and the page's own path (the language switcher).
struct PageCx<'a> {
    e: &'a Engine,
    headers: &'a HeaderMap,
    here: String,
    /// `ui_locales`, when the app sent it.
    ui_locales: Option<String>,
}

impl<'a> PageCx<'a> {
    fn new(e: &'a Engine, headers: &'a HeaderMap, uri: &OriginalUri) -> Self {
        PageCx {
            e,
            headers,
            here: uri
                .0
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| uri.0.path().to_string()),
            ui_locales: None,
        }
    }

    fn with_ui_locales(mut self, ui_locales: Option<&str>) -> Self {
        self.ui_locales = ui_locales.filter(|l| !l.is_empty()).map(str::to_string);
        self
    }

    fn page(&self, app_url: Option<String>) -> OpPage<'_> {
        OpPage {
            headers: self.headers,
            ui_locales: self.ui_locales.as_deref(),
            here: &self.here,
            app_url,
        }
    }

    fn error(&self, v: OpErrorView) -> Response {
        let app_url = v.back_form.as_ref().map(|f| f.action.clone());
        ui::op_error_response(self.e, &self.page(app_url), v)
    }
}

fn authorize_response(cx: &PageCx, a: Authorize) -> Response {
    match a {
        Authorize::Reply(r) => reply_response(&r),
        Authorize::Login { to } => Redirect::to(&to).into_response(),
        Authorize::DeviceDone { app, approved } => ui::device_response(
            cx.e,
            &cx.page(None),
            ui::DeviceView {
                form_action: String::new(),
                csrf_token: String::new(),
                user_code: String::new(),
                error: None,
                done: Some(ui::DeviceDoneView { app, approved }),
            },
        ),
        Authorize::Consent {
            request_id,
            ui_locales,
        } => {
            let to =
                cx.e.settings
                    .serve
                    .public_base_url
                    .join("ui/consent")
                    .map(|mut u| {
                        u.query_pairs_mut()
                            .append_pair("request", &request_id.to_string());
                        if let Some(l) = ui_locales.as_deref().filter(|l| !l.is_empty()) {
                            u.query_pairs_mut().append_pair("ui_locales", l);
                        }
                        u.to_string()
                    })
                    .unwrap_or_default();
            Redirect::to(&to).into_response()
        }
        Authorize::Page(p) => {
            let (back_href, back_form) = match p.back {
                Some(b) if b.mode == ResponseMode::FormPost => (
                    None,
                    Some(BackForm {
                        action: b.redirect_uri.clone(),
                        fields: b
                            .params
                            .iter()
                            .map(|(name, value)| HiddenView {
                                name: name.clone(),
                                value: value.clone(),
                            })
                            .collect(),
                    }),
                ),
                Some(b) => (Some(b.url()), None),
                None => (None, None),
            };
            cx.error(OpErrorView {
                status: page_status(p.reason).as_u16(),
                error: p.reason.code().as_str().to_string(),
                reason: p.reason.as_str().to_string(),
                app_name: p.app,
                description: p.message,
                back_href,
                back_form,
            })
        }
    }
}

/// An OP error with no app to go back to, as the hosted error page.
fn page_error(cx: &PageCx, e: OpError) -> Response {
    let status = status_of(e.code, Surface::Page);
    if status.is_server_error() {
        tracing::error!(error = e.code.as_str(), reason = %e.description, "OP request failed");
    }
    cx.error(OpErrorView {
        status: status.as_u16(),
        error: e.code.as_str().to_string(),
        reason: e.code.as_str().to_string(),
        app_name: None,
        description: e.description,
        back_href: None,
        back_form: None,
    })
}

/// A form refused for its CSRF token, as the hosted error page (403).
fn csrf_page(cx: &PageCx) -> Response {
    cx.error(OpErrorView {
        status: 403,
        error: "security_csrf_violation".into(),
        reason: "csrf".into(),
        app_name: None,
        description: "The form's CSRF token is missing or does not match this browser's.".into(),
        back_href: None,
        back_form: None,
    })
}

#[allow(clippy::too_many_arguments)] // one extractor per input, as axum handlers are written
async fn authorize(
    cfg: Cfg,
    method: Method,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    session: Result<MaybeSession, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let cx = PageCx::new(cfg.engine(), &headers, &uri);
    let raw = match request_params(&method, q, &headers, body).await {
        Ok(r) => r,
        Err(e) => return page_error(&cx, e),
    };
    let cx = cx.with_ui_locales(
        raw.get("ui_locales")
            .and_then(|v| v.first())
            .map(String::as_str),
    );
    let MaybeSession(session) = match session {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    match cfg.op().authorize(&raw, session.as_ref()).await {
        Ok(a) => authorize_response(&cx, a),
        Err(e) => page_error(&cx, e),
    }
}

/// `?request=<id>` of the pages that go on with a stored authorization request.
#[derive(Deserialize)]
struct RequestQuery {
    request: Option<String>,
    ui_locales: Option<String>,
}

async fn resume(
    cfg: Cfg,
    uri: OriginalUri,
    KratosQuery(q): KratosQuery<RequestQuery>,
    MaybeSession(session): MaybeSession,
    headers: HeaderMap,
) -> Response {
    let cx = PageCx::new(cfg.engine(), &headers, &uri);
    let id = q.request.as_deref().unwrap_or_default();
    match cfg.op().resume(id, session.as_ref()).await {
        Ok(a) => authorize_response(&cx, a),
        Err(e) => page_error(&cx, e),
    }
}

/// Client authentication from `Authorization: Basic` (RFC 6749 §2.3.1: both parts
/// form-urlencoded) and the body.
fn client_auth(
    headers: &HeaderMap,
    form: &mut HashMap<String, String>,
) -> Result<ClientAuth, OpError> {
    let mut auth = ClientAuth {
        form_id: form.remove("client_id").filter(|s| !s.is_empty()),
        form_secret: form.remove("client_secret"),
        assertion_type: form.remove("client_assertion_type"),
        assertion: form.remove("client_assertion"),
        ..Default::default()
    };
    if let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let Some(b64) = h
            .strip_prefix("Basic ")
            .or_else(|| h.strip_prefix("basic "))
        else {
            return Err(OpError::invalid_client(
                "Only HTTP Basic client authentication is accepted in the Authorization header.",
            ));
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                OpError::invalid_client("The Basic credentials are not valid base64.")
            })?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| OpError::invalid_client("The Basic credentials have no `:`."))?;
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        auth.basic = Some((dec(id), dec(secret)));
    }
    Ok(auth)
}

async fn token(
    cfg: Cfg,
    client: http::ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let raw = form_fields(&headers, body).await?;
    // The token endpoint issues one access token, for one API (RFC 8707 §2.2).
    if raw.get("resource").is_some_and(|r| r.len() > 1) {
        return Err(OpError::new(
            ErrorCode::InvalidTarget,
            "An access token is for one API: send one `resource` at the token endpoint (name several in the authorization request, then ask for each in turn).",
        )
        .into());
    }
    // Token exchange's `audience` (RFC 8693 §2.1) names the API too: one at a time.
    if raw.get("audience").is_some_and(|a| a.len() > 1) {
        return Err(OpError::new(
            ErrorCode::InvalidTarget,
            "An exchanged token is for one API: send one `audience` (or one `resource`).",
        )
        .into());
    }
    let mut form = single(raw)?;
    let auth = client_auth(&headers, &mut form)?;
    // Failed token requests (guessed secrets, codes, refresh tokens) are limited per app, or
    // per address when no app is named.
    let key = match auth.basic.as_ref().map(|b| &b.0).or(auth.form_id.as_ref()) {
        Some(id) => format!("token-failures:client:{id}"),
        None => format!(
            "token-failures:addr:{}",
            client.0.map(|a| a.to_string()).unwrap_or_default()
        ),
    };
    let engine = cfg.engine();
    let max = engine.settings.limits.token_failures_per_client_per_minute;
    let limits = &engine.limits;
    limits.per_minute(&key, max, false).map_err(|e| {
        let secs = e.retry_after.map(|s| u64::from(s.get()));
        OAuthError::from(OpError::from(e)).retry_after(secs)
    })?;
    let op = cfg.op();
    let dpop = DpopRequest {
        proof: dpop_header(&headers)?,
        method: "POST",
    };
    match op.token_dpop(&auth, &form, dpop).await {
        Ok(t) => {
            let mut resp = Json(t).into_response();
            no_store(resp.headers_mut());
            if dpop.proof.is_some() {
                add_nonce(resp.headers_mut(), op);
            }
            Ok(resp)
        }
        Err(e) => {
            // A nonce round trip is DPoP's normal first step, not a failed attempt.
            // Neither is a polling device's "not yet" (RFC 8628 §3.5); polling too fast is.
            if !status_of(e.code, Surface::Json).is_server_error()
                && e.code != ErrorCode::UseDpopNonce
                && e.code != ErrorCode::AuthorizationPending
            {
                let _ = limits.per_minute(&key, u32::MAX, true);
            }
            Err(OAuthError::from(e).dpop(op, false))
        }
    }
}

async fn userinfo(
    cfg: Cfg,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let scheme = |name: &str| {
        authorization.and_then(|v| {
            v.split_once(' ')
                .filter(|(s, _)| s.eq_ignore_ascii_case(name))
                .map(|(_, t)| t.trim().to_string())
        })
    };
    let dpop_token = scheme("DPoP");
    let dpop_scheme = dpop_token.is_some();
    let token = match dpop_token.or_else(|| scheme("Bearer")) {
        Some(t) => t,
        None if method == Method::POST => single(form_fields(&headers, body).await?)?
            .remove("access_token")
            .unwrap_or_default(),
        None => String::new(),
    };
    if token.is_empty() {
        return Err(OpError::invalid_token(
            "No access token: send it as `Authorization: Bearer <token>`.",
        )
        .into());
    }
    let op = cfg.op();
    let how = Presented {
        dpop_scheme,
        dpop: DpopRequest {
            proof: dpop_header(&headers)?,
            method: method.as_str(),
        },
    };
    let claims = op
        .userinfo_presented(&token, how)
        .await
        .map_err(|e| OAuthError::from(e).dpop(op, true))?;
    let mut resp = Json(claims).into_response();
    no_store(resp.headers_mut());
    if dpop_scheme {
        add_nonce(resp.headers_mut(), op);
    }
    Ok(resp)
}

async fn revocation(cfg: Cfg, headers: HeaderMap, body: Body) -> Result<Response, OAuthError> {
    let mut form = single(form_fields(&headers, body).await?)?;
    let auth = client_auth(&headers, &mut form)?;
    let token = form.get("token").cloned().unwrap_or_default();
    cfg.op().revoke(&auth, &token).await?;
    Ok(StatusCode::OK.into_response())
}

async fn introspection(cfg: Cfg, headers: HeaderMap, body: Body) -> Result<Response, OAuthError> {
    let mut form = single(form_fields(&headers, body).await?)?;
    let auth = client_auth(&headers, &mut form)?;
    let token = form.get("token").cloned().unwrap_or_default();
    let mut resp = Json(cfg.op().introspect(&auth, &token).await?).into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

/// `POST /oidc/par` (RFC 9126): `201 {request_uri, expires_in}`, or an RFC 6749 §5.2 error.
async fn pushed_authorization_request(
    cfg: Cfg,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let mut raw = form_fields(&headers, body).await?;
    // Client authentication reads single values; the request keeps its repeats (`resource`).
    let mut creds: HashMap<String, String> = HashMap::new();
    for k in [
        "client_id",
        "client_secret",
        "client_assertion_type",
        "client_assertion",
    ] {
        if let Some(v) = raw.remove(k) {
            creds.extend(single([(k.to_string(), v)].into_iter().collect())?);
        }
    }
    let auth = client_auth(&headers, &mut creds)?;
    let pushed = cfg.op().push_request(&auth, &raw).await?;
    let mut resp = (StatusCode::CREATED, Json(pushed)).into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

/// `POST /oidc/device/auth` (RFC 8628 §3.1): an app (authenticated like at the token
/// endpoint; a public app names its `client_id`) gets a device code and a user code.
async fn device_authorization(
    cfg: Cfg,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let mut form = single(form_fields(&headers, body).await?)?;
    let auth = client_auth(&headers, &mut form)?;
    let answer = cfg.op().device_authorization(&auth, &form).await?;
    let mut resp = Json(answer).into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

#[derive(Deserialize)]
struct DeviceQuery {
    user_code: Option<String>,
    ui_locales: Option<String>,
}

/// `GET /ui/device`: the form where the user types the code their device shows
/// (`verification_uri_complete` fills it in; the user still confirms with the button, so a
/// link alone never starts an approval).
async fn device_page(
    cfg: Cfg,
    uri: OriginalUri,
    KratosQuery(q): KratosQuery<DeviceQuery>,
    csrf: Csrf,
    headers: HeaderMap,
) -> Response {
    let e = cfg.engine();
    let cx = PageCx::new(e, &headers, &uri).with_ui_locales(q.ui_locales.as_deref());
    let user_code = q
        .user_code
        .as_deref()
        .and_then(tessera_op::device::normalize_user_code)
        .map(|c| tessera_op::device::display_user_code(&c))
        .unwrap_or_default();
    device_form(&cx, csrf, user_code, None)
}

fn device_form(cx: &PageCx, csrf: Csrf, user_code: String, error: Option<String>) -> Response {
    let (secret, set) = csrf.issue(cx.e);
    let view = ui::DeviceView {
        form_action: cx
            .e
            .settings
            .serve
            .public_base_url
            .join("ui/device")
            .map(|u| u.to_string())
            .unwrap_or_default(),
        csrf_token: tessera_core::crypto::mask_csrf(&secret),
        user_code,
        error,
        done: None,
    };
    let mut resp = ui::device_response(cx.e, &cx.page(None), view);
    if let Some(c) = set {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// `POST /ui/device`: `csrf_token` and `user_code`. A valid code goes on like an authorization
/// request (sign-in, access rules, the consent page that confirms the device).
async fn device_submit(
    cfg: Cfg,
    uri: OriginalUri,
    csrf: Csrf,
    session: Result<MaybeSession, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let cx = PageCx::new(cfg.engine(), &headers, &uri);
    let form = match form_fields(&headers, body).await.and_then(single) {
        Ok(f) => f,
        Err(e) => return page_error(&cx, e),
    };
    if !csrf.matches(
        form.get("csrf_token")
            .map(String::as_str)
            .unwrap_or_default(),
    ) {
        return csrf_page(&cx);
    }
    let session = match session {
        Ok(MaybeSession(s)) => s,
        Err(e) => return e.into_response(),
    };
    let typed = form.get("user_code").cloned().unwrap_or_default();
    match cfg
        .op()
        .device_start(&typed, session.as_ref(), cx.ui_locales.clone())
        .await
    {
        // A wrong code is answered on the same form, so the user can correct it.
        Ok(Authorize::Page(p)) if p.reason == PageReason::UserCode => {
            device_form(&cx, csrf, typed.chars().take(16).collect(), Some(p.message))
        }
        Ok(a) => authorize_response(&cx, a),
        Err(e) => page_error(&cx, e),
    }
}

/// The bearer token of `Authorization` (initial or registration access token).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

/// Client metadata as JSON (RFC 7591 §3.1).
async fn metadata_body(headers: &HeaderMap, body: Body) -> Result<Value, OpError> {
    let bad = |why: String| OpError::new(ErrorCode::InvalidClientMetadata, why);
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !json {
        return Err(bad(
            "Send the client metadata as application/json (RFC 7591 §3.1).".into(),
        ));
    }
    let bytes = axum::body::to_bytes(body, http::MAX_BODY)
        .await
        .map_err(|_| OpError::invalid_request("The request body is too large."))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("The body is not valid JSON: {e}.")))
}

async fn register(cfg: Cfg, headers: HeaderMap, body: Body) -> Result<Response, OAuthError> {
    let op = cfg.op();
    // Checked before the body is read, so without the token nothing else is learnt.
    if !op.registration_enabled() {
        return Err(OpError::new(
            ErrorCode::NotFound,
            "Dynamic client registration is not enabled on this server.",
        )
        .into());
    }
    let metadata = metadata_body(&headers, body).await?;
    let v = op.register_client(bearer_token(&headers), metadata).await?;
    let mut resp = (StatusCode::CREATED, Json(v)).into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

async fn read_registration(
    cfg: Cfg,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let v = cfg
        .op()
        .read_registration(&client_id, bearer_token(&headers))
        .await?;
    let mut resp = Json(v).into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

async fn update_registration(
    cfg: Cfg,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthError> {
    let token = bearer_token(&headers).map(str::to_string);
    let metadata = metadata_body(&headers, body).await?;
    let v = cfg
        .op()
        .update_registration(&client_id, token.as_deref(), metadata)
        .await?;
    let mut resp = Json(v).into_response();
    no_store(resp.headers_mut());
    Ok(resp)
}

async fn delete_registration(
    cfg: Cfg,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    cfg.op()
        .delete_registration(&client_id, bearer_token(&headers))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET|POST /oidc/session/end`: the op crate decides ([`tessera_op::Provider::logout`]); this
/// only reads the request and shows the decision.
#[allow(clippy::too_many_arguments)] // one extractor per input, as axum handlers are written
async fn end_session(
    cfg: Cfg,
    method: Method,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    session: Result<MaybeSession, ApiError>,
    csrf: Csrf,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let e = cfg.engine();
    let cx = PageCx::new(e, &headers, &uri);
    let p = match request_params(&method, q, &headers, body)
        .await
        .and_then(single)
    {
        Ok(p) => p,
        Err(err) => return page_error(&cx, err),
    };
    let cx = cx.with_ui_locales(p.get("ui_locales").map(String::as_str));
    let MaybeSession(session) = match session {
        Ok(s) => s,
        Err(err) => return err.into_response(),
    };
    let decided = cfg
        .op()
        .logout(LogoutRequest {
            params: &p,
            session: session.as_ref(),
            posted: method == Method::POST,
            csrf_cookie: csrf.cookie(),
        })
        .await;
    let redirect = match decided {
        Err(err) => return page_error(&cx, err),
        Ok(Logout::CsrfRefused) => return csrf_page(&cx),
        Ok(Logout::Confirm { redirect, fields }) => {
            let (secret, set) = csrf.issue(e);
            let view = LogoutConfirmView {
                form_action: cfg.op().endpoint("session/end"),
                csrf_token: tessera_core::crypto::mask_csrf(&secret),
                fields: fields
                    .into_iter()
                    .map(|(name, value)| HiddenView { name, value })
                    .collect(),
                user_identifier: session
                    .as_ref()
                    .and_then(|s| s.identity.as_ref())
                    .map(user_label),
            };
            let mut resp = ui::logout_confirm_response(e, &cx.page(redirect), view);
            if let Some(c) = set {
                resp.headers_mut().append(header::SET_COOKIE, c);
            }
            return resp;
        }
        Ok(Logout::Done {
            redirect,
            frontchannel,
        }) => (redirect, frontchannel),
    };
    let mut resp = match redirect {
        // Front-channel logout: the apps' pages load in iframes on the signed-out page, which
        // then offers the way back to the app.
        (redirect, frames) if !frames.is_empty() => ui::signed_out_frontchannel_response(
            e,
            &OpPage {
                here: "/oidc/session/end",
                ..cx.page(None)
            },
            frames,
            redirect,
        ),
        (Some(to), _) => Redirect::to(&to).into_response(),
        // The language switcher comes back to a plain `/oidc/session/end`, which shows this page
        // again rather than replaying the logout request's parameters.
        (None, _) => ui::signed_out_response(
            e,
            &OpPage {
                here: "/oidc/session/end",
                ..cx.page(None)
            },
        ),
    };
    resp.headers_mut()
        .append(header::SET_COOKIE, http::clear_session_cookie(e));
    resp
}

/// Puts an app's `login_hint` into a login flow's identifier field, when it has one and the
/// hint is a plain identifier (no control characters, not overly long).
pub fn prefill_identifier(flow: &mut tessera_core::flow::Flow, hint: &str) {
    if hint.len() > 256 || hint.chars().any(char::is_control) {
        return;
    }
    for n in flow.ui.nodes.iter_mut() {
        if n.attributes.name == "identifier"
            && n.attributes.value.as_str().is_none_or(str::is_empty)
        {
            n.attributes.value = Value::String(hint.to_string());
        }
    }
}

fn user_label(identity: &tessera_core::identity::Identity) -> String {
    for k in ["email", "username", "phone"] {
        if let Some(v) = identity.traits.get(k).and_then(Value::as_str) {
            return v.to_string();
        }
    }
    identity.id.to_string()
}

/// `GET /ui/consent?request=<id>[&ui_locales=…]`: the hosted consent page.
async fn consent_page(
    cfg: Cfg,
    uri: OriginalUri,
    KratosQuery(q): KratosQuery<RequestQuery>,
    session: Result<MaybeSession, ApiError>,
    csrf: Csrf,
    headers: HeaderMap,
) -> Response {
    let e = cfg.engine();
    let cx = PageCx::new(e, &headers, &uri).with_ui_locales(q.ui_locales.as_deref());
    let id = q.request.unwrap_or_default();
    let session = match session {
        Ok(MaybeSession(Some(s))) => s,
        Ok(MaybeSession(None)) => {
            // Signed out meanwhile: the request goes through sign-in again.
            return match cfg.op().resume(&id, None).await {
                Ok(a) => authorize_response(&cx, a),
                Err(err) => page_error(&cx, err),
            };
        }
        Err(err) => return err.into_response(),
    };
    let info = match cfg.op().consent_info(&id).await {
        Ok(Ok(i)) => i,
        Ok(Err(a)) => return authorize_response(&cx, a),
        Err(err) => return page_error(&cx, err),
    };
    let (secret, set) = csrf.issue(e);
    let user = session
        .identity
        .as_ref()
        .map(user_label)
        .unwrap_or_else(|| session.identity_id.to_string());
    let view = ConsentView {
        app_name: info.client_name,
        scopes: info.scopes,
        user_identifier: user,
        form_action: e
            .settings
            .serve
            .public_base_url
            .join("ui/consent")
            .map(|u| u.to_string())
            .unwrap_or_default(),
        csrf_token: tessera_core::crypto::mask_csrf(&secret),
        request: info.request_id.to_string(),
    };
    let mut resp = ui::consent_response(e, &cx.page(Some(info.redirect_uri)), view);
    if let Some(c) = set {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// `POST /ui/consent`: `csrf_token`, `request` and `decision` (`accept` or `deny`).
async fn consent_submit(
    cfg: Cfg,
    uri: OriginalUri,
    csrf: Csrf,
    session: Result<MaybeSession, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let cx = PageCx::new(cfg.engine(), &headers, &uri);
    let form = match form_fields(&headers, body).await.and_then(single) {
        Ok(f) => f,
        Err(e) => return page_error(&cx, e),
    };
    if !csrf.matches(
        form.get("csrf_token")
            .map(String::as_str)
            .unwrap_or_default(),
    ) {
        return csrf_page(&cx);
    }
    let session = match session {
        Ok(MaybeSession(Some(s))) => s,
        Ok(MaybeSession(None)) => {
            return page_error(
                &cx,
                OpError::new(
                    ErrorCode::LoginRequired,
                    "There is no signed-in session in this browser any more.",
                ),
            );
        }
        Err(e) => return e.into_response(),
    };
    let id = form.get("request").map(String::as_str).unwrap_or_default();
    let accept = form.get("decision").is_some_and(|d| d == "accept");
    match cfg.op().decide_consent(id, &session, accept).await {
        Ok(a) => authorize_response(&cx, a),
        Err(e) => page_error(&cx, e),
    }
}

// ---- admin API ----

type AdminResult = Result<Response, ApiError>;

fn parse_input(v: Value) -> Result<ClientInput, ApiError> {
    serde_json::from_value(v).map_err(|e| {
        ApiError(
            Error::bad_request(format!("The app metadata is not valid: {e}."))
                .with_id(tessera_core::error::ErrorId::InvalidClientMetadata),
        )
    })
}

async fn create_client(cfg: Cfg, KratosBody(body): KratosBody) -> AdminResult {
    let input = parse_input(body)?;
    let (client, secret) = cfg.op().create_client(input).await?;
    let (client, row) = cfg.op().client_row(&client.client_id).await?;
    let mut v = client.to_api(row.created_at, row.updated_at);
    if let Some(s) = secret {
        v["client_secret"] = json!(s);
        v["client_secret_expires_at"] = json!(0);
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn list_clients(cfg: Cfg) -> AdminResult {
    let list = cfg.op().list_clients().await?;
    Ok(Json(
        list.iter()
            .map(|(c, r)| c.to_api(r.created_at, r.updated_at))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

async fn get_client(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    let (c, r) = cfg.op().client_row(&id).await?;
    Ok(Json(c.to_api(r.created_at, r.updated_at)).into_response())
}

async fn update_client(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    KratosBody(body): KratosBody,
) -> AdminResult {
    let input = parse_input(body)?;
    let (c, r) = cfg.op().update_client(&id, input).await?;
    Ok(Json(c.to_api(r.created_at, r.updated_at)).into_response())
}

/// The back-channel logout notices owed to or sent to an app (newest first, at most 500):
/// what an operator reads when an app says it was never told of a sign-out.
async fn list_logout_notices(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    cfg.op().client_row(&id).await?;
    let notices = cfg
        .op()
        .store
        .op_logout_notices_of(&id)
        .await
        .map_err(ApiError)?;
    let items: Vec<Value> = notices
        .into_iter()
        .map(|(n, state, last_error)| {
            json!({"id": n.id, "sub": n.sub, "sid": n.sid, "state": state, "attempts": n.attempts, "last_error": last_error})
        })
        .collect();
    Ok(Json(items).into_response())
}

async fn delete_client(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    if !cfg.op().delete_client(&id).await? {
        return Err(ApiError(tessera_op::client::not_found(format!(
            "App `{id}` does not exist."
        ))));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Releases a per-app subject that an identity holds for good (see `op_subjects`): the next
/// identity whose subject expression yields it gets it. An administrator's decision, e.g.
/// after an employee's account was deleted and created again.
async fn release_subject(
    cfg: Cfg,
    KratosPath((id, subject)): KratosPath<(String, String)>,
) -> AdminResult {
    if !cfg.op().store.op_release_subject(&id, &subject).await? {
        return Err(ApiError(tessera_op::client::not_found(format!(
            "No identity holds subject `{subject}` at app `{id}`."
        ))));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_secret(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    let (plain, stored) = cfg.op().add_secret(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": stored.id, "client_secret": plain, "created_at": tessera_core::timefmt::to_rfc3339(stored.created_at)})),
    )
        .into_response())
}

async fn delete_secret(
    cfg: Cfg,
    KratosPath((id, secret)): KratosPath<(String, String)>,
) -> AdminResult {
    cfg.op().delete_secret(&id, &secret).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_assignments(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    cfg.op().client_row(&id).await?;
    let ids = cfg.engine().store.op_assignments(&id).await?;
    Ok(Json(json!(ids)).into_response())
}

async fn assign(
    cfg: Cfg,
    KratosPath((id, IdentityId(identity))): KratosPath<(String, IdentityId)>,
) -> AdminResult {
    cfg.op().client_row(&id).await?;
    cfg.engine().store.get_identity(identity).await?;
    cfg.engine()
        .store
        .op_assign(&id, identity, tessera_core::timefmt::now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn unassign(
    cfg: Cfg,
    KratosPath((id, IdentityId(identity))): KratosPath<(String, IdentityId)>,
) -> AdminResult {
    if !cfg.engine().store.op_unassign(&id, identity).await? {
        return Err(ApiError(tessera_op::client::not_found(format!(
            "Identity `{identity}` is not assigned to app `{id}`."
        ))));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `access_denied` is a 400 in the token endpoint's JSON (RFC 6749 §5.2) and stays a 403
    /// on the page that tells a person they may not use an app; every other code has one
    /// status on both surfaces.
    #[test]
    fn access_denied_is_400_in_json_and_403_on_pages() {
        assert_eq!(
            status_of(ErrorCode::AccessDenied, Surface::Json),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status_of(ErrorCode::AccessDenied, Surface::Page),
            StatusCode::FORBIDDEN
        );
        let others = [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidClient,
            ErrorCode::InvalidGrant,
            ErrorCode::UnauthorizedClient,
            ErrorCode::InvalidScope,
            ErrorCode::InvalidTarget,
            ErrorCode::InvalidToken,
            ErrorCode::InsufficientScope,
            ErrorCode::LoginRequired,
            ErrorCode::NotFound,
            ErrorCode::ServerError,
        ];
        for c in others {
            assert_eq!(
                status_of(c, Surface::Json),
                status_of(c, Surface::Page),
                "{c}"
            );
        }
        assert_eq!(
            status_of(ErrorCode::InsufficientScope, Surface::Json),
            StatusCode::FORBIDDEN
        );
    }
}
