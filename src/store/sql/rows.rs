//! Row decoders: a database row to the domain value it stores. A value this
//! version cannot read is `Corrupt`, naming the row.

use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::corrupt;
use crate::audit::AuditRecord;
use crate::ids::{AgentId, Audience, OrgId};
use crate::keys::{Alg, KeyState, PublicJwk, StoredKey, WrappedKey};
use crate::principal::{Credential, CredentialKind, OrgPolicy};
use crate::store::{AdminToken, AgentInfo, CredentialInfo, OrgInfo, StoreError};

pub(super) fn key_from_row(row: &AnyRow) -> Result<StoredKey, StoreError> {
    let kid: String = row.try_get("kid")?;
    let alg = Alg::from_str(&row.try_get::<String, _>("alg")?).map_err(corrupt)?;
    let state = KeyState::from_str(&row.try_get::<String, _>("state")?).map_err(corrupt)?;
    let jwk_text: String = row.try_get("public_jwk")?;
    let public_jwk = serde_json::from_str(&jwk_text)
        .ok()
        .and_then(|v| PublicJwk::parse(&v).ok())
        .filter(|j| j.kid == kid)
        .ok_or_else(|| corrupt(format!("signing key {kid}: unreadable public JWK")))?;
    let private_key = row
        .try_get::<Option<Vec<u8>>, _>("private_key")?
        .map(|bytes| -> Result<WrappedKey, StoreError> {
            Ok(WrappedKey {
                kek_id: row.try_get("kek_id")?,
                bytes,
            })
        })
        .transpose()?;
    Ok(StoredKey {
        kid,
        alg,
        state,
        public_jwk,
        private_key,
        created_at: row.try_get("created_at")?,
        activated_at: row.try_get("activated_at")?,
        retired_at: row.try_get("retired_at")?,
    })
}

/// A credential's `kind`, `secret_hash` and `public_jwks` columns.
pub(super) fn credential_columns(
    kind: &CredentialKind,
) -> (&'static str, Option<Vec<u8>>, Option<String>) {
    match kind {
        CredentialKind::Secret { hash } => ("secret", Some(hash.to_vec()), None),
        CredentialKind::PublicKeys(keys) => {
            let json: Vec<_> = keys.iter().map(PublicJwk::to_json).collect();
            (
                "public_key",
                None,
                Some(serde_json::Value::from(json).to_string()),
            )
        }
    }
}

/// Decodes a credential stored with [`credential_columns`].
pub(super) fn credential_from_row(row: &AnyRow) -> Result<Credential, StoreError> {
    let id: String = row.try_get("id")?;
    let kind = match row.try_get::<String, _>("kind")?.as_str() {
        "secret" => {
            let hash: Vec<u8> = row.try_get("secret_hash")?;
            let hash = hash
                .try_into()
                .map_err(|_| corrupt(format!("credential {id}: bad secret hash")))?;
            CredentialKind::Secret { hash }
        }
        "public_key" => {
            let text: String = row.try_get("public_jwks")?;
            let keys = serde_json::from_str::<Vec<serde_json::Value>>(&text)
                .ok()
                .and_then(|vs| vs.iter().map(|v| PublicJwk::parse(v).ok()).collect())
                .ok_or_else(|| corrupt(format!("credential {id}: unreadable public keys")))?;
            CredentialKind::PublicKeys(keys)
        }
        other => return Err(corrupt(format!("credential {id}: unknown kind {other}"))),
    };
    Ok(Credential { id, kind })
}

/// Decodes a credential with its history.
pub(super) fn credential_info_from_row(row: &AnyRow) -> Result<CredentialInfo, StoreError> {
    Ok(CredentialInfo {
        credential: credential_from_row(row)?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub(super) fn policy_from_row(org: &OrgId, row: &AnyRow) -> Result<OrgPolicy, StoreError> {
    let audiences: Vec<Audience> = serde_json::from_str(&row.try_get::<String, _>("audiences")?)
        .map_err(|_| corrupt(format!("org {org}: unreadable audiences")))?;
    let max_ttl: i64 = row.try_get("max_ttl_seconds")?;
    Ok(OrgPolicy {
        audiences,
        max_ttl: u32::try_from(max_ttl).map_err(|_| corrupt(format!("org {org}: bad max ttl")))?,
    })
}

pub(super) fn org_from_row(row: &AnyRow) -> Result<OrgInfo, StoreError> {
    let text: String = row.try_get("id")?;
    let id = OrgId::parse(&text).map_err(|_| corrupt(format!("org {text:?}: bad id")))?;
    Ok(OrgInfo {
        policy: policy_from_row(&id, row)?,
        created_at: row.try_get("created_at")?,
        id,
    })
}

pub(super) fn agent_from_row(row: &AnyRow) -> Result<AgentInfo, StoreError> {
    let (org, id): (String, String) = (row.try_get("org_id")?, row.try_get("id")?);
    Ok(AgentInfo {
        org: OrgId::parse(&org).map_err(|_| corrupt(format!("org {org:?}: bad id")))?,
        id: AgentId::parse(&id).map_err(|_| corrupt(format!("agent {id:?}: bad id")))?,
        created_at: row.try_get("created_at")?,
    })
}

/// The columns of `audit_tokens`, in the order every query writes and reads
/// them, each with the Postgres type the group commit casts its array
/// parameters to.
pub(super) const AUDIT_COLUMNS: [(&str, &str); 9] = [
    ("jti", "text"),
    ("subject", "text"),
    ("org_id", "text"),
    ("agent_id", "text"),
    ("audience", "text"),
    ("kid", "text"),
    ("iat", "int8"),
    ("exp", "int8"),
    ("auth_method", "text"),
];

/// `jti, subject, …`: the audit columns as an INSERT or SELECT list.
pub(super) fn audit_columns() -> String {
    AUDIT_COLUMNS.map(|(name, _)| name).join(", ")
}

/// Decodes a row selected with [`audit_columns`].
pub(super) fn audit_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let [
        jti,
        subject,
        org_id,
        agent_id,
        audience,
        kid,
        iat,
        exp,
        auth_method,
    ] = AUDIT_COLUMNS.map(|(name, _)| name);
    Ok(AuditRecord {
        jti: row.try_get(jti)?,
        subject: row.try_get(subject)?,
        org_id: row.try_get(org_id)?,
        agent_id: row.try_get(agent_id)?,
        audience: row.try_get(audience)?,
        kid: row.try_get(kid)?,
        iat: row.try_get(iat)?,
        exp: row.try_get(exp)?,
        auth_method: row.try_get(auth_method)?,
    })
}

pub(super) fn admin_token_from_row(row: &AnyRow) -> Result<AdminToken, StoreError> {
    Ok(AdminToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}
