//! `serve` and `migrate`.

use anyhow::Context;

use crate::app::open_store;
use crate::config::Settings;
use crate::server::Server;

/// Options of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Apply pending migrations first (always done on the embedded store)
    #[arg(long)]
    pub migrate: bool,
}

pub async fn run(settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let backend = format!("{:?}", settings.backend).to_lowercase();
    let alg = settings.rotation.alg;
    let server = Server::start(settings, args.migrate).await?;
    tracing::info!(
        addr = %server.addr,
        issuer = %server.app.settings.issuer,
        store = backend,
        %alg,
        kid = server.app.keys.get().signer.kid(),
        "nomos-issuer listening"
    );
    super::shutdown_signal().await;
    tracing::info!("shutting down: draining requests and flushing the audit");
    server.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings, true).await?;
    let pending = store
        .pending_migrations()
        .await
        .context("cannot read the schema version")?;
    anyhow::ensure!(pending == 0, "{pending} migration(s) still pending");
    eprintln!("schema is up to date ({:?} store)", store.backend());
    Ok(())
}
