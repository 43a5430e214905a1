//! `audit list | show JTI | decisions | purge`: the record of every issued
//! token, and of every refusal.
//!
//! Every flag is checked when the command line is parsed, so that invalid
//! input exits 2 with the flag's name and the forms it takes.

use anyhow::Context;

use crate::app::{now, open_store};
use crate::audit::AuditRecord;
use crate::audit::decision::DecisionRecord;
use crate::audit::query::{
    AuditFilter, AuditQuery, DecisionFilter, DecisionQuery, MAX_LIMIT, parse_cursor,
    parse_decision_cursor, record_json,
};
use crate::config::Settings;
use crate::ids::{AgentId, OrgId, client_id_arg};

/// `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List issued tokens, newest first
    #[command(after_help = super::examples::AUDIT_LIST)]
    List {
        /// Only this org's tokens
        #[arg(long)]
        org: Option<OrgId>,
        /// Only this agent's tokens (with --org)
        #[arg(long, requires = "org")]
        agent: Option<AgentId>,
        /// Only tokens issued at or after this time: RFC 3339, a duration
        /// ago (24h, 7d) or Unix seconds
        #[arg(long, value_name = "TIME", value_parser = time_arg)]
        since: Option<i64>,
        /// Only tokens issued before this time: RFC 3339, a duration ago
        /// (24h, 7d) or Unix seconds
        #[arg(long, value_name = "TIME", value_parser = time_arg)]
        until: Option<i64>,
        /// At most this many (1-1000)
        #[arg(long, default_value_t = 100, value_parser = limit_arg())]
        limit: u32,
        /// Continue after this cursor (printed as `next` by the previous page)
        #[arg(long, value_name = "CURSOR", value_parser = token_cursor_arg)]
        before: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one issued token by its jti
    #[command(after_help = super::examples::AUDIT_SHOW)]
    Show {
        /// The token's `jti`
        jti: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List refused client authentications, newest first, with the reason
    /// the client was not told (wrong secret, revoked credential, ...)
    #[command(after_help = super::examples::AUDIT_DECISIONS)]
    Decisions {
        /// Only refusals of this org's client ids
        #[arg(long)]
        org: Option<OrgId>,
        /// Only refusals of this client id (org/ORG or org/ORG/agent/AGENT)
        #[arg(long, value_name = "ID", value_parser = client_id_arg)]
        client_id: Option<String>,
        /// Only refusals at or after this time: RFC 3339, a duration ago
        /// (24h, 7d) or Unix seconds
        #[arg(long, value_name = "TIME", value_parser = time_arg)]
        since: Option<i64>,
        /// Only refusals before this time: RFC 3339, a duration ago (24h,
        /// 7d) or Unix seconds
        #[arg(long, value_name = "TIME", value_parser = time_arg)]
        until: Option<i64>,
        /// At most this many (1-1000)
        #[arg(long, default_value_t = 100, value_parser = limit_arg())]
        limit: u32,
        /// Continue after this cursor (printed as `next` by the previous page)
        #[arg(long, value_name = "CURSOR", value_parser = decision_cursor_arg)]
        before: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete records of tokens issued, and of refusals made, longer ago than
    /// the retention (--audit-retention, default 90d); serve does this hourly
    #[command(after_help = super::examples::AUDIT_PURGE)]
    Purge {
        /// Delete records older than this instead, e.g. 30d
        #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
        older_than: Option<std::time::Duration>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// The forms a time flag takes.
const TIME_FORMS: &str =
    "use RFC 3339 (2026-11-22T10:00:00Z), a duration ago like 24h or 7d, or Unix seconds";

/// A time flag: RFC 3339, a duration ago, or Unix seconds.
fn time_arg(text: &str) -> Result<i64, String> {
    if let Ok(t) = text.parse::<i64>() {
        return Ok(t);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default());
    }
    match crate::config::parse_duration(text) {
        Ok(ago) => Ok(now().saturating_sub(i64::try_from(ago.as_secs()).unwrap_or(i64::MAX))),
        Err(_) => Err(TIME_FORMS.to_owned()),
    }
}

fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
        .map_err(|_| "use a duration like 30d, 12h, 90m or 3600 (seconds)".to_owned())
}

fn limit_arg() -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT))
}

fn token_cursor_arg(text: &str) -> Result<String, String> {
    parse_cursor(text)
        .map(|_| text.to_owned())
        .ok_or_else(|| "not a cursor from a previous page of audit list".to_owned())
}

fn decision_cursor_arg(text: &str) -> Result<String, String> {
    parse_decision_cursor(text)
        .map(|_| text.to_owned())
        .ok_or_else(|| "not a cursor from a previous page of audit decisions".to_owned())
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

/// Prints a page of a listing: its JSON, or `table` (`none` when it is
/// empty) and the flag that continues it.
fn print_page(json: bool, page: &serde_json::Value, empty: bool, none: &str, table: impl FnOnce()) {
    if json {
        super::print_json(page);
    } else if empty {
        println!("{none}");
    } else {
        table();
        if let Some(next) = page["next"].as_str() {
            println!("more: --before {next}");
        }
    }
}

fn print_tokens(records: &[AuditRecord]) {
    println!(
        "{:<20}  {:<40}  {:<20}  {:<22}  JTI",
        "ISSUED", "SUBJECT", "AUDIENCE", "AUTH"
    );
    for r in records {
        println!(
            "{:<20}  {:<40}  {:<20}  {:<22}  {}",
            super::time(Some(r.iat)),
            r.subject,
            r.audience,
            r.auth_method,
            r.jti
        );
    }
}

fn print_decisions(records: &[DecisionRecord]) {
    println!(
        "{:<20}  {:<40}  {:<22}  {:<19}  {:<15}  REQUEST",
        "TIME", "CLIENT", "REASON", "METHOD", "SOURCE"
    );
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    for r in records {
        println!(
            "{:<20}  {:<40}  {:<22}  {:<19}  {:<15}  {}",
            super::time(Some(r.at)),
            dash(&r.client_id),
            r.reason,
            dash(&r.auth_method),
            dash(&r.source),
            dash(&r.request_id),
        );
    }
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
                org: org.map(|o| o.to_string()),
                agent: agent.map(|a| a.to_string()),
                since,
                until,
                before,
                limit: Some(limit),
            };
            // The flags were checked as they were parsed; the message names
            // the field, which is also the flag.
            let query = AuditQuery::parse(&filter).map_err(|e| anyhow::anyhow!("--{e}"))?;
            let records = store
                .query_tokens(&query)
                .await
                .context("cannot read the audit log")?;
            let page = query.page_json(&records);
            print_page(json, &page, records.is_empty(), "No tokens match.", || {
                print_tokens(&records)
            });
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
        AuditCommand::Decisions {
            org,
            client_id,
            since,
            until,
            limit,
            before,
            json,
        } => {
            let filter = DecisionFilter {
                org: org.map(|o| o.to_string()),
                client_id,
                since,
                until,
                before,
                limit: Some(limit),
            };
            let query = DecisionQuery::parse(&filter).map_err(|e| anyhow::anyhow!("--{e}"))?;
            let records = store
                .query_decisions(&query)
                .await
                .context("cannot read the decision records")?;
            let page = query.page_json(&records);
            print_page(
                json,
                &page,
                records.is_empty(),
                "No refusals match.",
                || print_decisions(&records),
            );
        }
        AuditCommand::Purge { older_than, json } => {
            let keep = match older_than {
                Some(keep) => keep,
                None => settings.audit_retention.ok_or_else(|| {
                    anyhow::anyhow!("audit_retention is 0 (keep forever): give --older-than")
                })?,
            };
            let before = now() - keep.as_secs() as i64;
            eprintln!(
                "deleting audit and decision records from before {} ...",
                super::time(Some(before))
            );
            let tokens = store
                .purge_tokens(before)
                .await
                .context("cannot purge the audit log")?;
            let decisions = store
                .purge_decisions_paced(before, 0)
                .await
                .context("cannot purge the decision records")?;
            if json {
                super::print_json(&serde_json::json!({
                    "before": before, "tokens": tokens, "decisions": decisions,
                }));
            } else {
                println!("purged {tokens} audit record(s) and {decisions} decision record(s)");
            }
        }
    }
    Ok(())
}
