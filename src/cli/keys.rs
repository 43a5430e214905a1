//! `keys list`.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use serde_json::json;

use crate::app::open_store;
use crate::config::Settings;

/// `keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List signing keys: kid, algorithm, state and timestamps (no private material)
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn time(t: Option<i64>) -> String {
    match t.and_then(|t| u64::try_from(t).ok()) {
        Some(t) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
        }
        None => "-".into(),
    }
}

pub async fn run(settings: Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::List { json } = cmd;
    let store = open_store(&settings, false).await?;
    let keys = store
        .list_keys()
        .await
        .context("cannot list signing keys")?;
    if json {
        let rows: Vec<_> = keys
            .iter()
            .map(|k| {
                json!({
                    "kid": k.kid, "alg": k.alg.as_str(), "state": k.state.as_str(),
                    "created_at": k.created_at, "activated_at": k.activated_at,
                    "retired_at": k.retired_at,
                    "kek_id": k.private_key.as_ref().map(|w| w.kek_id.clone()),
                })
            })
            .collect();
        super::print_json(&json!({ "keys": rows }));
        return Ok(());
    }
    if keys.is_empty() {
        println!(
            "No signing keys yet: `nomos-issuer serve` creates a current and a next key on first start."
        );
        return Ok(());
    }
    println!(
        "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}",
        "KID", "ALG", "STATE", "CREATED", "ACTIVATED", "RETIRED"
    );
    for k in &keys {
        println!(
            "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}",
            k.kid,
            k.alg.as_str(),
            k.state.as_str(),
            time(Some(k.created_at)),
            time(k.activated_at),
            time(k.retired_at)
        );
    }
    Ok(())
}
