//! The admin API under `/admin/v1`: orgs, agents, credentials, signing keys,
//! the audit log and the decision records, behind bearer tokens made by `nomos-issuer admin token create`.
//!
//! The document at `/admin/v1/openapi.json` (checked in as `docs/openapi.json`)
//! describes every operation; `tests/schemathesis/run` fuzzes the server
//! against it. Errors are `{"error", "message"}` JSON with the status the
//! document names (see `error.rs`); no input produces a 5xx: 503 is a store
//! outage, 500 a fault of the issuer.

mod agents;
mod audit;
mod claims;
mod credentials;
mod error;
mod extract;
mod keys;
mod orgs;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

pub use error::AdminError;

use crate::app::{App, now};
use crate::principal::hash_secret;
use agents::{create_agent, get_agent, list_agents};
use audit::{get_audit, query_audit, query_decisions};
use claims::{clear_session_claims, set_session_claims};
use credentials::{add_credential, list_credentials, revoke_credential};
use keys::{list_keys, revoke_key, rotate_keys};
use orgs::{create_org, get_org, list_orgs, update_org};

/// The OpenAPI document, served as checked in.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The largest admin request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The admin routes (nested under `/admin/v1`).
pub fn router(app: Arc<App>) -> Router<Arc<App>> {
    let protected = Router::new()
        .route("/orgs", get(list_orgs).post(create_org))
        .route("/orgs/{org}", get(get_org).patch(update_org))
        .route(
            "/orgs/{org}/session-claims",
            put(set_session_claims).delete(clear_session_claims),
        )
        .route("/orgs/{org}/agents", get(list_agents).post(create_agent))
        .route("/orgs/{org}/agents/{agent}", get(get_agent))
        .route(
            "/orgs/{org}/agents/{agent}/session-claims",
            put(set_session_claims).delete(clear_session_claims),
        )
        .route(
            "/orgs/{org}/credentials",
            get(list_credentials).post(add_credential),
        )
        .route(
            "/orgs/{org}/credentials/{credential}",
            delete(revoke_credential),
        )
        .route(
            "/orgs/{org}/agents/{agent}/credentials",
            get(list_credentials).post(add_credential),
        )
        .route(
            "/orgs/{org}/agents/{agent}/credentials/{credential}",
            delete(revoke_credential),
        )
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/keys/{kid}/revoke", post(revoke_key))
        .route("/audit", get(query_audit))
        .route("/audit/decisions", get(query_decisions))
        .route("/audit/{jti}", get(get_audit))
        .route_layer(middleware::from_fn_with_state(app, require_token));
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .method_not_allowed_fallback(|| async {
            AdminError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this method is not allowed here",
            )
        })
        .fallback(|| async { AdminError::not_found("no such admin endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(error::name_request_id))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Checks `Authorization: Bearer <admin token>` against the stored hashes; a
/// revoked or expired token is refused alike.
async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty() && t.len() <= 256);
    let Some(token) = token else {
        return AdminError::unauthorized().into_response();
    };
    match app
        .store
        .admin_token_by_hash(&hash_secret(token), now())
        .await
    {
        Ok(Some(t)) => {
            tracing::info!(admin_token = %t.id, name = %t.name, "admin request");
            next.run(req).await
        }
        Ok(None) => AdminError::unauthorized().into_response(),
        Err(e) => AdminError::from(e).into_response(),
    }
}
