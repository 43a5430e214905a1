//! Every route of the issuer, in one place, and the service around them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower::Layer;
use tower_http::timeout::TimeoutLayer;

use super::layers::{Hardened, Hardening};
use super::{admin, health, token, wellknown};
use crate::app::App;

/// The longest a request that waits on the store may take before it is
/// answered 408. Discovery, JWKS and health answer from memory.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The routes, without the layer of [`service`].
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.settings.max_body_bytes;
    let timeout = || TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT);
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(wellknown::discovery),
        )
        .route("/.well-known/jwks.json", get(wellknown::jwks))
        .route(
            "/oauth2/token",
            post(token::token)
                .layer::<_, Infallible>(DefaultBodyLimit::max(body_limit))
                .layer::<_, Infallible>(timeout()),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .nest("/admin/v1", admin::router(app.clone()).layer(timeout()))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(app)
}

/// The whole HTTP service: the routes inside [`Hardening`], applied once around
/// the router (`Router::layer` would wrap, and clone per request, every route
/// on its own).
pub fn service(app: Arc<App>) -> Hardened<Router> {
    let hsts = app.settings.issuer.starts_with("https://");
    Hardening::new(app.settings.max_concurrency, hsts).layer(router(app))
}
