//! Public API (Kratos-compatible, port 4433): self-service flows, sessions, schemas, health.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Cfg, KratosPath, KratosQuery, SessionId, SignedIn};
use crate::http::{
    self, ClientAddr, clear_session_cookie, csrf_for, current_session, read_body, session_cookie,
    wants_json,
};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use tessera_core::flow::{Flow, FlowKind, FlowType};
use tessera_core::{Error, ErrorId};
use tessera_flows::submit::Submitted;
use tessera_flows::{Engine, Outcome};

type Q = Query<HashMap<String, String>>;

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
        .route("/self-service/login/flows", get(login_get))
        .route("/self-service/login", post(login_submit))
        .route("/self-service/registration/flows", get(registration_get))
        .route("/self-service/registration", post(registration_submit))
        .route("/self-service/settings/flows", get(settings_get))
        .route("/self-service/settings", post(settings_submit))
        .route("/self-service/logout/browser", get(logout_browser))
        .route("/self-service/logout", get(logout))
        .route("/self-service/logout/api", delete(logout_api))
        .route("/self-service/errors", get(crate::oidc::get_error))
        .route("/sessions/token-exchange", get(crate::oidc::token_exchange))
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
    let self_service = match &state.engine().settings.edge.public.cors {
        Some(cors) => self_service.layer(crate::edge::cors::kratos(cors)),
        None => self_service,
    };
    let op = crate::op::public_routes().layer(crate::edge::cors::op(&state));
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

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError(Error::not_found(format!(
        "No route for `{}`. See the API reference in docs/ for the available endpoints.",
        uri.path()
    )))
}

async fn alive() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(st): State<AppState>) -> Response {
    match st.engine().store.ping().await {
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

fn request_url(st: &AppState, uri: &Uri) -> String {
    st.engine()
        .settings
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

/// Answers a freshly created flow: browser flows redirect to the UI (or JSON for SPAs), API
/// flows return the flow.
/// `ui_locales` on the request that starts a browser flow (as the OpenID Provider passes it)
/// rides along to the UI page, which picks its language from it.
fn flow_created(
    st: &AppState,
    flow: Flow,
    set: Option<HeaderValue>,
    headers: &HeaderMap,
    ui_locales: Option<&str>,
) -> Response {
    let mut resp = if flow.flow_type == FlowType::Browser && !wants_json(headers) {
        let mut to = st.engine().ui_url(flow.kind).clone();
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
fn already_signed_in(st: &AppState, ft: FlowType, headers: &HeaderMap, e: Error) -> Response {
    if e.id == Some(tessera_core::error::ErrorId::SessionAlreadyAvailable)
        && ft == FlowType::Browser
        && !wants_json(headers)
    {
        return Redirect::to(st.engine().settings.default_return_url.as_str()).into_response();
    }
    ApiError(e).into_response()
}

async fn init(
    st: AppState,
    kind: FlowKind,
    ft: FlowType,
    q: HashMap<String, String>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let session = current_session(&st, &headers).await?;
    let (csrf, set) = if ft == FlowType::Browser {
        csrf_for(&st, &headers)
    } else {
        (String::new(), None)
    };
    let url = request_url(&st, &uri);
    let return_to = q.get("return_to").map(String::as_str);
    let e = &st.engine();
    let result = match kind {
        FlowKind::Login => {
            let refresh = q.get("refresh").is_some_and(|v| v == "true");
            e.init_login(ft, &url, return_to, refresh, session.as_ref(), &csrf)
                .await
        }
        FlowKind::Registration => {
            e.init_registration(ft, &url, return_to, session.as_ref(), &csrf)
                .await
        }
        FlowKind::Settings => match &session {
            Some(s) => e.init_settings(ft, &url, return_to, s, &csrf).await,
            None if ft == FlowType::Browser && !wants_json(&headers) => {
                // Not signed in: sign in first, then come back to settings.
                let mut to = e
                    .settings
                    .public_base_url
                    .join("self-service/login/browser")
                    .map_err(|err| ApiError(Error::internal(err.to_string())))?;
                to.query_pairs_mut().append_pair(
                    "return_to",
                    e.settings
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
    };
    let result = match result {
        Ok(mut flow)
            if kind != FlowKind::Settings
                && q.get("return_session_token_exchange_code")
                    .is_some_and(|v| v == "true") =>
        {
            e.enable_token_exchange(&mut flow).await.map(|()| flow)
        }
        other => other,
    };
    // An app's `login_hint` (OpenID Provider) pre-fills the identifier of a new login flow.
    let result = match (result, q.get("login_hint").filter(|h| !h.is_empty())) {
        (Ok(mut flow), Some(hint)) if kind == FlowKind::Login => {
            crate::op::prefill_identifier(&mut flow, hint);
            e.store.update_flow(&flow).await.map(|()| flow)
        }
        (other, _) => other,
    };
    match result {
        Ok(mut flow) => Ok(flow_created(
            &st,
            {
                Engine::present_flow(&mut flow, Some(&csrf));
                flow
            },
            set,
            &headers,
            q.get("ui_locales").map(String::as_str),
        )),
        Err(err) => Ok(already_signed_in(&st, ft, &headers, err)),
    }
}

/// `GET /self-service/{kind}/{browser|api}`: the flow kind and type are the route's, so one
/// handler serves all six.
fn start(kind: FlowKind, ft: FlowType) -> axum::routing::MethodRouter<AppState> {
    get(
        move |State(st): State<AppState>, Query(q): Q, h: HeaderMap, uri: Uri| {
            init(st, kind, ft, q, h, uri)
        },
    )
}

fn flow_id(q: &HashMap<String, String>, param: &str) -> ApiResult<String> {
    q.get(param)
        .cloned()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError(Error::bad_request(format!(
                "The `{param}` query parameter is required: pass the id of the flow."
            )))
        })
}

async fn get_flow(
    st: AppState,
    kind: FlowKind,
    q: HashMap<String, String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let csrf = http::cookie(&headers, http::CSRF_COOKIE);
    let flow = st
        .engine()
        .fetch_flow(kind, &flow_id(&q, "id")?, csrf)
        .await?;
    if kind == FlowKind::Settings {
        let session = current_session(&st, &headers)
            .await?
            .ok_or_else(Error::no_session)?;
        if flow.identity_id != Some(session.identity_id) {
            return Err(ApiError(
                Error::forbidden("This settings flow belongs to another identity.")
                    .with_id(tessera_core::error::ErrorId::SecurityIdentityMismatch),
            ));
        }
    }
    Ok(Json(flow).into_response())
}

async fn login_get(State(st): State<AppState>, Query(q): Q, h: HeaderMap) -> ApiResult<Response> {
    get_flow(st, FlowKind::Login, q, h).await
}
async fn registration_get(
    State(st): State<AppState>,
    Query(q): Q,
    h: HeaderMap,
) -> ApiResult<Response> {
    get_flow(st, FlowKind::Registration, q, h).await
}
async fn settings_get(
    State(st): State<AppState>,
    Query(q): Q,
    h: HeaderMap,
) -> ApiResult<Response> {
    get_flow(st, FlowKind::Settings, q, h).await
}

async fn submit(
    st: AppState,
    client: ClientAddr,
    kind: FlowKind,
    q: HashMap<String, String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = flow_id(&q, "flow")?;
    let body = read_body(&headers, body).await?;
    let csrf = http::cookie(&headers, http::CSRF_COOKIE);
    let session = match kind {
        FlowKind::Settings => current_session(&st, &headers).await?,
        FlowKind::Login | FlowKind::Registration => None,
    };
    let e = &st.engine();
    let submitted = e
        .submit(
            kind,
            &id,
            &body,
            csrf,
            client.0,
            session.as_ref(),
            wants_json(&headers),
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
            return Ok((
                StatusCode::FORBIDDEN,
                Json(json!({
                    "error": {
                        "id": ErrorId::SessionRefreshRequired,
                        "code": 403,
                        "status": "Forbidden",
                        "reason": error.reason,
                        "message": "The requested action was forbidden",
                    },
                    "redirect_browser_to": to,
                })),
            )
                .into_response());
        }
        Submitted::ErrorPage(stored) => {
            let mut to = e.settings.error_ui_url.clone();
            to.query_pairs_mut().append_pair("id", &stored.to_string());
            return Ok(Redirect::to(to.as_str()).into_response());
        }
    };
    let browser_form = |flow: &Flow| flow.flow_type == FlowType::Browser && !wants_json(&headers);
    Ok(match outcome {
        Outcome::Upstream {
            flow,
            to,
            continuity,
        } => crate::oidc::go_upstream(&st, &to, continuity.as_deref(), !browser_form(&flow)),
        Outcome::Redirect(to) => crate::oidc::go_upstream(&st, &to, None, wants_json(&headers)),
        Outcome::Continue(flow) => {
            if browser_form(&flow) {
                let mut to = e.ui_url(flow.kind).clone();
                to.query_pairs_mut()
                    .append_pair("flow", &flow.id.to_string());
                Redirect::to(to.as_str()).into_response()
            } else {
                (StatusCode::BAD_REQUEST, Json(flow)).into_response()
            }
        }
        Outcome::Invalid(flow) => {
            if browser_form(&flow) {
                let mut to = e.ui_url(kind).clone();
                to.query_pairs_mut()
                    .append_pair("flow", &flow.id.to_string());
                Redirect::to(to.as_str()).into_response()
            } else {
                (StatusCode::BAD_REQUEST, Json(flow)).into_response()
            }
        }
        Outcome::Completed {
            flow,
            identity,
            session,
            return_to,
        } => {
            let browser = flow.flow_type == FlowType::Browser;
            let mut resp = if browser_form(&flow) {
                if kind == FlowKind::Settings {
                    let mut to = e.ui_url(kind).clone();
                    to.query_pairs_mut()
                        .append_pair("flow", &flow.id.to_string());
                    Redirect::to(to.as_str()).into_response()
                } else {
                    Redirect::to(&return_to).into_response()
                }
            } else {
                match kind {
                    FlowKind::Settings => Json(&flow).into_response(),
                    FlowKind::Login => match &session {
                        Some((s, t)) if !browser => {
                            Json(json!({ "session_token": t, "session": s })).into_response()
                        }
                        Some((s, _)) => Json(json!({ "session": s })).into_response(),
                        None => Json(json!({})).into_response(),
                    },
                    FlowKind::Registration => match &session {
                        Some((s, t)) if !browser => {
                            Json(json!({ "identity": identity, "session_token": t, "session": s }))
                                .into_response()
                        }
                        Some((s, _)) => {
                            Json(json!({ "identity": identity, "session": s })).into_response()
                        }
                        None => Json(json!({ "identity": identity })).into_response(),
                    },
                }
            };
            if browser && let Some((s, t)) = &session {
                resp.headers_mut()
                    .append(header::SET_COOKIE, session_cookie(&st, t, s));
            }
            resp
        }
    })
}

async fn login_submit(
    State(st): State<AppState>,
    Query(q): Q,
    client: ClientAddr,
    h: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    submit(st, client, FlowKind::Login, q, h, body).await
}
async fn registration_submit(
    State(st): State<AppState>,
    Query(q): Q,
    client: ClientAddr,
    h: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    submit(st, client, FlowKind::Registration, q, h, body).await
}
async fn settings_submit(
    State(st): State<AppState>,
    Query(q): Q,
    client: ClientAddr,
    h: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    submit(st, client, FlowKind::Settings, q, h, body).await
}

async fn logout_browser(
    State(st): State<AppState>,
    Query(q): Q,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if http::session_token(&st, &headers).is_some() && headers.get("x-session-token").is_some() {
        return Err(ApiError(Error::bad_request(
            "Browser logout needs the session cookie; API clients use DELETE /self-service/logout/api.",
        )));
    }
    let session = current_session(&st, &headers)
        .await?
        .ok_or_else(Error::no_session)?;
    let token = st.engine().logout_token(&session);
    let return_to = st
        .engine()
        .check_return_to(q.get("return_to").map(String::as_str))?;
    let mut url = url::Url::parse(&st.engine().public_logout_url(&session))
        .map_err(|e| ApiError(Error::internal(e.to_string())))?;
    if let Some(r) = return_to {
        url.query_pairs_mut().append_pair("return_to", &r);
    }
    Ok(Json(json!({ "logout_token": token, "logout_url": url.to_string() })).into_response())
}

async fn logout(
    State(st): State<AppState>,
    Query(q): Q,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = flow_id(&q, "token")?;
    let session = current_session(&st, &headers).await?;
    st.engine()
        .logout_with_token(&token, session.as_ref())
        .await?;
    let return_to = st
        .engine()
        .check_return_to(q.get("return_to").map(String::as_str))?
        .unwrap_or_else(|| st.engine().settings.logout_return_url.to_string());
    let mut resp = if wants_json(&headers) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Redirect::to(&return_to).into_response()
    };
    resp.headers_mut()
        .append(header::SET_COOKIE, clear_session_cookie(&st));
    Ok(resp)
}

async fn logout_api(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let body = read_body(&headers, body).await?;
    let token = body
        .get("session_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError(Error::bad_request(
                "`session_token` is required in the JSON body.",
            ))
        })?;
    st.engine().revoke_session_token(token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn whoami(SignedIn(session): SignedIn) -> ApiResult<Response> {
    let mut resp = Json(&session).into_response();
    if let Some(i) = &session.identity
        && let Ok(v) = HeaderValue::from_str(&i.id.to_string())
    {
        resp.headers_mut()
            .insert("x-kratos-authenticated-identity-id", v);
    }
    Ok(resp)
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
        &cfg.engine().settings.public_base_url,
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

async fn list_schemas(State(st): State<AppState>) -> Json<Value> {
    let engine = st.engine();
    let mut schemas: Vec<_> = engine.schemas.by_id.iter().collect();
    schemas.sort_by_key(|(id, _)| *id);
    Json(Value::Array(
        schemas
            .into_iter()
            .map(|(id, s)| json!({ "id": id, "schema": s.raw }))
            .collect(),
    ))
}

async fn get_schema(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    st.engine()
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
