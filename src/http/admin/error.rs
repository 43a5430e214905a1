//! The admin API's error: `{"error": code, "message": text}` with a status.
//!
//! Three kinds of 5xx, each its own: 503 `unavailable` when the store cannot be
//! reached (retry), 500 `internal` when the issuer itself is at fault (a row it
//! cannot read, a key it cannot generate or unwrap), and nothing else. An
//! internal error's cause goes to the log at error level, never to the client,
//! whose message names the request id that the log line carries.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::layers::REQUEST_ID;
use crate::key_manager::RotationError;
use crate::keys::rotation::PlanError;
use crate::store::StoreError;

/// An admin API error: `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Why an internal error happened: for the log only.
    cause: Option<anyhow::Error>,
}

impl AdminError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AdminError {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// A fault of the issuer, not of the request: 500 `internal`. The client
    /// learns nothing of `cause`, which is logged when the error is answered.
    pub(super) fn internal(cause: impl Into<anyhow::Error>) -> Self {
        AdminError {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                internal_message(None),
            )
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(super) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub(super) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required: Authorization: Bearer <token> (see `nomos-issuer admin token create`)",
        )
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            // Runs inside the request's span: the line carries the request id.
            // Store and key errors name objects, never secrets.
            tracing::error!(error = %format_args!("{cause:#}"), "admin request failed: internal error");
        }
        let mut r = (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        let h = r.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="nomos-issuer admin""#),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        if self.cause.is_some() {
            r.extensions_mut().insert(Internal);
        }
        r
    }
}

/// What an internal error tells the client: where to look, nothing more.
fn internal_message(request_id: Option<&str>) -> String {
    let message = "an internal error occurred; the server log has the cause";
    match request_id {
        Some(id) => format!("{message} (request id {id})"),
        None => message.to_owned(),
    }
}

/// Marks the response of an internal error for [`name_request_id`].
#[derive(Debug, Clone, Copy)]
struct Internal;

/// Names the request id in the message of an internal error, so that an
/// operator given the response finds its cause in the log. (Handlers do not
/// see the id, which the hardening layer sets on the request.)
pub(super) async fn name_request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(req).await;
    if response.extensions().get::<Internal>().is_none() {
        return response;
    }
    AdminError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        internal_message(id.as_deref()),
    )
    .into_response()
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("{what} does not exist")),
            StoreError::Conflict(what) => Self::conflict(format!("{what} already exists")),
            e @ StoreError::Corrupt(_) => Self::internal(e),
            StoreError::Aborted(why) => {
                tracing::info!(%why, "key update abandoned: the keys changed under it");
                Self::conflict(
                    "the signing keys changed under this request; nothing was done, try again",
                )
            }
            // The store cannot be reached (a wildcard, so that a new variant of
            // an outage needs no change here).
            e => {
                tracing::error!(error = %e, "admin request failed in the store");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store cannot be reached; retry shortly",
                )
            }
        }
    }
}

impl From<RotationError> for AdminError {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::Plan(PlanError::UnknownKid(kid)) => {
                Self::not_found(format!("no signing key has kid {kid}"))
            }
            RotationError::Plan(p) => Self::conflict(p.to_string()),
            RotationError::Store(s) => s.into(),
            // Key generation, a stored key the KEKs cannot unwrap: not the
            // caller's doing, and retrying will not help.
            e => Self::internal(e),
        }
    }
}

/// What a handler returns.
pub(super) type Result<T> = std::result::Result<T, AdminError>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: AdminError) -> (StatusCode, serde_json::Value, Response) {
        let r = e.into_response();
        let status = r.status();
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let v = serde_json::from_slice(&bytes).unwrap();
        (
            status,
            v,
            Response::from_parts(parts, axum::body::Body::empty()),
        )
    }

    #[tokio::test]
    async fn a_corrupt_row_is_internal_and_tells_nothing() {
        let e = StoreError::Corrupt("org acme: unreadable audiences".into());
        let (status, v, r) = answer(e.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v["error"], "internal");
        let message = v["message"].as_str().unwrap();
        assert!(
            !message.contains("acme") && !message.contains("audiences"),
            "{message}"
        );
        assert!(r.headers().get(header::RETRY_AFTER).is_none());
        assert!(r.extensions().get::<Internal>().is_some());
    }

    #[tokio::test]
    async fn store_errors_keep_their_meaning() {
        let cases = [
            (StoreError::NotFound("org x".into()), StatusCode::NOT_FOUND),
            (StoreError::Conflict("org x".into()), StatusCode::CONFLICT),
            (
                StoreError::Aborted("the keys changed while planning".into()),
                StatusCode::CONFLICT,
            ),
        ];
        for (e, want) in cases {
            let (status, v, _) = answer(e.into()).await;
            assert_eq!(status, want, "{v}");
        }
        let (_, v, _) = answer(StoreError::Aborted("why".into()).into()).await;
        assert!(v["message"].as_str().unwrap().contains("try again"), "{v}");
    }

    #[tokio::test]
    async fn a_failed_key_generation_is_internal() {
        let e = RotationError::Keygen(anyhow::anyhow!("entropy source failed"));
        let (status, v, _) = answer(e.into()).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, Some("internal"))
        );
        assert!(!v["message"].as_str().unwrap().contains("entropy"), "{v}");
    }
}
