//! The audit log: a filtered page, one record.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{AdminError, Result};
use super::extract::{PathParams, QueryParams, limit};
use super::views::audit_json;
use crate::app::App;
use crate::audit::AuditRecord;
use crate::ids::{AgentId, OrgId};
use crate::store::AuditQuery;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditParams {
    org: Option<String>,
    agent: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    limit: Option<u32>,
    before: Option<String>,
}

/// Parses the audit filter shared by the API and `audit list`.
pub fn audit_query(
    org: Option<&str>,
    agent: Option<&str>,
    since: Option<i64>,
    until: Option<i64>,
    before: Option<&str>,
    limit: u32,
) -> std::result::Result<AuditQuery, String> {
    let org = org
        .map(OrgId::parse)
        .transpose()
        .map_err(|e| format!("org: {e}"))?;
    let agent = agent
        .map(AgentId::parse)
        .transpose()
        .map_err(|e| format!("agent: {e}"))?;
    if agent.is_some() && org.is_none() {
        return Err("agent needs org too".into());
    }
    let before = before
        .map(|c| {
            c.split_once(':')
                .and_then(|(iat, jti)| Some((iat.parse::<i64>().ok()?, jti.to_owned())))
                .filter(|(_, jti)| !jti.is_empty() && jti.len() <= 128)
                .ok_or_else(|| format!("before: {c:?} is not a cursor from a previous page"))
        })
        .transpose()?;
    Ok(AuditQuery {
        org,
        agent,
        since,
        until,
        before,
        limit,
    })
}

/// The cursor for the page after `records`, if it was full.
pub fn audit_next(records: &[AuditRecord], limit: u32) -> Option<String> {
    (records.len() == limit as usize)
        .then(|| records.last().map(|r| format!("{}:{}", r.iat, r.jti)))
        .flatten()
}

pub(super) async fn query_audit(
    State(app): State<Arc<App>>,
    QueryParams(p): QueryParams<AuditParams>,
) -> Result<Json<Value>> {
    let limit = limit(p.limit)?;
    let query = audit_query(
        p.org.as_deref(),
        p.agent.as_deref(),
        p.since,
        p.until,
        p.before.as_deref(),
        limit,
    )
    .map_err(AdminError::bad_request)?;
    let records = app.store.query_tokens(&query).await?;
    Ok(Json(json!({
        "tokens": records.iter().map(audit_json).collect::<Vec<_>>(),
        "next": audit_next(&records, limit),
    })))
}

pub(super) async fn get_audit(
    State(app): State<Arc<App>>,
    PathParams(jti): PathParams<String>,
) -> Result<Json<Value>> {
    if jti.len() > 128 {
        return Err(AdminError::not_found("no token has this jti"));
    }
    match app.store.token(&jti).await? {
        Some(r) => Ok(Json(audit_json(&r))),
        None => Err(AdminError::not_found("no token has this jti")),
    }
}
