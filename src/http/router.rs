//! Every route of the issuer, in one place, and the service around them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower::Layer;
use tower_http::timeout::TimeoutLayer;

use super::layers::{Admission, Hardened, Hardening};
use super::{admin, health, token, wellknown};
use crate::app::App;

/// The longest a request that waits on the store may take before it is
/// answered 408. Discovery, JWKS and health answer from memory.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything on one listener (no `--operator-listen`).
    All,
    /// What verifiers and workloads need: discovery, JWKS, the token
    /// endpoint and health. `/metrics` and `/admin` answer 404.
    Public,
    /// What operators need: `/metrics`, `/admin` and health.
    Operator,
}

impl Surface {
    fn public(self) -> bool {
        self != Surface::Operator
    }

    fn operator(self) -> bool {
        self != Surface::Public
    }
}

/// The routes of `surface`, without the layer of [`service`].
pub fn router(app: Arc<App>, surface: Surface) -> Router {
    let timeout = || TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT);
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if surface.public() {
        router = router
            .route(
                "/.well-known/openid-configuration",
                get(wellknown::discovery),
            )
            .route("/.well-known/jwks.json", get(wellknown::jwks))
            .route(
                "/oauth2/token",
                post(token::token).layer::<_, Infallible>(timeout()),
            );
    }
    if surface.operator() {
        router = router
            .route("/metrics", get(health::metrics))
            .nest("/admin/v1", admin::router(app.clone()).layer(timeout()));
    }
    router
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(app)
}

/// The whole HTTP service of `surface`: the routes inside [`Hardening`],
/// applied once around the router (`Router::layer` would wrap, and clone per
/// request, every route on its own).
pub fn service(app: Arc<App>, surface: Surface) -> Hardened<Router> {
    let s = &app.settings;
    let admission = Admission {
        documents: s.max_concurrency,
        work: s.max_concurrency,
        work_per_address: s.max_in_flight_per_address,
        address_rate: app.address_limit.clone(),
        hsts: s.issuer.starts_with("https://"),
        metrics: app.metrics.clone(),
    };
    Hardening::new(admission).layer(router(app, surface))
}
