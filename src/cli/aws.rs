//! `aws provider | trust-policy | lint | check`: connecting an AWS account.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::json;

use super::serve::{Issuer, ca_file_or_dev_ca, dev_ca};
use crate::app::open_store;
use crate::aws::lint::{Severity, issuer_of_policy, lint};
use crate::aws::policy::{Binding, Provider, check_account, check_partition, terraform};
use crate::aws::session::SessionClaims;
use crate::config::{ConfigError, Settings};
use crate::ids::{AgentId, Audience, OrgId, Subject};
use crate::store::Store;

/// How `aws provider` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderFormat {
    /// A ready `aws iam create-open-id-connect-provider` command line.
    Cli,
    /// The parameters as JSON.
    Json,
}

/// How `aws trust-policy` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyFormat {
    /// The policy document.
    Json,
    /// A Terraform `locals` block and output (`terraform fmt` clean).
    Terraform,
}

/// `aws` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AwsCommand {
    /// Print what `aws iam create-open-id-connect-provider` needs for this issuer
    Provider {
        /// Take the client ids (audiences) from this org [default: sts.amazonaws.com]
        #[arg(long)]
        org: Option<String>,
        /// Also print the SHA-1 thumbprint of the top intermediate certificate, read
        /// from the live TLS chain of the discovery host (and the jwks_uri host)
        #[arg(long)]
        thumbprint: bool,
        /// Extra PEM CA certificates to trust (for a private CA)
        #[arg(long, value_name = "PEM_FILE")]
        ca_file: Option<PathBuf>,
        /// Output: a ready command line, or JSON
        #[arg(long, value_enum, default_value_t = ProviderFormat::Cli)]
        format: ProviderFormat,
        /// Print JSON (the same as --format json)
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Print a role trust policy that admits one agent (or every agent) of an org
    TrustPolicy {
        /// The AWS account id the OIDC provider is registered in (12 digits)
        #[arg(long)]
        account: String,
        /// The org
        #[arg(long)]
        org: String,
        /// The one agent to admit
        #[arg(
            long,
            conflicts_with = "any_agent",
            required_unless_present = "any_agent"
        )]
        agent: Option<String>,
        /// Admit every agent of the org (StringLike org/<org>/agent/*)
        #[arg(long)]
        any_agent: bool,
        /// The token audience [default: sts.amazonaws.com]
        #[arg(long)]
        audience: Option<String>,
        /// Tokens carry session tags: allow sts:TagSession
        #[arg(long)]
        tags: bool,
        /// Tokens carry a source identity: allow sts:SetSourceIdentity
        #[arg(long)]
        source_identity: bool,
        /// Output format
        #[arg(long, value_enum, default_value_t = PolicyFormat::Json)]
        format: PolicyFormat,
        /// Print JSON (the default; the same as --format json)
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// AWS partition: aws, aws-cn or aws-us-gov
        #[arg(long, default_value = "aws")]
        partition: String,
    },
    /// Check a trust policy file against this issuer (--issuer, else the one its
    /// principal names); exits 1 on any error
    Lint {
        /// The trust policy (JSON)
        file: PathBuf,
        /// Print the findings as JSON
        #[arg(long)]
        json: bool,
    },
    /// Look at this issuer the way STS would and report what would fail
    Check(crate::aws::doctor::CheckArgs),
}

/// Invalid input: exit code 2, naming the flag.
fn usage(name: &str, why: impl std::fmt::Display) -> anyhow::Error {
    ConfigError::new(name, why.to_string()).into()
}

pub async fn run(settings: Settings, cmd: AwsCommand) -> anyhow::Result<()> {
    match cmd {
        AwsCommand::TrustPolicy {
            account,
            org,
            agent,
            any_agent: _,
            audience,
            tags,
            source_identity,
            format,
            json: _,
            partition,
        } => {
            check_account(&account).map_err(|e| usage("--account", e))?;
            check_partition(&partition).map_err(|e| usage("--partition", e))?;
            let binding = Binding {
                org: OrgId::parse(&org).map_err(|e| usage("--org", e))?,
                agent: agent
                    .as_deref()
                    .map(AgentId::parse)
                    .transpose()
                    .map_err(|e| usage("--agent", e))?,
                audience: audience
                    .as_deref()
                    .map(Audience::parse)
                    .transpose()
                    .map_err(|e| usage("--audience", e))?
                    .unwrap_or_else(Audience::sts),
                tags,
                source_identity,
            };
            // Without --issuer, the store says which issuer serve serves.
            let store = match settings.issuer_follows_listen {
                true => open_store(&settings, false).await.ok(),
                false => None,
            };
            let issuer = store_issuer(&settings, store.as_deref()).await?;
            let provider = Provider::new(&issuer, &account, &partition)?;
            let doc = binding.trust_policy(&provider);
            match format {
                PolicyFormat::Json => super::print_json(&doc),
                PolicyFormat::Terraform => print!("{}", terraform(&binding, &doc)),
            }
            Ok(())
        }
        AwsCommand::Lint { file, json } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| usage("FILE", format!("{} is not JSON: {e}", file.display())))?;
            // The issuer: --issuer, else the provider the policy's principal
            // names. A guessed http://<listen> would only report "another provider".
            let (issuer, from) = if settings.issuer_follows_listen {
                let issuer = issuer_of_policy(&doc).map_err(|why| {
                    usage(
                        "issuer",
                        format!(
                            "cannot tell which issuer {} is for: {why}. Pass --issuer with the issuer URL the policy is for",
                            file.display()
                        ),
                    )
                })?;
                (issuer, "the policy's principal")
            } else {
                (settings.issuer.clone(), "the configuration")
            };
            let known = known_claims(&settings).await;
            let lookup = |org: &OrgId, agent: Option<&str>| -> Option<SessionClaims> {
                let subject = match agent {
                    Some(a) => Subject::Agent(org.clone(), AgentId::parse(a).ok()?),
                    None => Subject::Org(org.clone()),
                };
                known
                    .as_ref()?
                    .iter()
                    .find(|(s, _)| *s == subject)
                    .map(|(_, c)| c.clone())
            };
            let findings = lint(&doc, &issuer, &lookup);
            let errors = findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            let warnings = findings.len() - errors;
            let mut notes = Vec::new();
            if known.is_none() {
                notes.push(
                    "the store is not reachable; session-tag checks against the issuer's configuration were skipped",
                );
            }
            if json {
                super::print_json(&json!({
                    "file": file,
                    "issuer": issuer,
                    "issuer_from": from,
                    "errors": errors,
                    "warnings": warnings,
                    "findings": findings.iter().map(|f| json!({
                        "severity": match f.severity {
                            Severity::Error => "error",
                            Severity::Warning => "warning",
                        },
                        "statement": f.statement,
                        "message": f.message,
                        "fix": f.fix,
                    })).collect::<Vec<_>>(),
                    "notes": notes,
                }));
            } else {
                for f in &findings {
                    println!("{f}");
                }
                for n in &notes {
                    eprintln!("note: {n}");
                }
            }
            if errors > 0 {
                bail!("{errors} error(s), {warnings} warning(s) for {issuer} (from {from})");
            }
            if !json {
                println!("ok: no errors ({warnings} warning(s)) for {issuer} (from {from})");
            }
            Ok(())
        }
        AwsCommand::Provider {
            org,
            thumbprint,
            ca_file,
            format,
            json,
        } => {
            let org = org
                .as_deref()
                .map(OrgId::parse)
                .transpose()
                .map_err(|e| usage("--org", e))?;
            let store = match (&org, open_store(&settings, false).await) {
                (_, Ok(s)) => Some(s),
                (Some(_), Err(e)) => return Err(e),
                // Without --org the store only says which issuer serve serves.
                (None, Err(e)) => {
                    eprintln!(
                        "warning: the store is not reachable, so the issuer serve serves is not known ({e:#})"
                    );
                    None
                }
            };
            let issuer = store_issuer(&settings, store.as_deref()).await?;
            let client_ids: Vec<String> = match (&org, &store) {
                (Some(org), Some(store)) => {
                    let p = store
                        .principal(&Subject::Org(org.clone()))
                        .await?
                        .with_context(|| format!("org {org} does not exist"))?;
                    p.policy.audiences.iter().map(|a| a.to_string()).collect()
                }
                _ => vec![Audience::sts().to_string()],
            };
            let thumbprints = if thumbprint {
                let ca = ca_file_or_dev_ca(ca_file.as_deref());
                crate::aws::doctor::thumbprints(&issuer, ca.as_deref()).await?
            } else {
                Vec::new()
            };
            if json || format == ProviderFormat::Json {
                super::print_json(&json!({
                    "Url": issuer,
                    "ClientIDList": client_ids,
                    "ThumbprintList": thumbprints,
                }));
            } else {
                let mut cmd = format!(
                    "aws iam create-open-id-connect-provider \\\n  --url {issuer} \\\n  --client-id-list {}",
                    client_ids.join(" ")
                );
                if !thumbprints.is_empty() {
                    cmd.push_str(&format!(
                        " \\\n  --thumbprint-list {}",
                        thumbprints.join(" ")
                    ));
                }
                println!("{cmd}");
            }
            Ok(())
        }
        AwsCommand::Check(mut args) => {
            let issuer = Issuer::of_network(&settings);
            if let Some(note) = issuer.note() {
                eprintln!("{note}");
            }
            if args.ca_file.is_none() {
                if let Some(ca) = dev_ca() {
                    eprintln!(
                        "note: trusting {} (serve --dev-tls); STS trusts only public CAs",
                        ca.display()
                    );
                    args.ca_file = Some(ca);
                }
            }
            crate::aws::doctor::run(&issuer.url, args).await
        }
    }
}

/// The issuer `aws provider` and `aws trust-policy` write for: the configured
/// one, else the one serve last served under, else serve's default. Says so
/// on stderr when it was not configured, or when the store was last served
/// under another issuer.
async fn store_issuer(settings: &Settings, store: Option<&dyn Store>) -> anyhow::Result<String> {
    let issuer = Issuer::of_store(settings, store).await?;
    if let Some(note) = issuer.note() {
        eprintln!("{note}");
    }
    if let Some(d) = issuer.disagreement() {
        eprintln!("warning: {d}; this output is for {}", issuer.url);
    }
    if !issuer.url.starts_with("https://") {
        eprintln!(
            "warning: the issuer {} is not https; AWS accepts only https provider URLs (set --issuer)",
            issuer.url
        );
    }
    Ok(issuer.url)
}

/// Every subject's session claims, when the store is reachable.
async fn known_claims(settings: &Settings) -> Option<Vec<(Subject, SessionClaims)>> {
    let store = open_store(settings, false).await.ok()?;
    store.session_claims_all().await.ok()
}
