//! `org create | list | show | update | set-claims`, on the store or, with
//! `--addr`, through a running issuer's admin API.

use anyhow::Context;
use serde_json::json;

use super::backend::{Backend, connect};
use super::input::invalid;
use super::remote::RemoteArgs;
use crate::config::Settings;
use crate::http::admin::views::OrgView;
use crate::ids::{Audience, OrgId, Subject};
use crate::principal::{DEFAULT_ORG_MAX_TTL, OrgPolicy, PolicyChange, PolicyError};

/// `org`: the command and where it acts.
#[derive(Debug, clap::Args)]
pub struct OrgArgs {
    /// Where the command acts.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The command.
    #[command(subcommand)]
    pub command: OrgCommand,
}

/// `org` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum OrgCommand {
    /// Create an org and print its client credentials (the secret is shown once)
    #[command(after_help = super::examples::ORG_CREATE)]
    Create {
        /// Org id: 1-63 characters of a-z, 0-9 and '-'
        org: OrgId,
        /// Audience tokens may carry; repeat for several [default: sts.amazonaws.com]
        #[arg(long = "audience", value_name = "AUDIENCE", value_parser = Audience::parse)]
        audiences: Vec<Audience>,
        /// Longest token lifetime for this org, in seconds (at most 3600)
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_ORG_MAX_TTL)]
        max_ttl: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List the orgs
    #[command(after_help = super::examples::ORG_LIST)]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show an org and its token policy
    #[command(after_help = super::examples::ORG_SHOW)]
    Show {
        /// The org
        org: OrgId,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Change an org's token policy; tokens follow it at once (on every replica
    /// within a second)
    #[command(after_help = super::examples::ORG_UPDATE)]
    Update {
        /// The org
        org: OrgId,
        /// The audiences tokens may carry, replacing the list; repeat for several
        #[arg(long = "audience", value_name = "AUDIENCE", value_parser = Audience::parse)]
        audiences: Vec<Audience>,
        /// Longest token lifetime for this org, in seconds (at most 3600)
        #[arg(long, value_name = "SECONDS")]
        max_ttl: Option<u32>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Set the AWS session claims of an org's tokens (replaces the whole setting;
    /// no flags turns them off). Agents inherit it unless they have their own
    #[command(after_help = super::examples::ORG_SET_CLAIMS)]
    SetClaims {
        /// The org
        org: OrgId,
        /// The claims
        #[command(flatten)]
        claims: super::ClaimsArgs,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// A refused policy, naming the flag: invalid input.
fn policy_error(e: PolicyError) -> anyhow::Error {
    let flag = if e.is_max_ttl() {
        "--max-ttl"
    } else {
        "--audience"
    };
    invalid(format!("{flag}: {e}"))
}

pub async fn run(settings: Settings, args: OrgArgs) -> anyhow::Result<()> {
    // Input is checked before the store is opened or a request sent.
    match args.command {
        OrgCommand::Create {
            org,
            audiences,
            max_ttl,
            json,
        } => {
            let audiences = if audiences.is_empty() {
                vec![Audience::sts()]
            } else {
                audiences
            };
            let policy = OrgPolicy::new(audiences, max_ttl).map_err(policy_error)?;
            let backend = connect(&settings, &args.remote).await?;
            create(backend.as_ref(), &org, &policy, json).await
        }
        OrgCommand::List { json } => {
            let backend = connect(&settings, &args.remote).await?;
            let orgs = backend.orgs().await.context("cannot list orgs")?;
            if json {
                super::print_json(&json!({ "orgs": orgs }));
            } else if orgs.is_empty() {
                println!("No orgs: create one with `nomos-issuer org create ORG`.");
            } else {
                println!(
                    "{:<24}  {:>7}  {:<20}  AUDIENCES",
                    "ORG", "MAX TTL", "CREATED"
                );
                for o in &orgs {
                    println!(
                        "{:<24}  {:>7}  {:<20}  {}",
                        o.id.as_str(),
                        format!("{} s", o.max_ttl_seconds),
                        super::time(Some(o.created_at)),
                        audience_list(&o.audiences)
                    );
                }
            }
            Ok(())
        }
        OrgCommand::Show { org, json } => {
            let backend = connect(&settings, &args.remote).await?;
            let view = backend.org(&org).await.context("cannot show the org")?;
            print_org(&view, json);
            Ok(())
        }
        OrgCommand::Update {
            org,
            audiences,
            max_ttl,
            json,
        } => {
            let audiences = (!audiences.is_empty()).then_some(audiences);
            let change = PolicyChange::new(audiences, max_ttl)
                .map_err(policy_error)?
                .ok_or_else(|| invalid("nothing to update: give --audience, --max-ttl or both"))?;
            let backend = connect(&settings, &args.remote).await?;
            let view = backend
                .update_org(&org, &change)
                .await
                .with_context(|| format!("cannot update org {org}"))?;
            print_org(&view, json);
            Ok(())
        }
        OrgCommand::SetClaims { org, claims, json } => {
            let subject = Subject::Org(org);
            let claims = claims
                .to_claims(&subject)
                .map_err(|e| invalid(e.to_string()))?;
            let backend = connect(&settings, &args.remote).await?;
            backend
                .set_session_claims(&subject, Some(&claims))
                .await
                .with_context(|| format!("cannot set the session claims of {subject}"))?;
            if json {
                super::print_json(
                    &json!({"client_id": subject.to_string(), "session_claims": claims}),
                );
            } else {
                println!(
                    "session claims of {subject}: {}",
                    serde_json::to_string(&claims)?
                );
            }
            Ok(())
        }
    }
}

async fn create(
    backend: &dyn Backend,
    org: &OrgId,
    policy: &OrgPolicy,
    json: bool,
) -> anyhow::Result<()> {
    let created = backend
        .create_org(org, policy)
        .await
        .with_context(|| format!("cannot create org {org}"))?;
    let o = &created.org;
    if json {
        super::print_json(&json!({
            "org_id": o.id,
            "client_id": created.client_id,
            "client_secret": created.client_secret,
            "audiences": o.audiences,
            "max_ttl": o.max_ttl_seconds,
            "credential": created.credential,
        }));
    } else {
        println!("Created org {org}.");
        println!("client_id:     {}", created.client_id);
        println!("client_secret: {}", created.client_secret.expose());
        println!("audiences:     {}", audience_list(&o.audiences));
        println!("max token ttl: {} s", o.max_ttl_seconds);
        println!();
        println!("The secret is shown only once and stored only as a hash: keep it now.");
    }
    Ok(())
}

fn audience_list(audiences: &[Audience]) -> String {
    let list: Vec<&str> = audiences.iter().map(Audience::as_str).collect();
    list.join(", ")
}

fn print_org(o: &OrgView, json: bool) {
    if json {
        super::print_json(&json!(o));
        return;
    }
    println!("org:           {}", o.id);
    println!("client_id:     {}", Subject::Org(o.id.clone()));
    println!("audiences:     {}", audience_list(&o.audiences));
    println!("max token ttl: {} s", o.max_ttl_seconds);
    println!("created:       {}", super::time(Some(o.created_at)));
}
