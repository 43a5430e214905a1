//! `POST /oauth2/token`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Peer;
use super::error::{render, too_large};
use crate::app::{App, now};
use crate::oauth::form::Params;
use crate::oauth::grant::TokenResponse;
use crate::oauth::{ErrorCode, OAuthError};
use crate::ratelimit::retry_after_seconds;

/// The token endpoint: form in, token or RFC 6749 error out. Never a 5xx for any input.
pub async fn token(
    State(app): State<Arc<App>>,
    peer: Option<Extension<ConnectInfo<Peer>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let (org, response) = answer(&app, peer.map(|p| p.0.0.0.ip()), &headers, body).await;
    let outcome = response
        .as_ref()
        .map_or_else(|e| e.code.as_str(), |_| "issued");
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
        Err(e) if e.code == ErrorCode::PayloadTooLarge => too_large(app.settings.max_body_bytes),
        Err(e) => {
            tracing::info!(error = e.code.as_str(), description = %e.description, "token request refused");
            render(&e)
        }
    }
}

/// The answer and, once known, the org it went to.
async fn answer(
    app: &App,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (Option<String>, Result<TokenResponse, OAuthError>) {
    if let (Some(limit), Some(ip)) = (&app.address_limit, peer) {
        if let Err(wait) = limit.check(&ip) {
            app.metrics.rate_limited("address");
            return (
                None,
                Err(OAuthError::slow_down("address", retry_after_seconds(wait))),
            );
        }
    }
    let r = parse_and_grant(app, headers, body).await;
    if matches!(&r, Err(e) if e.code == ErrorCode::SlowDown) {
        app.metrics.rate_limited("client");
    }
    match r {
        Ok(resp) => (Some(resp.org.to_string()), Ok(resp)),
        Err(e) => (None, Err(e)),
    }
}

async fn parse_and_grant(
    app: &App,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<TokenResponse, OAuthError> {
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(OAuthError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is too large",
            ));
        }
        Err(_) => {
            return Err(OAuthError::invalid_request(
                "the request body could not be read",
            ));
        }
    };
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
    app.tokens.token(&params, authorization, now()).await
}
