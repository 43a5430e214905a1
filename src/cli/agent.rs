//! `agent create | list | show | set-claims`, on the store or, with `--addr`,
//! through a running issuer's admin API.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use super::backend::connect;
use super::input::{invalid, public_keys};
use super::remote::RemoteArgs;
use crate::config::Settings;
use crate::http::admin::views::CredentialView;
use crate::ids::{AgentId, OrgId, Subject};

/// `agent`: the command and where it acts.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Where the command acts.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The command.
    #[command(subcommand)]
    pub command: AgentCommand,
}

/// `agent` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Create an agent; prints a one-time client secret, or nothing secret with --public-key
    #[command(after_help = super::examples::AGENT_CREATE)]
    Create {
        /// The org the agent belongs to
        org: OrgId,
        /// Agent id: 1-63 characters of a-z, 0-9 and '-'
        agent: AgentId,
        /// Authenticate with private_key_jwt: a file holding a public JWK, a JWKS, or a PEM public key (-----BEGIN PUBLIC KEY-----)
        #[arg(long, value_name = "KEY_FILE")]
        public_key: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List the agents of an org
    #[command(after_help = super::examples::AGENT_LIST)]
    List {
        /// The org
        org: OrgId,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show an agent
    #[command(after_help = super::examples::AGENT_SHOW)]
    Show {
        /// The org
        org: OrgId,
        /// The agent
        agent: AgentId,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Give one agent its own AWS session claims (replaces its setting), or
    /// --inherit its org's again
    #[command(after_help = super::examples::AGENT_SET_CLAIMS)]
    SetClaims {
        /// The org
        org: OrgId,
        /// The agent
        agent: AgentId,
        /// Drop the agent's own setting and use its org's
        #[arg(long, conflicts_with_all = ["session_tags", "tags", "transitive", "source_identity"])]
        inherit: bool,
        /// The claims
        #[command(flatten)]
        claims: super::ClaimsArgs,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: Settings, args: AgentArgs) -> anyhow::Result<()> {
    match args.command {
        AgentCommand::Create {
            org,
            agent,
            public_key,
            json,
        } => {
            let keys = public_key.as_deref().map(public_keys).transpose()?;
            let backend = connect(&settings, &args.remote).await?;
            let created = backend
                .create_agent(&org, &agent, keys)
                .await
                .with_context(|| format!("cannot create agent {agent} in org {org}"))?;
            if json {
                let mut out = json!({
                    "org_id": org, "agent_id": agent, "client_id": created.client_id,
                    "credential": created.credential,
                });
                match &created.client_secret {
                    Some(s) => out["client_secret"] = json!(s),
                    None => {
                        out["auth_method"] = "private_key_jwt".into();
                        out["key_ids"] = json!(created.credential.kids);
                    }
                }
                super::print_json(&out);
            } else {
                println!("Created agent {agent} in org {org}.");
                println!("client_id:     {}", created.client_id);
                print_new_credential(&created.credential, created.client_secret.as_ref());
            }
            Ok(())
        }
        AgentCommand::List { org, json } => {
            let backend = connect(&settings, &args.remote).await?;
            let agents = backend
                .agents(&org)
                .await
                .with_context(|| format!("cannot list the agents of org {org}"))?;
            if json {
                super::print_json(&json!({ "agents": agents }));
            } else if agents.is_empty() {
                println!(
                    "Org {org} has no agents: create one with `nomos-issuer agent create {org} AGENT`."
                );
            } else {
                println!("{:<24}  {:<20}  CLIENT ID", "AGENT", "CREATED");
                for a in &agents {
                    println!(
                        "{:<24}  {:<20}  {}",
                        a.id.as_str(),
                        super::time(Some(a.created_at)),
                        Subject::Agent(a.org_id.clone(), a.id.clone())
                    );
                }
            }
            Ok(())
        }
        AgentCommand::Show { org, agent, json } => {
            let backend = connect(&settings, &args.remote).await?;
            let a = backend
                .agent(&org, &agent)
                .await
                .context("cannot show the agent")?;
            if json {
                super::print_json(&json!(a));
            } else {
                println!("agent:     {}", a.id);
                println!("org:       {}", a.org_id);
                println!(
                    "client_id: {}",
                    Subject::Agent(a.org_id.clone(), a.id.clone())
                );
                println!("created:   {}", super::time(Some(a.created_at)));
            }
            Ok(())
        }
        AgentCommand::SetClaims {
            org,
            agent,
            inherit,
            claims,
            json,
        } => {
            let subject = Subject::Agent(org, agent);
            let claims = if inherit {
                None
            } else {
                Some(
                    claims
                        .to_claims(&subject)
                        .map_err(|e| invalid(e.to_string()))?,
                )
            };
            let backend = connect(&settings, &args.remote).await?;
            backend
                .set_session_claims(&subject, claims.as_ref())
                .await
                .with_context(|| format!("cannot set the session claims of {subject}"))?;
            if json {
                super::print_json(&json!({
                    "client_id": subject.to_string(),
                    "session_claims": claims,
                    "inherits": claims.is_none(),
                }));
            } else {
                match claims {
                    Some(c) => println!(
                        "session claims of {subject}: {}",
                        serde_json::to_string(&c)?
                    ),
                    None => println!("{subject} now inherits the session claims of its org"),
                }
            }
            Ok(())
        }
    }
}

/// A credential just made, as text; the secret with the warning that it is shown once.
pub(super) fn print_new_credential(
    credential: &CredentialView,
    secret: Option<&crate::principal::ClientSecret>,
) {
    match secret {
        Some(s) => {
            println!("client_secret: {}", s.expose());
            println!("credential id: {}", credential.id);
            println!();
            println!("The secret is shown only once and stored only as a hash: keep it now.");
        }
        None => {
            println!("auth method:   private_key_jwt");
            println!("key ids:       {}", credential.kids.join(", "));
            println!("credential id: {}", credential.id);
        }
    }
}
