//! The SQL store: one implementation for Postgres and SQLite over sqlx's `Any` driver.
//!
//! Every query is written once, with `$n` placeholders that both backends accept.
//! The only per-backend differences are the migration files and how a write
//! transaction takes its lock.

mod admin_tokens;
mod audit;
mod decisions;
mod issuer_record;
mod keys;
mod migrate;
mod page;
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

/// How long start-up waits for the Postgres host's name to resolve, and then
/// for its TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
                let options = PgConnectOptions::from_str(url)?;
                reach(&options).await?;
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await
                    .map_err(|e| match e {
                        // `reach` connected: the server took the connection and said nothing.
                        sqlx::Error::PoolTimedOut => StoreError::unavailable(format!(
                            "{}:{} accepted the connection but did not complete the Postgres handshake within {} s (pool timeout): is it a Postgres server, and not overloaded?",
                            options.get_host(),
                            options.get_port(),
                            ACQUIRE_TIMEOUT.as_secs()
                        )),
                        e => e.into(),
                    })?
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

/// Start-up's first look at the Postgres server: resolves its host and opens a
/// TCP connection, so that a name that does not resolve, a refused connection
/// and a server that does not answer each say so. Through the pool all three
/// read "pool timed out": it retries a failed connect until its acquire
/// timeout and then reports only that.
async fn reach(options: &PgConnectOptions) -> Result<(), StoreError> {
    if options.get_socket().is_some() || options.get_host().starts_with('/') {
        // A Unix socket: sqlx's own error names the path.
        return Ok(());
    }
    let (host, port) = (options.get_host(), options.get_port());
    let secs = CONNECT_TIMEOUT.as_secs();
    let addrs: Vec<_> = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::lookup_host((host, port)),
    )
    .await
    {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            return Err(StoreError::unavailable(format!(
                "cannot resolve the database host {host:?} (DNS failure: {e}): check the host in database_url"
            )));
        }
        Err(_) => {
            return Err(StoreError::unavailable(format!(
                "cannot resolve the database host {host:?}: no DNS answer within {secs} s"
            )));
        }
    };
    let mut failure = format!("the database host {host:?} resolves to no address");
    for addr in addrs {
        failure = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => format!(
                "connection refused by {host}:{port} ({addr}): is Postgres running and listening on that address and port?"
            ),
            Ok(Err(e)) => format!("cannot connect to {host}:{port} ({addr}): {e}"),
            Err(_) => format!(
                "no answer from {host}:{port} ({addr}) within {secs} s (connection timed out): a firewall, or the wrong address?"
            ),
        };
    }
    Err(StoreError::unavailable(failure))
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
            sqlx::Error::PoolTimedOut => StoreError::unavailable(format!(
                "no database connection within {} s (pool timeout): the database is down or unreachable, or every pooled connection is busy",
                ACQUIRE_TIMEOUT.as_secs()
            )),
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
            "the database is unavailable: no database connection within 2 s (pool timeout): the database is down or unreachable, or every pooled connection is busy"
        );
        // The cause is in the message, once: it is not also the error's source,
        // which a printed chain would repeat.
        assert!(std::error::Error::source(&down).is_none());
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

    /// A refused connection, a name that does not resolve and a server that
    /// does not answer each say what happened (all three were "pool timed out").
    #[tokio::test]
    async fn postgres_connect_errors_name_their_cause() {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = unused.local_addr().unwrap().port();
        drop(unused);
        let refused = SqlStore::connect(&format!("postgres://u@127.0.0.1:{port}/db"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("connection refused by 127.0.0.1:"),
            "{refused}"
        );
        assert!(!refused.contains("pool time"), "{refused}");
        let dns = SqlStore::connect("postgres://u@nohost.invalid/db")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            dns.contains("cannot resolve the database host \"nohost.invalid\""),
            "{dns}"
        );
        assert_eq!(dns.matches("nohost.invalid").count(), 1, "{dns}");
        // Takes the connection, never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((c, _)) = silent.accept().await {
                open.push(c);
            }
        });
        let mute = SqlStore::connect(&format!("postgres://u@127.0.0.1:{port}/db"))
            .await
            .unwrap_err()
            .to_string();
        held.abort();
        assert!(
            mute.contains("accepted the connection but did not complete the Postgres handshake"),
            "{mute}"
        );
    }
}
