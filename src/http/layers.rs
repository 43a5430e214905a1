//! The layer every request passes, in one service: load shedding at the
//! concurrency limit (503), header limits (431), a request id, the access log
//! line and the security headers.
//!
//! One hand-written layer instead of a stack of generic ones: the JWKS is
//! fetched by AWS on every call, and each generic layer cost it about a tenth
//! of its throughput (see `bench/notes.md`). Timeouts stay `tower-http` layers
//! on the routes that can wait (token endpoint, admin API).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;
use tracing::instrument::{Instrument, Instrumented};

use super::Peer;

/// The request id header: a caller's own is kept, else one is made.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The most headers a request may carry.
pub const MAX_HEADERS: usize = 64;

/// The longest request id kept from a caller.
const MAX_REQUEST_ID: usize = 128;

/// Builds [`Hardened`] services.
#[derive(Clone)]
pub struct Hardening {
    shared: Arc<Shared>,
}

struct Shared {
    in_flight: AtomicUsize,
    max_in_flight: usize,
    id_prefix: String,
    next_id: AtomicU64,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Hardening {
    /// At most `max_in_flight` requests at once; HSTS when the issuer is https.
    pub fn new(max_in_flight: usize, hsts: bool) -> Self {
        let mut headers = vec![
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            // Discovery and JWKS set their own caching; nothing else may be cached.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ];
        if hsts {
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            ));
        }
        Hardening {
            shared: Arc::new(Shared {
                in_flight: AtomicUsize::new(0),
                max_in_flight,
                // Random per process, so that ids are unique across replicas
                // without a system call per request.
                id_prefix: crate::principal::random_id("", 9),
                next_id: AtomicU64::new(1),
                headers,
            }),
        }
    }
}

impl<S> Layer<S> for Hardening {
    type Service = Hardened<S>;

    fn layer(&self, inner: S) -> Hardened<S> {
        Hardened {
            inner,
            shared: self.shared.clone(),
            peer: None,
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Hardened<S> {
    inner: S,
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
}

impl<S: Clone> Hardened<S> {
    /// The service for one connection from `peer`.
    pub fn for_peer(&self, peer: SocketAddr) -> Self {
        Hardened {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            peer: Some(peer),
        }
    }
}

/// Releases a concurrency slot when the request ends, answered or dropped.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn request_id(req: &mut Request, shared: &Shared) -> HeaderValue {
    if let Some(v) = req.headers().get(&REQUEST_ID) {
        let printable = v.as_bytes().iter().all(|b| b.is_ascii_graphic());
        if printable && !v.is_empty() && v.len() <= MAX_REQUEST_ID {
            return v.clone();
        }
    }
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let id = HeaderValue::from_str(&format!("{}-{n:010}", shared.id_prefix))
        .expect("base64url and digits are a valid header value");
    req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    id
}

/// Whether a request reaches the routes.
enum Admission {
    /// It does, holding a concurrency slot.
    Admitted(Slot),
    /// It is answered at once.
    Refused(Response),
}

fn admit(req: &Request, shared: &Arc<Shared>) -> Admission {
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Admission::Refused(
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "request headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes\n"
                ),
            )
                .into_response(),
        );
    }
    if shared.in_flight.fetch_add(1, Ordering::Relaxed) >= shared.max_in_flight {
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        return Admission::Refused(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "the issuer is at its concurrency limit; retry shortly\n",
            )
                .into_response(),
        );
    }
    Admission::Admitted(Slot(shared.clone()))
}

impl<S> Service<Request> for Hardened<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = HardenedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id(&mut req, &self.shared);
        // The path only: a query string could carry anything.
        let span = tracing::info_span!(
            "request",
            request_id = %id.to_str().unwrap_or("-"),
            method = %req.method(),
            path = %req.uri().path(),
        );
        // Only requests that change something look at the client's address
        // (the token endpoint's rate limit): documents skip the allocation.
        if let Some(peer) = self.peer.filter(|_| req.method() != Method::GET) {
            req.extensions_mut().insert(ConnectInfo(Peer(peer)));
        }
        let state = match admit(&req, &self.shared) {
            Admission::Admitted(slot) => {
                // The service that was polled ready answers this request.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                State::Called {
                    future: inner.call(req).instrument(span),
                    _slot: slot,
                }
            }
            Admission::Refused(res) => State::Refused {
                response: Some(res),
                span,
            },
        };
        HardenedFuture {
            state,
            shared: self.shared.clone(),
            id: Some(id),
            started,
        }
    }
}

pin_project! {
    /// The response future of [`Hardened`]: no allocation per request.
    pub struct HardenedFuture<F> {
        #[pin]
        state: State<F>,
        shared: Arc<Shared>,
        id: Option<HeaderValue>,
        started: Instant,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: Instrumented<F>, _slot: Slot },
        Refused { response: Option<Response>, span: Span },
    }
}

impl<F> Future for HardenedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (mut res, span) = match this.state.project() {
            StateProj::Called { future, .. } => {
                let span = future.span().clone();
                match future.poll(cx) {
                    Poll::Ready(Ok(res)) => (res, span),
                    Poll::Ready(Err(never)) => match never {},
                    Poll::Pending => return Poll::Pending,
                }
            }
            StateProj::Refused { response, span } => (
                response
                    .take()
                    .expect("a future is not polled after it is ready"),
                span.clone(),
            ),
        };
        let h = res.headers_mut();
        for (name, value) in &this.shared.headers {
            if !h.contains_key(name) {
                h.insert(name.clone(), value.clone());
            }
        }
        if let Some(id) = this.id.take() {
            h.insert(REQUEST_ID.clone(), id);
        }
        span.in_scope(|| {
            tracing::info!(
                status = res.status().as_u16(),
                micros = this.started.elapsed().as_micros() as u64,
                "served"
            );
        });
        Poll::Ready(Ok(res))
    }
}
