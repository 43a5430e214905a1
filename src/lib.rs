//! nomos-issuer: a standalone OpenID Connect issuer for machine identities.
//!
//! The modules form layers. A module may use its own layer and the layers
//! before it, never a layer after it; `tests/it/layering.rs` reads the list
//! below and checks every `crate::` and `super::` path in `src/` against it
//! (a longer name wins over its prefix: `store::error` is a value, the rest
//! of `store` is the store).
//!
//! 1. values: `ids`, `x509`, `clock`, `ratelimit`, `store::error`
//! 2. domain: `principal`, `keys`, `oauth`, `audit`
//! 3. store: `store`
//! 4. services: `audit::writer`, `key_manager`, `metrics`, `workload`, `aws`
//! 5. configuration: `config`
//! 6. application: `app`
//! 7. surfaces: `http`, `server`, `aws::doctor`
//! 8. command line: `cli`
//!
//! What each holds:
//! - [`ids`], [`principal`]: the domain's values: org and agent ids, subjects,
//!   audiences; principals, their credentials, policy and session claims.
//! - [`keys`]: signing keys, KEK wrapping, JWKS, the rotation plan (pure).
//! - [`oauth`]: client authentication, the grant, claims. It takes its
//!   collaborators as traits: a principal source, an audit sink, a clock.
//! - [`audit`]: audit records and the sink; [`audit::writer`], group commit.
//! - [`store`]: storage traits and the SQL implementation (Postgres, SQLite).
//! - [`key_manager`]: applying rotation plans through the store, the scheduler
//!   (the plan itself is [`keys::rotation`]).
//! - [`aws`]: trust policies, IAM evaluation, lint, and the doctor.
//! - [`http`], [`server`]: the HTTP surface (serving, limits, TLS, admin API).
//! - [`metrics`]: Prometheus metrics.
//! - [`config`], [`app`], [`cli`]: settings, start-up and the command line.

pub mod app;
pub mod audit;
pub mod aws;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod ids;
pub mod key_manager;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod principal;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod workload;
pub mod x509;
