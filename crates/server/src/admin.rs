//! Admin API (Kratos-compatible, port 4434): identities and sessions. It has no authentication
//! of its own, like Kratos's, so it listens on loopback unless configured otherwise.

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Cfg, IdentityId, KratosBody, KratosPath, KratosQuery, SessionId};
use crate::http::{self, PageQuery};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::Error;
use tessera_core::session::Session;
use tessera_flows::Engine;

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route(
            "/admin/identities",
            get(list_identities)
                .post(create_identity)
                .patch(batch_identities),
        )
        .route(
            "/admin/identities/{id}",
            get(get_identity)
                .put(put_identity)
                .patch(patch_identity)
                .delete(delete_identity),
        )
        .route(
            "/admin/identities/by/external/{external_id}",
            get(get_identity_by_external_id),
        )
        .route(
            "/admin/identities/by/external/",
            get(|| async { ApiError(Error::bad_request("The external ID must not be empty.")) }),
        )
        .route(
            "/admin/identities/{id}/credentials/{type}",
            axum::routing::delete(delete_identity_credential),
        )
        .route(
            "/admin/identities/{id}/sessions",
            get(identity_sessions).delete(revoke_identity_sessions),
        )
        .route("/admin/sessions", get(list_sessions))
        .route(
            "/admin/sessions/{id}",
            get(get_session).delete(disable_session),
        )
        .route("/admin/sessions/{id}/extend", patch(extend_session))
        // As Kratos (`redir.RedirectToPublicRoute`): the schemas live on the public API, and
        // Ory's SDKs ask the admin URL for them (`IdentityApi.list_identity_schemas`).
        .route("/schemas", get(schemas_on_public))
        .route("/schemas/{id}", get(schemas_on_public))
        .route(
            "/admin/identity-config",
            get(get_identity_config).put(put_identity_config),
        )
        .merge(crate::public::common_routes())
        .merge(crate::op::admin_routes())
        .merge(crate::admin_apis::routes())
        .merge(crate::admin_courier::routes())
        .merge(crate::admin_recovery::routes())
        .merge(crate::admin_orgs::routes())
        .route(
            "/admin/health/alive",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route("/metrics/prometheus", get(crate::edge::metrics::prometheus))
        .fallback(crate::public::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            only_direct_json,
        ));
    crate::edge::stack(routes, &state, crate::edge::Listener::Admin)
}

/// The admin API trusts its network and has no authentication of its own (like Kratos's), so it
/// must not be reachable *through a browser*: from a page an operator visits, a form post or a
/// `no-cors` fetch (a cross-site "simple" request) or a DNS-rebound name would otherwise reach
/// it with the operator's network position. So it answers only requests that no web page can
/// make: a `Host` that is its own (the configured base URL's host, or a loopback name), no
/// `Origin` and no cross-site `Sec-Fetch-Site` (so no CORS preflight succeeds either), and a
/// body only as `application/json` (`application/json-patch+json` for JSON Patch; YAML too for
/// the configuration document), which browsers cannot send cross-site without a preflight.
async fn only_direct_json(
    State(st): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match admin_request_refusal(&st, &req) {
        Some(e) => ApiError(e).into_response(),
        None => next.run(req).await,
    }
}

fn admin_request_refusal(st: &AppState, req: &axum::extract::Request) -> Option<Error> {
    use axum::http::header;
    let h = req.headers();
    let path = req.uri().path();
    if req.method() == axum::http::Method::GET
        && (path.starts_with("/health/")
            || path.starts_with("/admin/health/")
            || path == "/version"
            || path == "/metrics/prometheus")
    {
        // Probes and scrapes (a load balancer, an orchestrator or Prometheus calling by IP)
        // read nothing secret.
        return None;
    }
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or_default();
    let name = host_name(host);
    let configured = st
        .live
        .running()
        .engine
        .settings
        .serve
        .admin_base_url
        .host_str()
        .map(str::to_ascii_lowercase);
    let loopback = name == "localhost"
        || name.ends_with(".localhost")
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback && configured.as_deref() != Some(name.as_str()) {
        return Some(
            Error::forbidden(format!(
                "Host `{host}` is not this admin API's: call it by the host of serve.admin.base_url or a loopback address (set serve.admin.base_url to the URL your clients use)."
            ))
            .with_id(tessera_core::error::ErrorId::SecurityHostMismatch),
        );
    }
    let cross_site = h.contains_key(header::ORIGIN)
        || h.get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "none" && v != "same-origin");
    if cross_site {
        return Some(
            Error::forbidden(
                "The admin API does not answer requests from web pages (Origin or Sec-Fetch-Site present): call it from a server or the command line.",
            )
            .with_id(tessera_core::error::ErrorId::SecurityCrossSiteRequest),
        );
    }
    let has_body = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|l| l.trim() != "0")
        || h.contains_key(header::TRANSFER_ENCODING);
    let ctype = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let config = path == "/admin/identity-config";
    let allowed = |c: &str| {
        c == "application/json"
            || (req.method() == axum::http::Method::PATCH && c == "application/json-patch+json")
            || (config && matches!(c, "application/yaml" | "application/x-yaml" | "text/yaml"))
    };
    match ctype.as_deref() {
        Some(c) if !allowed(c) => Some(Error::new(
            tessera_core::ErrorKind::UnsupportedMediaType,
            format!("Content-Type `{c}` is not accepted by the admin API: send application/json."),
        )),
        None if has_body => Some(Error::new(
            tessera_core::ErrorKind::UnsupportedMediaType,
            "The request has a body but no Content-Type: send application/json.",
        )),
        _ => None,
    }
}

/// The host name of a `Host` header, lower-cased, without the port.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or(host);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map(|(h, _)| h.to_string())
        .unwrap_or(host)
}

/// `?include_credential=password&include_credential=oidc`: the key may repeat, which a query
/// struct cannot hold, so it is read from the raw query.
struct IncludeCredentials(Vec<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IncludeCredentials {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or_default();
        Ok(IncludeCredentials(
            url::form_urlencoded::parse(raw.as_bytes())
                .filter(|(k, _)| k == "include_credential")
                .map(|(_, v)| v.into_owned())
                .collect(),
        ))
    }
}

#[derive(Deserialize)]
struct IdentitiesQuery {
    #[serde(flatten)]
    page: PageQuery,
    credentials_identifier: Option<String>,
    /// Kratos's filter: the direct members of an organization (id or alias path).
    organization_id: Option<String>,
}

async fn list_identities(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<IdentitiesQuery>,
) -> ApiResult<Response> {
    let e = cfg.engine();
    let size = q.page.size()?;
    let ident = q
        .credentials_identifier
        .as_deref()
        .map(tessera_core::identity::normalize_identifier);
    let page = match q.organization_id.as_deref() {
        Some(org) => {
            let org = e.resolve_org(org).await?;
            e.store
                .list_identities_in_org(&org.id, size, q.page.token())
                .await?
        }
        None => {
            e.store
                .list_identities(size, q.page.token(), ident.as_deref())
                .await?
        }
    };
    let items: Vec<_> = page
        .items
        .into_iter()
        .map(|mut i| {
            i.schema_url = e.schema_url(&i.schema_id);
            i.credentials = None;
            i
        })
        .collect();
    let mut extra: Vec<(&str, &str)> = q
        .credentials_identifier
        .as_deref()
        .map(|c| vec![("credentials_identifier", c)])
        .unwrap_or_default();
    if let Some(o) = q.organization_id.as_deref() {
        extra.push(("organization_id", o));
    }
    Ok(http::paged(
        items,
        &e.settings.serve.admin_base_url,
        "admin/identities",
        size,
        page.next.as_deref(),
        &extra,
    ))
}

async fn create_identity(cfg: Cfg, KratosBody(body): KratosBody) -> ApiResult<Response> {
    let identity = cfg.engine().create_identity(&body).await?;
    Ok((StatusCode::CREATED, Json(identity)).into_response())
}

async fn get_identity(
    cfg: Cfg,
    KratosPath(IdentityId(id)): KratosPath<IdentityId>,
    IncludeCredentials(include): IncludeCredentials,
) -> ApiResult<Response> {
    let e = cfg.engine();
    let mut identity = e.present(id, &include).await?;
    if include.iter().any(|k| k == "oidc") {
        e.reveal_oidc_tokens(&mut identity);
    }
    Ok(Json(identity).into_response())
}

/// Kratos's `getIdentityByExternalID`, with `include_credential` as on `GET /admin/identities/{id}`.
async fn get_identity_by_external_id(
    cfg: Cfg,
    KratosPath(external_id): KratosPath<String>,
    IncludeCredentials(include): IncludeCredentials,
) -> ApiResult<Response> {
    let e = cfg.engine();
    let mut identity = e.present_by_external_id(&external_id, &include).await?;
    if include.iter().any(|k| k == "oidc") {
        e.reveal_oidc_tokens(&mut identity);
    }
    Ok(Json(identity).into_response())
}

async fn put_identity(
    cfg: Cfg,
    KratosPath(IdentityId(id)): KratosPath<IdentityId>,
    KratosBody(body): KratosBody,
) -> ApiResult<Response> {
    Ok(Json(cfg.engine().replace_identity(id, &body).await?).into_response())
}

async fn patch_identity(
    cfg: Cfg,
    KratosPath(IdentityId(id)): KratosPath<IdentityId>,
    KratosBody(body): KratosBody,
) -> ApiResult<Response> {
    Ok(Json(cfg.engine().patch_identity(id, &body).await?).into_response())
}

async fn delete_identity(
    cfg: Cfg,
    KratosPath(IdentityId(id)): KratosPath<IdentityId>,
) -> ApiResult<Response> {
    cfg.engine().store.delete_identity(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `?identifier=` of `DELETE /admin/identities/{id}/credentials/{type}` (an `oidc` link).
#[derive(Deserialize)]
struct CredentialQuery {
    identifier: Option<String>,
}

/// Kratos's `deleteIdentityCredentials`: removes a second factor, or a first factor while
/// another remains (`Engine::admin_delete_credential` has the rules).
async fn delete_identity_credential(
    cfg: Cfg,
    KratosPath((IdentityId(id), kind)): KratosPath<(IdentityId, String)>,
    KratosQuery(q): KratosQuery<CredentialQuery>,
) -> ApiResult<Response> {
    cfg.engine()
        .admin_delete_credential(id, &kind, q.identifier.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Kratos's batch endpoint: `{"identities": [{"create": {...}, "patch_id": "..."}]}`. Each entry
/// succeeds or fails on its own; failures are reported per entry.
async fn batch_identities(cfg: Cfg, KratosBody(body): KratosBody) -> ApiResult<Response> {
    let list = body
        .get("identities")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError(Error::bad_request(
                "The body must be {\"identities\": [{\"create\": {...}}]}.",
            ))
        })?;
    if list.len() > 2000 {
        return Err(ApiError(Error::bad_request(format!(
            "{} identities in one batch; send at most 2000 per request.",
            list.len()
        ))));
    }
    let mut results = Vec::with_capacity(list.len());
    for item in list {
        let mut result = match item.get("create") {
            None => {
                json!({ "action": "error", "error": crate::error::error_object(&Error::bad_request("only `create` entries are supported")) })
            }
            Some(create) => match cfg.engine().create_identity(create).await {
                Ok(i) => json!({ "action": "create", "identity": i.id }),
                Err(e) => json!({ "action": "error", "error": crate::error::error_object(&e) }),
            },
        };
        // Kratos echoes `patch_id` only when the entry had one.
        if let Some(p) = item.get("patch_id").filter(|p| !p.is_null()) {
            result["patch_id"] = p.clone();
        }
        results.push(result);
    }
    Ok(Json(json!({ "identities": results })).into_response())
}

/// 307 to the same path and query on the public base URL.
async fn schemas_on_public(cfg: Cfg, uri: axum::http::Uri) -> Response {
    let public = cfg.engine().settings.serve.public_base_url.clone();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().trim_start_matches('/'))
        .unwrap_or_default();
    match public.join(path_and_query) {
        Ok(dest) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, dest.to_string())],
        )
            .into_response(),
        Err(e) => ApiError(Error::internal(format!(
            "cannot build the public schema URL: {e}"
        )))
        .into_response(),
    }
}

/// `?expand=identity` (Kratos also accepts `Identity`, and a comma-separated list).
#[derive(Deserialize)]
struct ExpandQuery {
    expand: Option<String>,
}

impl ExpandQuery {
    fn identity(&self) -> bool {
        self.expand
            .as_deref()
            .is_some_and(|e| e.split(',').any(|x| x == "identity" || x == "Identity"))
    }
}

/// Each session with its identity, when asked to expand it.
async fn expand(
    e: &Engine,
    mut sessions: Vec<Session>,
    expand_identity: bool,
) -> ApiResult<Vec<Session>> {
    if expand_identity {
        for s in &mut sessions {
            s.identity = Some(e.present(s.identity_id, &[]).await?);
        }
    }
    Ok(sessions)
}

#[derive(Deserialize)]
struct SessionsQuery {
    #[serde(flatten)]
    page: PageQuery,
    #[serde(flatten)]
    expand: ExpandQuery,
    active: Option<String>,
}

async fn list_sessions(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<SessionsQuery>,
) -> ApiResult<Response> {
    let e = cfg.engine();
    let size = q.page.size()?;
    let active = match q.active.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(v) => {
            return Err(ApiError(Error::bad_request(format!(
                "active `{v}` must be true or false."
            ))));
        }
    };
    let page = e
        .store
        .list_sessions(None, active, size, q.page.token())
        .await?;
    let items = expand(e, page.items, q.expand.identity()).await?;
    Ok(http::paged(
        items,
        &e.settings.serve.admin_base_url,
        "admin/sessions",
        size,
        page.next.as_deref(),
        &[],
    ))
}

async fn identity_sessions(
    cfg: Cfg,
    KratosPath(IdentityId(id)): KratosPath<IdentityId>,
    KratosQuery(q): KratosQuery<SessionsQuery>,
) -> ApiResult<Response> {
    let e = cfg.engine();
    e.store.get_identity(id).await?;
    let size = q.page.size()?;
    let active = q.active.as_deref().map(|a| a == "true");
    let page = e
        .store
        .list_sessions(Some(id), active, size, q.page.token())
        .await?;
    // Kratos expands everything here (`ExpandEverything`), whatever `expand` says.
    let items = expand(e, page.items, true).await?;
    Ok(http::paged(
        items,
        &e.settings.serve.admin_base_url,
        &format!("admin/identities/{id}/sessions"),
        size,
        page.next.as_deref(),
        &[],
    ))
}

async fn revoke_identity_sessions(
    cfg: Cfg,
    KratosPath(IdentityId(id)): KratosPath<IdentityId>,
) -> ApiResult<Response> {
    let store = &cfg.engine().store;
    store.get_identity(id).await?;
    store.revoke_identity_sessions(id, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_session(
    cfg: Cfg,
    KratosPath(SessionId(id)): KratosPath<SessionId>,
    KratosQuery(q): KratosQuery<ExpandQuery>,
) -> ApiResult<Response> {
    let e = cfg.engine();
    let s = e.store.get_session(id).await?;
    // Without `expand`, Kratos's admin session answer includes the identity.
    let with_identity = q.expand.is_none() || q.identity();
    let mut list = expand(e, vec![s], with_identity).await?;
    Ok(Json(list.pop()).into_response())
}

async fn disable_session(
    cfg: Cfg,
    KratosPath(SessionId(id)): KratosPath<SessionId>,
) -> ApiResult<Response> {
    cfg.engine().store.set_session_active(id, false).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn extend_session(
    cfg: Cfg,
    KratosPath(SessionId(id)): KratosPath<SessionId>,
) -> ApiResult<Response> {
    let e = cfg.engine();
    let s = e.extend_session(id).await?;
    let mut list = expand(e, vec![s], true).await?;
    Ok(Json(list.pop()).into_response())
}

/// The running configuration document (files plus environment overrides), secrets replaced by
/// placeholders that an update puts back.
async fn get_identity_config(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(st.live.redacted_document()?))
}

/// Replaces the configuration file with the body (YAML or JSON text) and applies it, or
/// refuses it with every problem and changes nothing.
async fn put_identity_config(State(st): State<AppState>, body: Body) -> ApiResult<Json<Value>> {
    let bytes = axum::body::to_bytes(body, http::MAX_BODY)
        .await
        .map_err(|_| {
            Error::new(
                tessera_core::ErrorKind::PayloadTooLarge,
                format!("The configuration is larger than {} bytes.", http::MAX_BODY),
            )
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        Error::bad_request(format!(
            "The configuration is not UTF-8 text (invalid byte at offset {}).",
            e.valid_up_to()
        ))
    })?;
    let applied = st.live.update(text).await?;
    Ok(Json(json!({
        "config": st.live.redacted_document()?,
        "warnings": applied.warnings,
        "restart_required": applied.restart_required,
    })))
}
