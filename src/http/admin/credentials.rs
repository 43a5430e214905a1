//! The credentials of orgs and agents: list, add, revoke.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{AdminError, Result};
use super::extract::{agent_id, body, org_id, path, public_keys};
use super::views::{created, credential_json};
use crate::app::{App, now};
use crate::ids::Subject;
use crate::principal::{Credential, CredentialKind};
use crate::store::{CredentialInfo, StoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCredential {
    kind: String,
    public_jwks: Option<Value>,
}

pub(super) async fn list_credentials(app: &App, subject: Subject) -> Result<Json<Value>> {
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

pub(super) async fn add_credential(
    app: &App,
    subject: Subject,
    b: NewCredential,
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

pub(super) async fn revoke_credential(app: &App, subject: Subject, id: &str) -> Result<StatusCode> {
    app.store.revoke_credential(&subject, id, now()).await?;
    // Before answering: a request after the 204 must not find it cached.
    app.tokens.principals.forget(&subject);
    tracing::info!(%subject, credential = %id, "credential revoked through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn org_credentials(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let org = org_id(&path(p)?)?;
    list_credentials(&app, Subject::Org(org)).await
}

pub(super) async fn add_org_credential(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<String>, PathRejection>,
    b: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Response> {
    let org = org_id(&path(p)?)?;
    add_credential(&app, Subject::Org(org), body(b)?).await
}

pub(super) async fn revoke_org_credential(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode> {
    let (org, id) = path(p)?;
    revoke_credential(&app, Subject::Org(org_id(&org)?), &id).await
}

pub(super) async fn agent_credentials(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>> {
    let (org, agent) = path(p)?;
    list_credentials(&app, Subject::Agent(org_id(&org)?, agent_id(&agent)?)).await
}

pub(super) async fn add_agent_credential(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
    b: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Response> {
    let (org, agent) = path(p)?;
    let subject = Subject::Agent(org_id(&org)?, agent_id(&agent)?);
    add_credential(&app, subject, body(b)?).await
}

pub(super) async fn revoke_agent_credential(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<(String, String, String)>, PathRejection>,
) -> Result<StatusCode> {
    let (org, agent, id) = path(p)?;
    let subject = Subject::Agent(org_id(&org)?, agent_id(&agent)?);
    revoke_credential(&app, subject, &id).await
}
