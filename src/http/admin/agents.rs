//! `/orgs/{org}/agents` and `/orgs/{org}/agents/{agent}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{AdminError, Result};
use super::extract::{AgentInPath, JsonBody, OrgInPath, public_keys};
use super::views::{agent_json, created, credential_json};
use crate::app::{App, now};
use crate::ids::{AgentId, Subject};
use crate::principal::{Credential, CredentialKind};
use crate::store::AgentInfo;

pub(super) async fn list_agents(
    State(app): State<Arc<App>>,
    OrgInPath(org): OrgInPath,
) -> Result<Json<Value>> {
    match app.store.list_agents(&org).await? {
        Some(agents) => Ok(Json(json!({
            "agents": agents.iter().map(agent_json).collect::<Vec<_>>()
        }))),
        None => Err(AdminError::not_found(format!("org {org} does not exist"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewAgent {
    id: String,
    public_jwks: Option<Value>,
}

pub(super) async fn create_agent(
    State(app): State<Arc<App>>,
    OrgInPath(org): OrgInPath,
    JsonBody(b): JsonBody<NewAgent>,
) -> Result<Response> {
    let agent = AgentId::parse(&b.id).map_err(|e| AdminError::bad_request(format!("id: {e}")))?;
    let (credential, secret) = match &b.public_jwks {
        Some(v) => (
            Credential::new(CredentialKind::PublicKeys(public_keys(v)?)),
            None,
        ),
        None => {
            let (s, c) = Credential::new_secret();
            (c, Some(s))
        }
    };
    let t = now();
    app.store.create_agent(&org, &agent, &credential, t).await?;
    app.tokens
        .principals
        .forget(&Subject::Agent(org.clone(), agent.clone()));
    tracing::info!(org = %org, agent = %agent, "agent created through the admin API");
    let info = AgentInfo {
        org: org.clone(),
        id: agent.clone(),
        created_at: t,
    };
    Ok(created(json!({
        "agent": agent_json(&info),
        "client_id": Subject::Agent(org, agent).to_string(),
        "credential": credential_json(&credential, t, None),
        "client_secret": secret.as_ref().map(|s| s.expose()),
    })))
}

pub(super) async fn get_agent(
    State(app): State<Arc<App>>,
    AgentInPath(org, agent): AgentInPath,
) -> Result<Json<Value>> {
    match app.store.agent(&org, &agent).await? {
        Some(a) => Ok(Json(agent_json(&a))),
        None => Err(AdminError::not_found(format!(
            "agent {agent} of org {org} does not exist"
        ))),
    }
}
