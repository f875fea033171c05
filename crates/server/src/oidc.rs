//! Social sign-in over HTTP: the upstream callback, the continuity cookie, stored errors, and
//! how "go upstream" outcomes are answered to browsers, AJAX and API callers.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Cfg, Csrf, KratosPath, KratosQuery, MaybeSession};
use crate::http::{self, session_cookie};
use axum::Json;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use tessera_core::{Error, ErrorId};
use tessera_flows::CallbackOutcome;
use tessera_flows::Engine;
use tessera_flows::social::ATTEMPT_LIFESPAN;

/// Binds an upstream round trip to the browser that started it.
pub const CONTINUITY_COOKIE: &str = "tessera_continuity";

/// `Set-Cookie` for the continuity token. `SameSite=Lax` so it rides along on the top-level
/// navigation back from the upstream; scoped to the callback path.
pub fn continuity_cookie(e: &Engine, value: &str, max_age: i64) -> HeaderValue {
    http::header_value(
        cookie::Cookie::build((CONTINUITY_COOKIE, value))
            .path("/self-service/methods/oidc/")
            .http_only(true)
            .same_site(cookie::SameSite::Lax)
            .max_age(time::Duration::seconds(max_age))
            .secure(e.settings.session.cookie.secure)
            .build(),
    )
}

/// "Send the browser there": a 303 for a plain browser form, 422
/// `browser_location_change_required` with `redirect_browser_to` for JSON callers (SPAs, and
/// API flows of native apps whatever they accept), as Kratos answers.
pub fn go_upstream(e: &Engine, to: &str, continuity: Option<&str>, json: bool) -> Response {
    let mut resp = if json {
        let error = Error::new(
            tessera_core::ErrorKind::UnprocessableEntity,
            format!("In order to complete this flow please redirect the browser to: {to}"),
        )
        .with_id(ErrorId::BrowserLocationChangeRequired);
        crate::error::redirect_browser(error, to)
    } else {
        Redirect::to(to).into_response()
    };
    if let Some(c) = continuity {
        resp.headers_mut().append(
            header::SET_COOKIE,
            continuity_cookie(e, c, ATTEMPT_LIFESPAN.as_secs() as i64),
        );
    }
    resp
}

/// `GET|POST /self-service/methods/oidc/callback/{provider}`.
#[allow(clippy::too_many_arguments)] // one extractor per input, as axum handlers are written
pub async fn callback(
    cfg: Cfg,
    KratosPath(provider): KratosPath<String>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    csrf: Csrf,
    MaybeSession(session): MaybeSession,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // A callback that cannot be tied to a flow stores an error for the error page: the route
    // is bounded per address by the edge (`edge::limit_stored`).
    let e = cfg.engine();
    // An upstream that answers in the URL's fragment (Telegram's Login Widget): the browser
    // arrives without the answer and gets the bridge page, whose same-origin POST (which
    // carries the cookies) brings it.
    let fragment = e
        .social
        .get(&provider)
        .and_then(|p| Some((p.provider.fragment_param()?, p.display_name().to_string())));
    let mut query = query;
    if let Some((param, label)) = &fragment {
        if method == Method::POST {
            query = match http::read_body(&headers, body).await? {
                Value::Object(m) => m
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_str()?.to_string())))
                    .collect(),
                _ => HashMap::new(),
            };
        } else if !query.contains_key(*param) && !query.contains_key("error") {
            let lang = crate::ui::page_lang(&headers, None);
            let state = query.get("state").map(String::as_str).unwrap_or_default();
            return Ok(crate::oidc_bridge::page(
                e, lang, &provider, label, param, state,
            ));
        }
    } else if method == Method::POST {
        // `response_mode=form_post` arrives as a cross-site POST, which does not carry
        // SameSite=Lax cookies. Re-issue it as a same-site GET so the continuity cookie comes.
        let form = http::read_body(&headers, body).await?;
        let mut to = e
            .settings
            .serve
            .public_base_url
            .join(uri.path().trim_start_matches('/'))
            .map_err(|err| ApiError(Error::internal(err.to_string())))?;
        if let Value::Object(m) = form {
            let mut q = to.query_pairs_mut();
            for (k, v) in m {
                if let Some(s) = v.as_str() {
                    q.append_pair(&k, s);
                }
            }
        }
        return Ok(Redirect::to(to.as_str()).into_response());
    }
    let continuity = http::cookie(&headers, CONTINUITY_COOKIE);
    let outcome = e
        .oidc_callback(
            &provider,
            query,
            continuity,
            csrf.cookie(),
            session.as_ref(),
        )
        .await?;
    let mut resp = match outcome {
        CallbackOutcome::SignedIn {
            session, return_to, ..
        } => {
            let mut r = Redirect::to(&return_to).into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                session_cookie(e, &session.1, &session.0),
            );
            r
        }
        CallbackOutcome::ShowFlow(flow)
            if flow.flow_type == tessera_core::flow::FlowType::Api && flow.return_to.is_some() =>
        {
            // An app's flow (e.g. a native app's social sign-in): back to the app, which reads
            // the flow's messages through the API. The hosted pages show browser flows only.
            let mut to = url::Url::parse(flow.return_to.as_deref().unwrap_or_default())
                .map_err(|err| ApiError(Error::internal(err.to_string())))?;
            to.query_pairs_mut()
                .append_pair("flow", &flow.id.to_string());
            Redirect::to(to.as_str()).into_response()
        }
        CallbackOutcome::ShowFlow(flow) => {
            let mut to = e.ui_url(flow.kind).clone();
            to.query_pairs_mut()
                .append_pair("flow", &flow.id.to_string());
            Redirect::to(to.as_str()).into_response()
        }
        CallbackOutcome::Redirect(to) => Redirect::to(&to).into_response(),
        CallbackOutcome::Error(id) => {
            let mut to = e.settings.flows.error_ui_url.clone();
            to.query_pairs_mut().append_pair("id", &id.to_string());
            Redirect::to(to.as_str()).into_response()
        }
    };
    if continuity.is_some() {
        resp.headers_mut()
            .append(header::SET_COOKIE, continuity_cookie(e, "", 0));
    }
    Ok(resp)
}

/// `GET /self-service/errors?id=`.
#[derive(Deserialize)]
pub struct ErrorQuery {
    id: Option<String>,
}

/// `GET /self-service/errors?id=`: a stored user-facing error, as Kratos serves it.
pub async fn get_error(cfg: Cfg, KratosQuery(q): KratosQuery<ErrorQuery>) -> ApiResult<Response> {
    let id = q.id.as_deref().unwrap_or_default();
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| Error::invalid_uuid("error id", id))?;
    match cfg.engine().store.get_error(uuid).await? {
        Some((error, created_at)) => Ok(Json(json!({
            "id": uuid,
            "error": crate::error::stored_error_body(&error),
            "created_at": tessera_core::timefmt::to_rfc3339(created_at),
        }))
        .into_response()),
        None => Err(ApiError(
            Error::not_found(format!(
                "No error with id `{id}` exists (errors are kept for a while only)."
            ))
            .with_id(ErrorId::SelfServiceErrorNotFound),
        )),
    }
}

/// `GET /sessions/token-exchange?init_code=&return_to_code=`.
#[derive(Deserialize)]
pub struct ExchangeQuery {
    init_code: Option<String>,
    return_to_code: Option<String>,
}

/// `GET /sessions/token-exchange?init_code=&return_to_code=`: a native app redeems the session
/// of a social sign-in it started with `return_session_token_exchange_code=true`.
pub async fn token_exchange(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<ExchangeQuery>,
) -> ApiResult<Response> {
    let (session, token) = cfg
        .engine()
        .redeem_token_exchange(
            q.init_code.as_deref().unwrap_or_default(),
            q.return_to_code.as_deref().unwrap_or_default(),
        )
        .await?;
    Ok(Json(json!({ "session": session, "session_token": token })).into_response())
}
