//! Extractors whose rejection is an [`AdminError`], as in axum's
//! `error-handling` example: a handler receives only what it can use, and a
//! request it cannot use is answered in the API's own error shape.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::MAX_BODY;
use super::error::{AdminError, Result};
use crate::ids::{AgentId, OrgId, Subject};
use crate::keys::PublicJwk;

/// A JSON object body as `T`: 415 for another media type, 413 over the
/// limit, 400 for anything but an object of the expected fields.
pub(super) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let value = match Json::<Value>::from_request(req, state).await {
            Ok(Json(v)) => v,
            Err(axum::extract::rejection::JsonRejection::MissingJsonContentType(_)) => {
                return Err(unsupported_media_type());
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(payload_too_large());
            }
            Err(e) => {
                return Err(AdminError::bad_request(format!(
                    "invalid JSON body: {}",
                    e.body_text()
                )));
            }
        };
        object(value).map(JsonBody)
    }
}

/// Like [`JsonBody`], but an empty body (of any media type) is `T::default()`.
pub(super) struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let json = crate::http::media_type_is(req.headers(), "application/json");
        let raw = Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
                _ => AdminError::bad_request("the request body could not be read"),
            })?;
        if raw.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        if !json {
            return Err(unsupported_media_type());
        }
        let value: Value = serde_json::from_slice(&raw)
            .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))?;
        object(value).map(OptionalJsonBody)
    }
}

/// Derived deserialisers also take a JSON array for a struct: only an object is a body.
fn object<T: DeserializeOwned>(value: Value) -> Result<T> {
    if !value.is_object() {
        return Err(AdminError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))
}

fn unsupported_media_type() -> AdminError {
    AdminError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Content-Type must be application/json",
    )
}

fn payload_too_large() -> AdminError {
    AdminError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body exceeds {MAX_BODY} bytes"),
    )
}

/// The query string as `T`; 400 when it does not fit.
pub(super) struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| QueryParams(v))
            .map_err(|e| AdminError::bad_request(e.body_text()))
    }
}

/// Path parameters as `T`; 404 when they do not fit, for no object has such a path.
pub(super) struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathParams(v))
            .map_err(|_| AdminError::not_found("no such object"))
    }
}

/// The ids in `/orgs/{org}[/agents/{agent}]...`, as text.
#[derive(Deserialize)]
struct Ids {
    org: String,
    agent: Option<String>,
}

impl Ids {
    async fn from_parts<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<Self> {
        PathParams::<Ids>::from_request_parts(parts, state)
            .await
            .map(|PathParams(ids)| ids)
    }

    /// An id that cannot exist names no object: 404, like one that does not exist.
    fn org(&self) -> Result<OrgId> {
        OrgId::parse(&self.org)
            .map_err(|_| AdminError::not_found(format!("org {:?} does not exist", self.org)))
    }

    fn agent(&self) -> Result<Option<AgentId>> {
        self.agent
            .as_deref()
            .map(|text| {
                AgentId::parse(text)
                    .map_err(|_| AdminError::not_found(format!("agent {text:?} does not exist")))
            })
            .transpose()
    }
}

/// The org of `/orgs/{org}/...`.
pub(super) struct OrgInPath(pub OrgId);

impl<S: Send + Sync> FromRequestParts<S> for OrgInPath {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        Ids::from_parts(parts, state).await?.org().map(OrgInPath)
    }
}

/// The agent of `/orgs/{org}/agents/{agent}/...`.
pub(super) struct AgentInPath(pub OrgId, pub AgentId);

impl<S: Send + Sync> FromRequestParts<S> for AgentInPath {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let ids = Ids::from_parts(parts, state).await?;
        let org = ids.org()?;
        match ids.agent()? {
            Some(agent) => Ok(AgentInPath(org, agent)),
            None => Err(AdminError::not_found("no such object")),
        }
    }
}

/// The org or agent of `/orgs/{org}[/agents/{agent}]/...`: the routes that
/// treat both alike (credentials) take this.
pub(super) struct SubjectInPath(pub Subject);

impl<S: Send + Sync> FromRequestParts<S> for SubjectInPath {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let ids = Ids::from_parts(parts, state).await?;
        let org = ids.org()?;
        Ok(SubjectInPath(match ids.agent()? {
            Some(agent) => Subject::Agent(org, agent),
            None => Subject::Org(org),
        }))
    }
}

/// `public_jwks` of a request: one JWK or a JWKS, checked as `agent create --public-key` checks a file.
pub(super) fn public_keys(v: &Value) -> Result<Vec<PublicJwk>> {
    PublicJwk::parse_set(&v.to_string())
        .map_err(|e| AdminError::bad_request(format!("public_jwks: {e}")))
}
