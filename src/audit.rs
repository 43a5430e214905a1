//! The audit of issued tokens: what a record holds, and the sink minting
//! hands records to ([`AuditSink`]). A token leaves only after its record is
//! durable. The sink the server uses is the group-commit [`writer`].
//!
//! Beside it, the [`decision`] records: why a request was refused.

pub mod decision;
pub mod writer;

pub mod query;

use std::sync::Arc;

use async_trait::async_trait;

use crate::store::error::StoreError;

/// One issued token, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Token id.
    pub jti: String,
    /// `sub` claim.
    pub subject: String,
    /// Org id.
    pub org_id: String,
    /// Agent id, for agent tokens.
    pub agent_id: Option<String>,
    /// `aud` claim.
    pub audience: String,
    /// Signing key.
    pub kid: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// How the client authenticated: `client_secret_basic`, `client_secret_post`,
    /// `private_key_jwt` or `cli`.
    pub auth_method: String,
}

/// A client assertion's id, claimed in the same transaction as the token's audit
/// row: the token exists only if the id was never seen for that client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssertionClaim {
    /// The client.
    pub client_id: String,
    /// The assertion's `jti`.
    pub jti: String,
    /// Until when the id must be remembered (the assertion's `exp` plus skew).
    pub expires_at: i64,
}

/// A token to record, and the assertion id it consumes, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The audit row.
    pub record: AuditRecord,
    /// The assertion id to claim with it.
    pub claim: Option<AssertionClaim>,
}

/// Why a record could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store refused or could not be reached.
    #[error("audit commit failed: {0}")]
    Store(Arc<StoreError>),
    /// The writer has shut down.
    #[error("audit writer is shut down")]
    Closed,
    /// The client assertion's `jti` was used before: nothing was recorded.
    #[error("the client assertion was used before")]
    Replayed,
}

/// The most records one commit takes: a store's `record_tokens` accepts a
/// batch this large.
pub const MAX_BATCH: usize = 256;

/// Where minting records what it issued.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Records `issued` durably (and claims its assertion id), or says why not.
    async fn record(&self, issued: Issued) -> Result<(), AuditError>;
}
