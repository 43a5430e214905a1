//! The signing keys: list, rotate, revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{AdminError, Result};
use super::extract::{OptionalJsonBody, PathParams};
use super::views::key_json;
use crate::app::{App, now};
use crate::keys::rotation::Request as KeyRequest;

pub(super) async fn keys_now(app: &App) -> Result<Json<Value>> {
    let keys = app.store.list_keys().await?;
    Ok(Json(json!({
        "keys": keys.iter().map(key_json).collect::<Vec<_>>()
    })))
}

pub(super) async fn list_keys(State(app): State<Arc<App>>) -> Result<Json<Value>> {
    keys_now(&app).await
}

/// Runs a key request like `keys rotate|revoke`, and publishes the result on
/// this replica at once (the others follow through the store's notification).
pub(super) async fn run_key_request(app: &App, request: &KeyRequest) -> Result<()> {
    let Some(transitions) = app.manager.request(request, now()).await? else {
        return Err(AdminError::conflict(
            "the signing keys kept changing under this request; nothing was done, try again",
        ));
    };
    if !transitions.is_empty() {
        let transitions: Vec<String> = transitions.iter().map(ToString::to_string).collect();
        tracing::info!(
            transitions = %transitions.join("; "),
            "signing keys changed through the admin API"
        );
        if let Err(e) = app.manager.reload().await {
            tracing::warn!(error = %e, "cannot reload signing keys after the change");
        }
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Rotate {
    #[serde(default)]
    now: bool,
}

/// `POST /keys/rotate`; an empty body is a rotation like the scheduler's.
pub(super) async fn rotate_keys(
    State(app): State<Arc<App>>,
    OptionalJsonBody(r): OptionalJsonBody<Rotate>,
) -> Result<Json<Value>> {
    let request = if r.now {
        KeyRequest::RotateNow
    } else {
        KeyRequest::Rotate
    };
    run_key_request(&app, &request).await?;
    keys_now(&app).await
}

pub(super) async fn revoke_key(
    State(app): State<Arc<App>>,
    PathParams(kid): PathParams<String>,
) -> Result<Json<Value>> {
    run_key_request(&app, &KeyRequest::Revoke(kid)).await?;
    keys_now(&app).await
}
