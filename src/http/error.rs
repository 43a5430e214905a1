//! The one place OAuth errors become HTTP responses (RFC 6749 §5.2).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::oauth::{ErrorCode, OAuthError};

fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::SlowDown => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Renders an error with the status, `WWW-Authenticate` and no-store headers it needs.
pub fn render(e: &OAuthError) -> Response {
    let body = json!({"error": e.code.as_str(), "error_description": e.description});
    let mut resp = (status(e.code), Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if e.code == ErrorCode::InvalidClient {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="nomos-issuer", error="invalid_client""#),
        );
    }
    if let Some(seconds) = e.retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if matches!(e.code, ErrorCode::PayloadTooLarge | ErrorCode::BodyTimeout) {
        // The rest of the body is not read: the connection cannot carry
        // another request.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        render(&self)
    }
}
