//! `aws provider | trust-policy | lint | check`: connecting an AWS account.
//!
//! They use the issuer `serve` serves under (see `serve::Issuer`), refuse
//! invalid input with exit code 2, and treat an org or agent the store does
//! not know as an error unless `--allow-unknown` says the policy is written
//! ahead of time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::json;

use super::serve::{Issuer, ca_file_or_dev_ca, dev_ca};
use crate::app::open_store;
use crate::aws::lint::{Known, Severity, issuer_of_policy, lint};
use crate::aws::policy::{Binding, Provider, check_account, check_partition, host_path, terraform};
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
    #[command(after_help = super::examples::AWS_PROVIDER)]
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
    #[command(group(clap::ArgGroup::new("admitted").required(true).args(["agent", "any_agent"])))]
    #[command(after_help = super::examples::AWS_TRUST_POLICY)]
    TrustPolicy {
        /// The AWS account id the OIDC provider is registered in (12 digits)
        #[arg(long)]
        account: String,
        /// The org
        #[arg(long)]
        org: String,
        /// The one agent to admit (or --any-agent)
        #[arg(long)]
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
        /// Write the policy even if the org or agent does not exist yet
        /// (a policy written ahead of time)
        #[arg(long)]
        allow_unknown: bool,
    },
    /// Check a trust policy file against this issuer (--issuer, else the one its
    /// principal names); exits 1 on any error
    #[command(after_help = super::examples::AWS_LINT)]
    Lint {
        /// The trust policy (JSON)
        file: PathBuf,
        /// Do not report orgs and agents the store does not know (a policy
        /// written ahead of time, or no store at hand)
        #[arg(long)]
        allow_unknown: bool,
        /// Print the findings as JSON
        #[arg(long)]
        json: bool,
    },
    /// Look at this issuer the way STS would and report what would fail
    #[command(after_help = super::examples::AWS_CHECK)]
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
            allow_unknown,
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
            // The store says whether the org and agent exist and which issuer
            // serve serves; a policy written ahead of time for a configured
            // issuer needs neither.
            let store = if allow_unknown && !settings.issuer_follows_listen {
                None
            } else {
                match open_store(&settings, false).await {
                    Ok(s) => Some(s),
                    Err(e) if allow_unknown => {
                        eprintln!("warning: the store is not reachable ({e:#})");
                        None
                    }
                    Err(e) => {
                        return Err(e.context(format!(
                            "cannot check that org {} exists; pass --allow-unknown to write a policy ahead of time",
                            binding.org
                        )));
                    }
                }
            };
            if let (Some(store), false) = (&store, allow_unknown) {
                check_known(store.as_ref(), &binding.org, binding.agent.as_ref()).await?;
            }
            let issuer = store_issuer(&settings, store.as_deref()).await?;
            let provider = Provider::new(&issuer, &account, &partition)?;
            let doc = binding.trust_policy(&provider);
            match format {
                PolicyFormat::Json => super::print_json(&doc),
                PolicyFormat::Terraform => print!("{}", terraform(&binding, &doc)),
            }
            Ok(())
        }
        AwsCommand::Lint {
            file,
            allow_unknown,
            json,
        } => lint_file(&settings, &file, allow_unknown, json).await,
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
                        .ok_or_else(|| {
                            usage(
                                "--org",
                                format!(
                                    "org {org} does not exist: create it with `nomos-issuer org create {org}`"
                                ),
                            )
                        })?;
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

/// An org (and agent) a command names must exist, unless `--allow-unknown`.
async fn check_known(
    store: &dyn Store,
    org: &OrgId,
    agent: Option<&AgentId>,
) -> anyhow::Result<()> {
    const AHEAD: &str = "or pass --allow-unknown to write a policy ahead of time";
    if store.org(org).await?.is_none() {
        return Err(usage(
            "--org",
            format!(
                "org {org} does not exist: create it with `nomos-issuer org create {org}`, {AHEAD}"
            ),
        ));
    }
    if let Some(a) = agent {
        if store.agent(org, a).await?.is_none() {
            return Err(usage(
                "--agent",
                format!(
                    "agent {a} of org {org} does not exist: create it with `nomos-issuer agent create {org} {a}`, {AHEAD}"
                ),
            ));
        }
    }
    Ok(())
}

/// `aws lint FILE`.
async fn lint_file(
    settings: &Settings,
    file: &Path,
    allow_unknown: bool,
    json: bool,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| usage("FILE", format!("{} is not JSON: {e}", file.display())))?;
    // The issuer: --issuer, else the provider the policy's principal names. A
    // guessed http://<listen> would only report "another provider".
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
    let mut notes = Vec::new();
    // What the store knows: every subject's claims, when it is reachable and
    // serves this issuer.
    let store: Result<Arc<dyn Store>, anyhow::Error> = open_store(settings, false).await;
    let known = match &store {
        Ok(store) => {
            let record = store.served_issuer().await.ok().flatten();
            match record {
                Some(r) if host_path(&r.issuer) != host_path(&issuer) => {
                    notes.push(format!(
                        "the policy is for {issuer}, but this store was last served under {}: whether its orgs and agents exist, and their session tags, were not checked",
                        r.issuer
                    ));
                    None
                }
                _ => Some(store.session_claims_all().await),
            }
        }
        Err(_) => None,
    };
    let unreachable = match (&store, &known) {
        (Err(e), _) => Some(format!("{e:#}")),
        (Ok(_), Some(Err(e))) => Some(e.to_string()),
        _ => None,
    };
    let known = known.and_then(Result::ok);
    let lookup = |org: &OrgId, agent: Option<&str>| -> Known {
        let Some(all) = &known else {
            return Known::Unchecked;
        };
        let subject = match agent.map(AgentId::parse) {
            Some(Ok(a)) => Subject::Agent(org.clone(), a),
            Some(Err(_)) => return Known::Unchecked,
            None => Subject::Org(org.clone()),
        };
        match all.iter().find(|(s, _)| *s == subject) {
            Some((_, c)) => Known::Claims(c.clone()),
            None if allow_unknown => Known::Unchecked,
            None => Known::Missing,
        }
    };
    let findings = lint(&doc, &issuer, &lookup);
    if let (Some(why), true) = (&unreachable, allow_unknown) {
        notes.push(format!(
            "the store is not reachable ({why}): session-tag checks against the issuer's configuration were skipped"
        ));
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
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
    if let (Some(why), false) = (&unreachable, allow_unknown) {
        bail!(
            "cannot check that the orgs and agents the policy admits exist: the store is not reachable ({why}); pass --allow-unknown to lint without the store"
        );
    }
    if !json {
        println!("ok: no errors ({warnings} warning(s)) for {issuer} (from {from})");
    }
    Ok(())
}
