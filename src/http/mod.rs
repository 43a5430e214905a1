//! HTTP: the router, extractors, OAuth error rendering, limits and health.

pub mod admin;
pub mod error;
pub mod health;
pub mod layers;
pub mod router;
pub mod tls;
pub mod token;
pub mod wellknown;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tower::Service;
use tower_http::add_extension::AddExtension;

use crate::app::App;

pub use router::router;

/// The client's address, as the connection shows it (a proxy's, behind one).
/// Handlers read it as `Extension<ConnectInfo<Peer>>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// Makes one service per connection: the shared stack, with the peer's address
/// attached to every request of that connection.
#[derive(Clone)]
struct PerConnection<S>(S);

impl<S: Clone> PerConnection<S> {
    fn with_peer(&self, addr: SocketAddr) -> AddExtension<S, ConnectInfo<Peer>> {
        AddExtension::new(self.0.clone(), ConnectInfo(Peer(addr)))
    }
}

impl<S: Clone> Service<IncomingStream<'_, TcpListener>> for PerConnection<S> {
    type Response = AddExtension<S, ConnectInfo<Peer>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, TcpListener>) -> Self::Future {
        ready(Ok(self.with_peer(*stream.remote_addr())))
    }
}

impl<S: Clone> Service<IncomingStream<'_, tls::TlsListener>> for PerConnection<S> {
    type Response = AddExtension<S, ConnectInfo<Peer>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, tls::TlsListener>) -> Self::Future {
        ready(Ok(self.with_peer(*stream.remote_addr())))
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
