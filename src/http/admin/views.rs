//! The admin API's bodies: orgs, agents, credentials and keys as it shows them
//! (an audit record's is `audit::query::record_json`, which `audit show
//! --json` prints too).
//!
//! The views of orgs, agents and credentials are types, serialised by the
//! server and read by the command line's client (`cli::remote`): one
//! definition of what goes over the wire, and the same JSON from `--json`
//! whether a command used the store or the admin API.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ids::{AgentId, Audience, OrgId};
use crate::keys::StoredKey;
use crate::principal::{ClientSecret, Credential, CredentialKind};
use crate::store::{AgentInfo, CredentialInfo, OrgInfo};

/// An org (`Org` in the OpenAPI document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgView {
    /// The id.
    pub id: OrgId,
    /// The audiences its tokens may carry; the first is the default.
    pub audiences: Vec<Audience>,
    /// The longest lifetime of its tokens, in seconds.
    pub max_ttl_seconds: u32,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<&OrgInfo> for OrgView {
    fn from(o: &OrgInfo) -> Self {
        OrgView {
            id: o.id.clone(),
            audiences: o.policy.audiences.clone(),
            max_ttl_seconds: o.policy.max_ttl,
            created_at: o.created_at,
        }
    }
}

/// A page of orgs (`OrgList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPage {
    /// The orgs, in id order.
    pub orgs: Vec<OrgView>,
    /// The `after` of the next page; `None` on the last.
    pub next: Option<OrgId>,
}

/// An agent (`Agent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// Its org.
    pub org_id: OrgId,
    /// The id.
    pub id: AgentId,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<&AgentInfo> for AgentView {
    fn from(a: &AgentInfo) -> Self {
        AgentView {
            org_id: a.org.clone(),
            id: a.id.clone(),
            created_at: a.created_at,
        }
    }
}

/// The agents of an org (`AgentList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentList {
    /// In id order.
    pub agents: Vec<AgentView>,
}

/// What a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    /// A client secret.
    Secret,
    /// Public keys for `private_key_jwt`.
    PublicKey,
}

/// A credential, never the secret itself (`Credential`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialView {
    /// The id.
    pub id: String,
    /// What it is.
    pub kind: CredentialType,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// The `kid` of each public key; empty for a secret.
    pub kids: Vec<String>,
}

impl CredentialView {
    /// The view of a credential with its history.
    pub fn new(c: &Credential, created_at: i64, revoked_at: Option<i64>) -> Self {
        let (kind, kids) = match &c.kind {
            CredentialKind::Secret { .. } => (CredentialType::Secret, Vec::new()),
            CredentialKind::PublicKeys(keys) => (
                CredentialType::PublicKey,
                keys.iter().map(|k| k.kid.clone()).collect(),
            ),
        };
        CredentialView {
            id: c.id.clone(),
            kind,
            created_at,
            revoked_at,
            kids,
        }
    }
}

impl From<&CredentialInfo> for CredentialView {
    fn from(c: &CredentialInfo) -> Self {
        CredentialView::new(&c.credential, c.created_at, c.revoked_at)
    }
}

/// The credentials of an org or agent (`CredentialList`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialList {
    /// Oldest first, revoked ones included.
    pub credentials: Vec<CredentialView>,
}

/// A new org with its first credential (`CreatedOrg`).
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedOrg {
    /// The org.
    pub org: OrgView,
    /// Its OAuth client id, `org/ORG`.
    pub client_id: String,
    /// Its first credential.
    pub credential: CredentialView,
    /// The secret, shown once.
    pub client_secret: ClientSecret,
}

/// A new agent with its first credential (`CreatedAgent`).
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedAgent {
    /// The agent.
    pub agent: AgentView,
    /// Its OAuth client id, `org/ORG/agent/AGENT`.
    pub client_id: String,
    /// Its first credential.
    pub credential: CredentialView,
    /// The secret, shown once; `None` for public keys.
    pub client_secret: Option<ClientSecret>,
}

/// A credential just added (`CreatedCredential`).
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedCredential {
    /// The credential.
    pub credential: CredentialView,
    /// The secret, shown once; `None` for public keys.
    pub client_secret: Option<ClientSecret>,
}

pub(super) fn key_json(k: &StoredKey) -> Value {
    json!({
        "kid": k.kid, "alg": k.alg.as_str(), "state": k.state.as_str(),
        "created_at": k.created_at, "activated_at": k.activated_at,
        "retired_at": k.retired_at,
        "public_jwk": k.state.is_published().then(|| k.public_jwk.to_json()),
    })
}

pub(super) fn created(v: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}
