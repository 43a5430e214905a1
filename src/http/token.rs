//! `POST /oauth2/token`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{render, too_large};
use crate::app::{App, now};
use crate::oauth::OAuthError;
use crate::oauth::form::Params;

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The token endpoint: form in, token or RFC 6749 error out. Never a 5xx for any input.
pub async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return too_large(app.settings.max_body_bytes);
        }
        Err(_) => {
            return render(&OAuthError::invalid_request(
                "the request body could not be read",
            ));
        }
    };
    if !is_form(&headers) {
        return render(&OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return render(&e),
    };
    let authorization = match headers.get(header::AUTHORIZATION).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return render(&OAuthError::invalid_client(
                "malformed Authorization header",
            ));
        }
    };
    match app.tokens.token(&params, authorization, now()).await {
        Ok(resp) => {
            let mut r = (StatusCode::OK, Json(resp)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            r
        }
        Err(e) => {
            tracing::info!(error = e.code.as_str(), description = %e.description, "token request refused");
            render(&e)
        }
    }
}
