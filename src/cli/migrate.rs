//! `migrate`: bring the database schema up to date, and say so.

use anyhow::Context;
use serde_json::json;

use crate::app::open_store;
use crate::config::Settings;
use crate::store::Backend;

/// Examples of `migrate`.
pub const EXAMPLES: &str = "\
Examples:
  # Postgres: once before the first serve, and after each upgrade
  NOMOS_ISSUER_DATABASE_URL=postgres://nomos@db.internal/nomos nomos-issuer migrate
  # The same, for a script
  nomos-issuer --database-url postgres://nomos@db.internal/nomos migrate --json";

/// Options of `migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Print JSON: {"store": "postgres"|"sqlite", "pending": 0}
    #[arg(long)]
    pub json: bool,
}

/// Applies pending migrations and reports that none are left.
pub async fn run(settings: Settings, args: MigrateArgs) -> anyhow::Result<()> {
    let store = open_store(&settings, true).await?;
    let pending = store
        .pending_migrations()
        .await
        .context("cannot read the schema version")?;
    anyhow::ensure!(pending == 0, "{pending} migration(s) still pending");
    let (id, name) = match store.backend() {
        Backend::Postgres => ("postgres", "Postgres"),
        Backend::Sqlite => ("sqlite", "embedded SQLite"),
    };
    if args.json {
        super::print_json(&json!({ "store": id, "pending": pending }));
    } else {
        eprintln!("schema is up to date ({name} store)");
    }
    Ok(())
}
