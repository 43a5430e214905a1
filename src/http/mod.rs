//! HTTP: the router, extractors, OAuth error rendering, limits and health.

pub mod admin;
pub mod dev_tls;
pub mod error;
pub mod health;
pub mod layers;
pub mod router;
pub mod tls;
pub mod token;
pub mod wellknown;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::IncomingStream;
use layers::Hardened;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tower::Service;

use crate::app::App;

pub use router::router;

/// Whether the request's `Content-Type` names `media_type` (parameters such as
/// `charset` aside; case-insensitive).
pub(crate) fn media_type_is(headers: &axum::http::HeaderMap, media_type: &str) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(media_type))
}

/// The client's address, as the connection shows it (a proxy's, behind one).
/// Handlers of requests other than GET read it as `Extension<ConnectInfo<Peer>>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Makes one service per connection: the shared stack, told the peer's address.
#[derive(Clone)]
struct PerConnection<S>(Hardened<S>);

impl<S: Clone> Service<IncomingStream<'_, TcpListener>> for PerConnection<S> {
    type Response = Hardened<S>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, TcpListener>) -> Self::Future {
        ready(Ok(self.0.for_peer(*stream.remote_addr())))
    }
}

impl<S: Clone> Service<IncomingStream<'_, tls::TlsListener>> for PerConnection<S> {
    type Response = Hardened<S>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, tls::TlsListener>) -> Self::Future {
        ready(Ok(self.0.for_peer(*stream.remote_addr())))
    }
}

/// Serves until `shutdown` resolves, then drains in-flight requests. With a
/// TLS configuration the listener speaks HTTPS.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let make = PerConnection(router::service(app));
    match tls {
        None => {
            axum::serve(listener, make)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            axum::serve(tls::TlsListener::new(listener, config)?, make)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
