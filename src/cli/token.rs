//! `token mint`: local minting for operators and tests, audited like any token.

use anyhow::{Context, bail};
use serde_json::json;

use crate::app::{now, open_store, start_keys};
use crate::config::Settings;
use crate::ids::{AgentId, Audience, OrgId, Subject};
use crate::oauth::{MintRequest, mint};

/// `token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Mint a token for an org or one of its agents and print it
    Mint {
        /// The org
        org: String,
        /// The agent (omit for an org-scoped token)
        agent: Option<String>,
        /// Audience, which must be in the org's list [default: sts.amazonaws.com]
        #[arg(long)]
        audience: Option<String>,
        /// Lifetime in seconds, at most the org's maximum [default: the configured token_ttl]
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u32>,
        /// Print JSON with the token, its expiry and jti
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(settings: Settings, cmd: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Mint {
        org,
        agent,
        audience,
        ttl,
        json,
    } = cmd;
    let org = OrgId::parse(&org)?;
    let subject = match agent {
        Some(a) => Subject::Agent(org, AgentId::parse(&a)?),
        None => Subject::Org(org),
    };
    let audience = match audience {
        Some(a) => Audience::parse(&a)?,
        None => Audience::sts(),
    };
    let store = open_store(&settings, false).await?;
    let Some(principal) = store.principal(&subject).await? else {
        bail!("{subject} does not exist");
    };
    if !principal.policy.audiences.contains(&audience) {
        bail!(
            "audience {audience} is not in the allowed audiences of org {}",
            subject.org()
        );
    }
    let max = principal
        .policy
        .max_ttl
        .min(settings.rotation.max_token_lifetime as u32);
    let ttl = ttl.unwrap_or(settings.token_ttl.min(max));
    if ttl == 0 || ttl > max {
        bail!(
            "--ttl must be 1-{max} seconds (the maximum of org {} and max_token_lifetime)",
            subject.org()
        );
    }
    let (_manager, published) = start_keys(store.clone(), &settings).await?;
    let minted = mint(
        &published.signer,
        &settings.issuer,
        MintRequest {
            subject: &subject,
            audience: &audience,
            ttl,
            auth_method: "cli",
        },
        now(),
    );
    store
        .record_tokens(std::slice::from_ref(&minted.record))
        .await
        .context("cannot record the token in the audit; no token was issued")?;
    if json {
        super::print_json(&json!({
            "access_token": minted.token,
            "expires_in": minted.expires_in,
            "jti": minted.record.jti,
            "sub": minted.record.subject,
            "aud": minted.record.audience,
            "kid": minted.record.kid,
        }));
    } else {
        println!("{}", minted.token);
    }
    Ok(())
}
