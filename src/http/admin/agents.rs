//! `/orgs/{org}/agents` and `/orgs/{org}/agents/{agent}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::error::{AdminError, Result};
use super::extract::{AgentInPath, JsonBody, OrgInPath, public_keys};
use super::views::{AgentList, AgentView, CreatedAgent, CredentialView, created};
use crate::app::{App, now};
use crate::ids::{AgentId, Subject};
use crate::principal::Credential;
use crate::store::AgentInfo;

pub(super) async fn list_agents(
    State(app): State<Arc<App>>,
    OrgInPath(org): OrgInPath,
) -> Result<Json<AgentList>> {
    match app.store.list_agents(&org).await? {
        Some(agents) => Ok(Json(AgentList {
            agents: agents.iter().map(AgentView::from).collect(),
        })),
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
    let keys = b.public_jwks.as_ref().map(public_keys).transpose()?;
    let (credential, secret) = Credential::keys_or_secret(keys);
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
    Ok(created(CreatedAgent {
        agent: AgentView::from(&info),
        client_id: Subject::Agent(org, agent).to_string(),
        credential: CredentialView::new(&credential, t, None),
        client_secret: secret,
    }))
}

pub(super) async fn get_agent(
    State(app): State<Arc<App>>,
    AgentInPath(org, agent): AgentInPath,
) -> Result<Json<AgentView>> {
    match app.store.agent(&org, &agent).await? {
        Some(a) => Ok(Json(AgentView::from(&a))),
        None => Err(AdminError::not_found(format!(
            "agent {agent} of org {org} does not exist"
        ))),
    }
}
