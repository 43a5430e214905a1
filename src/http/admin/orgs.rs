//! `/orgs` and `/orgs/{org}`: list, create, show, update.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::error::{AdminError, Result};
use super::extract::{JsonBody, OrgInPath, QueryParams};
use super::views::{CreatedOrg, CredentialView, OrgPage, OrgView, created};
use crate::app::{App, now};
use crate::ids::{Audience, OrgId, Subject};
use crate::principal::{Credential, DEFAULT_ORG_MAX_TTL, OrgPolicy, PolicyChange, PolicyError};
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
) -> Result<Json<OrgPage>> {
    let limit = limit(page.limit)?;
    let after = match page.after.as_deref() {
        None => None,
        Some(a) => {
            Some(OrgId::parse(a).map_err(|e| AdminError::bad_request(format!("after: {e}")))?)
        }
    };
    let orgs = app.store.list_orgs(after.as_ref(), limit).await?;
    let next = (orgs.len() == limit as usize)
        .then(|| orgs.last().map(|o| o.id.clone()))
        .flatten();
    Ok(Json(OrgPage {
        orgs: orgs.iter().map(OrgView::from).collect(),
        next,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrg {
    id: String,
    audiences: Option<Vec<String>>,
    max_ttl_seconds: Option<u32>,
}

/// The `audiences` of a request body.
fn audiences(list: &[String]) -> Result<Vec<Audience>> {
    list.iter()
        .map(|a| Audience::parse(a))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| AdminError::bad_request(format!("audiences: {e}")))
}

/// A refused policy, naming the field.
fn policy_error(e: PolicyError) -> AdminError {
    let field = if e.is_max_ttl() {
        "max_ttl_seconds"
    } else {
        "audiences"
    };
    AdminError::bad_request(format!("{field}: {e}"))
}

pub(super) async fn create_org(
    State(app): State<Arc<App>>,
    JsonBody(b): JsonBody<NewOrg>,
) -> Result<Response> {
    let id = OrgId::parse(&b.id).map_err(|e| AdminError::bad_request(format!("id: {e}")))?;
    let audiences = match b.audiences {
        None => vec![Audience::sts()],
        Some(list) => audiences(&list)?,
    };
    let max_ttl = b.max_ttl_seconds.unwrap_or(DEFAULT_ORG_MAX_TTL);
    let policy = OrgPolicy::new(audiences, max_ttl).map_err(policy_error)?;
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
    Ok(created(CreatedOrg {
        org: OrgView::from(&info),
        client_id: Subject::Org(id).to_string(),
        credential: CredentialView::new(&credential, t, None),
        client_secret: secret,
    }))
}

pub(super) async fn get_org(
    State(app): State<Arc<App>>,
    OrgInPath(org): OrgInPath,
) -> Result<Json<OrgView>> {
    match app.store.org(&org).await? {
        Some(o) => Ok(Json(OrgView::from(&o))),
        None => Err(AdminError::not_found(format!("org {org} does not exist"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrgUpdate {
    #[serde(default, deserialize_with = "present")]
    audiences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    max_ttl_seconds: Option<u32>,
}

/// A member that may be left out but is never `null` (the document gives it
/// a type, not `nullable`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `PATCH /orgs/{org}`: replaces the audiences, the longest lifetime or both.
/// Tokens minted by this replica after the answer follow the new policy; the
/// others drop the old one within a second (the principal change log).
pub(super) async fn update_org(
    State(app): State<Arc<App>>,
    OrgInPath(org): OrgInPath,
    JsonBody(b): JsonBody<OrgUpdate>,
) -> Result<Json<OrgView>> {
    let audiences = b.audiences.as_deref().map(audiences).transpose()?;
    let change = PolicyChange::new(audiences, b.max_ttl_seconds)
        .map_err(policy_error)?
        .ok_or_else(|| {
            AdminError::bad_request("nothing to change: give audiences, max_ttl_seconds or both")
        })?;
    let info = app.store.update_org(&org, &change).await?;
    // Before answering: a token requested after the answer must not find the
    // old policy cached.
    app.tokens.principals.forget(&Subject::Org(org.clone()));
    tracing::info!(org = %org, "org policy updated through the admin API");
    Ok(Json(OrgView::from(&info)))
}
