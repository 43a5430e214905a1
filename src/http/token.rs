//! `POST /oauth2/token`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Peer;
use super::body::{self, BODY_DEADLINE, BodyError};
use super::error::render;
use crate::app::App;
use crate::oauth::form::Params;
use crate::oauth::grant::TokenResponse;
use crate::oauth::{ErrorCode, OAuthError};

/// The token endpoint: form in, token or RFC 6749 error out. Never a 5xx for any input.
pub async fn token(
    State(app): State<Arc<App>>,
    peer: Option<Extension<ConnectInfo<Peer>>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let source = peer.map(|p| p.0.0.0.ip());
    let response = answer(&app, source, &headers, body).await;
    let outcome = response
        .as_ref()
        .map_or_else(|e| e.code.as_str(), |_| "issued");
    let org = response.as_ref().ok().map(|r| r.org.to_string());
    app.metrics.token(
        org.as_deref().unwrap_or("-"),
        outcome,
        started.elapsed().as_secs_f64(),
    );
    match response {
        Ok(resp) => {
            let mut r = (StatusCode::OK, Json(resp)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r.headers_mut()
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            r
        }
        Err(e) => {
            if e.code == ErrorCode::SlowDown {
                app.metrics.rate_limited("failures");
            }
            tracing::info!(error = e.code.as_str(), description = %e.description, "token request refused");
            render(&e)
        }
    }
}

async fn answer(
    app: &App,
    source: Option<IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<TokenResponse, OAuthError> {
    let limit = app.settings.max_body_bytes;
    let body = body::read(headers, body, limit)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => OAuthError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body exceeds {limit} bytes"),
            ),
            BodyError::TimedOut => OAuthError::new(
                ErrorCode::BodyTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_DEADLINE.as_secs()
                ),
            ),
            BodyError::Unreadable => {
                OAuthError::invalid_request("the request body could not be read")
            }
        })?;
    if !super::media_type_is(headers, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(&body)?;
    let authorization = match headers.get(header::AUTHORIZATION).map(HeaderValue::to_str) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return Err(OAuthError::invalid_client("malformed Authorization header"));
        }
    };
    let request_id = headers
        .get(&super::layers::REQUEST_ID)
        .and_then(|v| v.to_str().ok());
    app.tokens
        .token(&params, authorization, source, request_id)
        .await
}
