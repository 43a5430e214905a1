//! The audit log: a filtered page, one record; the decision records of
//! refusals.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::error::{AdminError, Result};
use super::extract::{PathParams, QueryParams};
use crate::app::App;
use crate::audit::query::{
    AuditFilter, AuditQuery, DecisionFilter, DecisionQuery, MAX_JTI, record_json,
};

/// `GET /audit`: a page of records, newest first, and the cursor of the next.
pub(super) async fn query_audit(
    State(app): State<Arc<App>>,
    QueryParams(filter): QueryParams<AuditFilter>,
) -> Result<Json<Value>> {
    let query = AuditQuery::parse(&filter).map_err(|e| AdminError::bad_request(e.to_string()))?;
    let records = app.store.query_tokens(&query).await?;
    Ok(Json(query.page_json(&records)))
}

/// `GET /audit/{jti}`.
pub(super) async fn get_audit(
    State(app): State<Arc<App>>,
    PathParams(jti): PathParams<String>,
) -> Result<Json<Value>> {
    if jti.len() > MAX_JTI {
        return Err(AdminError::not_found("no token has this jti"));
    }
    match app.store.token(&jti).await? {
        Some(r) => Ok(Json(record_json(&r))),
        None => Err(AdminError::not_found("no token has this jti")),
    }
}

/// `GET /audit/decisions`: a page of decision records (refusals), newest
/// first, and the cursor of the next.
pub(super) async fn query_decisions(
    State(app): State<Arc<App>>,
    QueryParams(filter): QueryParams<DecisionFilter>,
) -> Result<Json<Value>> {
    let query =
        DecisionQuery::parse(&filter).map_err(|e| AdminError::bad_request(e.to_string()))?;
    let records = app.store.query_decisions(&query).await?;
    Ok(Json(query.page_json(&records)))
}
