//! The admin API under `/admin/v1`: orgs, agents, credentials, signing keys and
//! the audit log, behind bearer tokens made by `nomos-issuer admin token create`.
//!
//! The document at `/admin/v1/openapi.json` (checked in as `docs/openapi.json`)
//! describes every operation; `tests/schemathesis/run` fuzzes the server
//! against it. Errors are `{"error", "message"}` JSON with the status the
//! document names; no input produces a 5xx other than 503 for a store outage.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::app::{App, now};
use crate::audit::AuditRecord;
use crate::ids::{AgentId, Audience, OrgId, Subject};
use crate::keys::rotation::{PlanError, Request as KeyRequest};
use crate::keys::{PublicJwk, StoredKey};
use crate::principal::{Credential, CredentialKind, MAX_TOKEN_TTL, OrgPolicy, hash_secret};
use crate::rotation::RotationError;
use crate::store::{AgentInfo, AuditQuery, CredentialInfo, OrgInfo, StoreError};

/// The OpenAPI document, served as checked in.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// The largest admin request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The most audiences an org may allow.
const MAX_AUDIENCES: usize = 20;

/// An admin API error: `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AdminError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AdminError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin token is required: Authorization: Bearer <token> (see `nomos-issuer admin token create`)",
        )
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        let h = r.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="nomos-issuer admin""#),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        r
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("{what} does not exist")),
            StoreError::Conflict(what) => Self::conflict(format!("{what} already exists")),
            e => {
                tracing::error!(error = %e, "admin request failed in the store");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store cannot be reached; retry shortly",
                )
            }
        }
    }
}

impl From<RotationError> for AdminError {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::Plan(PlanError::UnknownKid(kid)) => {
                Self::not_found(format!("no signing key has kid {kid}"))
            }
            RotationError::Plan(p) => Self::conflict(p.to_string()),
            RotationError::Store(s) => s.into(),
            e => {
                tracing::error!(error = %e, "key operation failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the key operation failed; see the issuer's log",
                )
            }
        }
    }
}

type Result<T> = std::result::Result<T, AdminError>;

/// The admin routes (nested under `/admin/v1`).
pub fn router(app: Arc<App>) -> Router<Arc<App>> {
    let protected = Router::new()
        .route("/orgs", get(list_orgs).post(create_org))
        .route("/orgs/{org}", get(get_org))
        .route("/orgs/{org}/agents", get(list_agents).post(create_agent))
        .route("/orgs/{org}/agents/{agent}", get(get_agent))
        .route(
            "/orgs/{org}/credentials",
            get(org_credentials).post(add_org_credential),
        )
        .route(
            "/orgs/{org}/credentials/{credential}",
            delete(revoke_org_credential),
        )
        .route(
            "/orgs/{org}/agents/{agent}/credentials",
            get(agent_credentials).post(add_agent_credential),
        )
        .route(
            "/orgs/{org}/agents/{agent}/credentials/{credential}",
            delete(revoke_agent_credential),
        )
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/keys/{kid}/revoke", post(revoke_key))
        .route("/audit", get(query_audit))
        .route("/audit/{jti}", get(get_audit))
        .route_layer(middleware::from_fn_with_state(app, require_token));
    Router::new()
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .method_not_allowed_fallback(|| async {
            AdminError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this method is not allowed here",
            )
        })
        .fallback(|| async { AdminError::not_found("no such admin endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Checks `Authorization: Bearer <admin token>` against the stored hashes.
async fn require_token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty() && t.len() <= 256);
    let Some(token) = token else {
        return AdminError::unauthorized().into_response();
    };
    match app.store.admin_token_by_hash(&hash_secret(token)).await {
        Ok(Some(t)) => {
            tracing::info!(admin_token = %t.id, name = %t.name, "admin request");
            next.run(req).await
        }
        Ok(None) => AdminError::unauthorized().into_response(),
        Err(e) => AdminError::from(e).into_response(),
    }
}

// ---- request parsing ----------------------------------------------------

/// A JSON object body as `T`: 415 for another media type, 413 over the
/// limit, 400 for anything but an object of the expected fields.
fn body<T: DeserializeOwned>(r: std::result::Result<Json<Value>, JsonRejection>) -> Result<T> {
    let value = match r {
        Ok(Json(v)) => v,
        Err(JsonRejection::MissingJsonContentType(_)) => return Err(unsupported_media_type()),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(payload_too_large()),
        Err(e) => {
            return Err(AdminError::bad_request(format!(
                "invalid JSON body: {}",
                e.body_text()
            )));
        }
    };
    object(value)
}

/// Derived deserialisers also take a JSON array for a struct: only an object is a body.
fn object<T: DeserializeOwned>(value: Value) -> Result<T> {
    if !value.is_object() {
        return Err(AdminError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))
}

fn unsupported_media_type() -> AdminError {
    AdminError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Content-Type must be application/json",
    )
}

fn payload_too_large() -> AdminError {
    AdminError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body exceeds {MAX_BODY} bytes"),
    )
}

fn path<T>(r: std::result::Result<Path<T>, PathRejection>) -> Result<T> {
    r.map(|Path(v)| v)
        .map_err(|_| AdminError::not_found("no such object"))
}

fn org_id(text: &str) -> Result<OrgId> {
    OrgId::parse(text).map_err(|_| AdminError::not_found(format!("org {text:?} does not exist")))
}

fn agent_id(text: &str) -> Result<AgentId> {
    AgentId::parse(text)
        .map_err(|_| AdminError::not_found(format!("agent {text:?} does not exist")))
}

fn public_keys(v: &Value) -> Result<Vec<PublicJwk>> {
    PublicJwk::parse_set(&v.to_string())
        .map_err(|e| AdminError::bad_request(format!("public_jwks: {e}")))
}

// ---- responses ------------------------------------------------------------

fn org_json(o: &OrgInfo) -> Value {
    json!({
        "id": o.id,
        "audiences": o.policy.audiences.iter().map(Audience::as_str).collect::<Vec<_>>(),
        "max_ttl_seconds": o.policy.max_ttl,
        "created_at": o.created_at,
    })
}

fn agent_json(a: &AgentInfo) -> Value {
    json!({"org_id": a.org, "id": a.id, "created_at": a.created_at})
}

fn credential_json(c: &Credential, created_at: i64, revoked_at: Option<i64>) -> Value {
    let (kind, kids) = match &c.kind {
        CredentialKind::Secret { .. } => ("secret", Vec::new()),
        CredentialKind::PublicKeys(keys) => (
            "public_key",
            keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(),
        ),
    };
    json!({
        "id": c.id, "kind": kind, "created_at": created_at,
        "revoked_at": revoked_at, "kids": kids,
    })
}

fn key_json(k: &StoredKey) -> Value {
    json!({
        "kid": k.kid, "alg": k.alg.as_str(), "state": k.state.as_str(),
        "created_at": k.created_at, "activated_at": k.activated_at,
        "retired_at": k.retired_at,
        "public_jwk": k.state.is_published().then(|| k.public_jwk.to_json()),
    })
}

/// The JSON of an audit record (shared with `audit list --json`).
pub fn audit_json(r: &AuditRecord) -> Value {
    json!({
        "jti": r.jti, "subject": r.subject, "org_id": r.org_id, "agent_id": r.agent_id,
        "audience": r.audience, "kid": r.kid, "iat": r.iat, "exp": r.exp,
        "auth_method": r.auth_method,
    })
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

// ---- orgs and agents ------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    limit: Option<u32>,
    after: Option<String>,
}

fn limit(l: Option<u32>) -> Result<u32> {
    match l.unwrap_or(100) {
        l @ 1..=1000 => Ok(l),
        _ => Err(AdminError::bad_request("limit must be 1-1000")),
    }
}

async fn list_orgs(
    State(app): State<Arc<App>>,
    q: std::result::Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(page) = q.map_err(|e| AdminError::bad_request(e.body_text()))?;
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
struct NewOrg {
    id: String,
    audiences: Option<Vec<String>>,
    max_ttl_seconds: Option<u32>,
}

async fn create_org(
    State(app): State<Arc<App>>,
    b: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Response> {
    let b: NewOrg = body(b)?;
    let id = OrgId::parse(&b.id).map_err(|e| AdminError::bad_request(format!("id: {e}")))?;
    let audiences = match b.audiences {
        None => vec![Audience::sts()],
        Some(list) if list.is_empty() || list.len() > MAX_AUDIENCES => {
            return Err(AdminError::bad_request(format!(
                "audiences: give 1-{MAX_AUDIENCES}"
            )));
        }
        Some(list) => list
            .iter()
            .map(|a| Audience::parse(a))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| AdminError::bad_request(format!("audiences: {e}")))?,
    };
    let max_ttl = b
        .max_ttl_seconds
        .unwrap_or(crate::principal::DEFAULT_ORG_MAX_TTL);
    if !(1..=MAX_TOKEN_TTL).contains(&max_ttl) {
        return Err(AdminError::bad_request(format!(
            "max_ttl_seconds must be 1-{MAX_TOKEN_TTL}"
        )));
    }
    let policy = OrgPolicy { audiences, max_ttl };
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

async fn get_org(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let org = org_id(&path(p)?)?;
    match app.store.org(&org).await? {
        Some(o) => Ok(Json(org_json(&o))),
        None => Err(AdminError::not_found(format!("org {org} does not exist"))),
    }
}

async fn list_agents(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let org = org_id(&path(p)?)?;
    match app.store.list_agents(&org).await? {
        Some(agents) => Ok(Json(json!({
            "agents": agents.iter().map(agent_json).collect::<Vec<_>>()
        }))),
        None => Err(AdminError::not_found(format!("org {org} does not exist"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgent {
    id: String,
    public_jwks: Option<Value>,
}

async fn create_agent(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<String>, PathRejection>,
    b: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Response> {
    let org = org_id(&path(p)?)?;
    let b: NewAgent = body(b)?;
    let agent = AgentId::parse(&b.id).map_err(|e| AdminError::bad_request(format!("id: {e}")))?;
    let (credential, secret) = match &b.public_jwks {
        Some(v) => (
            Credential::new(CredentialKind::PublicKeys(public_keys(v)?)),
            None,
        ),
        None => {
            let (s, c) = Credential::new_secret();
            (c, Some(s))
        }
    };
    let t = now();
    app.store.create_agent(&org, &agent, &credential, t).await?;
    app.tokens
        .principals
        .forget(&Subject::Agent(org.clone(), agent.clone()));
    tracing::info!(org = %org, agent = %agent, "agent created through the admin API");
    let info = AgentInfo {
        org: org.clone(),
        id: agent.clone(),
        created_at: t,
    };
    Ok(created(json!({
        "agent": agent_json(&info),
        "client_id": Subject::Agent(org, agent).to_string(),
        "credential": credential_json(&credential, t, None),
        "client_secret": secret.as_ref().map(|s| s.expose()),
    })))
}

async fn get_agent(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>> {
    let (org, agent) = path(p)?;
    let (org, agent) = (org_id(&org)?, agent_id(&agent)?);
    match app.store.agent(&org, &agent).await? {
        Some(a) => Ok(Json(agent_json(&a))),
        None => Err(AdminError::not_found(format!(
            "agent {agent} of org {org} does not exist"
        ))),
    }
}

// ---- credentials ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCredential {
    kind: String,
    public_jwks: Option<Value>,
}

async fn list_credentials(app: &App, subject: Subject) -> Result<Json<Value>> {
    match app.store.credentials(&subject).await? {
        Some(list) => Ok(Json(json!({
            "credentials": list
                .iter()
                .map(|c: &CredentialInfo| credential_json(&c.credential, c.created_at, c.revoked_at))
                .collect::<Vec<_>>()
        }))),
        None => Err(AdminError::not_found(format!("{subject} does not exist"))),
    }
}

async fn add_credential(app: &App, subject: Subject, b: NewCredential) -> Result<Response> {
    let (credential, secret) = match (b.kind.as_str(), &b.public_jwks) {
        ("secret", None) => {
            let (s, c) = Credential::new_secret();
            (c, Some(s))
        }
        ("public_key", Some(v)) => (
            Credential::new(CredentialKind::PublicKeys(public_keys(v)?)),
            None,
        ),
        ("secret", Some(_)) => {
            return Err(AdminError::bad_request(
                "a secret credential takes no public_jwks",
            ));
        }
        ("public_key", None) => {
            return Err(AdminError::bad_request(
                "a public_key credential needs public_jwks",
            ));
        }
        (other, _) => {
            return Err(AdminError::bad_request(format!(
                "kind {other:?}: use secret or public_key"
            )));
        }
    };
    let t = now();
    match app.store.add_credential(&subject, &credential, t).await {
        Err(StoreError::Conflict(_)) => {
            return Err(AdminError::conflict(format!(
                "{subject} already has {} active secrets: revoke one first",
                crate::store::MAX_ACTIVE_SECRETS
            )));
        }
        r => r?,
    }
    app.tokens.principals.forget(&subject);
    tracing::info!(%subject, credential = %credential.id, "credential added through the admin API");
    Ok(created(json!({
        "credential": credential_json(&credential, t, None),
        "client_secret": secret.as_ref().map(|s| s.expose()),
    })))
}

async fn revoke_credential(app: &App, subject: Subject, id: &str) -> Result<StatusCode> {
    app.store.revoke_credential(&subject, id, now()).await?;
    // Before answering: a request after the 204 must not find it cached.
    app.tokens.principals.forget(&subject);
    tracing::info!(%subject, credential = %id, "credential revoked through the admin API");
    Ok(StatusCode::NO_CONTENT)
}

async fn org_credentials(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let org = org_id(&path(p)?)?;
    list_credentials(&app, Subject::Org(org)).await
}

async fn add_org_credential(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<String>, PathRejection>,
    b: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Response> {
    let org = org_id(&path(p)?)?;
    add_credential(&app, Subject::Org(org), body(b)?).await
}

async fn revoke_org_credential(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode> {
    let (org, id) = path(p)?;
    revoke_credential(&app, Subject::Org(org_id(&org)?), &id).await
}

async fn agent_credentials(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>> {
    let (org, agent) = path(p)?;
    list_credentials(&app, Subject::Agent(org_id(&org)?, agent_id(&agent)?)).await
}

async fn add_agent_credential(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<(String, String)>, PathRejection>,
    b: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Response> {
    let (org, agent) = path(p)?;
    let subject = Subject::Agent(org_id(&org)?, agent_id(&agent)?);
    add_credential(&app, subject, body(b)?).await
}

async fn revoke_agent_credential(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<(String, String, String)>, PathRejection>,
) -> Result<StatusCode> {
    let (org, agent, id) = path(p)?;
    let subject = Subject::Agent(org_id(&org)?, agent_id(&agent)?);
    revoke_credential(&app, subject, &id).await
}

// ---- signing keys ---------------------------------------------------------

async fn keys_now(app: &App) -> Result<Json<Value>> {
    let keys = app.store.list_keys().await?;
    Ok(Json(json!({
        "keys": keys.iter().map(key_json).collect::<Vec<_>>()
    })))
}

async fn list_keys(State(app): State<Arc<App>>) -> Result<Json<Value>> {
    keys_now(&app).await
}

/// Runs a key request like `keys rotate|revoke`, and publishes the result on
/// this replica at once (the others follow through the store's notification).
async fn run_key_request(app: &App, request: &KeyRequest) -> Result<()> {
    let Some(transitions) = app.manager.request(request, now()).await? else {
        return Err(AdminError::conflict(
            "the signing keys kept changing under this request; nothing was done, try again",
        ));
    };
    if !transitions.is_empty() {
        tracing::info!(?transitions, "signing keys changed through the admin API");
        if let Err(e) = app.manager.reload().await {
            tracing::warn!(error = %e, "cannot reload signing keys after the change");
        }
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default)]
    now: bool,
}

async fn rotate_keys(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    raw: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    let raw = raw.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        _ => AdminError::bad_request("the request body could not be read"),
    })?;
    // The body is optional: empty means a scheduled-style rotation.
    let r: Rotate = if raw.is_empty() {
        Rotate::default()
    } else {
        if !super::media_type_is(&headers, "application/json") {
            return Err(unsupported_media_type());
        }
        let value: Value = serde_json::from_slice(&raw)
            .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))?;
        object(value)?
    };
    let request = if r.now {
        KeyRequest::RotateNow
    } else {
        KeyRequest::Rotate
    };
    run_key_request(&app, &request).await?;
    keys_now(&app).await
}

async fn revoke_key(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let kid = path(p)?;
    run_key_request(&app, &KeyRequest::Revoke(kid)).await?;
    keys_now(&app).await
}

// ---- audit ----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
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

async fn query_audit(
    State(app): State<Arc<App>>,
    q: std::result::Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(p) = q.map_err(|e| AdminError::bad_request(e.body_text()))?;
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

async fn get_audit(
    State(app): State<Arc<App>>,
    p: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<Value>> {
    let jti = path(p)?;
    if jti.len() > 128 {
        return Err(AdminError::not_found("no token has this jti"));
    }
    match app.store.token(&jti).await? {
        Some(r) => Ok(Json(audit_json(&r))),
        None => Err(AdminError::not_found("no token has this jti")),
    }
}
