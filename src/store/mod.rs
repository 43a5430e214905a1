//! Storage behind small traits, and one SQL implementation for both backends.
//!
//! Postgres is the production store (several replicas share it); SQLite is the
//! embedded single-node default. Both run the same queries through sqlx's `Any`
//! driver and the same conformance suite (`tests/it/store_conformance.rs`).

pub mod error;
mod sql;
mod sqlite_files;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::StoreError;
pub use sql::SqlStore;

use crate::audit::decision::{Decision, DecisionRecord};
use crate::audit::{AuditRecord, Issued};
use crate::ids::{AgentId, OrgId, Subject};
use crate::keys::StoredKey;
use crate::principal::session_claims::SessionClaims;
use crate::principal::{Credential, CredentialKind, OrgPolicy, PolicyChange, Principal};

/// A change to the key set: given the keys as they are under the lock, the keys
/// as they should be. An `Err` abandons the update.
pub type KeyUpdate<'a> = dyn Fn(&[StoredKey]) -> Result<Vec<StoredKey>, String> + Send + Sync + 'a;

/// Signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key, in creation order.
    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError>;

    /// Runs `update` on the current keys inside one transaction that holds the key
    /// lock, writes the difference (new keys, changed states, destroyed private
    /// keys; nothing is ever deleted) and tells other replicas. Concurrent updates
    /// from any number of processes are serialised, so each sees the other's result.
    async fn update_keys(&self, update: &KeyUpdate<'_>) -> Result<Vec<StoredKey>, StoreError>;
}

/// Orgs, agents and credentials.
#[async_trait]
pub trait PrincipalStore: Send + Sync {
    /// Creates an org with its first credential, atomically.
    async fn create_org(
        &self,
        org: &OrgId,
        policy: &OrgPolicy,
        credential: &Credential,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Creates an agent of an existing org with its first credential, atomically.
    async fn create_agent(
        &self,
        org: &OrgId,
        agent: &AgentId,
        credential: &Credential,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The principal behind a subject with its active credentials, if it exists.
    async fn principal(&self, subject: &Subject) -> Result<Option<Principal>, StoreError>;

    /// The newest entry of the principal change log (0 when it is empty).
    async fn principal_change_head(&self) -> Result<i64, StoreError>;

    /// Changes to principals after `seq`: the newest seq seen and the changed
    /// subjects (`org/ORG` stands for the org and all its agents).
    async fn principal_changes_since(&self, seq: i64) -> Result<(i64, Vec<String>), StoreError>;

    /// Every org's and agent's effective session claims (for `aws lint`).
    async fn session_claims_all(&self) -> Result<Vec<(Subject, SessionClaims)>, StoreError>;

    /// Sets the AWS session claims of an org, or of one agent (`None` on an
    /// agent: inherit the org's).
    async fn set_session_claims(
        &self,
        subject: &Subject,
        claims: Option<&SessionClaims>,
    ) -> Result<(), StoreError>;

    /// Orgs in id order, after `after`, at most `limit`.
    async fn list_orgs(
        &self,
        after: Option<&OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgInfo>, StoreError>;

    /// One org.
    async fn org(&self, org: &OrgId) -> Result<Option<OrgInfo>, StoreError>;

    /// Applies a change to an org's policy; returns the org as it is now
    /// (`NotFound` when there is no such org).
    async fn update_org(&self, org: &OrgId, change: &PolicyChange) -> Result<OrgInfo, StoreError>;

    /// The agents of an org in id order; `None` when the org does not exist.
    async fn list_agents(&self, org: &OrgId) -> Result<Option<Vec<AgentInfo>>, StoreError>;

    /// One agent.
    async fn agent(&self, org: &OrgId, agent: &AgentId) -> Result<Option<AgentInfo>, StoreError>;

    /// Every credential of an org or agent, revoked ones included, oldest first;
    /// `None` when the subject does not exist.
    async fn credentials(
        &self,
        subject: &Subject,
    ) -> Result<Option<Vec<CredentialInfo>>, StoreError>;

    /// Adds a credential to an existing org or agent. A secret is refused
    /// (`Conflict`) while [`MAX_ACTIVE_SECRETS`] are active: revoke one first.
    async fn add_credential(
        &self,
        subject: &Subject,
        credential: &Credential,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Revokes an active credential of a subject (`NotFound` when there is none
    /// with that id).
    async fn revoke_credential(
        &self,
        subject: &Subject,
        id: &str,
        now: i64,
    ) -> Result<(), StoreError>;
}

pub use crate::principal::MAX_ACTIVE_SECRETS;

/// An org as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgInfo {
    /// The id.
    pub id: OrgId,
    /// Its token policy.
    pub policy: OrgPolicy,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// An agent as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// Its org.
    pub org: OrgId,
    /// The id.
    pub id: AgentId,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// A credential with its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    /// The credential (a secret only as its hash).
    pub credential: Credential,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

pub use crate::audit::query::AuditQuery;

/// An admin API token as listed (the token itself is stored only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// Opaque id, for revocation.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Creation time.
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// When it stops working (`None`: never).
    pub expires_at: Option<i64>,
}

/// Admin API tokens.
#[async_trait]
pub trait AdminTokens: Send + Sync {
    /// Stores a new token by its hash.
    async fn create_admin_token(
        &self,
        token: &AdminToken,
        hash: &[u8; 32],
    ) -> Result<(), StoreError>;

    /// The token with this hash if it is active at `now`: neither revoked nor
    /// expired.
    async fn admin_token_by_hash(
        &self,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<AdminToken>, StoreError>;

    /// Every token, revoked ones included, oldest first.
    async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError>;

    /// Revokes an active token (`NotFound` when there is none with that id).
    async fn revoke_admin_token(&self, id: &str, now: i64) -> Result<(), StoreError>;
}

/// The audit log of issued tokens.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Records a batch of issued tokens in one transaction, claiming their
    /// client-assertion ids in the same transaction. Returns, per token, whether it
    /// was recorded: `false` when its assertion id had been used before (then
    /// nothing is recorded for it). An error records nothing.
    async fn record_tokens(&self, batch: &[Issued]) -> Result<Vec<bool>, StoreError>;

    /// One audit record by `jti`.
    async fn token(&self, jti: &str) -> Result<Option<AuditRecord>, StoreError>;

    /// How many tokens have been recorded.
    async fn count_tokens(&self) -> Result<i64, StoreError>;

    /// Audit records matching a filter, newest first.
    async fn query_tokens(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    /// Deletes at most `limit` records of tokens issued before `before_iat`, in
    /// one short transaction; returns how many went.
    async fn purge_tokens_batch(&self, before_iat: i64, limit: u32) -> Result<u64, StoreError>;

    /// Deletes every record of a token issued before `before_iat`, batch after
    /// batch; after each full batch it pauses `pause_factor` times as long as
    /// the batch took (0: full speed). Returns how many went.
    async fn purge_tokens_paced(
        &self,
        before_iat: i64,
        pause_factor: u32,
    ) -> Result<u64, StoreError> {
        purge_paced(pause_factor, |limit| {
            self.purge_tokens_batch(before_iat, limit)
        })
        .await
    }

    /// Deletes every record of a token issued before `before_iat`, at full
    /// speed; returns how many went.
    async fn purge_tokens(&self, before_iat: i64) -> Result<u64, StoreError> {
        self.purge_tokens_paced(before_iat, 0).await
    }
}

/// Audit records one purge transaction deletes at most: short transactions and
/// locks.
pub const PURGE_BATCH: u32 = 10_000;

/// Runs `batch` (a purge of at most [`PURGE_BATCH`] records) until one comes
/// back short; after each full batch it pauses `pause_factor` times as long
/// as the batch took (0: full speed). Returns how many went.
async fn purge_paced<F, Fut>(pause_factor: u32, mut batch: F) -> Result<u64, StoreError>
where
    F: FnMut(u32) -> Fut + Send,
    Fut: std::future::Future<Output = Result<u64, StoreError>> + Send,
{
    let mut total = 0;
    loop {
        let started = std::time::Instant::now();
        let n = batch(PURGE_BATCH).await?;
        total += n;
        if n < u64::from(PURGE_BATCH) {
            return Ok(total);
        }
        if pause_factor > 0 {
            tokio::time::sleep(started.elapsed() * pause_factor).await;
        }
    }
}

pub use crate::audit::query::DecisionQuery;

/// Decision records: why requests were refused. Kept as long as the audit.
#[async_trait]
pub trait DecisionLog: Send + Sync {
    /// Records a batch of refusals in one statement.
    async fn record_decisions(&self, batch: &[Decision]) -> Result<(), StoreError>;

    /// Decision records matching a filter, newest first.
    async fn query_decisions(
        &self,
        query: &DecisionQuery,
    ) -> Result<Vec<DecisionRecord>, StoreError>;

    /// Deletes at most `limit` records from before `before`, in one short
    /// transaction; returns how many went.
    async fn purge_decisions_batch(&self, before: i64, limit: u32) -> Result<u64, StoreError>;

    /// [`AuditLog::purge_tokens_paced`] for decision records.
    async fn purge_decisions_paced(
        &self,
        before: i64,
        pause_factor: u32,
    ) -> Result<u64, StoreError> {
        purge_paced(pause_factor, |limit| {
            self.purge_decisions_batch(before, limit)
        })
        .await
    }

    /// The revoked credentials of these subjects, to tell a revoked
    /// credential from a wrong one (see `audit::decision::Decision::refine`).
    async fn revoked_credentials(
        &self,
        subjects: &[Subject],
    ) -> Result<Vec<(Subject, CredentialKind)>, StoreError>;
}

/// Replay defence for client assertions (ids are claimed with `record_tokens`).
#[async_trait]
pub trait ReplayGuard: Send + Sync {
    /// Forgets assertion ids whose assertions expired before `now`.
    async fn purge_assertion_jtis(&self, now: i64) -> Result<u64, StoreError>;
}

/// The issuer `serve` last served under, so that local minting agrees with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedIssuer {
    /// The issuer URL (the `iss` of its tokens).
    pub issuer: String,
    /// Whether it was `serve --dev-tls`.
    pub dev_tls: bool,
    /// When `serve` started, Unix seconds.
    pub served_at: i64,
}

/// Records the issuer `serve` serves under.
#[async_trait]
pub trait IssuerRecord: Send + Sync {
    /// Replaces the record: `serve` calls it when it starts.
    async fn record_served_issuer(&self, served: &ServedIssuer) -> Result<(), StoreError>;

    /// The record, if the store was ever served.
    async fn served_issuer(&self) -> Result<Option<ServedIssuer>, StoreError>;
}

/// A complete store.
#[async_trait]
pub trait Store:
    KeyStore + PrincipalStore + AuditLog + DecisionLog + ReplayGuard + AdminTokens + IssuerRecord
{
    /// `postgres` or `sqlite`.
    fn backend(&self) -> Backend;

    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Whether the schema is missing migrations (the database is reachable).
    async fn pending_migrations(&self) -> Result<usize, StoreError>;

    /// Checks the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pools' occupancy.
    fn pool_stats(&self) -> Vec<PoolStats>;

    /// Closes every connection, waiting for them to finish.
    async fn close(&self);

    /// Waits for a key change announced by another process. Postgres uses
    /// LISTEN/NOTIFY; other stores return `None` (callers poll).
    async fn key_change_listener(&self) -> Option<Box<dyn KeyChangeListener>>;
}

/// Notifications of key changes made by other processes.
#[async_trait]
pub trait KeyChangeListener: Send {
    /// Returns when a change was announced; `Err` when the listening connection
    /// failed (it reconnects on the next call).
    async fn changed(&mut self) -> Result<(), StoreError>;
}

/// Occupancy of one connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// `main` or `audit`.
    pub name: &'static str,
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// The Postgres channel key changes are announced on.
pub const KEY_CHANNEL: &str = "nomos_issuer_keys";

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Postgres: the production store.
    Postgres,
    /// SQLite: the embedded single-file default.
    Sqlite,
}

impl Backend {
    /// The backend a database URL names, if any.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }
}

/// Opens the store a URL names.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqlStore::connect(url).await?))
}

/// A principal store is what the principal cache reads.
#[async_trait]
impl<T: PrincipalStore + ?Sized> crate::oauth::principals::PrincipalSource for Arc<T> {
    async fn principal(&self, subject: &Subject) -> Result<Option<Principal>, StoreError> {
        PrincipalStore::principal(self.as_ref(), subject).await
    }
    async fn principal_change_head(&self) -> Result<i64, StoreError> {
        PrincipalStore::principal_change_head(self.as_ref()).await
    }
    async fn principal_changes_since(&self, seq: i64) -> Result<(i64, Vec<String>), StoreError> {
        PrincipalStore::principal_changes_since(self.as_ref(), seq).await
    }
}
