//! `org create`.

use anyhow::Context;
use serde_json::json;

use crate::app::{now, open_store};
use crate::config::Settings;
use crate::ids::{Audience, OrgId, Subject};
use crate::principal::{Credential, DEFAULT_ORG_MAX_TTL, OrgPolicy, PolicyError};

/// `org` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OrgCommand {
    /// Create an org and print its client credentials (the secret is shown once)
    Create {
        /// Org id: 1-63 characters of a-z, 0-9 and '-'
        org: String,
        /// Audience tokens may carry; repeat for several [default: sts.amazonaws.com]
        #[arg(long = "audience", value_name = "AUDIENCE")]
        audiences: Vec<String>,
        /// Longest token lifetime for this org, in seconds (at most 3600)
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_ORG_MAX_TTL)]
        max_ttl: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Set the AWS session claims of an org's tokens (replaces the whole setting;
    /// no flags turns them off). Agents inherit it unless they have their own
    SetClaims {
        /// The org
        org: String,
        /// The claims
        #[command(flatten)]
        claims: super::ClaimsArgs,
    },
}

pub async fn run(settings: Settings, cmd: OrgCommand) -> anyhow::Result<()> {
    let (org, audiences, max_ttl, json) = match cmd {
        OrgCommand::SetClaims { org, claims } => {
            let subject = Subject::Org(OrgId::parse(&org)?);
            let claims = claims.to_claims(&subject)?;
            let store = open_store(&settings, false).await?;
            store
                .set_session_claims(&subject, Some(&claims))
                .await
                .with_context(|| format!("cannot set the session claims of {subject}"))?;
            println!(
                "session claims of {subject}: {}",
                serde_json::to_string(&claims)?
            );
            return Ok(());
        }
        OrgCommand::Create {
            org,
            audiences,
            max_ttl,
            json,
        } => (org, audiences, max_ttl, json),
    };
    let org = OrgId::parse(&org)?;
    let audiences = if audiences.is_empty() {
        vec![Audience::sts()]
    } else {
        audiences
            .iter()
            .map(|a| Audience::parse(a))
            .collect::<Result<Vec<_>, _>>()?
    };
    let policy = OrgPolicy::new(audiences, max_ttl).map_err(|e| {
        let flag = match e {
            PolicyError::MaxTtl(_) => "--max-ttl",
            _ => "--audience",
        };
        anyhow::anyhow!("{flag}: {e}")
    })?;
    let store = open_store(&settings, false).await?;
    let (secret, credential) = Credential::new_secret();
    store
        .create_org(&org, &policy, &credential, now())
        .await
        .with_context(|| format!("cannot create org {org}"))?;
    let client_id = Subject::Org(org.clone()).to_string();
    let auds: Vec<&str> = policy.audiences.iter().map(Audience::as_str).collect();
    if json {
        super::print_json(&json!({
            "org_id": org,
            "client_id": client_id,
            "client_secret": secret.expose(),
            "audiences": auds,
            "max_ttl": max_ttl,
        }));
    } else {
        println!("Created org {org}.");
        println!("client_id:     {client_id}");
        println!("client_secret: {}", secret.expose());
        println!("audiences:     {}", auds.join(", "));
        println!("max token ttl: {max_ttl} s");
        println!();
        println!("The secret is shown only once and stored only as a hash: keep it now.");
    }
    Ok(())
}
