//! Admin-initiated recovery: Kratos's `POST /admin/recovery/code` (a recovery flow and a code
//! the administrator passes on to the person, who opens the flow's link in a browser and
//! enters it) and `POST /admin/recovery/link` (a link carrying a single-use token that signs
//! the person in and leads to the settings page).

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Cfg, KratosBody};
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tessera_core::Error;
use tessera_core::timefmt::to_rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/recovery/code", post(create_code))
        .route("/admin/recovery/link", post(create_link))
}

/// `identity_id` and `expires_in` of Kratos's `createRecovery{Code,Link}ForIdentityBody`.
fn identity_and_expiry(
    body: &Value,
) -> Result<(uuid::Uuid, Option<std::time::Duration>), ApiError> {
    let id = body
        .get("identity_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError(Error::bad_request(
                "`identity_id` is required: the id of the identity to recover.",
            ))
        })?;
    let identity_id = uuid::Uuid::parse_str(id.trim())
        .map_err(|_| ApiError(Error::invalid_uuid("identity_id", id)))?;
    let expires_in = match body.get("expires_in").and_then(Value::as_str) {
        None | Some("") => None,
        Some(s) => Some(
            tessera_core::duration::parse(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ApiError(Error::bad_request(format!(
                        "`expires_in` `{s}` is not a positive duration: use a value such as `15m` or `1h`."
                    )))
                })?,
        ),
    };
    Ok((identity_id, expires_in))
}

/// Kratos's `createRecoveryCodeForIdentityBody` → `recoveryCodeForIdentity` (201).
async fn create_code(cfg: Cfg, KratosBody(body): KratosBody) -> ApiResult<Response> {
    let (identity_id, expires_in) = identity_and_expiry(&body)?;
    let (flow, code, link) = cfg
        .engine()
        .admin_recovery_code(identity_id, expires_in)
        .await?;
    let expires_at = flow
        .internal
        .code
        .as_ref()
        .map(|c| c.expires_at)
        .unwrap_or(flow.expires_at);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "recovery_link": link,
            "recovery_code": code,
            "expires_at": to_rfc3339(expires_at),
        })),
    )
        .into_response())
}

/// Kratos's `createRecoveryLinkForIdentityBody` → `recoveryLinkForIdentity` (200).
async fn create_link(cfg: Cfg, KratosBody(body): KratosBody) -> ApiResult<Response> {
    let (identity_id, expires_in) = identity_and_expiry(&body)?;
    let (flow, link) = cfg
        .engine()
        .admin_recovery_link(identity_id, expires_in)
        .await?;
    Ok(Json(json!({
        "recovery_link": link,
        "expires_at": to_rfc3339(flow.expires_at),
    }))
    .into_response())
}
