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

/// The one table of kinds and statuses. It expands to [`status_of`] (an exhaustive match, so a
/// new kind does not compile without its status) and to the list [`kind_of`] searches, so the
/// two directions cannot drift apart.
macro_rules! statuses {
    ($($kind:ident => $status:ident),* $(,)?) => {
        /// The HTTP status of an error kind.
        pub fn status_of(kind: ErrorKind) -> StatusCode {
            match kind {
                $(ErrorKind::$kind => StatusCode::$status,)*
            }
        }

        /// Every kind, in the table's order.
        const KINDS: &[ErrorKind] = &[$(ErrorKind::$kind),*];
    };
}

statuses! {
    BadRequest => BAD_REQUEST,
    Unauthorized => UNAUTHORIZED,
    Forbidden => FORBIDDEN,
    NotFound => NOT_FOUND,
    Conflict => CONFLICT,
    Gone => GONE,
    PayloadTooLarge => PAYLOAD_TOO_LARGE,
    MethodNotAllowed => METHOD_NOT_ALLOWED,
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE,
    UnprocessableEntity => UNPROCESSABLE_ENTITY,
    TooManyRequests => TOO_MANY_REQUESTS,
    Unavailable => SERVICE_UNAVAILABLE,
    Internal => INTERNAL_SERVER_ERROR,
}

/// The kind a status stands for: the inverse of [`status_of`] (for answers a layer made, which
/// carry only a status). A status no kind has is `Internal` when it is a server error and
/// `BadRequest` otherwise.
pub fn kind_of(status: StatusCode) -> ErrorKind {
    KINDS
        .iter()
        .copied()
        .find(|k| status_of(*k) == status)
        .unwrap_or(if status.is_server_error() {
            ErrorKind::Internal
        } else {
            ErrorKind::BadRequest
        })
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

/// A Kratos error that tells the caller where to send the browser instead
/// (`redirect_browser_to`): 403 `session_refresh_required` and 422
/// `browser_location_change_required`, as Kratos answers JSON callers. The key order is
/// Kratos's (`id` first), kept byte for byte.
pub fn redirect_browser(e: Error, to: &str) -> Response {
    let status = status_of(e.kind);
    let message = match e.id {
        Some(tessera_core::ErrorId::BrowserLocationChangeRequired) => {
            "browser location change required"
        }
        _ => message_of(status),
    };
    let body = json!({
        "error": {
            "id": e.id,
            "code": status.as_u16(),
            "status": status.canonical_reason().unwrap_or_default(),
            "reason": e.reason,
            "message": message,
        },
        "redirect_browser_to": to,
    });
    (status, Json(body)).into_response()
}

/// Kratos's error object (`code`, `status`, `reason`, `message`, `id`, `details`): the body
/// of every refused admin or API request, and of each failed entry of a batch.
pub fn error_object(e: &Error) -> serde_json::Value {
    let status = status_of(e.kind);
    let mut body = json!({
        "code": status.as_u16(),
        "status": status.canonical_reason().unwrap_or_default(),
        "reason": e.reason,
        "message": message_of(status),
    });
    if let Some(id) = e.id {
        body["id"] = json!(id);
    }
    if !e.details.is_null() {
        body["details"] = e.details.clone();
    }
    body
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.kind);
        if status.is_server_error() {
            tracing::error!(reason = %self.0.reason, "request failed");
        } else {
            tracing::debug!(reason = %self.0.reason, status = status.as_u16(), "request refused");
        }
        let body = error_object(&self.0);
        let mut resp = (status, Json(json!({ "error": body }))).into_response();
        if let Some(secs) = self.0.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.get().into());
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_of_inverts_status_of_for_every_kind() {
        for k in KINDS {
            assert_eq!(kind_of(status_of(*k)), *k, "{k:?}");
        }
        let statuses: std::collections::BTreeSet<u16> =
            KINDS.iter().map(|k| status_of(*k).as_u16()).collect();
        assert_eq!(statuses.len(), KINDS.len(), "two kinds share a status");
    }

    #[test]
    fn statuses_without_a_kind_fall_back_by_class() {
        assert_eq!(kind_of(StatusCode::BAD_GATEWAY), ErrorKind::Internal);
        assert_eq!(kind_of(StatusCode::GATEWAY_TIMEOUT), ErrorKind::Internal);
        assert_eq!(kind_of(StatusCode::IM_A_TEAPOT), ErrorKind::BadRequest);
        assert_eq!(kind_of(StatusCode::URI_TOO_LONG), ErrorKind::BadRequest);
    }
}
