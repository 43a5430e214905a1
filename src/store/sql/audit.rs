//! The audit log of issued tokens, and the replay claims of client assertions
//! written with it. On Postgres the group commit goes through its own
//! connection, one statement per batch.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgConnectOptions;

use super::page::Page;
use super::rows::{AUDIT_COLUMNS, audit_columns, audit_from_row};
use super::{ACQUIRE_TIMEOUT, SqlStore};
use crate::audit::{AssertionClaim, AuditRecord, Issued};
use crate::store::{AuditLog, AuditQuery, StoreError};

#[async_trait]
impl AuditLog for SqlStore {
    async fn record_tokens(&self, batch: &[Issued]) -> Result<Vec<bool>, StoreError> {
        // Within a batch the first use of an assertion id wins.
        let mut seen = HashSet::new();
        let mut recorded: Vec<bool> = batch
            .iter()
            .map(|i| {
                i.claim
                    .as_ref()
                    .is_none_or(|c| seen.insert((&c.client_id, &c.jti)))
            })
            .collect();
        if let Some(audit) = &self.audit_pg {
            return audit.record(batch, recorded).await;
        }
        let claims: Vec<&AssertionClaim> = batch
            .iter()
            .zip(&recorded)
            .filter_map(|(i, ok)| i.claim.as_ref().filter(|_| *ok))
            .collect();
        // Without assertion ids to claim, one INSERT is the whole transaction.
        let mut tx = match claims.is_empty() {
            true => None,
            false => Some(self.begin_write().await?),
        };
        if let Some(tx) = tx.as_mut() {
            let sql = format!(
                "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES {}
                 ON CONFLICT (client_id, jti) DO NOTHING RETURNING client_id, jti",
                placeholders(claims.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for c in &claims {
                q = q.bind(&c.client_id).bind(&c.jti).bind(c.expires_at);
            }
            let fresh: HashSet<(String, String)> = q
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("client_id")?, r.try_get("jti")?)))
                .collect::<Result<_, sqlx::Error>>()?;
            keep_fresh(batch, &mut recorded, &fresh);
        }
        let rows = to_record(batch, &recorded);
        if !rows.is_empty() {
            let sql = format!(
                "INSERT INTO audit_tokens ({}) VALUES {}",
                audit_columns(),
                placeholders(rows.len(), AUDIT_COLUMNS.len())
            );
            let mut q = sqlx::query(&sql);
            for r in rows {
                q = q
                    .bind(&r.jti)
                    .bind(&r.subject)
                    .bind(&r.org_id)
                    .bind(&r.agent_id)
                    .bind(&r.audience)
                    .bind(&r.kid)
                    .bind(r.iat)
                    .bind(r.exp)
                    .bind(&r.auth_method);
            }
            match tx.as_mut() {
                Some(tx) => q.execute(&mut **tx).await?,
                None => q.execute(&self.pool).await?,
            };
        }
        if let Some(tx) = tx {
            tx.commit().await?;
        }
        Ok(recorded)
    }

    async fn token(&self, jti: &str) -> Result<Option<AuditRecord>, StoreError> {
        let sql = format!(
            "SELECT {} FROM audit_tokens WHERE jti = $1",
            audit_columns()
        );
        let row = sqlx::query(&sql)
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(audit_from_row).transpose()
    }

    async fn count_tokens(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM audit_tokens")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn query_tokens(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut page = Page::default();
        page.and("org_id =", query.org.as_ref().map(|o| o.as_str()));
        page.and("agent_id =", query.agent.as_ref().map(|a| a.as_str()));
        page.and("iat >=", query.since);
        page.and("iat <", query.until);
        if let Some((iat, jti)) = &query.before {
            page.before("iat", "jti", *iat, jti.as_str());
        }
        let columns = audit_columns();
        let rows = page
            .fetch(
                &self.pool,
                &columns,
                "audit_tokens",
                ("iat", "jti"),
                query.limit,
            )
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn purge_tokens_batch(&self, before_iat: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM audit_tokens WHERE jti IN
             (SELECT jti FROM audit_tokens WHERE iat < $1 LIMIT $2)",
        )
        .bind(before_iat)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// The audit writer's own Postgres connection. The writer commits one batch at
/// a time, so one connection serves it. A pool would ping the connection
/// before lending it and again when it comes back (sqlx's
/// `test_before_acquire` and its check on release): three round trips for a
/// commit of one statement.
pub(super) struct AuditConnection {
    pub(super) options: PgConnectOptions,
    pub(super) conn: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
}

impl std::fmt::Debug for AuditConnection {
    // The options hold the database password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditConnection")
    }
}

impl AuditConnection {
    pub(super) async fn connect(&self) -> Result<sqlx::PgConnection, sqlx::Error> {
        use sqlx::Connection;
        match tokio::time::timeout(
            ACQUIRE_TIMEOUT,
            sqlx::PgConnection::connect_with(&self.options),
        )
        .await
        {
            Ok(conn) => conn,
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting to Postgres for the audit timed out",
            ))),
        }
    }

    async fn record(&self, batch: &[Issued], recorded: Vec<bool>) -> Result<Vec<bool>, StoreError> {
        let mut slot = self.conn.lock().await;
        // Taken out for the commit: a commit abandoned half-way (its future
        // dropped) leaves no connection in an unknown state behind.
        let (mut conn, reused) = match slot.take() {
            Some(conn) => (conn, true),
            None => (self.connect().await?, false),
        };
        let mut result = record_tokens_pg(&mut conn, batch, recorded.clone()).await;
        let mut usable = still_usable(&mut conn, &result).await;
        if reused && !usable {
            // The connection died while it waited (a database restart, an
            // idle session cut by the network): one new connection, one more
            // try. Had the first try committed before the connection broke,
            // this one fails on the duplicate `jti` (or finds the assertion
            // ids claimed) and the tokens are withheld: never a token without
            // its row.
            tracing::warn!(error = ?result.as_ref().err(), "audit connection lost; reconnecting");
            conn = self.connect().await?;
            result = record_tokens_pg(&mut conn, batch, recorded).await;
            usable = still_usable(&mut conn, &result).await;
        }
        if usable {
            *slot = Some(conn);
        }
        Ok(result?)
    }

    /// (open, idle) connections, for the pool metrics.
    pub(super) fn stats(&self) -> (u32, u32) {
        match self.conn.try_lock() {
            Ok(slot) => (u32::from(slot.is_some()), u32::from(slot.is_some())),
            Err(_) => (1, 0),
        }
    }

    pub(super) async fn close(&self) {
        use sqlx::Connection;
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
        }
    }
}

/// Whether the connection can serve the next commit after `result`. An I/O,
/// protocol or timeout error leaves it unusable. After an error the database
/// answered, one ping tells: a session the server ended (a restart,
/// `pg_terminate_backend`) answers with an error too before it closes.
async fn still_usable<T>(conn: &mut sqlx::PgConnection, result: &Result<T, sqlx::Error>) -> bool {
    use sqlx::Connection;
    match result {
        Ok(_) => true,
        Err(sqlx::Error::Database(_)) => {
            matches!(
                tokio::time::timeout(ACQUIRE_TIMEOUT, conn.ping()).await,
                Ok(Ok(()))
            )
        }
        Err(_) => false,
    }
}

/// Marks the tokens whose assertion id the database did not accept as fresh.
fn keep_fresh(batch: &[Issued], recorded: &mut [bool], fresh: &HashSet<(String, String)>) {
    for (i, ok) in batch.iter().zip(recorded.iter_mut()) {
        if let Some(c) = &i.claim {
            *ok = *ok && fresh.contains(&(c.client_id.clone(), c.jti.clone()));
        }
    }
}

/// The audit rows of the tokens still to be recorded.
fn to_record<'a>(batch: &'a [Issued], recorded: &[bool]) -> Vec<&'a AuditRecord> {
    batch
        .iter()
        .zip(recorded)
        .filter(|(_, ok)| **ok)
        .map(|(i, _)| &i.record)
        .collect()
}

/// The Postgres group commit: one statement per batch, so one round trip and
/// an implicit transaction (no `BEGIN`/`COMMIT` of their own). Rows go as
/// arrays through one prepared statement. A batch with assertion ids claims
/// them in a data-modifying CTE of the same statement, and a token whose
/// assertion id was claimed before is not recorded (first use wins).
async fn record_tokens_pg(
    pg: &mut sqlx::PgConnection,
    batch: &[Issued],
    mut recorded: Vec<bool>,
) -> Result<Vec<bool>, sqlx::Error> {
    let rows: Vec<(usize, &Issued)> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| recorded[*i])
        .collect();
    if rows.is_empty() {
        return Ok(recorded);
    }
    let claims = rows.iter().any(|(_, i)| i.claim.is_some());
    let col = |f: fn(&AuditRecord) -> &str| {
        rows.iter()
            .map(|(_, i)| f(&i.record))
            .collect::<Vec<&str>>()
    };
    let claim_col = |f: fn(&AssertionClaim) -> &str| {
        rows.iter()
            .map(|(_, i)| i.claim.as_ref().map(f))
            .collect::<Vec<Option<&str>>>()
    };
    let columns = audit_columns();
    // `$1::text[], …`: one array per column, then the claims' arrays.
    let arrays = AUDIT_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::{ty}[]", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let (client, jti, expiry) = (
        AUDIT_COLUMNS.len() + 1,
        AUDIT_COLUMNS.len() + 2,
        AUDIT_COLUMNS.len() + 3,
    );
    let sql = if !claims {
        format!("INSERT INTO audit_tokens ({columns}) SELECT * FROM UNNEST({arrays})")
    } else {
        format!(
            "WITH claimed AS (
                 INSERT INTO assertion_jtis (client_id, jti, expires_at)
                 SELECT * FROM UNNEST(${client}::text[], ${jti}::text[], ${expiry}::int8[]) AS c(client_id, jti, expires_at)
                 WHERE c.jti IS NOT NULL
                 ON CONFLICT (client_id, jti) DO NOTHING
                 RETURNING client_id, jti)
             INSERT INTO audit_tokens ({columns})
             SELECT {columns} FROM UNNEST({arrays}, ${client}::text[], ${jti}::text[])
                 AS r({columns}, claim_client, claim_jti)
             WHERE r.claim_jti IS NULL
                OR EXISTS (SELECT 1 FROM claimed c
                           WHERE c.client_id = r.claim_client AND c.jti = r.claim_jti)
             RETURNING jti"
        )
    };
    let mut q = sqlx::query(&sql)
        .bind(col(|r| &r.jti))
        .bind(col(|r| &r.subject))
        .bind(col(|r| &r.org_id))
        .bind(
            rows.iter()
                .map(|(_, i)| i.record.agent_id.as_deref())
                .collect::<Vec<Option<&str>>>(),
        )
        .bind(col(|r| &r.audience))
        .bind(col(|r| &r.kid))
        .bind(rows.iter().map(|(_, i)| i.record.iat).collect::<Vec<i64>>())
        .bind(rows.iter().map(|(_, i)| i.record.exp).collect::<Vec<i64>>())
        .bind(col(|r| &r.auth_method));
    if !claims {
        q.execute(&mut *pg).await?;
        return Ok(recorded);
    }
    // The claim columns run alongside the rows (NULL for a token without an
    // assertion); expiry is only needed for the claims themselves.
    q = q
        .bind(claim_col(|c| &c.client_id))
        .bind(claim_col(|c| &c.jti))
        .bind(
            rows.iter()
                .map(|(_, i)| i.claim.as_ref().map(|c| c.expires_at))
                .collect::<Vec<Option<i64>>>(),
        );
    let done: HashSet<String> = q
        .fetch_all(&mut *pg)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("jti"))
        .collect::<Result<_, _>>()?;
    for (i, _) in &rows {
        recorded[*i] = done.contains(&batch[*i].record.jti);
    }
    Ok(recorded)
}

/// `($1,$2,...),($n,...)` for a multi-row insert of `rows` rows of `columns`.
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 4);
    for i in 0..rows {
        sql.push_str(if i == 0 { "(" } else { ",(" });
        for c in 0..columns {
            if c > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(i * columns + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}
