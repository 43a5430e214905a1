//! The credentials of orgs and agents alike (`/orgs/{org}[/agents/{agent}]/credentials`):
//! list, add, revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{AdminError, Result};
use super::extract::{JsonBody, PathParams, SubjectInPath, public_keys};
use super::views::{created, credential_json};
use crate::app::{App, now};
use crate::principal::{Credential, CredentialKind};
use crate::store::{CredentialInfo, StoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCredential {
    kind: String,
    public_jwks: Option<Value>,
}

/// `GET .../credentials`: every credential, revoked ones included.
pub(super) async fn list_credentials(
    State(app): State<Arc<App>>,
    SubjectInPath(subject): SubjectInPath,
) -> Result<Json<Value>> {
    match app.store.credentials(&subject).await? {
        Some(list) => Ok(Json(json!({
            "credentials": list
                .iter()
                .map(|c: &CredentialInfo| credential_json(&c.credential, c.created_at, c.revoked_at))
                .collect::<Vec<_>>()
        }))),
        None => Err(AdminError::not_found(format!("{subject} does not exist"))),
    }
}

/// `POST .../credentials`: a second secret (to replace one without downtime) or public keys.
pub(super) async fn add_credential(
    State(app): State<Arc<App>>,
    SubjectInPath(subject): SubjectInPath,
    JsonBody(b): JsonBody<NewCredential>,
) -> Result<Response> {
    let (credential, secret) = match (b.kind.as_str(), &b.public_jwks) {
        ("secret", None) => {
            let (s, c) = Credential::new_secret();
            (c, Some(s))
        }
        ("public_key", Some(v)) => (
            Credential::new(CredentialKind::PublicKeys(public_keys(v)?)),
            None,
        ),
        ("secret", Some(_)) => {
            return Err(AdminError::bad_request(
                "a secret credential takes no public_jwks",
            ));
        }
        ("public_key", None) => {
            return Err(AdminError::bad_request(
                "a public_key credential needs public_jwks",
            ));
        }
        (other, _) => {
            return Err(AdminError::bad_request(format!(
                "kind {other:?}: use secret or public_key"
            )));
        }
    };
    let t = now();
    match app.store.add_credential(&subject, &credential, t).await {
        Err(StoreError::Conflict(_)) => {
            return Err(AdminError::conflict(format!(
                "{subject} already has {} active secrets: revoke one first",
                crate::store::MAX_ACTIVE_SECRETS
            )));
        }
        r => r?,
    }
    app.tokens.principals.forget(&subject);
    tracing::info!(%subject, credential = %credential.id, "credential added through the admin API");
    Ok(created(json!({
        "credential": credential_json(&credential, t, None),
        "client_secret": secret.as_ref().map(|s| s.expose()),
    })))
}

/// The `{credential}` of `.../credentials/{credential}`.
#[derive(Deserialize)]
pub(super) struct CredentialInPath {
    credential: String,
}

/// `DELETE .../credentials/{credential}`.
pub(super) async fn revoke_credential(
    State(app): State<Arc<App>>,
    SubjectInPath(subject): SubjectInPath,
    PathParams(CredentialInPath { credential: id }): PathParams<CredentialInPath>,
) -> Result<StatusCode> {
    app.store.revoke_credential(&subject, &id, now()).await?;
    // Before answering: a request after the 204 must not find it cached.
    app.tokens.principals.forget(&subject);
    tracing::info!(%subject, credential = %id, "credential revoked through the admin API");
    Ok(StatusCode::NO_CONTENT)
}
