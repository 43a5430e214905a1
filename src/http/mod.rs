//! HTTP: the router, extractors, OAuth error rendering, limits and health.

pub mod error;
pub mod health;
pub mod router;
pub mod token;
pub mod wellknown;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::App;

pub use router::router;

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}
