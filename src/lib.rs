//! nomos-issuer: a standalone OpenID Connect issuer for machine identities.
//!
//! Module map (dependencies point inward: `http`, `store` and `cli` know the
//! domain; the domain knows none of them):
//! - [`ids`], [`principal`]: the domain's values.
//! - [`keys`]: signing keys, KEK wrapping, JWKS.
//! - [`oauth`]: client authentication, the grant, claims.
//! - [`audit`]: the group-commit audit writer.
//! - [`store`]: storage traits and the SQL implementation.
//! - [`http`], [`server`]: the HTTP surface (TLS, limits, the admin API).
//! - [`metrics`]: Prometheus metrics.
//! - [`x509`]: the little DER reading that certificates need.
//! - [`config`], [`app`], [`cli`]: settings, start-up and the command line.

pub mod app;
pub mod audit;
pub mod aws;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod ids;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod principal;
pub mod ratelimit;
pub mod rotation;
pub mod server;
pub mod store;
pub mod workload;
pub mod x509;
