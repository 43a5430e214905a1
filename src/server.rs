//! A running issuer: bound listener, shared state, graceful stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{App, now};
use crate::config::{ConfigError, Settings};
use crate::http::limits::Limits;
use crate::http::serve::{self, Listening, connection_budget};
use crate::http::tls::{self, Certificates};
use crate::http::{Surface, router};
use crate::store::ReplayGuard;

/// A started server.
pub struct Server {
    /// The bound address (the real port when configured with port 0).
    pub addr: SocketAddr,
    /// The bound operator address, when `/metrics` and `/admin` are served apart.
    pub operator_addr: Option<SocketAddr>,
    /// The shared state.
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    listeners: Vec<JoinHandle<std::io::Result<()>>>,
    audit_task: JoinHandle<()>,
    purge_task: JoinHandle<()>,
    key_task: JoinHandle<()>,
    cache_task: JoinHandle<()>,
}

impl Server {
    /// Binds `settings.listen`, builds the state and starts serving. When the
    /// issuer URL was not configured it follows the bound address.
    pub async fn start(mut settings: Settings, migrate: bool) -> anyhow::Result<Server> {
        let listener = bind(settings.listen)?;
        let addr = listener.local_addr()?;
        let operator = settings.operator_listen.map(bind).transpose()?;
        let operator_addr = operator.as_ref().map(TcpListener::local_addr).transpose()?;
        let certificates = match &settings.tls {
            Some(files) => Some(
                Certificates::open(files.clone())
                    .map_err(|e| ConfigError::new("tls_cert", e.to_string()))?,
            ),
            None => None,
        };
        if settings.issuer_follows_listen {
            let scheme = if certificates.is_some() {
                "https"
            } else {
                "http"
            };
            settings.issuer = format!("{scheme}://{addr}");
        }
        let (app, audit_task) = App::build(settings, migrate).await?;
        let (stop, stopped) = watch::channel(false);
        let tls_config = certificates.clone().map(tls::server_config);
        let max_connections = connection_budget(app.settings.max_connections);
        if max_connections < app.settings.max_connections {
            tracing::warn!(
                max_connections,
                wanted = app.settings.max_connections,
                "the file-descriptor limit (ulimit -n) leaves room for fewer connections than max_connections; raise it"
            );
        }
        let listening = |surface| Listening {
            service: router::service(app.clone(), surface),
            tls: tls_config.clone(),
            connections: Limits::new(
                max_connections,
                app.settings
                    .max_connections_per_address
                    .min(max_connections / 2),
            ),
            metrics: app.metrics.clone(),
        };
        let until_stopped = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let mut listeners = Vec::new();
        match operator {
            None => {
                tracing::info!(
                    "/metrics and /admin are served on the main listener: set --operator-listen to serve them only on an operators' address"
                );
                listeners.push(tokio::spawn(serve::serve(
                    listener,
                    listening(Surface::All),
                    until_stopped(),
                )));
            }
            Some(operator) => {
                listeners.push(tokio::spawn(serve::serve(
                    listener,
                    listening(Surface::Public),
                    until_stopped(),
                )));
                listeners.push(tokio::spawn(serve::serve(
                    operator,
                    listening(Surface::Operator),
                    until_stopped(),
                )));
            }
        }
        let purge_task = tokio::spawn(housekeeping(app.clone(), certificates));
        let cache_task = tokio::spawn(
            app.tokens
                .principals
                .clone()
                .follow_changes(Duration::from_secs(1)),
        );
        let key_task = tokio::spawn(
            app.manager
                .clone()
                .run_scheduler(app.settings.key_check_interval),
        );
        Ok(Server {
            addr,
            operator_addr,
            app,
            stop,
            listeners,
            audit_task,
            purge_task,
            key_task,
            cache_task,
        })
    }

    /// Stops accepting, drains in-flight requests (for at most
    /// [`serve::DRAIN_TIMEOUT`]), then flushes the audit.
    pub async fn stop(self) -> anyhow::Result<()> {
        let Server {
            app,
            stop,
            listeners,
            audit_task,
            purge_task,
            key_task,
            cache_task,
            ..
        } = self;
        let _ = stop.send(true);
        let mut served = Ok(());
        for listener in listeners {
            let result = listener.await.context("server task failed")?;
            served = served.and(result);
        }
        purge_task.abort();
        let _ = purge_task.await;
        cache_task.abort();
        // A transition in flight is one transaction: aborting leaves it whole or undone.
        key_task.abort();
        let _ = key_task.await;
        // The last handle to the audit writer goes with the state; the writer then
        // drains its queue and ends.
        drop(app);
        audit_task.await.context("audit writer failed")?;
        served.context("server error")
    }
}

/// Periodic chores: forget expired assertion ids and idle rate-limit entries,
/// purge audit and decision records past their retention, and follow the
/// TLS files.
async fn housekeeping(app: Arc<App>, certificates: Option<Arc<Certificates>>) {
    let _watch = certificates.map(|c| AbortOnDrop(tokio::spawn(c.watch())));
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        if let Some(l) = &app.address_limit {
            l.forget_idle();
        }
        if let Some(l) = &app.tokens.failure_limit {
            l.forget_idle();
        }
        if ticks % 6 == 1 {
            match ReplayGuard::purge_assertion_jtis(app.store.as_ref(), now()).await {
                Ok(n) if n > 0 => {
                    tracing::debug!(purged = n, "expired client assertion ids purged")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot purge expired client assertion ids"),
            }
        }
        if let (Some(keep), 1) = (app.settings.audit_retention, ticks % 360) {
            let before = now() - keep.as_secs() as i64;
            match app
                .store
                .purge_tokens_paced(before, PURGE_PAUSE_FACTOR)
                .await
            {
                Ok(n) if n > 0 => tracing::info!(
                    purged = n,
                    before,
                    "audit records past their retention purged"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot purge old audit records; will retry"),
            }
            match app
                .store
                .purge_decisions_paced(before, PURGE_PAUSE_FACTOR)
                .await
            {
                Ok(n) if n > 0 => tracing::info!(
                    purged = n,
                    before,
                    "decision records past their retention purged"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot purge old decision records; will retry")
                }
            }
        }
    }
}

/// The retention purge of a running server pauses after each batch for this
/// many times as long as the batch took, so that a large backlog (the first
/// purge after retention is turned on or shortened) takes at most about a
/// quarter of the database's time from minting. While 2 million records were
/// purged on a 2-core machine, minting ran at 10.5-12.9k tokens/s at full speed
/// and at 22.4-23.0k paced, against 24-27k without a purge (bench/notes.md).
/// `nomos-issuer audit purge` runs at full speed.
const PURGE_PAUSE_FACTOR: u32 = 3;

fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    serve::bind(addr).with_context(|| format!("cannot listen on {addr}"))
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
