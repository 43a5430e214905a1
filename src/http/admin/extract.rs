//! Reading requests: bodies, paths and ids.

use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::MAX_BODY;
use super::error::{AdminError, Result};
use crate::ids::{AgentId, OrgId};
use crate::keys::PublicJwk;

/// A JSON object body as `T`: 415 for another media type, 413 over the
/// limit, 400 for anything but an object of the expected fields.
pub(super) fn body<T: DeserializeOwned>(
    r: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<T> {
    let value = match r {
        Ok(Json(v)) => v,
        Err(JsonRejection::MissingJsonContentType(_)) => return Err(unsupported_media_type()),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(payload_too_large()),
        Err(e) => {
            return Err(AdminError::bad_request(format!(
                "invalid JSON body: {}",
                e.body_text()
            )));
        }
    };
    object(value)
}

/// Derived deserialisers also take a JSON array for a struct: only an object is a body.
pub(super) fn object<T: DeserializeOwned>(value: Value) -> Result<T> {
    if !value.is_object() {
        return Err(AdminError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))
}

pub(super) fn unsupported_media_type() -> AdminError {
    AdminError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Content-Type must be application/json",
    )
}

pub(super) fn payload_too_large() -> AdminError {
    AdminError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body exceeds {MAX_BODY} bytes"),
    )
}

pub(super) fn path<T>(r: std::result::Result<Path<T>, PathRejection>) -> Result<T> {
    r.map(|Path(v)| v)
        .map_err(|_| AdminError::not_found("no such object"))
}

pub(super) fn org_id(text: &str) -> Result<OrgId> {
    OrgId::parse(text).map_err(|_| AdminError::not_found(format!("org {text:?} does not exist")))
}

pub(super) fn agent_id(text: &str) -> Result<AgentId> {
    AgentId::parse(text)
        .map_err(|_| AdminError::not_found(format!("agent {text:?} does not exist")))
}

pub(super) fn public_keys(v: &Value) -> Result<Vec<PublicJwk>> {
    PublicJwk::parse_set(&v.to_string())
        .map_err(|e| AdminError::bad_request(format!("public_jwks: {e}")))
}

pub(super) fn limit(l: Option<u32>) -> Result<u32> {
    match l.unwrap_or(100) {
        l @ 1..=1000 => Ok(l),
        _ => Err(AdminError::bad_request("limit must be 1-1000")),
    }
}
