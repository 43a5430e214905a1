//! `/orgs` and `/orgs/{org}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{AdminError, Result};
use super::extract::{JsonBody, OrgInPath, QueryParams};
use super::views::{created, credential_json, org_json};
use crate::app::{App, now};
use crate::ids::{Audience, OrgId, Subject};
use crate::principal::{Credential, DEFAULT_ORG_MAX_TTL, OrgPolicy, PolicyError};
use crate::store::OrgInfo;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    limit: Option<u32>,
    after: Option<String>,
}

/// A page of orgs: 100 unless given, at most 1000.
fn limit(l: Option<u32>) -> Result<u32> {
    match l.unwrap_or(100) {
        l @ 1..=1000 => Ok(l),
        _ => Err(AdminError::bad_request("limit must be 1-1000")),
    }
}

pub(super) async fn list_orgs(
    State(app): State<Arc<App>>,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<Value>> {
    let limit = limit(page.limit)?;
    let after = match page.after.as_deref() {
        None => None,
        Some(a) => {
            Some(OrgId::parse(a).map_err(|e| AdminError::bad_request(format!("after: {e}")))?)
        }
    };
    let orgs = app.store.list_orgs(after.as_ref(), limit).await?;
    let next = (orgs.len() == limit as usize)
        .then(|| orgs.last().map(|o| o.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "orgs": orgs.iter().map(org_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrg {
    id: String,
    audiences: Option<Vec<String>>,
    max_ttl_seconds: Option<u32>,
}

pub(super) async fn create_org(
    State(app): State<Arc<App>>,
    JsonBody(b): JsonBody<NewOrg>,
) -> Result<Response> {
    let id = OrgId::parse(&b.id).map_err(|e| AdminError::bad_request(format!("id: {e}")))?;
    let audiences = match b.audiences {
        None => vec![Audience::sts()],
        Some(list) => list
            .iter()
            .map(|a| Audience::parse(a))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| AdminError::bad_request(format!("audiences: {e}")))?,
    };
    let max_ttl = b.max_ttl_seconds.unwrap_or(DEFAULT_ORG_MAX_TTL);
    let policy = OrgPolicy::new(audiences, max_ttl).map_err(|e| {
        let field = match e {
            PolicyError::MaxTtl(_) => "max_ttl_seconds",
            _ => "audiences",
        };
        AdminError::bad_request(format!("{field}: {e}"))
    })?;
    let (secret, credential) = Credential::new_secret();
    let t = now();
    app.store.create_org(&id, &policy, &credential, t).await?;
    app.tokens.principals.forget(&Subject::Org(id.clone()));
    tracing::info!(org = %id, "org created through the admin API");
    let info = OrgInfo {
        id: id.clone(),
        policy,
        created_at: t,
    };
    Ok(created(json!({
        "org": org_json(&info),
        "client_id": Subject::Org(id).to_string(),
        "credential": credential_json(&credential, t, None),
        "client_secret": secret.expose(),
    })))
}

pub(super) async fn get_org(
    State(app): State<Arc<App>>,
    OrgInPath(org): OrgInPath,
) -> Result<Json<Value>> {
    match app.store.org(&org).await? {
        Some(o) => Ok(Json(org_json(&o))),
        None => Err(AdminError::not_found(format!("org {org} does not exist"))),
    }
}
