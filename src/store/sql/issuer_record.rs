//! The issuer `serve` last served under: one row, replaced at each start.

use async_trait::async_trait;
use sqlx::Row;

use super::SqlStore;
use crate::store::{IssuerRecord, ServedIssuer, StoreError};

#[async_trait]
impl IssuerRecord for SqlStore {
    async fn record_served_issuer(&self, served: &ServedIssuer) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO served_issuer (id, issuer, dev_tls, served_at) VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET issuer = excluded.issuer,
                 dev_tls = excluded.dev_tls, served_at = excluded.served_at",
        )
        .bind(&served.issuer)
        .bind(i64::from(served.dev_tls))
        .bind(served.served_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn served_issuer(&self) -> Result<Option<ServedIssuer>, StoreError> {
        let row = sqlx::query("SELECT issuer, dev_tls, served_at FROM served_issuer WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(ServedIssuer {
                issuer: r.try_get("issuer")?,
                dev_tls: r.try_get::<i64, _>("dev_tls")? != 0,
                served_at: r.try_get("served_at")?,
            })
        })
        .transpose()
    }
}
