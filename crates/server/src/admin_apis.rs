//! `/admin/apis`: the OpenID Provider's APIs (resource servers, RFC 8707) on the admin port, in
//! Kratos's style: snake_case JSON, `Link`-header pagination on the list, RFC 6902 JSON Patch
//! on PATCH, Kratos's error shape. Kept apart from `op.rs` (apps) so each stays one concern;
//! the rules live in `tessera_op::api`.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Cfg, KratosPath, KratosQuery};
use crate::http::{self, PageQuery, read_body};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use tessera_core::Error;
use tessera_op::ApiInput;

type AdminResult = Result<Response, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/apis", get(list_apis).post(create_api))
        .route(
            "/admin/apis/{id}",
            get(get_api)
                .put(update_api)
                .patch(patch_api)
                .delete(delete_api),
        )
}

fn parse_input(v: Value) -> Result<ApiInput, ApiError> {
    serde_json::from_value(v).map_err(|e| {
        ApiError(Error::bad_request(format!(
            "The API is not valid: {e}. Send identifier, name, scopes, access_token_ttl, signing_alg and default."
        )))
    })
}

async fn create_api(cfg: Cfg, headers: HeaderMap, body: Body) -> AdminResult {
    let input = parse_input(read_body(&headers, body).await?)?;
    let (api, row) = cfg.0.op.create_api(input).await?;
    Ok((
        StatusCode::CREATED,
        Json(api.to_api(row.created_at, row.updated_at)),
    )
        .into_response())
}

async fn list_apis(cfg: Cfg, KratosQuery(q): KratosQuery<PageQuery>) -> AdminResult {
    let size = q.size()?;
    let page = cfg.0.op.list_apis(size, q.token()).await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(a, r)| a.to_api(r.created_at, r.updated_at))
        .collect();
    Ok(http::paged(
        items,
        &cfg.engine().settings.serve.admin_base_url,
        "admin/apis",
        size,
        page.next.as_deref(),
        &[],
    ))
}

async fn get_api(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    let (a, r) = cfg.0.op.api_row(&id).await?;
    Ok(Json(a.to_api(r.created_at, r.updated_at)).into_response())
}

async fn update_api(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let input = parse_input(read_body(&headers, body).await?)?;
    let (a, r) = cfg.0.op.update_api(&id, input).await?;
    Ok(Json(a.to_api(r.created_at, r.updated_at)).into_response())
}

async fn patch_api(
    cfg: Cfg,
    KratosPath(id): KratosPath<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let patch = read_body(&headers, body).await?;
    let (a, r) = cfg.0.op.patch_api(&id, &patch).await?;
    Ok(Json(a.to_api(r.created_at, r.updated_at)).into_response())
}

async fn delete_api(cfg: Cfg, KratosPath(id): KratosPath<String>) -> AdminResult {
    cfg.0.op.delete_api(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
