//! `admin token create | list | revoke`: bearer tokens for the admin API.

use anyhow::Context;
use serde_json::json;

use crate::app::{now, open_store};
use crate::config::Settings;
use crate::principal::{ClientSecret, random_id};
use crate::store::AdminToken;

/// The prefix of every admin token, so that secret scanners and humans recognise one.
pub const ADMIN_TOKEN_PREFIX: &str = "nomos_at_";

/// `admin` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Admin API tokens (Authorization: Bearer on /admin/v1)
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `admin token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once; only its hash is stored
    Create {
        /// What or who the token is for, shown in `list` and in the issuer's log
        #[arg(long)]
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never the tokens themselves)
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; it stops working at once on every replica
    Revoke {
        /// The token id (see `admin token list`)
        id: String,
    },
}

pub async fn run(settings: Settings, cmd: AdminCommand) -> anyhow::Result<()> {
    let AdminCommand::Token(cmd) = cmd;
    let store = open_store(&settings, false).await?;
    match cmd {
        TokenCommand::Create { name, json } => {
            anyhow::ensure!(
                !name.trim().is_empty() && name.len() <= 200,
                "--name must be 1-200 characters"
            );
            let secret = ClientSecret::with_prefix(ADMIN_TOKEN_PREFIX);
            let token = AdminToken {
                id: random_id("adm_", 9),
                name,
                created_at: now(),
                revoked_at: None,
                expires_at: None,
            };
            store
                .create_admin_token(&token, &secret.hash())
                .await
                .context("cannot store the admin token")?;
            if json {
                super::print_json(&json!({
                    "id": token.id, "name": token.name, "token": secret.expose(),
                }));
            } else {
                println!("Created admin token {} ({}).", token.id, token.name);
                println!("token: {}", secret.expose());
                println!();
                println!(
                    "It is shown only once and stored only as a hash. Use it as `Authorization: Bearer <token>` on /admin/v1."
                );
            }
        }
        TokenCommand::List { json } => {
            let tokens = store
                .list_admin_tokens()
                .await
                .context("cannot list admin tokens")?;
            if json {
                let rows: Vec<_> = tokens
                    .iter()
                    .map(|t| json!({"id": t.id, "name": t.name, "created_at": t.created_at, "revoked_at": t.revoked_at}))
                    .collect();
                super::print_json(&json!({ "tokens": rows }));
            } else if tokens.is_empty() {
                println!(
                    "No admin tokens: create one with `nomos-issuer admin token create --name NAME`."
                );
            } else {
                println!("{:<16}  {:<20}  {:<20}  NAME", "ID", "CREATED", "REVOKED");
                for t in &tokens {
                    println!(
                        "{:<16}  {:<20}  {:<20}  {}",
                        t.id,
                        super::time(Some(t.created_at)),
                        super::time(t.revoked_at),
                        t.name
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            store
                .revoke_admin_token(&id, now())
                .await
                .with_context(|| format!("cannot revoke admin token {id}"))?;
            println!("admin token {id} revoked");
        }
    }
    Ok(())
}
