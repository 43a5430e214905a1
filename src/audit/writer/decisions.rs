//! The decision writer: refusals recorded in batches, off the request path.
//!
//! A refusal is answered at once; its record goes to a bounded queue that
//! one task drains in batches of up to [`BATCH`], one statement each, then
//! pauses [`LINGER`]. So refusals cost the database at most ten statements a
//! second, however fast they come, and a token request never waits for one.
//!
//! An attacker chooses how fast they fail. Past [`QUEUE`] waiting records
//! (about 3 MB at most), a refusal's record is dropped and counted in
//! `nomos_issuer_decision_records_dropped_total`, rather than held in
//! memory without bound; its log line is written at once all the same.
//!
//! Before a batch is written, one query tells a revoked credential from a
//! wrong one ([`Decision::refine`]). The request path never asks the database
//! that, so a known client and an unknown one are refused in the same time.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;

use crate::audit::decision::{Decision, DecisionSink, revocation_candidates};
use crate::store::DecisionLog;

/// The most refusals waiting to be written; past it they are dropped and counted.
pub const QUEUE: usize = 10_000;

/// The most refusals one statement writes.
pub const BATCH: usize = 1_000;

/// The pause after each statement, in which the next batch gathers.
pub const LINGER: Duration = Duration::from_millis(100);

/// Handle to the decision writer. Cheap to clone.
#[derive(Clone)]
pub struct DecisionWriter {
    tx: mpsc::Sender<Decision>,
    dropped: Counter,
}

impl DecisionWriter {
    /// Starts the writer task; records it cannot keep are counted in
    /// `dropped`. The task ends once every handle is dropped and the queue
    /// is written out.
    pub fn start(log: Arc<dyn DecisionLog>, dropped: Counter) -> (Self, JoinHandle<()>) {
        Self::with_queue(log, dropped, QUEUE)
    }

    fn with_queue(
        log: Arc<dyn DecisionLog>,
        dropped: Counter,
        queue: usize,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue);
        let handle = tokio::spawn(run(log, rx, dropped.clone()));
        (DecisionWriter { tx, dropped }, handle)
    }

    /// Refusals waiting to be written.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

impl DecisionSink for DecisionWriter {
    fn refused(&self, decision: Decision) {
        if let Err(TrySendError::Full(d) | TrySendError::Closed(d)) = self.tx.try_send(decision) {
            self.dropped.inc();
            d.log(false);
        }
    }
}

async fn run(log: Arc<dyn DecisionLog>, mut rx: mpsc::Receiver<Decision>, dropped: Counter) {
    let mut batch = Vec::with_capacity(BATCH);
    // Ends when every handle is gone and the queue is drained.
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        write(log.as_ref(), &mut batch, &dropped).await;
        tokio::time::sleep(LINGER).await;
    }
}

/// Refines, records and logs one batch, leaving it empty.
async fn write(log: &dyn DecisionLog, batch: &mut Vec<Decision>, dropped: &Counter) {
    let candidates = revocation_candidates(batch);
    let revoked = match candidates.is_empty() {
        true => Vec::new(),
        false => log
            .revoked_credentials(&candidates)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read revoked credentials; a revoked one is recorded as wrong");
                Vec::new()
            }),
    };
    for d in batch.iter_mut() {
        d.refine(&revoked);
    }
    let recorded = match log.record_decisions(batch).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, records = batch.len(), "cannot record refusals; they are dropped");
            dropped.inc_by(batch.len() as u64);
            false
        }
    };
    for d in batch.drain(..) {
        d.log(recorded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::decision::{DecisionKind, DecisionRecord, Evidence, Reason};
    use crate::ids::Subject;
    use crate::principal::{CredentialKind, hash_secret};
    use crate::store::{DecisionQuery, StoreError};
    use async_trait::async_trait;
    use std::sync::Mutex;
    use tokio::sync::Semaphore;

    /// A log whose writes each wait for a permit, and which knows one
    /// revoked secret of `org/acme`.
    struct Held {
        permits: Semaphore,
        written: Mutex<Vec<Decision>>,
    }

    #[async_trait]
    impl DecisionLog for Held {
        async fn record_decisions(&self, batch: &[Decision]) -> Result<(), StoreError> {
            self.permits.acquire().await.unwrap().forget();
            self.written.lock().unwrap().extend_from_slice(batch);
            Ok(())
        }
        async fn query_decisions(
            &self,
            _: &DecisionQuery,
        ) -> Result<Vec<DecisionRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn purge_decisions_batch(&self, _: i64, _: u32) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn revoked_credentials(
            &self,
            subjects: &[Subject],
        ) -> Result<Vec<(Subject, CredentialKind)>, StoreError> {
            Ok(subjects
                .iter()
                .filter(|s| s.to_string() == "org/acme")
                .map(|s| {
                    let hash = hash_secret("revoked");
                    (s.clone(), CredentialKind::Secret { hash })
                })
                .collect())
        }
    }

    fn wrong_secret(secret: &str) -> Decision {
        Decision {
            at: 1,
            kind: DecisionKind::Authentication,
            client_id: Some(Subject::parse("org/acme").unwrap()),
            reason: Reason::WrongSecret,
            auth_method: Some("client_secret_basic"),
            source: None,
            request_id: Some("r1".into()),
            evidence: Some(Evidence::Secret(hash_secret(secret))),
        }
    }

    #[tokio::test]
    async fn a_flood_is_dropped_and_counted_not_queued_without_bound() {
        let log = Arc::new(Held {
            permits: Semaphore::new(0),
            written: Mutex::default(),
        });
        let dropped = Counter::default();
        let (writer, task) = DecisionWriter::with_queue(log.clone(), dropped.clone(), 4);
        // The first refusal is taken at once; its write waits.
        writer.refused(wrong_secret("a"));
        while writer.queued() > 0 {
            tokio::task::yield_now().await;
        }
        // Four wait in the queue; the other six are dropped and counted.
        for _ in 0..10 {
            writer.refused(wrong_secret("a"));
        }
        assert_eq!(writer.queued(), 4);
        assert_eq!(dropped.get(), 6);
        log.permits.add_permits(10);
        drop(writer);
        task.await.unwrap();
        assert_eq!(log.written.lock().unwrap().len(), 5);
        assert_eq!(dropped.get(), 6);
    }

    #[tokio::test]
    async fn a_revoked_secret_is_recorded_as_revoked_and_its_hash_is_not_kept() {
        let log = Arc::new(Held {
            permits: Semaphore::new(10),
            written: Mutex::default(),
        });
        let (writer, task) = DecisionWriter::start(log.clone(), Counter::default());
        writer.refused(wrong_secret("revoked"));
        writer.refused(wrong_secret("wrong"));
        drop(writer);
        task.await.unwrap();
        let written = log.written.lock().unwrap();
        let reasons: Vec<Reason> = written.iter().map(|d| d.reason).collect();
        assert_eq!(reasons, [Reason::RevokedCredential, Reason::WrongSecret]);
        assert!(written.iter().all(|d| d.evidence.is_none()));
    }
}
