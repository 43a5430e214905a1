//! `credential add | list | revoke`: the credentials of an org, or with
//! `--agent` of one of its agents, on the store or, with `--addr`, through a
//! running issuer's admin API. Two secrets may be active at once, so that a
//! secret is replaced without downtime: add, deploy, revoke the old one.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::backend::connect;
use super::input::public_keys;
use super::remote::RemoteArgs;
use crate::config::Settings;
use crate::http::admin::views::CredentialType;
use crate::ids::{AgentId, OrgId, Subject};

/// `credential`: the command and where it acts.
#[derive(Debug, clap::Args)]
pub struct CredentialArgs {
    /// Where the command acts.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The command.
    #[command(subcommand)]
    pub command: CredentialCommand,
}

/// Whose credentials: an org, or one of its agents.
#[derive(Debug, Clone, clap::Args)]
pub struct Owner {
    /// The org
    pub org: OrgId,
    /// One of the org's agents, instead of the org itself
    #[arg(long)]
    pub agent: Option<AgentId>,
}

impl Owner {
    fn subject(&self) -> Subject {
        match &self.agent {
            Some(a) => Subject::Agent(self.org.clone(), a.clone()),
            None => Subject::Org(self.org.clone()),
        }
    }
}

/// `credential` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CredentialCommand {
    /// Add a client secret (printed once), or public keys with --public-key
    #[command(after_help = super::examples::CREDENTIAL_ADD)]
    Add {
        /// Whose
        #[command(flatten)]
        owner: Owner,
        /// Register public keys for private_key_jwt instead: a public JWK, a JWKS, or a PEM public key (-----BEGIN PUBLIC KEY-----)
        #[arg(long, value_name = "KEY_FILE")]
        public_key: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List credentials, revoked ones included (never a secret)
    #[command(after_help = super::examples::CREDENTIAL_LIST)]
    List {
        /// Whose
        #[command(flatten)]
        owner: Owner,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a credential: it stops working at once
    #[command(after_help = super::examples::CREDENTIAL_REVOKE)]
    Revoke {
        /// Whose
        #[command(flatten)]
        owner: Owner,
        /// The credential id (see `credential list`)
        credential: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: Settings, args: CredentialArgs) -> anyhow::Result<()> {
    match args.command {
        CredentialCommand::Add {
            owner,
            public_key,
            json,
        } => {
            let keys = public_key.as_deref().map(public_keys).transpose()?;
            let subject = owner.subject();
            let backend = connect(&settings, &args.remote).await?;
            let created = backend
                .add_credential(&subject, keys)
                .await
                .with_context(|| format!("cannot add a credential to {subject}"))?;
            if json {
                super::print_json(&json!({
                    "client_id": subject.to_string(),
                    "credential": created.credential,
                    "client_secret": created.client_secret,
                }));
            } else {
                println!("Added a credential to {subject}.");
                super::agent::print_new_credential(
                    &created.credential,
                    created.client_secret.as_ref(),
                );
            }
        }
        CredentialCommand::List { owner, json } => {
            let subject = owner.subject();
            let backend = connect(&settings, &args.remote).await?;
            let list = backend
                .credentials(&subject)
                .await
                .with_context(|| format!("cannot list the credentials of {subject}"))?;
            if json {
                super::print_json(&json!({ "credentials": list }));
            } else {
                println!(
                    "{:<22}  {:<10}  {:<20}  {:<20}  KEY IDS",
                    "ID", "KIND", "CREATED", "REVOKED"
                );
                for c in &list {
                    let kind = match c.kind {
                        CredentialType::Secret => "secret",
                        CredentialType::PublicKey => "public_key",
                    };
                    println!(
                        "{:<22}  {:<10}  {:<20}  {:<20}  {}",
                        c.id,
                        kind,
                        super::time(Some(c.created_at)),
                        super::time(c.revoked_at),
                        c.kids.join(", ")
                    );
                }
            }
        }
        CredentialCommand::Revoke {
            owner,
            credential,
            json,
        } => {
            let subject = owner.subject();
            let backend = connect(&settings, &args.remote).await?;
            backend
                .revoke_credential(&subject, &credential)
                .await
                .with_context(|| format!("cannot revoke credential {credential} of {subject}"))?;
            if json {
                super::print_json(&json!({
                    "client_id": subject.to_string(),
                    "credential_id": credential,
                    "revoked": true,
                }));
            } else {
                println!("credential {credential} of {subject} revoked");
            }
        }
    }
    Ok(())
}
