//! Decision records: refusals, written in batches by the decision writer,
//! read newest first, purged with the audit retention.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::placeholders;
use super::page::Page;
use super::rows::credential_from_row;
use super::{SqlStore, corrupt};
use crate::audit::decision::{Decision, DecisionRecord};
use crate::ids::Subject;
use crate::principal::CredentialKind;
use crate::store::{DecisionLog, DecisionQuery, StoreError};

/// The columns a decision is written to, in order.
const COLUMNS: &str = "at, kind, client_id, org_id, reason, auth_method, source, request_id";

fn record_from_row(row: &AnyRow) -> Result<DecisionRecord, StoreError> {
    Ok(DecisionRecord {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        kind: row.try_get("kind")?,
        client_id: row.try_get("client_id")?,
        org_id: row.try_get("org_id")?,
        reason: row.try_get("reason")?,
        auth_method: row.try_get("auth_method")?,
        source: row.try_get("source")?,
        request_id: row.try_get("request_id")?,
    })
}

#[async_trait]
impl DecisionLog for SqlStore {
    async fn record_decisions(&self, batch: &[Decision]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO decisions ({COLUMNS}) VALUES {}",
            placeholders(batch.len(), 8)
        );
        let mut q = sqlx::query(&sql);
        for d in batch {
            q = q
                .bind(d.at)
                .bind(d.kind.as_str())
                .bind(d.client_id.as_ref().map(Subject::to_string))
                .bind(d.client_id.as_ref().map(|s| s.org().to_string()))
                .bind(d.reason.as_str())
                .bind(d.auth_method)
                .bind(d.source.map(|s| s.to_string()))
                .bind(d.request_id.as_deref());
        }
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn query_decisions(
        &self,
        query: &DecisionQuery,
    ) -> Result<Vec<DecisionRecord>, StoreError> {
        let mut page = Page::default();
        page.and("org_id =", query.org.as_ref().map(|o| o.as_str()));
        page.and(
            "client_id =",
            query.client_id.as_ref().map(|c| c.to_string()),
        );
        page.and("at >=", query.since);
        page.and("at <", query.until);
        if let Some((at, id)) = query.before {
            page.before("at", "id", at, id);
        }
        let columns = format!("id, {COLUMNS}");
        let rows = page
            .fetch(&self.pool, &columns, "decisions", ("at", "id"), query.limit)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn purge_decisions_batch(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM decisions WHERE id IN
             (SELECT id FROM decisions WHERE at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn revoked_credentials(
        &self,
        subjects: &[Subject],
    ) -> Result<Vec<(Subject, CredentialKind)>, StoreError> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let list = (1..=subjects.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT id, subject, kind, secret_hash, public_jwks FROM client_credentials
             WHERE revoked_at IS NOT NULL AND subject IN ({list})"
        );
        let mut q = sqlx::query(&sql);
        for s in subjects {
            q = q.bind(s.to_string());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("subject")?;
                let subject = Subject::parse(&text)
                    .map_err(|_| corrupt(format!("credential of {text:?}: bad subject")))?;
                Ok((subject, credential_from_row(row)?.kind))
            })
            .collect()
    }
}
