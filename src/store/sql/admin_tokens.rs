//! Admin API tokens, stored by their hash.

use async_trait::async_trait;

use super::rows::admin_token_from_row;
use super::{SqlStore, conflict_or};
use crate::store::{AdminToken, AdminTokens, StoreError};

#[async_trait]
impl AdminTokens for SqlStore {
    async fn create_admin_token(
        &self,
        token: &AdminToken,
        hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(hash.to_vec())
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, || format!("admin token {}", token.id)))?;
        Ok(())
    }

    async fn admin_token_by_hash(
        &self,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<AdminToken>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, created_at, revoked_at, expires_at FROM admin_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(hash.to_vec())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(admin_token_from_row).transpose()
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, created_at, revoked_at, expires_at FROM admin_tokens
             ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(admin_token_from_row).collect()
    }

    async fn revoke_admin_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("an active admin token {id}")));
        }
        Ok(())
    }
}
