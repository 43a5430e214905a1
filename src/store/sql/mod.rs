//! The SQL store: one implementation for Postgres and SQLite over sqlx's `Any` driver.
//!
//! Every query is written once, with `$n` placeholders that both backends accept.
//! The only per-backend differences are the migration files and how a write
//! transaction takes its lock.

mod keys;
mod principals;
mod rows;

use std::borrow::Cow;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use super::{
    AdminToken, AdminTokens, AuditLog, AuditQuery, Backend, KEY_CHANNEL, KeyChangeListener,
    PoolStats, ReplayGuard, Store, StoreError,
};
use crate::audit::{AssertionClaim, AuditRecord, Issued};
use keys::PgKeyListener;
use rows::{admin_token_from_row, audit_from_row};

/// A store on Postgres or SQLite. `Debug` leaves out the URL: it may hold
/// the database password.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// On Postgres, a native connection for the audit's group commit: one
    /// prepared statement with array parameters (`UNNEST`) whatever the batch
    /// size, where the `Any` driver would plan a new multi-row `VALUES` for
    /// every size.
    audit_pg: Option<Arc<AuditConnection>>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// The audit writer's own Postgres connection. The writer commits one batch at
/// a time, so one connection serves it. A pool would ping the connection
/// before lending it and again when it comes back (sqlx's
/// `test_before_acquire` and its check on release): three round trips for a
/// commit of one statement.
struct AuditConnection {
    options: PgConnectOptions,
    conn: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
}

impl std::fmt::Debug for AuditConnection {
    // The options hold the database password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditConnection")
    }
}

impl AuditConnection {
    async fn connect(&self) -> Result<sqlx::PgConnection, StoreError> {
        use sqlx::Connection;
        match tokio::time::timeout(
            ACQUIRE_TIMEOUT,
            sqlx::PgConnection::connect_with(&self.options),
        )
        .await
        {
            Ok(conn) => Ok(conn?),
            Err(_) => Err(StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting to Postgres for the audit timed out",
            )))),
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
        result
    }

    /// (open, idle) connections, for the pool metrics.
    fn stats(&self) -> (u32, u32) {
        match self.conn.try_lock() {
            Ok(slot) => (u32::from(slot.is_some()), u32::from(slot.is_some())),
            Err(_) => (1, 0),
        }
    }

    async fn close(&self) {
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
async fn still_usable<T>(conn: &mut sqlx::PgConnection, result: &Result<T, StoreError>) -> bool {
    use sqlx::Connection;
    match result {
        Ok(_) => true,
        Err(StoreError::Database(sqlx::Error::Database(_))) => {
            matches!(
                tokio::time::timeout(ACQUIRE_TIMEOUT, conn.ping()).await,
                Ok(Ok(()))
            )
        }
        Err(_) => false,
    }
}

/// The migrations of each backend, embedded in the binary: (version, name, SQL).
fn migrations(backend: Backend) -> [(i64, &'static str, &'static str); 5] {
    match backend {
        Backend::Postgres => [
            (
                1,
                "init",
                include_str!("../../../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "session claims",
                include_str!("../../../migrations/postgres/0002_session_claims.sql"),
            ),
            (
                3,
                "principal changes",
                include_str!("../../../migrations/postgres/0003_principal_changes.sql"),
            ),
            (
                4,
                "admin tokens and audit by time",
                include_str!("../../../migrations/postgres/0004_admin.sql"),
            ),
            (
                5,
                "change log in commit order",
                include_str!("../../../migrations/postgres/0005_change_log_order.sql"),
            ),
        ],
        Backend::Sqlite => [
            (
                1,
                "init",
                include_str!("../../../migrations/sqlite/0001_init.sql"),
            ),
            (
                2,
                "session claims",
                include_str!("../../../migrations/sqlite/0002_session_claims.sql"),
            ),
            (
                3,
                "principal changes",
                include_str!("../../../migrations/sqlite/0003_principal_changes.sql"),
            ),
            (
                4,
                "admin tokens and audit by time",
                include_str!("../../../migrations/sqlite/0004_admin.sql"),
            ),
            (
                5,
                "change log in commit order",
                include_str!("../../../migrations/sqlite/0005_change_log_order.sql"),
            ),
        ],
    }
}

fn migrator(backend: Backend) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            migrations(backend)
                .into_iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(name),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// How long a query waits for a connection before failing. While the database
/// is down this bounds how long a token request takes to answer 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

impl SqlStore {
    /// Connects to `postgres://…` or `sqlite:…`. A SQLite file and its directory
    /// are created when missing, and its files are made readable by their owner
    /// only.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| {
            StoreError::Database(sqlx::Error::Configuration(
                "database URL must start with postgres://, postgresql:// or sqlite:".into(),
            ))
        })?;
        let pool = match backend {
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?
            }
            Backend::Sqlite => {
                let url = super::sqlite_files::prepare(url)?;
                AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer; FULL makes each
                            // commit durable before a token leaves.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            // Deleted content is overwritten with zeros, so that a
                            // destroyed private key does not linger in free space.
                            conn.execute("PRAGMA secure_delete = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
        };
        let audit_pg = match backend {
            Backend::Postgres => {
                let audit = AuditConnection {
                    options: PgConnectOptions::from_str(url)?,
                    conn: Default::default(),
                };
                // Connected at start, so that a bad URL or password fails here.
                let conn = audit.connect().await?;
                *audit.conn.lock().await = Some(conn);
                Some(Arc::new(audit))
            }
            Backend::Sqlite => None,
        };
        Ok(SqlStore {
            pool,
            backend,
            url: url.to_owned(),
            audit_pg,
        })
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock
    /// at once (`BEGIN IMMEDIATE`), waiting up to the busy timeout for it: a
    /// deferred transaction that reads first fails at once with "database is
    /// locked" when it tries to write after another connection has.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Begins a write transaction that serialises with other writers of signing keys.
    async fn begin_locked(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            tx.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
                .await?;
        }
        Ok(tx)
    }
}

fn conflict_or(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Database(e),
    }
}

const AUDIT_COLUMNS: usize = 9;

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
) -> Result<Vec<bool>, StoreError> {
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
    let columns = "jti, subject, org_id, agent_id, audience, kid, iat, exp, auth_method";
    let unnest = "UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::int8[], $8::int8[], $9::text[]";
    let sql = if !claims {
        format!("INSERT INTO audit_tokens ({columns}) SELECT * FROM {unnest})")
    } else {
        format!(
            "WITH claimed AS (
                 INSERT INTO assertion_jtis (client_id, jti, expires_at)
                 SELECT * FROM UNNEST($10::text[], $11::text[], $12::int8[]) AS c(client_id, jti, expires_at)
                 WHERE c.jti IS NOT NULL
                 ON CONFLICT (client_id, jti) DO NOTHING
                 RETURNING client_id, jti)
             INSERT INTO audit_tokens ({columns})
             SELECT {columns} FROM {unnest}, $10::text[], $11::text[])
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
fn placeholders(rows: usize, columns: usize) -> String {
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
                "INSERT INTO audit_tokens (jti, subject, org_id, agent_id, audience, kid, iat, exp, auth_method) VALUES {}",
                placeholders(rows.len(), AUDIT_COLUMNS)
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
        let row = sqlx::query(
            "SELECT jti, subject, org_id, agent_id, audience, kid, iat, exp, auth_method
             FROM audit_tokens WHERE jti = $1",
        )
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
        let mut sql = String::from(
            "SELECT jti, subject, org_id, agent_id, audience, kid, iat, exp, auth_method
             FROM audit_tokens WHERE 1 = 1",
        );
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if query.org.is_some() {
            sql += &format!(" AND org_id = {}", next());
        }
        if query.agent.is_some() {
            sql += &format!(" AND agent_id = {}", next());
        }
        if query.since.is_some() {
            sql += &format!(" AND iat >= {}", next());
        }
        if query.until.is_some() {
            sql += &format!(" AND iat < {}", next());
        }
        if query.before.is_some() {
            let (a, b, c) = (next(), next(), next());
            sql += &format!(" AND (iat < {a} OR (iat = {b} AND jti < {c}))");
        }
        sql += &format!(" ORDER BY iat DESC, jti DESC LIMIT {}", next());
        let mut q = sqlx::query(&sql);
        if let Some(org) = &query.org {
            q = q.bind(org.as_str());
        }
        if let Some(agent) = &query.agent {
            q = q.bind(agent.as_str());
        }
        if let Some(since) = query.since {
            q = q.bind(since);
        }
        if let Some(until) = query.until {
            q = q.bind(until);
        }
        if let Some((iat, jti)) = &query.before {
            q = q.bind(*iat).bind(*iat).bind(jti.as_str());
        }
        let rows = q.bind(i64::from(query.limit)).fetch_all(&self.pool).await?;
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

#[async_trait]
impl AdminTokens for SqlStore {
    async fn create_admin_token(
        &self,
        token: &AdminToken,
        hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(hash.to_vec())
        .bind(token.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, || format!("admin token {}", token.id)))?;
        Ok(())
    }

    async fn admin_token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<AdminToken>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, created_at, revoked_at FROM admin_tokens
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(admin_token_from_row).transpose()
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, created_at, revoked_at FROM admin_tokens ORDER BY created_at, id",
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

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        migrator(self.backend).run(&self.pool).await?;
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
            {
                Ok(v) => v,
                // No migrations table: nothing applied yet.
                Err(sqlx::Error::Database(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
        Ok(migrator(self.backend)
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        let mut out = vec![PoolStats {
            name: "main",
            size: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }];
        if let Some(audit) = &self.audit_pg {
            let (size, idle) = audit.stats();
            out.push(PoolStats {
                name: "audit",
                size,
                idle,
                max: 1,
            });
        }
        out
    }

    async fn close(&self) {
        self.pool.close().await;
        if let Some(audit) = &self.audit_pg {
            audit.close().await;
        }
    }

    async fn key_change_listener(&self) -> Option<Box<dyn KeyChangeListener>> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let mut listener = match sqlx::postgres::PgListener::connect(&self.url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for key changes; polling only");
                return None;
            }
        };
        if let Err(e) = listener.listen(KEY_CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN for key changes; polling only");
            return None;
        }
        Some(Box::new(PgKeyListener(listener)))
    }
}
