//! `audit list | show JTI | purge`: the record of every issued token.

use anyhow::Context;

use crate::app::{now, open_store};
use crate::audit::AuditRecord;
use crate::audit::query::{AuditFilter, AuditQuery, record_json};
use crate::config::Settings;

/// `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List issued tokens, newest first
    List {
        /// Only this org's tokens
        #[arg(long)]
        org: Option<String>,
        /// Only this agent's tokens (with --org)
        #[arg(long, requires = "org")]
        agent: Option<String>,
        /// Only tokens issued at or after this time: RFC 3339 or Unix seconds
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only tokens issued before this time: RFC 3339 or Unix seconds
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// At most this many (1-1000)
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue after this cursor (printed as `next` by the previous page)
        #[arg(long, value_name = "CURSOR")]
        before: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one issued token by its jti
    Show {
        /// The token's `jti`
        jti: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete records of tokens issued longer ago than the retention
    /// (--audit-retention, default 90d); serve does this hourly
    Purge {
        /// Delete records older than this instead, e.g. 30d
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
    },
}

fn parse_time(flag: &str, text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = text.parse::<i64>() {
        return Ok(t);
    }
    let t = humantime::parse_rfc3339_weak(text).with_context(|| {
        format!("{flag} {text:?}: use RFC 3339 (2026-11-22T10:00:00Z) or Unix seconds")
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default())
}

fn print_record(r: &AuditRecord) {
    println!("jti:         {}", r.jti);
    println!("subject:     {}", r.subject);
    println!("audience:    {}", r.audience);
    println!("kid:         {}", r.kid);
    println!("issued at:   {}", super::time(Some(r.iat)));
    println!("expires at:  {}", super::time(Some(r.exp)));
    println!("auth method: {}", r.auth_method);
}

pub async fn run(settings: Settings, cmd: AuditCommand) -> anyhow::Result<()> {
    let store = open_store(&settings, false).await?;
    match cmd {
        AuditCommand::List {
            org,
            agent,
            since,
            until,
            limit,
            before,
            json,
        } => {
            let filter = AuditFilter {
                org,
                agent,
                since: since.map(|t| parse_time("--since", &t)).transpose()?,
                until: until.map(|t| parse_time("--until", &t)).transpose()?,
                before,
                limit: Some(limit),
            };
            // The message names the field, which is also the flag.
            let query = AuditQuery::parse(&filter).map_err(|e| anyhow::anyhow!("--{e}"))?;
            let records = store
                .query_tokens(&query)
                .await
                .context("cannot read the audit log")?;
            if json {
                super::print_json(&query.page_json(&records));
                return Ok(());
            }
            if records.is_empty() {
                println!("No tokens match.");
                return Ok(());
            }
            println!(
                "{:<20}  {:<40}  {:<20}  {:<22}  JTI",
                "ISSUED", "SUBJECT", "AUDIENCE", "AUTH"
            );
            for r in &records {
                println!(
                    "{:<20}  {:<40}  {:<20}  {:<22}  {}",
                    super::time(Some(r.iat)),
                    r.subject,
                    r.audience,
                    r.auth_method,
                    r.jti
                );
            }
            if let Some(next) = query.next(&records) {
                println!("more: --before {next}");
            }
        }
        AuditCommand::Show { jti, json } => {
            let record = store
                .token(&jti)
                .await
                .context("cannot read the audit log")?
                .ok_or_else(|| anyhow::anyhow!("no token with jti {jti:?} is recorded"))?;
            if json {
                super::print_json(&record_json(&record));
            } else {
                print_record(&record);
            }
        }
        AuditCommand::Purge { older_than } => {
            let keep = match older_than {
                Some(text) => humantime::parse_duration(&text)
                    .with_context(|| format!("--older-than {text:?}: use a duration like 30d"))?,
                None => settings.audit_retention.ok_or_else(|| {
                    anyhow::anyhow!("audit_retention is 0 (keep forever): give --older-than")
                })?,
            };
            let before = now() - keep.as_secs() as i64;
            eprintln!(
                "deleting audit records of tokens issued before {} ...",
                super::time(Some(before))
            );
            let n = store
                .purge_tokens(before)
                .await
                .context("cannot purge the audit log")?;
            println!("purged {n} audit record(s)");
        }
    }
    Ok(())
}
