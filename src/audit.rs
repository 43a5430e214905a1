//! The audit of issued tokens, with group commit.
//!
//! Minting sends its record to one writer task and waits for the commit: a
//! response leaves only after its row is durable. The writer inserts whatever
//! has queued up while the previous batch committed in one statement, so many
//! requests share one round trip and durability costs little throughput.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{AuditLog, StoreError};

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

/// The most records one commit takes.
pub const MAX_BATCH: usize = 256;

type Pending = (AuditRecord, oneshot::Sender<Result<(), Arc<StoreError>>>);

/// Why a record could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store refused or could not be reached.
    #[error("audit commit failed: {0}")]
    Store(Arc<StoreError>),
    /// The writer has shut down.
    #[error("audit writer is shut down")]
    Closed,
}

/// Handle to the group-commit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Pending>,
}

impl AuditWriter {
    /// Starts the writer task. It ends once every `AuditWriter` is dropped and
    /// the queue is drained, so awaiting the handle flushes the audit.
    pub fn start(log: Arc<dyn AuditLog>) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 16);
        let handle = tokio::spawn(run(log, rx));
        (AuditWriter { tx }, handle)
    }

    /// Queues a record and waits until it is committed.
    pub async fn record(&self, record: AuditRecord) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((record, done))
            .await
            .map_err(|_| AuditError::Closed)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AuditError::Store(e)),
            Err(_) => Err(AuditError::Closed),
        }
    }
}

async fn run(log: Arc<dyn AuditLog>, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let records: Vec<AuditRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
        let result = log.record_tokens(&records).await.map_err(Arc::new);
        if let Err(e) = &result {
            tracing::error!(error = %e, records = records.len(), "audit commit failed; tokens withheld");
        }
        for (_, done) in batch.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}
