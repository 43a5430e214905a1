//! Signing keys: the key set changed under a lock, and the Postgres
//! notifications that tell other replicas.

use async_trait::async_trait;
use sqlx::{Any, Executor, Transaction};

use super::SqlStore;
use super::rows::key_from_row;
use crate::keys::{KeyState, StoredKey};
use crate::store::{Backend, KEY_CHANNEL, KeyChangeListener, KeyStore, KeyUpdate, StoreError};

#[async_trait]
impl KeyStore for SqlStore {
    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn update_keys(&self, update: &KeyUpdate<'_>) -> Result<Vec<StoredKey>, StoreError> {
        let mut tx = self.begin_locked().await?;
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let before = rows
            .iter()
            .map(key_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let after = update(&before).map_err(StoreError::Aborted)?;
        write_key_changes(&mut tx, &before, &after).await?;
        if self.backend == Backend::Postgres {
            tx.execute(format!("NOTIFY {KEY_CHANNEL}").as_str()).await?;
        }
        tx.commit().await?;
        let destroyed = after.iter().any(|a| {
            a.private_key.is_none()
                && before
                    .iter()
                    .any(|b| b.kid == a.kid && b.private_key.is_some())
        });
        if destroyed && self.backend == Backend::Sqlite {
            crate::store::sqlite_files::truncate_wal(&self.pool).await;
        }
        Ok(after)
    }
}

const KEY_COLUMNS: &str =
    "kid, alg, state, public_jwk, private_key, kek_id, created_at, activated_at, retired_at";

/// Writes the difference between two key lists: demotions first, so that the
/// one-current-key-per-algorithm index holds after every statement.
async fn write_key_changes(
    tx: &mut Transaction<'static, Any>,
    before: &[StoredKey],
    after: &[StoredKey],
) -> Result<(), StoreError> {
    if let Some(gone) = before
        .iter()
        .find(|b| !after.iter().any(|a| a.kid == b.kid))
    {
        return Err(StoreError::Aborted(format!(
            "an update may not delete key {}",
            gone.kid
        )));
    }
    let mut changed: Vec<&StoredKey> = after
        .iter()
        .filter(|a| {
            before.iter().find(|b| b.kid == a.kid).is_some_and(|b| {
                (b.state, b.activated_at, b.retired_at, &b.private_key)
                    != (a.state, a.activated_at, a.retired_at, &a.private_key)
            })
        })
        .collect();
    changed.sort_by_key(|k| k.state == KeyState::Current);
    for k in changed {
        sqlx::query(
            "UPDATE signing_keys SET state = $1, activated_at = $2, retired_at = $3, private_key = $4, kek_id = $5
             WHERE kid = $6",
        )
        .bind(k.state.as_str())
        .bind(k.activated_at)
        .bind(k.retired_at)
        .bind(k.private_key.as_ref().map(|w| w.bytes.clone()))
        .bind(k.private_key.as_ref().map(|w| w.kek_id.clone()).unwrap_or_default())
        .bind(&k.kid)
        .execute(&mut **tx)
        .await?;
    }
    for k in after
        .iter()
        .filter(|a| !before.iter().any(|b| b.kid == a.kid))
    {
        let wrapped = k
            .private_key
            .as_ref()
            .ok_or_else(|| StoreError::Aborted(format!("new key {} has no private key", k.kid)))?;
        sqlx::query(&format!(
            "INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&k.kid)
        .bind(k.alg.as_str())
        .bind(k.state.as_str())
        .bind(k.public_jwk.to_json().to_string())
        .bind(&wrapped.bytes)
        .bind(&wrapped.kek_id)
        .bind(k.created_at)
        .bind(k.activated_at)
        .bind(k.retired_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(super) struct PgKeyListener(pub(super) sqlx::postgres::PgListener);

#[async_trait]
impl KeyChangeListener for PgKeyListener {
    async fn changed(&mut self) -> Result<(), StoreError> {
        self.0.recv().await?;
        Ok(())
    }
}
