//! The JSON views of orgs, agents, credentials and keys (an audit record's is
//! `audit::query::record_json`, which `audit show --json` prints too).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ids::Audience;
use crate::keys::StoredKey;
use crate::principal::{Credential, CredentialKind};
use crate::store::{AgentInfo, OrgInfo};

pub(super) fn org_json(o: &OrgInfo) -> Value {
    json!({
        "id": o.id,
        "audiences": o.policy.audiences.iter().map(Audience::as_str).collect::<Vec<_>>(),
        "max_ttl_seconds": o.policy.max_ttl,
        "created_at": o.created_at,
    })
}

pub(super) fn agent_json(a: &AgentInfo) -> Value {
    json!({"org_id": a.org, "id": a.id, "created_at": a.created_at})
}

pub(super) fn credential_json(c: &Credential, created_at: i64, revoked_at: Option<i64>) -> Value {
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

pub(super) fn key_json(k: &StoredKey) -> Value {
    json!({
        "kid": k.kid, "alg": k.alg.as_str(), "state": k.state.as_str(),
        "created_at": k.created_at, "activated_at": k.activated_at,
        "retired_at": k.retired_at,
        "public_jwk": k.state.is_published().then(|| k.public_jwk.to_json()),
    })
}

pub(super) fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}
