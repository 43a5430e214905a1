//! `agent create`.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;

use crate::app::{now, open_store};
use crate::config::Settings;
use crate::ids::{AgentId, OrgId, Subject};
use crate::keys::PublicJwk;
use crate::principal::{Credential, CredentialKind};

/// `agent` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Create an agent; prints a one-time client secret, or nothing secret with --public-key
    Create {
        /// The org the agent belongs to
        org: String,
        /// Agent id: 1-63 characters of a-z, 0-9 and '-'
        agent: String,
        /// Authenticate with private_key_jwt: a file holding one public JWK or a JWKS
        #[arg(long, value_name = "JWK_FILE")]
        public_key: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Give one agent its own AWS session claims (replaces its setting), or
    /// --inherit its org's again
    SetClaims {
        /// The org
        org: String,
        /// The agent
        agent: String,
        /// Drop the agent's own setting and use its org's
        #[arg(long, conflicts_with_all = ["session_tags", "tags", "transitive", "source_identity"])]
        inherit: bool,
        /// The claims
        #[command(flatten)]
        claims: super::ClaimsArgs,
    },
}

pub async fn run(settings: Settings, cmd: AgentCommand) -> anyhow::Result<()> {
    let (org, agent, public_key, json) = match cmd {
        AgentCommand::SetClaims {
            org,
            agent,
            inherit,
            claims,
        } => {
            let subject = Subject::Agent(OrgId::parse(&org)?, AgentId::parse(&agent)?);
            let claims = if inherit {
                None
            } else {
                Some(claims.to_claims(&subject)?)
            };
            let store = open_store(&settings, false).await?;
            store
                .set_session_claims(&subject, claims.as_ref())
                .await
                .with_context(|| format!("cannot set the session claims of {subject}"))?;
            match claims {
                Some(c) => println!(
                    "session claims of {subject}: {}",
                    serde_json::to_string(&c)?
                ),
                None => println!("{subject} now inherits the session claims of its org"),
            }
            return Ok(());
        }
        AgentCommand::Create {
            org,
            agent,
            public_key,
            json,
        } => (org, agent, public_key, json),
    };
    let org = OrgId::parse(&org)?;
    let agent = AgentId::parse(&agent)?;
    let (credential, secret, kids) = match &public_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let keys = PublicJwk::parse_set(&text).with_context(|| path.display().to_string())?;
            let kids: Vec<String> = keys.iter().map(|k| k.kid.clone()).collect();
            (
                Credential::new(CredentialKind::PublicKeys(keys)),
                None,
                kids,
            )
        }
        None => {
            let (secret, credential) = Credential::new_secret();
            (credential, Some(secret), Vec::new())
        }
    };
    let store = open_store(&settings, false).await?;
    store
        .create_agent(&org, &agent, &credential, now())
        .await
        .with_context(|| format!("cannot create agent {agent} in org {org}"))?;
    let client_id = Subject::Agent(org.clone(), agent.clone()).to_string();
    if json {
        let mut out = json!({"org_id": org, "agent_id": agent, "client_id": client_id});
        match &secret {
            Some(s) => out["client_secret"] = s.expose().into(),
            None => {
                out["auth_method"] = "private_key_jwt".into();
                out["key_ids"] = kids.into();
            }
        }
        super::print_json(&out);
    } else {
        println!("Created agent {agent} in org {org}.");
        println!("client_id:     {client_id}");
        match &secret {
            Some(s) => {
                println!("client_secret: {}", s.expose());
                println!();
                println!("The secret is shown only once and stored only as a hash: keep it now.");
            }
            None => {
                println!("auth method:   private_key_jwt");
                println!("key ids:       {}", kids.join(", "));
            }
        }
    }
    Ok(())
}
