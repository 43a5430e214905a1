//! The client-credentials grant: authenticate, check the audience, mint, audit.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::assertion::Assertion;
use super::client_auth::{self, AuthMethod, Presented};
use super::form::{Params, truncate};
use super::principals::PrincipalCache;
use super::{ErrorCode, MintRequest, OAuthError, mint};
use crate::audit::{AssertionClaim, AuditError, AuditWriter, Issued};
use crate::ids::{Audience, OrgId, Subject};
use crate::keys::KeyRing;
use crate::keys::keyring::Endpoints;
use crate::principal::Principal;
use crate::ratelimit::{KeyedLimit, retry_after_seconds};
use crate::store::StoreError;

/// How fresh a principal must be when its credentials failed to match.
const RECHECK_AGE: Duration = Duration::from_secs(1);

/// The successful token response (RFC 6749 §5.1, RFC 8693 `issued_token_type`).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Lifetime in seconds.
    pub expires_in: u32,
    /// `urn:ietf:params:oauth:token-type:jwt`.
    pub issued_token_type: &'static str,
    /// The org the token was issued to (for metrics; not sent).
    #[serde(skip)]
    pub org: OrgId,
}

/// Everything the grant needs, built once at startup.
pub struct TokenService {
    /// Principals, cached.
    pub principals: Arc<PrincipalCache>,
    /// The signing keys.
    pub keys: Arc<KeyRing>,
    /// Published URLs.
    pub endpoints: Endpoints,
    /// The group-commit audit writer.
    pub audit: AuditWriter,
    /// Default token lifetime (capped by the org's maximum).
    pub token_ttl: u32,
    /// Clock skew allowed on client assertions, in seconds.
    pub assertion_skew: i64,
    /// Requests per client id, checked before authentication (so that guessing
    /// secrets is throttled too).
    pub client_limit: Option<KeyedLimit<String>>,
}

fn store_down(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "store unavailable during token request");
    OAuthError::unavailable()
}

fn failed() -> OAuthError {
    OAuthError::invalid_client("client authentication failed")
}

impl TokenService {
    /// Handles a token request: `authorization` is the raw header, if any.
    pub async fn token(
        &self,
        params: &Params,
        authorization: Option<&str>,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        match params.get("grant_type") {
            None => return Err(OAuthError::invalid_request("grant_type is missing")),
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    format!(
                        "grant_type {:?} is not supported: use client_credentials",
                        truncate(other)
                    ),
                ));
            }
        }
        let presented = client_auth::presented(authorization, params)?;
        if let Some(limit) = &self.client_limit {
            let client = presented.claimed_client_id();
            if let Err(wait) = limit.check(&client) {
                return Err(OAuthError::slow_down("client", retry_after_seconds(wait)));
            }
        }
        let (principal, method, claim) = self.authenticate(presented, now).await?;
        let audience = match params.get("audience") {
            None => Audience::sts(),
            Some(a) => Audience::parse(a)
                .map_err(|e| OAuthError::new(ErrorCode::InvalidTarget, e.to_string()))?,
        };
        if !principal.policy.audiences.contains(&audience) {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                format!(
                    "audience {:?} is not allowed for this client",
                    truncate(audience.as_str())
                ),
            ));
        }
        let aws_claims = principal
            .session_claims()
            .claims(&principal.subject)
            .map_err(|e| OAuthError::new(ErrorCode::UnauthorizedClient, e))?;
        let ttl = self.token_ttl.min(principal.policy.max_ttl);
        let published = self.keys.get();
        let minted = mint(
            &published.signer,
            &self.endpoints.issuer,
            MintRequest {
                subject: &principal.subject,
                audience: &audience,
                ttl,
                auth_method: method.as_str(),
                aws_claims: &aws_claims,
            },
            now,
        );
        let issued = Issued {
            record: minted.record,
            claim,
        };
        self.audit.record(issued).await.map_err(|e| match e {
            AuditError::Replayed => {
                OAuthError::invalid_client("client assertion rejected: jti was used before")
            }
            e => {
                tracing::error!(error = %e, "token withheld: audit not committed");
                OAuthError::unavailable()
            }
        })?;
        Ok(TokenResponse {
            access_token: minted.token,
            token_type: "Bearer",
            expires_in: minted.expires_in,
            issued_token_type: "urn:ietf:params:oauth:token-type:jwt",
            org: principal.subject.org().clone(),
        })
    }

    async fn authenticate(
        &self,
        presented: Presented,
        now: i64,
    ) -> Result<(Arc<Principal>, AuthMethod, Option<AssertionClaim>), OAuthError> {
        match presented {
            Presented::Secret {
                client_id,
                secret,
                method,
            } => {
                let subject = Subject::parse(&client_id).map_err(|_| failed())?;
                let cached = self.principals.get(&subject).await.map_err(store_down)?;
                if let Some(p) = cached.filter(|p| p.secret_matches(&secret)) {
                    return Ok((p, method, None));
                }
                // A secret added moments ago may not be cached yet.
                let fresh = self
                    .principals
                    .get_within(&subject, RECHECK_AGE)
                    .await
                    .map_err(store_down)?;
                match fresh.filter(|p| p.secret_matches(&secret)) {
                    Some(p) => Ok((p, method, None)),
                    None => Err(failed()),
                }
            }
            Presented::Assertion {
                client_id,
                assertion,
            } => {
                let a = Assertion::parse(&assertion)?;
                let claimed = a.claims.sub.clone();
                if client_id.is_some_and(|c| c != claimed) {
                    return Err(OAuthError::invalid_client(
                        "client_id differs from the assertion subject",
                    ));
                }
                let subject = Subject::parse(&claimed).map_err(|_| failed())?;
                let cached = self.principals.get(&subject).await.map_err(store_down)?;
                let principal = match cached.filter(|p| a.verify(p.public_keys())) {
                    Some(p) => p,
                    None => self
                        .principals
                        .get_within(&subject, RECHECK_AGE)
                        .await
                        .map_err(store_down)?
                        .filter(|p| a.verify(p.public_keys()))
                        .ok_or_else(failed)?,
                };
                let audiences = [
                    self.endpoints.token_endpoint.as_str(),
                    self.endpoints.issuer.as_str(),
                ];
                let exp = a.check_claims(&claimed, &audiences, now, self.assertion_skew)?;
                // The jti is claimed with the audit row, in one transaction.
                let claim = AssertionClaim {
                    client_id: claimed,
                    jti: a.claims.jti.clone(),
                    expires_at: exp + self.assertion_skew,
                };
                Ok((principal, AuthMethod::PrivateKeyJwt, Some(claim)))
            }
        }
    }
}
