//! Every route of the issuer, in one place, and the layers every request
//! passes: request id, access log, security headers, header and time limits,
//! and a concurrency limit that sheds load with 503 instead of queueing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::{admin, health, token, wellknown};
use crate::app::App;

/// The longest any request may take before it is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The most headers a request may carry.
pub const MAX_HEADERS: usize = 64;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the router.
pub fn router(app: Arc<App>) -> Router {
    let body_limit = app.settings.max_body_bytes;
    let hsts = app.settings.issuer.starts_with("https://");
    let routes = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(wellknown::discovery),
        )
        .route("/.well-known/jwks.json", get(wellknown::jwks))
        .route(
            "/oauth2/token",
            post(token::token).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .nest("/admin/v1", admin::router(app.clone()))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(app.clone());
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "the issuer is at its concurrency limit; retry shortly\n",
            )
        }))
        .load_shed()
        // One semaphore for the whole router: `Router::layer` wraps every route
        // on its own, and a per-route limit would not bound the process.
        .layer(GlobalConcurrencyLimitLayer::new(
            app.settings.max_concurrency,
        ));
    let security = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            hsts.then(|| HeaderValue::from_static("max-age=31536000")),
        ));
    routes.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), RequestIds::new()))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<Body>| {
                        let id = req
                            .headers()
                            .get(&REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        // The path only: a query string could carry anything.
                        tracing::info_span!(
                            "request",
                            request_id = %id,
                            method = %req.method(),
                            path = %req.uri().path(),
                        )
                    })
                    .on_request(())
                    .on_response(
                        |res: &Response<Body>, latency: Duration, _: &tracing::Span| {
                            tracing::info!(
                                status = res.status().as_u16(),
                                micros = latency.as_micros() as u64,
                                "served"
                            );
                        },
                    )
                    .on_failure(()),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
            .layer(security)
            .layer(middleware::from_fn(header_limits))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            ))
            .layer(shed),
    )
}

/// Request ids: a random per-process prefix and a counter, unique across
/// replicas without a system call per request (a UUID v4 costs one).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds {
            prefix: crate::principal::random_id("", 9).into(),
            next: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:010}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Answers 431 to requests with too many or too large headers.
async fn header_limits(req: Request, next: Next) -> axum::response::Response {
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes\n"),
        )
            .into_response();
    }
    next.run(req).await
}
