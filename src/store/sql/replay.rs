//! Replay defence for client assertions: forgetting the ids of expired ones
//! (they are claimed with the audit rows, in `audit.rs`).

use async_trait::async_trait;

use super::SqlStore;
use crate::store::{ReplayGuard, StoreError};

#[async_trait]
impl ReplayGuard for SqlStore {
    async fn purge_assertion_jtis(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM assertion_jtis WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        // Changes older than a day have been seen by every running replica.
        sqlx::query("DELETE FROM principal_changes WHERE changed_at < $1")
            .bind(now - 86_400)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
