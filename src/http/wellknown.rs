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

/// `max_age` less up to a tenth, so that verifiers' caches do not all expire
/// together; never more than the policy's `jwks_max_age`, which the rotation
/// plan's waits are built on.
fn jittered(max_age: i64) -> i64 {
    let spread = max_age / 10;
    if spread == 0 {
        return max_age;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    max_age - i64::from(nanos) % (spread + 1)
}

fn respond(doc: &Document, max_age: i64, headers: &HeaderMap) -> Response {
    let cache = HeaderValue::from_str(&format!("public, max-age={}", jittered(max_age)))
        .expect("ASCII header value");
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
    app.metrics.request("discovery");
    respond(
        &app.keys.get().discovery,
        app.settings.rotation.jwks_max_age,
        &headers,
    )
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    app.metrics.request("jwks");
    respond(
        &app.keys.get().jwks,
        app.settings.rotation.jwks_max_age,
        &headers,
    )
}

#[cfg(test)]
mod tests {
    use super::jittered;

    #[test]
    fn jitter_stays_within_a_tenth_below_the_policy() {
        for _ in 0..1000 {
            let j = jittered(300);
            assert!((270..=300).contains(&j), "{j}");
        }
        assert_eq!(jittered(5), 5);
    }
}
