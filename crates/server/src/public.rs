//! Public API (Kratos-compatible, port 4433): self-service flows, sessions, schemas, health.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{
    Cfg, Csrf, KratosBody, KratosPath, KratosQuery, MaybeSession, Negotiated, SessionId, SignedIn,
};
use crate::http::{self, ClientAddr, clear_session_cookie, read_body, session_cookie};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::flow::{Flow, FlowKind, FlowType};
use tessera_core::session::Session;
use tessera_core::{Error, ErrorId};
use tessera_flows::submit::Submitted;
use tessera_flows::{Engine, Outcome};

pub fn router(state: AppState) -> Router {
    // Routes that store a row for anyone who asks (a new flow; a callback's error) are bounded
    // per client address by the edge.
    let new_flows = Router::new()
        .route(
            "/self-service/login/browser",
            start(FlowKind::Login, FlowType::Browser),
        )
        .route(
            "/self-service/login/api",
            start(FlowKind::Login, FlowType::Api),
        )
        .route(
            "/self-service/registration/browser",
            start(FlowKind::Registration, FlowType::Browser),
        )
        .route(
            "/self-service/registration/api",
            start(FlowKind::Registration, FlowType::Api),
        )
        .route(
            "/self-service/settings/browser",
            start(FlowKind::Settings, FlowType::Browser),
        )
        .route(
            "/self-service/settings/api",
            start(FlowKind::Settings, FlowType::Api),
        )
        .route(
            "/self-service/verification/browser",
            start(FlowKind::Verification, FlowType::Browser),
        )
        .route(
            "/self-service/verification/api",
            start(FlowKind::Verification, FlowType::Api),
        )
        .route(
            "/self-service/recovery/browser",
            start(FlowKind::Recovery, FlowType::Browser),
        )
        .route(
            "/self-service/recovery/api",
            start(FlowKind::Recovery, FlowType::Api),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), "flows"),
            crate::edge::limit_stored,
        ));
    let callbacks = Router::new()
        .route(
            "/self-service/methods/oidc/callback/{provider}",
            get(crate::oidc::callback).post(crate::oidc::callback),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), "callbacks"),
            crate::edge::limit_stored,
        ));
    let self_service = Router::new()
        .route("/self-service/login/flows", show(FlowKind::Login))
        .route("/self-service/login", submit_route(FlowKind::Login))
        .route(
            "/self-service/registration/flows",
            show(FlowKind::Registration),
        )
        .route(
            "/self-service/registration",
            submit_route(FlowKind::Registration),
        )
        .route("/self-service/settings/flows", show(FlowKind::Settings))
        .route("/self-service/settings", submit_route(FlowKind::Settings))
        .route(
            "/self-service/verification/flows",
            show(FlowKind::Verification),
        )
        .route(
            "/self-service/verification",
            submit_route(FlowKind::Verification).get(verification_link),
        )
        .route("/self-service/recovery/flows", show(FlowKind::Recovery))
        .route(
            "/self-service/recovery",
            submit_route(FlowKind::Recovery).get(recovery_link),
        )
        .route("/self-service/logout/browser", get(logout_browser))
        .route("/self-service/logout", get(logout))
        .route("/self-service/logout/api", delete(logout_api))
        .route("/self-service/errors", get(crate::oidc::get_error))
        .route("/sessions/token-exchange", get(crate::oidc::token_exchange))
        .route(
            "/self-service/fed-cm/parameters",
            axum::routing::any(fedcm_not_available),
        )
        .route(
            "/self-service/fed-cm/token",
            axum::routing::any(fedcm_not_available),
        )
        .route("/sessions/whoami", get(whoami).post(whoami))
        .route(
            "/sessions",
            get(my_sessions).delete(revoke_my_other_sessions),
        )
        .route("/sessions/{id}", delete(revoke_my_session))
        .route("/schemas", get(list_schemas))
        .route("/schemas/{id}", get(get_schema))
        .merge(new_flows)
        .merge(callbacks)
        .merge(common_routes())
        .merge(crate::ui::router());
    let self_service = match &state.live.running().engine.settings.edge.public.cors {
        Some(cors) => self_service.layer(crate::edge::cors::kratos(cors)),
        None => self_service,
    };
    let op = crate::op::public_routes(&state).layer(crate::edge::cors::op(&state));
    let routes = self_service.merge(op).fallback(not_found);
    crate::edge::stack(routes, &state, crate::edge::Listener::Public)
}

/// Health and version, served on both ports.
pub fn common_routes() -> Router<AppState> {
    Router::new()
        .route("/health/alive", get(alive))
        .route("/health/ready", get(ready))
        .route("/version", get(version))
}

/// Kratos's FedCM endpoints exist only on the Ory Network (Kratos itself answers 404), and no
/// provider type Tessera has speaks FedCM: a 404 in Kratos's error shape that says so, rather
/// than "no route" (docs/migrating-from-kratos.md has the reasoning).
async fn fedcm_not_available(uri: Uri) -> ApiError {
    ApiError(Error::not_found(format!(
        "`{}` is not available: FedCM sign-in (createFedcmFlow, updateFedcmFlow) is not implemented by Tessera, as in self-hosted Ory Kratos. Use the social sign-in buttons of the login and registration flows (method `oidc`).",
        uri.path()
    )))
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError(Error::not_found(format!(
        "No route for `{}`. See the API reference in docs/ for the available endpoints.",
        uri.path()
    )))
}

async fn alive() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(cfg: Cfg) -> Response {
    match cfg.engine().store.ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "errors": { "database": e.reason } })),
        )
            .into_response(),
    }
}

async fn version() -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}

fn request_url(e: &Engine, uri: &Uri) -> String {
    e.settings
        .serve
        .public_base_url
        .join(
            uri.path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .trim_start_matches('/'),
        )
        .map(|u| u.to_string())
        .unwrap_or_default()
}

/// `?name=true`, as Kratos reads its boolean query flags.
fn flag(v: &Option<String>) -> bool {
    v.as_deref() == Some("true")
}

/// A browser's answer for a flow: back to its UI page.
fn to_ui(e: &Engine, kind: FlowKind, flow: &Flow) -> Response {
    let mut to = e.ui_url(kind).clone();
    to.query_pairs_mut()
        .append_pair("flow", &flow.id.to_string());
    Redirect::to(to.as_str()).into_response()
}

/// Answers a freshly created flow: browser flows redirect to the UI (or JSON for SPAs), API
/// flows return the flow.
/// `ui_locales` on the request that starts a browser flow (as the OpenID Provider passes it)
/// rides along to the UI page, which picks its language from it.
fn flow_created(
    e: &Engine,
    flow: Flow,
    set: Option<HeaderValue>,
    neg: Negotiated,
    ui_locales: Option<&str>,
) -> Response {
    let mut resp = if flow.flow_type == FlowType::Browser && !neg.json {
        let mut to = e.ui_url(flow.kind).clone();
        to.query_pairs_mut()
            .append_pair("flow", &flow.id.to_string());
        if let Some(l) = ui_locales.filter(|l| !l.is_empty()) {
            to.query_pairs_mut().append_pair("ui_locales", l);
        }
        Redirect::to(to.as_str()).into_response()
    } else {
        Json(flow).into_response()
    };
    if let Some(c) = set {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// For a browser that already has a session, Kratos redirects to the return URL instead of
/// erroring; JSON clients get the error.
fn already_signed_in(e: &Engine, ft: FlowType, neg: Negotiated, err: Error) -> Response {
    if err.id == Some(ErrorId::SessionAlreadyAvailable) && ft == FlowType::Browser && !neg.json {
        return Redirect::to(e.settings.flows.default_return_url.as_str()).into_response();
    }
    if err.id == Some(ErrorId::SessionAal2Required) {
        return aal2_required(err, ft == FlowType::Browser && !neg.json);
    }
    ApiError(err).into_response()
}

/// `GET /self-service/{kind}/{browser|api}`'s query.
#[derive(Deserialize)]
struct StartQuery {
    return_to: Option<String>,
    refresh: Option<String>,
    /// `aal2`: the second-factor step of a signed-in person (login only).
    aal: Option<String>,
    return_session_token_exchange_code: Option<String>,
    login_hint: Option<String>,
    ui_locales: Option<String>,
}

#[allow(clippy::too_many_arguments)] // one extractor per input, as axum handlers are written
async fn init(
    cfg: Cfg,
    kind: FlowKind,
    ft: FlowType,
    q: StartQuery,
    session: Option<Session>,
    csrf: Csrf,
    neg: Negotiated,
    uri: Uri,
) -> ApiResult<Response> {
    let e = cfg.engine();
    let (csrf, set) = if ft == FlowType::Browser {
        csrf.issue(e)
    } else {
        (String::new(), None)
    };
    let url = request_url(e, &uri);
    let return_to = q.return_to.as_deref();
    let result = match kind {
        FlowKind::Login if q.aal.as_deref() == Some("aal2") => {
            e.init_login_aal2(ft, &url, return_to, session.as_ref(), &csrf)
                .await
        }
        FlowKind::Login if !matches!(q.aal.as_deref(), None | Some("") | Some("aal1")) => Err(
            Error::bad_request("`aal` must be aal1 or aal2 (Kratos's assurance levels)."),
        ),
        FlowKind::Login => {
            e.init_login(
                ft,
                &url,
                return_to,
                flag(&q.refresh),
                session.as_ref(),
                &csrf,
            )
            .await
        }
        FlowKind::Registration => {
            e.init_registration(ft, &url, return_to, session.as_ref(), &csrf)
                .await
        }
        FlowKind::Settings => match &session {
            Some(s) => e.init_settings(ft, &url, return_to, s, &csrf).await,
            None if ft == FlowType::Browser && !neg.json => {
                // Not signed in: sign in first, then come back to settings.
                let mut to = e
                    .settings
                    .serve
                    .public_base_url
                    .join("self-service/login/browser")
                    .map_err(|err| ApiError(Error::internal(err.to_string())))?;
                to.query_pairs_mut().append_pair(
                    "return_to",
                    e.settings
                        .serve
                        .public_base_url
                        .join("self-service/settings/browser")
                        .map(|u| u.to_string())
                        .unwrap_or_default()
                        .as_str(),
                );
                return Ok(Redirect::to(to.as_str()).into_response());
            }
            None => Err(Error::no_session()),
        },
        FlowKind::Verification | FlowKind::Recovery => {
            e.init_lifecycle(kind, ft, &url, return_to, session.as_ref(), &csrf)
                .await
        }
    };
    let result = match result {
        Ok(mut flow)
            if kind != FlowKind::Settings && flag(&q.return_session_token_exchange_code) =>
        {
            e.enable_token_exchange(&mut flow).await.map(|()| flow)
        }
        other => other,
    };
    // An app's `login_hint` (OpenID Provider) pre-fills the identifier of a new login flow.
    let result = match (result, q.login_hint.as_deref().filter(|h| !h.is_empty())) {
        (Ok(mut flow), Some(hint)) if kind == FlowKind::Login => {
            crate::op::prefill_identifier(&mut flow, hint);
            e.store.update_flow(&flow).await.map(|()| flow)
        }
        (other, _) => other,
    };
    match result {
        Ok(mut flow) => {
            Engine::present_flow(&mut flow, Some(&csrf));
            Ok(flow_created(e, flow, set, neg, q.ui_locales.as_deref()))
        }
        Err(err) => Ok(already_signed_in(e, ft, neg, err)),
    }
}

/// `GET /self-service/{kind}/{browser|api}`: the flow kind and type are the route's, so one
/// handler serves all six.
fn start(kind: FlowKind, ft: FlowType) -> axum::routing::MethodRouter<AppState> {
    get(
        move |cfg: Cfg,
              KratosQuery(q): KratosQuery<StartQuery>,
              MaybeSession(session): MaybeSession,
              csrf: Csrf,
              neg: Negotiated,
              uri: Uri| init(cfg, kind, ft, q, session, csrf, neg, uri),
    )
}

/// A required query parameter naming a flow (`?id=`, `?flow=`) or a token (`?token=`).
fn required<'a>(v: &'a Option<String>, param: &str) -> ApiResult<&'a str> {
    v.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError(Error::bad_request(format!(
            "The `{param}` query parameter is required: pass the id of the flow."
        )))
    })
}

/// `GET /self-service/{kind}/flows?id=`.
#[derive(Deserialize)]
struct FlowIdQuery {
    id: Option<String>,
}

async fn get_flow(
    cfg: Cfg,
    kind: FlowKind,
    q: FlowIdQuery,
    csrf: Csrf,
    session: Option<Session>,
) -> ApiResult<Response> {
    let flow = cfg
        .engine()
        .fetch_flow(kind, required(&q.id, "id")?, csrf.cookie())
        .await?;
    if kind == FlowKind::Settings {
        let session = session.ok_or_else(Error::no_session)?;
        if flow.identity_id != Some(session.identity_id) {
            return Err(ApiError(
                Error::forbidden("This settings flow belongs to another identity.")
                    .with_id(ErrorId::SecurityIdentityMismatch),
            ));
        }
    }
    Ok(Json(flow).into_response())
}

/// `GET /self-service/{kind}/flows`: one handler, the kind as route state. Only a settings flow
/// needs the caller's session; login and registration requests skip the lookup.
fn show(kind: FlowKind) -> axum::routing::MethodRouter<AppState> {
    match kind {
        FlowKind::Settings => get(
            move |cfg: Cfg,
                  KratosQuery(q): KratosQuery<FlowIdQuery>,
                  csrf: Csrf,
                  MaybeSession(s): MaybeSession| { get_flow(cfg, kind, q, csrf, s) },
        ),
        FlowKind::Login | FlowKind::Registration | FlowKind::Verification | FlowKind::Recovery => {
            get(
                move |cfg: Cfg, KratosQuery(q): KratosQuery<FlowIdQuery>, csrf: Csrf| {
                    get_flow(cfg, kind, q, csrf, None)
                },
            )
        }
    }
}

/// `POST /self-service/{kind}?flow=`.
#[derive(Deserialize)]
struct FlowQuery {
    flow: Option<String>,
}

/// `?flow=&token=` of a verification or recovery link.
#[derive(Deserialize)]
struct LinkQuery {
    flow: Option<String>,
    token: Option<String>,
}

#[allow(clippy::too_many_arguments)] // one extractor per input, as axum handlers are written
async fn submit(
    cfg: Cfg,
    client: ClientAddr,
    kind: FlowKind,
    q: FlowQuery,
    session: Option<Session>,
    csrf: Csrf,
    neg: Negotiated,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = required(&q.flow, "flow")?;
    let body = read_body(&headers, body).await?;
    let e = cfg.engine();
    let submitted = e
        .submit(
            kind,
            id,
            &body,
            csrf.cookie(),
            client.0,
            session.as_ref(),
            neg.json,
        )
        .await?;
    let outcome = match submitted {
        Submitted::Flow(outcome) => outcome,
        Submitted::StartOver(to) => return Ok(Redirect::to(&to).into_response()),
        Submitted::RefreshRequired {
            error,
            redirect_browser_to: to,
            browser,
        } => {
            // Kratos's answer: browsers go to a refresh login, JSON callers get 403 with where
            // to send the browser.
            if browser {
                return Ok(Redirect::to(&to).into_response());
            }
            let id = error.id.unwrap_or(ErrorId::SessionRefreshRequired);
            let error = Error::forbidden(error.reason).with_id(id);
            return Ok(crate::error::redirect_browser(error, &to));
        }
        Submitted::ErrorPage(stored) => {
            let mut to = e.settings.flows.error_ui_url.clone();
            to.query_pairs_mut().append_pair("id", &stored.to_string());
            return Ok(Redirect::to(to.as_str()).into_response());
        }
    };
    let browser_form = |flow: &Flow| flow.flow_type == FlowType::Browser && !neg.json;
    Ok(match outcome {
        Outcome::Upstream {
            flow,
            to,
            continuity,
        } => crate::oidc::go_upstream(e, &to, continuity.as_deref(), !browser_form(&flow)),
        Outcome::Redirect(to) => crate::oidc::go_upstream(e, &to, None, neg.json),
        Outcome::Continue(flow) if browser_form(&flow) => to_ui(e, flow.kind, &flow),
        Outcome::Invalid(flow) if browser_form(&flow) => to_ui(e, kind, &flow),
        Outcome::Continue(flow) | Outcome::Invalid(flow) => {
            (StatusCode::BAD_REQUEST, Json(flow)).into_response()
        }
        Outcome::Shown(flow) if browser_form(&flow) => to_ui(e, kind, &flow),
        Outcome::Shown(flow) => Json(flow).into_response(),
        Outcome::Completed {
            flow,
            identity,
            session,
            return_to,
        } => {
            let browser = flow.flow_type == FlowType::Browser;
            let mut resp = if browser_form(&flow) {
                if kind == FlowKind::Settings {
                    to_ui(e, kind, &flow)
                } else {
                    Redirect::to(&return_to).into_response()
                }
            } else {
                completed_json(kind, &flow, &identity, session.as_ref(), browser)
            };
            if browser && let Some((s, t)) = &session {
                resp.headers_mut()
                    .append(header::SET_COOKIE, session_cookie(e, t, s));
            }
            resp
        }
    })
}

/// `GET /self-service/recovery?flow=&token=`: a recovery link (the `link` method, or an
/// administrator's `POST /admin/recovery/link`); without `token`, the link of an
/// administrator's recovery code (`POST /admin/recovery/code`), opened in a browser.
async fn recovery_link(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<LinkQuery>,
    csrf: Csrf,
) -> ApiResult<Response> {
    let e = cfg.engine();
    let (secret, set) = csrf.issue(e);
    let mut resp = match q.token.as_deref() {
        Some(token) => {
            let o = e
                .use_link(
                    FlowKind::Recovery,
                    required(&q.flow, "flow")?,
                    token,
                    &secret,
                )
                .await?;
            link_answer(e, FlowKind::Recovery, o)
        }
        None => {
            let to = e
                .claim_recovery_link(required(&q.flow, "flow")?, &secret)
                .await?;
            Redirect::to(to.as_str()).into_response()
        }
    };
    if let Some(c) = set {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// `GET /self-service/verification?flow=&token=`: a verification link opened in a browser.
async fn verification_link(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<LinkQuery>,
    csrf: Csrf,
) -> ApiResult<Response> {
    let e = cfg.engine();
    let (secret, set) = csrf.issue(e);
    let token = q.token.as_deref().unwrap_or_default();
    let o = e
        .use_link(
            FlowKind::Verification,
            required(&q.flow, "flow")?,
            token,
            &secret,
        )
        .await?;
    let mut resp = link_answer(e, FlowKind::Verification, o);
    if let Some(c) = set {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// Where an opened link sends the browser (always a redirect, as Kratos's links): the flow's
/// page, or, after a recovery, the settings page with the new session's cookie.
fn link_answer(e: &tessera_flows::Engine, kind: FlowKind, o: Outcome) -> Response {
    match o {
        Outcome::Shown(f) | Outcome::Invalid(f) => {
            let mut to = e.ui_url(kind).clone();
            to.query_pairs_mut().append_pair("flow", &f.id.to_string());
            Redirect::to(to.as_str()).into_response()
        }
        Outcome::Completed {
            session, return_to, ..
        } => {
            let mut resp = Redirect::to(&return_to).into_response();
            if let Some((s, t)) = &session {
                resp.headers_mut()
                    .append(header::SET_COOKIE, session_cookie(e, t, s));
            }
            resp
        }
        other => {
            tracing::error!(?other, "unexpected outcome of a link");
            Redirect::to(e.ui_url(kind).as_str()).into_response()
        }
    }
}

/// A completed flow's JSON answer: the session token only for API flows (browsers get the
/// cookie), the identity for registrations, the flow itself for settings.
fn completed_json(
    kind: FlowKind,
    flow: &Flow,
    identity: &tessera_core::identity::Identity,
    session: Option<&(Session, String)>,
    browser: bool,
) -> Response {
    let mut body = serde_json::Map::new();
    if matches!(kind, FlowKind::Settings | FlowKind::Recovery) {
        return Json(flow).into_response();
    }
    if kind == FlowKind::Registration {
        body.insert("identity".into(), json!(identity));
    }
    if let Some((s, t)) = session {
        if !browser {
            body.insert("session_token".into(), json!(t));
        }
        body.insert("session".into(), json!(s));
    }
    if !flow.continue_with.is_empty() {
        body.insert("continue_with".into(), json!(flow.continue_with));
    }
    Json(Value::Object(body)).into_response()
}

/// `POST /self-service/{kind}`: one handler, the kind as route state.
fn submit_route(kind: FlowKind) -> axum::routing::MethodRouter<AppState> {
    match kind {
        // A login takes the session too: the second-factor step (`aal=aal2`) completes the
        // session it was started with.
        FlowKind::Settings | FlowKind::Login => post(
            move |cfg: Cfg,
                  KratosQuery(q): KratosQuery<FlowQuery>,
                  client: ClientAddr,
                  MaybeSession(s): MaybeSession,
                  csrf: Csrf,
                  neg: Negotiated,
                  h: HeaderMap,
                  body: Body| submit(cfg, client, kind, q, s, csrf, neg, h, body),
        ),
        FlowKind::Registration | FlowKind::Verification | FlowKind::Recovery => post(
            move |cfg: Cfg,
                  KratosQuery(q): KratosQuery<FlowQuery>,
                  client: ClientAddr,
                  csrf: Csrf,
                  neg: Negotiated,
                  h: HeaderMap,
                  body: Body| {
                submit(cfg, client, kind, q, None, csrf, neg, h, body)
            },
        ),
    }
}

/// `?return_to=` of the logout endpoints, and `?token=` of `GET /self-service/logout`.
#[derive(Deserialize)]
struct LogoutQuery {
    token: Option<String>,
    return_to: Option<String>,
}

async fn logout_browser(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<LogoutQuery>,
    headers: HeaderMap,
    MaybeSession(session): MaybeSession,
) -> ApiResult<Response> {
    let e = cfg.engine();
    if http::token_in(&headers, &e.settings.session.cookie.name).is_some()
        && headers.get("x-session-token").is_some()
    {
        return Err(ApiError(Error::bad_request(
            "Browser logout needs the session cookie; API clients use DELETE /self-service/logout/api.",
        )));
    }
    let session = session.ok_or_else(Error::no_session)?;
    let token = e.logout_token(&session);
    let return_to = e.check_return_to(q.return_to.as_deref())?;
    let mut url = url::Url::parse(&e.public_logout_url(&session))
        .map_err(|err| ApiError(Error::internal(err.to_string())))?;
    if let Some(r) = return_to {
        url.query_pairs_mut().append_pair("return_to", &r);
    }
    Ok(Json(json!({ "logout_token": token, "logout_url": url.to_string() })).into_response())
}

async fn logout(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<LogoutQuery>,
    MaybeSession(session): MaybeSession,
    neg: Negotiated,
) -> ApiResult<Response> {
    let token = required(&q.token, "token")?;
    let e = cfg.engine();
    e.logout_with_token(token, session.as_ref()).await?;
    let return_to = e
        .check_return_to(q.return_to.as_deref())?
        .unwrap_or_else(|| e.settings.flows.logout_return_url.to_string());
    let mut resp = if neg.json {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Redirect::to(&return_to).into_response()
    };
    resp.headers_mut()
        .append(header::SET_COOKIE, clear_session_cookie(e));
    Ok(resp)
}

async fn logout_api(cfg: Cfg, KratosBody(body): KratosBody) -> ApiResult<Response> {
    let token = body
        .get("session_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError(Error::bad_request(
                "`session_token` is required in the JSON body.",
            ))
        })?;
    cfg.engine().revoke_session_token(token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Kratos's answer to a session below the required level: a browser goes to the second-factor
/// login, other callers get 403 `session_aal2_required` with `redirect_browser_to`.
fn aal2_required(err: Error, browser: bool) -> Response {
    let to = err
        .details
        .get("redirect_browser_to")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    if browser {
        return Redirect::to(&to).into_response();
    }
    crate::error::redirect_browser(err, &to)
}

/// The hottest request (apps call it on every page): the answer is the engine's serialised,
/// cached one, and the request is taken whole so that no header is copied. Answers like
/// [`SignedIn`]: 401 without a valid session.
async fn whoami(cfg: Cfg, req: axum::extract::Request) -> ApiResult<Response> {
    let engine = cfg.engine();
    let answer = match http::token_in(req.headers(), &engine.settings.session.cookie.name) {
        Some(token) => match engine.whoami(token).await {
            Ok(answer) => answer,
            Err(err) if err.id == Some(ErrorId::SessionAal2Required) => {
                return Ok(aal2_required(err, false));
            }
            Err(err) => return Err(ApiError(err)),
        },
        None => None,
    };
    let Some(answer) = answer else {
        return Err(ApiError(Error::no_session()));
    };
    let mut resp = Response::new(Body::from(axum::body::Bytes::from_owner(SharedJson(
        answer.clone(),
    ))));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(id) = &answer.identity_id
        && let Ok(v) = HeaderValue::from_str(id)
    {
        h.insert("x-kratos-authenticated-identity-id", v);
    }
    Ok(resp)
}

/// A cached whoami answer as a response body, without copying it.
struct SharedJson(std::sync::Arc<tessera_flows::sessions::WhoamiAnswer>);

impl AsRef<[u8]> for SharedJson {
    fn as_ref(&self) -> &[u8] {
        &self.0.json
    }
}

async fn my_sessions(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<http::PageQuery>,
    SignedIn(current): SignedIn,
) -> ApiResult<Response> {
    let size = q.size()?;
    let page = cfg
        .engine()
        .store
        .list_sessions(Some(current.identity_id), Some(true), size, q.token())
        .await?;
    let others: Vec<_> = page
        .items
        .into_iter()
        .filter(|s| s.id != current.id)
        .collect();
    Ok(http::paged(
        others,
        &cfg.engine().settings.serve.public_base_url,
        "sessions",
        size,
        page.next.as_deref(),
        &[],
    ))
}

async fn revoke_my_other_sessions(cfg: Cfg, SignedIn(current): SignedIn) -> ApiResult<Response> {
    let n = cfg
        .engine()
        .store
        .revoke_identity_sessions(current.identity_id, Some(current.id))
        .await?;
    Ok(Json(json!({ "count": n })).into_response())
}

async fn revoke_my_session(
    cfg: Cfg,
    KratosPath(SessionId(id)): KratosPath<SessionId>,
    SignedIn(current): SignedIn,
) -> ApiResult<Response> {
    if id == current.id {
        return Err(ApiError(Error::bad_request(
            "You cannot revoke the session you are using: log out instead.",
        )));
    }
    let store = &cfg.engine().store;
    let target = store.get_session(id).await?;
    if target.identity_id != current.identity_id {
        return Err(ApiError(tessera_store_not_found(id)));
    }
    store.set_session_active(id, false).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn tessera_store_not_found(id: uuid::Uuid) -> Error {
    Error::not_found(format!("Session `{id}` does not exist."))
}

async fn list_schemas(cfg: Cfg) -> Json<Value> {
    let mut schemas: Vec<_> = cfg.engine().schemas.by_id.iter().collect();
    schemas.sort_by_key(|(id, _)| *id);
    Json(Value::Array(
        schemas
            .into_iter()
            .map(|(id, s)| json!({ "id": id, "schema": s.raw }))
            .collect(),
    ))
}

async fn get_schema(cfg: Cfg, KratosPath(id): KratosPath<String>) -> ApiResult<Json<Value>> {
    cfg.engine()
        .schemas
        .by_id
        .get(&id)
        .map(|s| Json(s.raw.clone()))
        .ok_or_else(|| {
            ApiError(Error::not_found(format!(
                "Identity schema `{id}` does not exist."
            )))
        })
}
