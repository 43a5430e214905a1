//! The audit of issued tokens, with group commit.
//!
//! Minting sends its record to one writer task and waits for the commit: a
//! response leaves only after its row is durable. The writer inserts whatever
//! has queued up while the previous batch committed in one statement, so many
//! requests share one round trip and one WAL flush, and durability costs little
//! throughput.

pub mod query;

use std::sync::Arc;

use prometheus_client::metrics::histogram::Histogram;
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

/// The most records one commit takes.
pub const MAX_BATCH: usize = 256;

type Pending = (Issued, oneshot::Sender<Result<bool, Arc<StoreError>>>);

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

/// Handle to the group-commit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Pending>,
}

impl AuditWriter {
    /// Starts the writer task. It ends once every `AuditWriter` is dropped and
    /// the queue is drained, so awaiting the handle flushes the audit.
    pub fn start(log: Arc<dyn AuditLog>, commit_time: Histogram) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 16);
        let handle = tokio::spawn(run(log, rx, commit_time));
        (AuditWriter { tx }, handle)
    }

    /// Records waiting for a commit.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues a token and waits until its row (and assertion id) is committed.
    pub async fn record(&self, issued: Issued) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((issued, done))
            .await
            .map_err(|_| AuditError::Closed)?;
        match wait.await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => Err(AuditError::Replayed),
            Ok(Err(e)) => Err(AuditError::Store(e)),
            Err(_) => Err(AuditError::Closed),
        }
    }
}

async fn commit(log: &dyn AuditLog, batch: &mut Vec<Pending>, commit_time: &Histogram) {
    let (issued, waiters): (Vec<Issued>, Vec<_>) = batch.drain(..).unzip();
    let started = std::time::Instant::now();
    let result = log.record_tokens(&issued).await;
    commit_time.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(recorded) => {
            for (done, ok) in waiters.into_iter().zip(recorded) {
                let _ = done.send(Ok(ok));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, records = issued.len(), "audit commit failed; tokens withheld");
            let e = Arc::new(e);
            for done in waiters {
                let _ = done.send(Err(e.clone()));
            }
        }
    }
}

/// One commit at a time: the requests that arrive while a batch commits form
/// the next one. Two commits in flight were measured against one (bench/notes.md):
/// they split the same requests into smaller batches, and Postgres spent about
/// a quarter more CPU per token on the extra commits and WAL flushes, for no
/// gain in latency.
async fn run(log: Arc<dyn AuditLog>, mut rx: mpsc::Receiver<Pending>, commit_time: Histogram) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    // Ends when every sender is gone and the queue is drained.
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(log.as_ref(), &mut batch, &commit_time).await;
    }
}
