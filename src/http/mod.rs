//! HTTP: the router, extractors, OAuth error rendering, limits and health.

pub mod admin;
pub mod error;
pub mod health;
pub mod router;
pub mod tls;
pub mod token;
pub mod wellknown;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;

use crate::app::App;

pub use router::router;

/// The client's address, as the connection shows it (a proxy's, behind one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, tls::TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tls::TlsListener>) -> Self {
        Peer(*stream.remote_addr())
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
    let service = router(app).into_make_service_with_connect_info::<Peer>();
    match tls {
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            axum::serve(tls::TlsListener::new(listener, config)?, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
