//! The layer every request passes, in one service: header limits (431), a
//! request id, admission, the access log line and the security headers.
//!
//! Admission happens here, before a handler reads any body:
//! - requests for the documents AWS fetches (discovery, JWKS) and for health
//!   have a capacity of their own, which token and admin traffic cannot take;
//! - every other request counts against the work capacity and against its
//!   source address's share of it (429 past the share, 503 past the total);
//! - token requests count against the source address's rate limit.
//!
//! One hand-written layer instead of a stack of generic ones: the JWKS is
//! fetched by AWS on every call, and each generic layer cost it about a tenth
//! of its throughput (see `bench/notes.md`). Timeouts stay `tower-http` layers
//! on the routes that can wait (token endpoint, admin API).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
use super::limits::{Held, Limits, Refusal};
use super::serve::{Activity, Busy};
use crate::metrics::Metrics;
use crate::oauth::OAuthError;
use crate::ratelimit::{KeyedLimit, address_key, retry_after_seconds};

/// The request id header: a caller's own is kept, else one is made.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The most headers a request may carry.
pub const MAX_HEADERS: usize = 64;

/// The longest request id kept from a caller.
const MAX_REQUEST_ID: usize = 128;

/// What a [`Hardening`] admits.
pub struct Admission {
    /// Requests for discovery, JWKS and health at once.
    pub documents: usize,
    /// Every other request at once.
    pub work: usize,
    /// Of those, at most this many from one source address (0: no share).
    pub work_per_address: usize,
    /// Token requests per source address.
    pub address_rate: Option<Arc<KeyedLimit<IpAddr>>>,
    /// Send HSTS (the issuer is https).
    pub hsts: bool,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
}

/// Builds [`Hardened`] services.
#[derive(Clone)]
pub struct Hardening {
    shared: Arc<Shared>,
}

struct Shared {
    documents: Limits,
    work: Limits,
    address_rate: Option<Arc<KeyedLimit<IpAddr>>>,
    metrics: Arc<Metrics>,
    id_prefix: String,
    next_id: AtomicU64,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Hardening {
    /// Admits what `admission` says.
    pub fn new(admission: Admission) -> Self {
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
        if admission.hsts {
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            ));
        }
        Hardening {
            shared: Arc::new(Shared {
                documents: Limits::new(admission.documents, 0),
                work: Limits::new(admission.work, admission.work_per_address),
                address_rate: admission.address_rate,
                metrics: admission.metrics,
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
            activity: None,
        }
    }
}

/// See the module documentation.
#[derive(Clone)]
pub struct Hardened<S> {
    inner: S,
    shared: Arc<Shared>,
    peer: Option<SocketAddr>,
    activity: Option<Arc<Activity>>,
}

impl<S: Clone> Hardened<S> {
    /// The service for one connection from `peer`, whose requests are
    /// counted in `activity`.
    pub fn for_connection(&self, peer: SocketAddr, activity: Arc<Activity>) -> Self {
        Hardened {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            peer: Some(peer),
            activity: Some(activity),
        }
    }
}

fn request_id(req: &mut Request, shared: &Shared) -> HeaderValue {
    if let Some(v) = req.headers().get(&REQUEST_ID) {
        if !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.as_bytes().iter().all(|b| safe_in_id(*b))
        {
            return v.clone();
        }
    }
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let id = HeaderValue::from_str(&format!("{}-{n:010}", shared.id_prefix))
        .expect("base64url and digits are a valid header value");
    req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    id
}

/// Characters a caller's request id may use: nothing that needs quoting or
/// escaping in a log line, a header or JSON.
fn safe_in_id(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b)
}

/// The documents AWS and probes fetch: answered from memory, with their own capacity.
fn is_document(req: &Request) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD)
        && matches!(
            req.uri().path(),
            "/.well-known/jwks.json" | "/.well-known/openid-configuration" | "/healthz" | "/readyz"
        )
}

fn shed(shared: &Shared, class: &'static str) -> Response {
    shared.metrics.refused(class);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        "the issuer is at its concurrency limit; retry shortly\n",
    )
        .into_response()
}

/// Admits a request, holding its share of capacity, or answers it at once
/// (boxed: refusals are the rare case).
fn admit(req: &Request, shared: &Arc<Shared>, ip: Option<IpAddr>) -> Result<Held, Box<Response>> {
    let refuse = |r: Response| Box::new(r);
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(refuse(
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "request headers exceed {MAX_HEADERS} fields or {MAX_HEADER_BYTES} bytes\n"
                ),
            )
                .into_response(),
        ));
    }
    if is_document(req) {
        return shared
            .documents
            .admit(None)
            .map_err(|_| refuse(shed(shared, "documents_at_capacity")));
    }
    let held = match shared.work.admit(ip) {
        Ok(held) => held,
        Err(Refusal::Total) => return Err(refuse(shed(shared, "work_at_capacity"))),
        Err(Refusal::Address) => {
            shared.metrics.refused("address_in_flight");
            return Err(refuse(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "1")],
                    "too many requests in flight from this address; retry shortly\n",
                )
                    .into_response(),
            ));
        }
    };
    if let (Some(limit), Some(ip)) = (&shared.address_rate, ip) {
        if req.method() == Method::POST && req.uri().path().starts_with("/oauth2/") {
            if let Err(wait) = limit.check(&address_key(ip)) {
                shared.metrics.rate_limited("address");
                let slow_down = OAuthError::slow_down("address", retry_after_seconds(wait));
                return Err(refuse(slow_down.into_response()));
            }
        }
    }
    Ok(held)
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

    fn call(&mut self, req: Request) -> Self::Future {
        // The service that was polled ready answers this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        self.answer(req, inner)
    }
}

impl<S> Hardened<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    /// Admits `req` and has `inner` answer it, or answers it at once.
    pub fn answer(&self, mut req: Request, mut inner: S) -> HardenedFuture<S::Future> {
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
        // (the token endpoint's failure limit): documents skip the allocation.
        if let Some(peer) = self.peer.filter(|_| req.method() != Method::GET) {
            req.extensions_mut().insert(ConnectInfo(Peer(peer)));
        }
        let busy = self.activity.as_ref().map(|a| a.begin());
        let state = match admit(&req, &self.shared, self.peer.map(|p| p.ip())) {
            Ok(held) => State::Called {
                future: inner.call(req).instrument(span),
                _held: held,
            },
            Err(res) => State::Refused {
                response: Some(*res),
                span,
            },
        };
        HardenedFuture {
            state,
            shared: self.shared.clone(),
            id: Some(id),
            started,
            _busy: busy,
        }
    }

    /// The service requests are handed to.
    pub fn inner(&self) -> &S {
        &self.inner
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
        _busy: Option<Busy>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: Instrumented<F>, _held: Held },
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
