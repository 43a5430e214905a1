//! Orgs, agents and their credentials, with the change log that tells other
//! replicas' principal caches what to drop.

use async_trait::async_trait;
use sqlx::{Any, Executor, Row, Transaction};

use super::rows::{
    agent_from_row, credential_columns, credential_from_row, credential_info_from_row,
    org_from_row, policy_from_row,
};
use super::{SqlStore, conflict_or, corrupt};
use crate::ids::{AgentId, Audience, OrgId, Subject};
use crate::principal::session_claims::SessionClaims;
use crate::principal::{Credential, CredentialKind, OrgPolicy, PolicyChange, Principal};
use crate::store::{
    AgentInfo, Backend, CredentialInfo, MAX_ACTIVE_SECRETS, OrgInfo, PrincipalStore, StoreError,
};

#[async_trait]
impl PrincipalStore for SqlStore {
    async fn create_org(
        &self,
        org: &OrgId,
        policy: &OrgPolicy,
        credential: &Credential,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let subject = Subject::Org(org.clone());
        if subject_exists(&mut tx, &subject).await? {
            return Err(StoreError::Conflict(format!("org {org}")));
        }
        let audiences: Vec<&str> = policy.audiences.iter().map(Audience::as_str).collect();
        sqlx::query(
            "INSERT INTO orgs (id, audiences, max_ttl_seconds, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(org.as_str())
        .bind(serde_json::to_string(&audiences).expect("strings serialise"))
        .bind(i64::from(policy.max_ttl))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, || format!("org {org}")))?;
        insert_credential(&mut tx, &subject, credential, now).await?;
        record_change(&mut tx, &subject).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_agent(
        &self,
        org: &OrgId,
        agent: &AgentId,
        credential: &Credential,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if !subject_exists(&mut tx, &Subject::Org(org.clone())).await? {
            return Err(StoreError::NotFound(format!("org {org}")));
        }
        let subject = Subject::Agent(org.clone(), agent.clone());
        if subject_exists(&mut tx, &subject).await? {
            return Err(StoreError::Conflict(format!("agent {agent} of org {org}")));
        }
        sqlx::query("INSERT INTO agents (org_id, id, created_at) VALUES ($1, $2, $3)")
            .bind(org.as_str())
            .bind(agent.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_or(e, || format!("agent {agent} of org {org}")))?;
        insert_credential(&mut tx, &subject, credential, now).await?;
        record_change(&mut tx, &subject).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn principal(&self, subject: &Subject) -> Result<Option<Principal>, StoreError> {
        let org = subject.org();
        let Some(row) = sqlx::query(
            "SELECT audiences, max_ttl_seconds, session_claims FROM orgs WHERE id = $1",
        )
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let policy = policy_from_row(org, &row)?;
        let read_claims = |text: Option<String>| -> Result<Option<SessionClaims>, StoreError> {
            text.map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|_| corrupt(format!("{subject}: unreadable session claims")))
        };
        let mut session_claims = read_claims(row.try_get("session_claims")?)?.unwrap_or_default();
        if let Some(agent) = subject.agent() {
            let Some(agent_row) =
                sqlx::query("SELECT session_claims FROM agents WHERE org_id = $1 AND id = $2")
                    .bind(org.as_str())
                    .bind(agent.as_str())
                    .fetch_optional(&self.pool)
                    .await?
            else {
                return Ok(None);
            };
            if let Some(own) = read_claims(agent_row.try_get("session_claims")?)? {
                session_claims = own;
            }
        }
        let rows = sqlx::query(
            "SELECT id, kind, secret_hash, public_jwks FROM client_credentials
             WHERE subject = $1 AND revoked_at IS NULL ORDER BY created_at, id",
        )
        .bind(subject.to_string())
        .fetch_all(&self.pool)
        .await?;
        let credentials = rows
            .iter()
            .map(|row| credential_from_row(row).map(|c| c.kind))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Principal::new(
            subject.clone(),
            policy,
            &credentials,
            session_claims,
        )))
    }

    async fn session_claims_all(&self) -> Result<Vec<(Subject, SessionClaims)>, StoreError> {
        let parse = |t: Option<String>| -> Option<SessionClaims> {
            t.and_then(|t| serde_json::from_str(&t).ok())
        };
        let orgs = sqlx::query("SELECT id, session_claims FROM orgs")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        let mut by_org = std::collections::HashMap::new();
        for row in &orgs {
            let id: String = row.try_get("id")?;
            let Ok(org) = OrgId::parse(&id) else { continue };
            let claims = parse(row.try_get("session_claims")?).unwrap_or_default();
            by_org.insert(id, claims.clone());
            out.push((Subject::Org(org), claims));
        }
        let agents = sqlx::query("SELECT org_id, id, session_claims FROM agents")
            .fetch_all(&self.pool)
            .await?;
        for row in &agents {
            let (org, id): (String, String) = (row.try_get("org_id")?, row.try_get("id")?);
            let (Ok(o), Ok(a)) = (OrgId::parse(&org), AgentId::parse(&id)) else {
                continue;
            };
            let claims = parse(row.try_get("session_claims")?)
                .or_else(|| by_org.get(&org).cloned())
                .unwrap_or_default();
            out.push((Subject::Agent(o, a), claims));
        }
        Ok(out)
    }

    async fn set_session_claims(
        &self,
        subject: &Subject,
        claims: Option<&SessionClaims>,
    ) -> Result<(), StoreError> {
        let text = claims.map(|c| serde_json::to_string(c).expect("claims serialise"));
        let mut tx = self.begin_write().await?;
        let done = match subject.agent() {
            None => {
                sqlx::query("UPDATE orgs SET session_claims = $1 WHERE id = $2")
                    .bind(text)
                    .bind(subject.org().as_str())
                    .execute(&mut *tx)
                    .await?
            }
            Some(agent) => {
                sqlx::query("UPDATE agents SET session_claims = $1 WHERE org_id = $2 AND id = $3")
                    .bind(text)
                    .bind(subject.org().as_str())
                    .bind(agent.as_str())
                    .execute(&mut *tx)
                    .await?
            }
        };
        record_change(&mut tx, subject).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(subject.to_string()));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_orgs(
        &self,
        after: Option<&OrgId>,
        limit: u32,
    ) -> Result<Vec<OrgInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, audiences, max_ttl_seconds, created_at FROM orgs
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.map(OrgId::as_str).unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(org_from_row).collect()
    }

    async fn org(&self, org: &OrgId) -> Result<Option<OrgInfo>, StoreError> {
        let row = sqlx::query(
            "SELECT id, audiences, max_ttl_seconds, created_at FROM orgs WHERE id = $1",
        )
        .bind(org.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    async fn update_org(&self, org: &OrgId, change: &PolicyChange) -> Result<OrgInfo, StoreError> {
        let audiences = change.audiences().map(|list| {
            let list: Vec<&str> = list.iter().map(Audience::as_str).collect();
            serde_json::to_string(&list).expect("strings serialise")
        });
        let mut tx = self.begin_write().await?;
        // One statement, each part kept unless it changes: two updates of
        // different parts made at once both take effect.
        let row = sqlx::query(
            "UPDATE orgs SET audiences = COALESCE($1, audiences),
                             max_ttl_seconds = COALESCE($2, max_ttl_seconds)
             WHERE id = $3
             RETURNING id, audiences, max_ttl_seconds, created_at",
        )
        .bind(audiences)
        .bind(change.max_ttl().map(i64::from))
        .bind(org.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(format!("org {org}")));
        };
        let info = org_from_row(&row)?;
        record_change(&mut tx, &Subject::Org(org.clone())).await?;
        tx.commit().await?;
        Ok(info)
    }

    async fn list_agents(&self, org: &OrgId) -> Result<Option<Vec<AgentInfo>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !subject_exists(&mut tx, &Subject::Org(org.clone())).await? {
            return Ok(None);
        }
        let rows =
            sqlx::query("SELECT org_id, id, created_at FROM agents WHERE org_id = $1 ORDER BY id")
                .bind(org.as_str())
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        rows.iter()
            .map(agent_from_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    async fn agent(&self, org: &OrgId, agent: &AgentId) -> Result<Option<AgentInfo>, StoreError> {
        let row =
            sqlx::query("SELECT org_id, id, created_at FROM agents WHERE org_id = $1 AND id = $2")
                .bind(org.as_str())
                .bind(agent.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    async fn credentials(
        &self,
        subject: &Subject,
    ) -> Result<Option<Vec<CredentialInfo>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !subject_exists(&mut tx, subject).await? {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id, kind, secret_hash, public_jwks, created_at, revoked_at FROM client_credentials
             WHERE subject = $1 ORDER BY created_at, id",
        )
        .bind(subject.to_string())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(credential_info_from_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    async fn add_credential(
        &self,
        subject: &Subject,
        credential: &Credential,
        now: i64,
    ) -> Result<(), StoreError> {
        // Serialised with other credential additions, so that two concurrent
        // ones cannot both pass the limit on active secrets.
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('nomos_issuer_credentials'))")
                .await?;
        }
        if !subject_exists(&mut tx, subject).await? {
            return Err(StoreError::NotFound(subject.to_string()));
        }
        if matches!(credential.kind, CredentialKind::Secret { .. }) {
            let active: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM client_credentials
                 WHERE subject = $1 AND kind = 'secret' AND revoked_at IS NULL",
            )
            .bind(subject.to_string())
            .fetch_one(&mut *tx)
            .await?;
            if active >= MAX_ACTIVE_SECRETS as i64 {
                return Err(StoreError::Conflict(format!(
                    "{MAX_ACTIVE_SECRETS} active secrets of {subject} (revoke one first); a third secret"
                )));
            }
        }
        insert_credential(&mut tx, subject, credential, now).await?;
        record_change(&mut tx, subject).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn revoke_credential(
        &self,
        subject: &Subject,
        id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE client_credentials SET revoked_at = $1
             WHERE subject = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(subject.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "an active credential {id} of {subject}"
            )));
        }
        record_change(&mut tx, subject).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn principal_change_head(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM principal_changes")
                .fetch_one(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    async fn principal_changes_since(&self, seq: i64) -> Result<(i64, Vec<String>), StoreError> {
        let rows = sqlx::query(
            "SELECT seq, subject FROM principal_changes WHERE seq > $1 ORDER BY seq LIMIT 10000",
        )
        .bind(seq)
        .fetch_all(&self.pool)
        .await?;
        let mut last = seq;
        let mut subjects = Vec::with_capacity(rows.len());
        for r in &rows {
            last = last.max(r.try_get::<i64, _>("seq")?);
            subjects.push(r.try_get("subject")?);
        }
        Ok((last, subjects))
    }
}

/// Notes a change to a principal, in the transaction that makes it.
async fn record_change(
    tx: &mut Transaction<'static, Any>,
    subject: &Subject,
) -> Result<(), StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    sqlx::query("INSERT INTO principal_changes (subject, changed_at) VALUES ($1, $2)")
        .bind(subject.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_credential(
    tx: &mut Transaction<'static, Any>,
    subject: &Subject,
    credential: &Credential,
    now: i64,
) -> Result<(), StoreError> {
    let (kind, hash, jwks) = credential_columns(&credential.kind);
    sqlx::query(
        "INSERT INTO client_credentials (id, subject, kind, secret_hash, public_jwks, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&credential.id)
    .bind(subject.to_string())
    .bind(kind)
    .bind(hash)
    .bind(jwks)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether an org or agent exists, inside a transaction.
async fn subject_exists(
    tx: &mut Transaction<'static, Any>,
    subject: &Subject,
) -> Result<bool, StoreError> {
    let found: Option<String> = match subject.agent() {
        None => {
            sqlx::query_scalar("SELECT id FROM orgs WHERE id = $1")
                .bind(subject.org().as_str())
                .fetch_optional(&mut **tx)
                .await?
        }
        Some(agent) => {
            sqlx::query_scalar("SELECT id FROM agents WHERE org_id = $1 AND id = $2")
                .bind(subject.org().as_str())
                .bind(agent.as_str())
                .fetch_optional(&mut **tx)
                .await?
        }
    };
    Ok(found.is_some())
}
