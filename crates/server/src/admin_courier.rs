//! `/admin/courier/messages`: the courier's queue on the admin port, in Kratos's shapes
//! (`message`, `Link` pagination, `status` and `recipient` filters). Read-only: the worker
//! (`tessera_courier::worker`) is what changes messages.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Cfg, KratosPath, KratosQuery};
use crate::http::{self, PageQuery};
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;
use tessera_core::Error;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/courier/messages", get(list_messages))
        .route("/admin/courier/messages/{id}", get(get_message))
}

#[derive(Deserialize)]
struct MessagesQuery {
    #[serde(flatten)]
    page: PageQuery,
    status: Option<String>,
    recipient: Option<String>,
}

async fn list_messages(
    cfg: Cfg,
    KratosQuery(q): KratosQuery<MessagesQuery>,
) -> Result<Response, ApiError> {
    let size = q.page.size()?;
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = status
        && !tessera_courier::is_status(s)
    {
        return Err(ApiError(Error::bad_request(format!(
            "status `{s}` is invalid: use queued, processing, sent or abandoned."
        ))));
    }
    let recipient = q.recipient.as_deref().filter(|s| !s.is_empty());
    let engine = cfg.engine();
    let page = engine
        .store
        .courier_list(status, recipient, size, q.page.token())
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|m| tessera_courier::message_json(m, None))
        .collect();
    let mut extra = Vec::new();
    if let Some(s) = status {
        extra.push(("status", s));
    }
    if let Some(r) = recipient {
        extra.push(("recipient", r));
    }
    Ok(http::paged(
        items,
        &engine.settings.serve.admin_base_url,
        "admin/courier/messages",
        size,
        page.next.as_deref(),
        &extra,
    ))
}

async fn get_message(cfg: Cfg, KratosPath(id): KratosPath<String>) -> Result<Response, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError(Error::bad_request(format!(
            "The message id `{id}` is not a UUID."
        ))));
    }
    let engine = cfg.engine();
    let Some(m) = engine.store.courier_get(&id).await? else {
        return Err(ApiError(Error::not_found(format!(
            "There is no courier message with the id `{id}`."
        ))));
    };
    let dispatches = engine.store.courier_dispatches(&id).await?;
    Ok(axum::Json(tessera_courier::message_json(&m, Some(&dispatches))).into_response())
}
