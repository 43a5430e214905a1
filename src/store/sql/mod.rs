//! The SQL store: one implementation for Postgres and SQLite over sqlx's `Any` driver.
//!
//! Every query is written once, with `$n` placeholders that both backends accept.
//! The only per-backend differences are the migration files and how a write
//! transaction takes its lock.

mod admin_tokens;
mod audit;
mod issuer_record;
mod keys;
mod migrate;
mod principals;
mod replay;
mod rows;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::MigrateError;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Any, AnyPool, Executor, Transaction};

use super::{Backend, KEY_CHANNEL, KeyChangeListener, PoolStats, Store, StoreError};
use audit::AuditConnection;
use keys::PgKeyListener;
use migrate::migrator;

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
            StoreError::unavailable(
                "database URL must start with postgres://, postgresql:// or sqlite:",
            )
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
        _ => e.into(),
    }
}

/// The store's driver stays inside it: any sqlx error the SQL store does not
/// handle itself reaches callers as an opaque `Unavailable`, except a value
/// the driver cannot decode, which is a row this version cannot read.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => corrupt(e.to_string()),
            e => StoreError::Unavailable(Box::new(e)),
        }
    }
}

/// A migration history this version does not know (a migration it lacks, or
/// one whose SQL differs from what was applied, or one half applied) is
/// `Corrupt`: retrying will not help.
impl From<MigrateError> for StoreError {
    fn from(e: MigrateError) -> Self {
        match e {
            MigrateError::VersionMissing(_)
            | MigrateError::VersionMismatch(_)
            | MigrateError::Dirty(_) => corrupt(format!("the migration history: {e}")),
            e => StoreError::Unavailable(Box::new(e)),
        }
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
        Ok(migrate::pending(&self.pool, self.backend).await?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlx_errors_become_opaque_store_errors() {
        let down = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(matches!(down, StoreError::Unavailable(_)), "{down:?}");
        assert_eq!(
            down.to_string(),
            "the database is unavailable: pool timed out while waiting for an open connection"
        );
        let unreadable = StoreError::from(sqlx::Error::Decode("not UTF-8".into()));
        assert!(
            matches!(unreadable, StoreError::Corrupt(_)),
            "{unreadable:?}"
        );
        let edited = StoreError::from(MigrateError::VersionMismatch(2));
        assert!(matches!(edited, StoreError::Corrupt(_)), "{edited:?}");
        let failed = StoreError::from(MigrateError::Execute(sqlx::Error::PoolClosed));
        assert!(matches!(failed, StoreError::Unavailable(_)), "{failed:?}");
    }
}
