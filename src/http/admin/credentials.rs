//! The credentials of orgs and agents alike (`/orgs/{org}[/agents/{agent}]/credentials`):
//! list, add, revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::error::{AdminError, Result};
use super::extract::{JsonBody, PathParams, SubjectInPath, public_keys};
use super::views::{CreatedCredential, CredentialList, CredentialView, created};
use crate::app::{App, now};
use crate::principal::{Credential, secret_limit_reached};
use crate::store::StoreError;

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
) -> Result<Json<CredentialList>> {
    match app.store.credentials(&subject).await? {
        Some(list) => Ok(Json(CredentialList {
            credentials: list.iter().map(CredentialView::from).collect(),
        })),
        None => Err(AdminError::not_found(format!("{subject} does not exist"))),
    }
}

/// `POST .../credentials`: a second secret (to replace one without downtime) or public keys.
pub(super) async fn add_credential(
    State(app): State<Arc<App>>,
    SubjectInPath(subject): SubjectInPath,
    JsonBody(b): JsonBody<NewCredential>,
) -> Result<Response> {
    let keys = match (b.kind.as_str(), &b.public_jwks) {
        ("secret", None) => None,
        ("public_key", Some(v)) => Some(public_keys(v)?),
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
    let (credential, secret) = Credential::keys_or_secret(keys);
    let t = now();
    match app.store.add_credential(&subject, &credential, t).await {
        Err(StoreError::Conflict(_)) => {
            return Err(AdminError::conflict(secret_limit_reached(&subject)));
        }
        r => r?,
    }
    app.tokens.principals.forget(&subject);
    tracing::info!(%subject, credential = %credential.id, "credential added through the admin API");
    Ok(created(CreatedCredential {
        credential: CredentialView::new(&credential, t, None),
        client_secret: secret,
    }))
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
