//! The one place where domain errors become HTTP responses, in Kratos's error shape:
//! `{"error": {"id", "code", "status", "reason", "message", "details"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::{Error, ErrorKind};

#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::UnprocessableEntity => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Kratos's generic `message` per status; `reason` carries the specific explanation.
fn message_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request was malformed or contained invalid parameters",
        401 => "The request could not be authorized",
        403 => "The requested action was forbidden",
        404 => "The requested resource could not be found",
        405 => "The request method is not allowed for this resource",
        409 => "The resource could not be created due to a conflict",
        410 => "The requested resource is no longer available",
        413 => "The request body is too large",
        415 => "The request's content type is not supported",
        429 => "Too many requests, please try again later",
        503 => "The service is temporarily unavailable",
        _ => "An internal server error occurred, please contact the system administrator",
    }
}

/// The Kratos error object of a stored error (`GET /self-service/errors`). Rows written as
/// [`tessera_core::StoredError`] get their `code` and `status` here; rows written before it
/// already hold the whole object and are shown as they are.
pub fn stored_error_body(stored: &serde_json::Value) -> serde_json::Value {
    match serde_json::from_value::<tessera_core::StoredError>(stored.clone()) {
        Ok(e) => {
            let status = status_of(e.kind);
            json!({
                "id": e.id,
                "code": status.as_u16(),
                "status": status.canonical_reason().unwrap_or_default(),
                "reason": e.reason,
                "message": e.message,
            })
        }
        Err(_) => stored.clone(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.kind);
        if status.is_server_error() {
            tracing::error!(reason = %self.0.reason, "request failed");
        } else {
            tracing::debug!(reason = %self.0.reason, status = status.as_u16(), "request refused");
        }
        let mut body = json!({
            "code": status.as_u16(),
            "status": status.canonical_reason().unwrap_or_default(),
            "reason": self.0.reason,
            "message": message_of(status),
        });
        if let Some(id) = self.0.id {
            body["id"] = json!(id);
        }
        if !self.0.details.is_null() {
            body["details"] = self.0.details.clone();
        }
        let mut resp = (status, Json(json!({ "error": body }))).into_response();
        if let Some(secs) = self.0.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.get().into());
        }
        resp
    }
}
