//! The group-commit audit writer.
//!
//! Minting sends its record to one writer task and waits for the commit: a
//! response leaves only after its row is durable. The writer inserts whatever
//! has queued up while the previous batch committed in one statement, so many
//! requests share one round trip and one WAL flush, and durability costs little
//! throughput.
//!
//! Refusals have a writer of their own, [`decisions`], which nobody waits for.

pub mod decisions;

use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{AuditError, AuditSink, Issued, MAX_BATCH};
use crate::store::AuditLog;
use crate::store::error::StoreError;

type Pending = (Issued, oneshot::Sender<Result<bool, Arc<StoreError>>>);

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
}

#[async_trait]
impl AuditSink for AuditWriter {
    /// Queues a token and waits until its row (and assertion id) is committed.
    async fn record(&self, issued: Issued) -> Result<(), AuditError> {
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
