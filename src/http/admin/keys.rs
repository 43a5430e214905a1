//! The signing keys: list, rotate, revoke.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{AdminError, Result};
use super::extract::{object, path, payload_too_large, unsupported_media_type};
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
        tracing::info!(?transitions, "signing keys changed through the admin API");
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

pub(super) async fn rotate_keys(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    raw: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    let raw = raw.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        _ => AdminError::bad_request("the request body could not be read"),
    })?;
    // The body is optional: empty means a scheduled-style rotation.
    let r: Rotate = if raw.is_empty() {
        Rotate::default()
    } else {
        if !crate::http::media_type_is(&headers, "application/json") {
            return Err(unsupported_media_type());
        }
        let value: Value = serde_json::from_slice(&raw)
            .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))?;
        object(value)?
    };
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
    p: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let kid = path(p)?;
    run_key_request(&app, &KeyRequest::Revoke(kid)).await?;
    keys_now(&app).await
}
