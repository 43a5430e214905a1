//! HTTP: the router, extractors, OAuth error rendering, limits and health.

pub mod admin;
pub mod body;
pub mod dev_tls;
pub mod error;
pub mod health;
pub mod layers;
pub mod limits;
pub mod router;
pub mod serve;
pub mod tls;
pub mod token;
pub mod wellknown;

use std::net::SocketAddr;

pub use router::{Surface, router};

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
