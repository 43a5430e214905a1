//! Discovery and JWKS, served from memory with `Cache-Control`, `ETag` and 304s.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::keys::keyring::Document;

/// Whether an `If-None-Match` header matches `etag` (weak comparison, RFC 9110 §13.1.2).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    inm.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn respond(doc: &Document, max_age: u32, headers: &HeaderMap) -> Response {
    let cache =
        HeaderValue::from_str(&format!("public, max-age={max_age}")).expect("ASCII header value");
    let etag = HeaderValue::from_str(&doc.etag).expect("ASCII etag");
    if not_modified(headers, &doc.etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::CACHE_CONTROL, cache), (header::ETAG, etag)],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, cache),
            (header::ETAG, etag),
        ],
        doc.body.clone(),
    )
        .into_response()
}

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    respond(
        &app.keys.get().discovery,
        app.settings.jwks_max_age,
        &headers,
    )
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    respond(&app.keys.get().jwks, app.settings.jwks_max_age, &headers)
}
