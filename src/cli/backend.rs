//! Where the management commands (`org`, `agent`, `credential`) act: the
//! store itself, or a running issuer's admin API when `--addr`/`NOMOS_ADDR`
//! is set. Each command is written once, against [`Backend`]; both backends
//! answer with the admin API's views, so that `--json` prints the same either
//! way.

use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;

use super::remote::{Remote, RemoteArgs};
use crate::app::{now, open_store};
use crate::config::Settings;
use crate::http::admin::views::{
    AgentView, CreatedAgent, CreatedCredential, CreatedOrg, CredentialView, OrgView,
};
use crate::ids::{AgentId, OrgId, Subject};
use crate::keys::PublicJwk;
use crate::principal::session_claims::SessionClaims;
use crate::principal::{Credential, OrgPolicy, PolicyChange, secret_limit_reached};
use crate::store::{AgentInfo, OrgInfo, Store, StoreError};

/// The operations of the admin API on orgs, agents and credentials.
#[async_trait]
pub(super) trait Backend: Send + Sync {
    /// Creates an org with a first client secret.
    async fn create_org(&self, org: &OrgId, policy: &OrgPolicy) -> anyhow::Result<CreatedOrg>;
    /// Every org, in id order.
    async fn orgs(&self) -> anyhow::Result<Vec<OrgView>>;
    /// One org.
    async fn org(&self, org: &OrgId) -> anyhow::Result<OrgView>;
    /// Changes an org's policy.
    async fn update_org(&self, org: &OrgId, change: &PolicyChange) -> anyhow::Result<OrgView>;
    /// Sets (or, with `None`, clears) the session claims of an org or agent.
    async fn set_session_claims(
        &self,
        subject: &Subject,
        claims: Option<&SessionClaims>,
    ) -> anyhow::Result<()>;
    /// Creates an agent with these public keys, or else a client secret.
    async fn create_agent(
        &self,
        org: &OrgId,
        agent: &AgentId,
        keys: Option<Vec<PublicJwk>>,
    ) -> anyhow::Result<CreatedAgent>;
    /// The agents of an org, in id order.
    async fn agents(&self, org: &OrgId) -> anyhow::Result<Vec<AgentView>>;
    /// One agent.
    async fn agent(&self, org: &OrgId, agent: &AgentId) -> anyhow::Result<AgentView>;
    /// Adds these public keys, or else a client secret, to an org or agent.
    async fn add_credential(
        &self,
        subject: &Subject,
        keys: Option<Vec<PublicJwk>>,
    ) -> anyhow::Result<CreatedCredential>;
    /// The credentials of an org or agent, revoked ones included.
    async fn credentials(&self, subject: &Subject) -> anyhow::Result<Vec<CredentialView>>;
    /// Revokes an active credential.
    async fn revoke_credential(&self, subject: &Subject, id: &str) -> anyhow::Result<()>;
}

/// The admin API when `--addr` is given, else the store of the configuration.
pub(super) async fn connect(
    settings: &Settings,
    remote: &RemoteArgs,
) -> anyhow::Result<Box<dyn Backend>> {
    match Remote::from_args(remote)? {
        Some(r) => Ok(Box::new(r)),
        None => Ok(Box::new(Local(open_store(settings, false).await?))),
    }
}

/// The store itself. No cache to drop: a running issuer notices the change
/// through the principal change log within a second.
pub(super) struct Local(pub Arc<dyn Store>);

/// `NotFound` from a read that answers `None`.
fn missing(what: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{what} does not exist")
}

#[async_trait]
impl Backend for Local {
    async fn create_org(&self, org: &OrgId, policy: &OrgPolicy) -> anyhow::Result<CreatedOrg> {
        let (secret, credential) = Credential::new_secret();
        let t = now();
        self.0.create_org(org, policy, &credential, t).await?;
        let info = OrgInfo {
            id: org.clone(),
            policy: policy.clone(),
            created_at: t,
        };
        Ok(CreatedOrg {
            org: OrgView::from(&info),
            client_id: Subject::Org(org.clone()).to_string(),
            credential: CredentialView::new(&credential, t, None),
            client_secret: secret,
        })
    }

    async fn orgs(&self) -> anyhow::Result<Vec<OrgView>> {
        let mut all = Vec::new();
        loop {
            let after = all.last().map(|o: &OrgView| o.id.clone());
            let page = self.0.list_orgs(after.as_ref(), 1000).await?;
            all.extend(page.iter().map(OrgView::from));
            if page.len() < 1000 {
                return Ok(all);
            }
        }
    }

    async fn org(&self, org: &OrgId) -> anyhow::Result<OrgView> {
        match self.0.org(org).await? {
            Some(o) => Ok(OrgView::from(&o)),
            None => Err(missing(format!("org {org}"))),
        }
    }

    async fn update_org(&self, org: &OrgId, change: &PolicyChange) -> anyhow::Result<OrgView> {
        Ok(OrgView::from(&self.0.update_org(org, change).await?))
    }

    async fn set_session_claims(
        &self,
        subject: &Subject,
        claims: Option<&SessionClaims>,
    ) -> anyhow::Result<()> {
        Ok(self.0.set_session_claims(subject, claims).await?)
    }

    async fn create_agent(
        &self,
        org: &OrgId,
        agent: &AgentId,
        keys: Option<Vec<PublicJwk>>,
    ) -> anyhow::Result<CreatedAgent> {
        let (credential, secret) = Credential::keys_or_secret(keys);
        let t = now();
        self.0.create_agent(org, agent, &credential, t).await?;
        let info = AgentInfo {
            org: org.clone(),
            id: agent.clone(),
            created_at: t,
        };
        Ok(CreatedAgent {
            agent: AgentView::from(&info),
            client_id: Subject::Agent(org.clone(), agent.clone()).to_string(),
            credential: CredentialView::new(&credential, t, None),
            client_secret: secret,
        })
    }

    async fn agents(&self, org: &OrgId) -> anyhow::Result<Vec<AgentView>> {
        match self.0.list_agents(org).await? {
            Some(agents) => Ok(agents.iter().map(AgentView::from).collect()),
            None => Err(missing(format!("org {org}"))),
        }
    }

    async fn agent(&self, org: &OrgId, agent: &AgentId) -> anyhow::Result<AgentView> {
        match self.0.agent(org, agent).await? {
            Some(a) => Ok(AgentView::from(&a)),
            None => Err(missing(format!("agent {agent} of org {org}"))),
        }
    }

    async fn add_credential(
        &self,
        subject: &Subject,
        keys: Option<Vec<PublicJwk>>,
    ) -> anyhow::Result<CreatedCredential> {
        let (credential, secret) = Credential::keys_or_secret(keys);
        let t = now();
        match self.0.add_credential(subject, &credential, t).await {
            Err(StoreError::Conflict(_)) => return Err(anyhow!(secret_limit_reached(subject))),
            r => r?,
        }
        Ok(CreatedCredential {
            credential: CredentialView::new(&credential, t, None),
            client_secret: secret,
        })
    }

    async fn credentials(&self, subject: &Subject) -> anyhow::Result<Vec<CredentialView>> {
        match self.0.credentials(subject).await? {
            Some(list) => Ok(list.iter().map(CredentialView::from).collect()),
            None => Err(missing(subject)),
        }
    }

    async fn revoke_credential(&self, subject: &Subject, id: &str) -> anyhow::Result<()> {
        Ok(self.0.revoke_credential(subject, id, now()).await?)
    }
}
