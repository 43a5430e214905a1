//! The client-credentials grant: authenticate, check the audience, mint, audit.
//!
//! A failed authentication is answered with one generic `invalid_client`
//! (an assertion's claims may say which claim is wrong: that reveals nothing
//! about who exists). Why it failed goes to the operator: a decision record
//! with the reason, handed to the [`DecisionSink`] without waiting.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::assertion::Assertion;
use super::client_auth::{self, AuthMethod, Presented};
use super::form::{Params, truncate};
use super::principals::PrincipalCache;
use super::{ErrorCode, MintRequest, OAuthError, mint};
use crate::audit::decision::{Decision, DecisionKind, DecisionSink, Evidence, Reason};
use crate::audit::{AssertionClaim, AuditError, AuditSink, Issued};
use crate::clock::Clock;
use crate::ids::{Audience, OrgId, Subject};
use crate::keys::KeyRing;
use crate::keys::keyring::Endpoints;
use crate::principal::{Principal, hash_secret};
use crate::ratelimit::{KeyedLimit, address_key, retry_after_seconds};
use crate::store::error::StoreError;

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
    /// Where issued tokens are recorded, before they leave.
    pub audit: Arc<dyn AuditSink>,
    /// Where refusals are recorded, after they are answered.
    pub decisions: Arc<dyn DecisionSink>,
    /// The time tokens are issued at.
    pub clock: Arc<dyn Clock>,
    /// Default token lifetime (capped by the org's maximum).
    pub token_ttl: u32,
    /// Clock skew allowed on client assertions, in seconds.
    pub assertion_skew: i64,
    /// Failed authentications per client id and source address. Only failures
    /// count, and a request whose credentials are valid is never refused, so
    /// nobody can lock a client out by failing in its name. (Secrets carry 256
    /// random bits: guessing needs no throttle. The limit tells a client that
    /// keeps failing to back off.)
    pub failure_limit: Option<KeyedLimit<(Subject, IpAddr)>>,
}

fn store_down(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "store unavailable during token request");
    OAuthError::unavailable()
}

fn failed() -> OAuthError {
    OAuthError::invalid_client("client authentication failed")
}

/// Parameters this issuer does not act on, which a client might expect to
/// change its token: refused rather than silently ignored.
const REFUSED_PARAMETERS: [(&str, &str); 2] = [
    (
        "scope",
        "scope is not supported: tokens carry no scopes; remove it",
    ),
    (
        "resource",
        "resource is not supported: name the token's audience with the audience parameter",
    ),
];

impl TokenService {
    /// Handles a token request: `authorization` is the raw header, if any,
    /// `source` the client's address and `request_id` the access log's, when
    /// known.
    pub async fn token(
        &self,
        params: &Params,
        authorization: Option<&str>,
        source: Option<IpAddr>,
        request_id: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        let now = self.clock.now();
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
        for (name, why) in REFUSED_PARAMETERS {
            if params.get(name).is_some() {
                return Err(OAuthError::invalid_request(why));
            }
        }
        let refusal = |failure| Refusal {
            failure,
            now,
            source,
            request_id,
        };
        let presented = match client_auth::presented(authorization, params) {
            Ok(p) => p,
            Err(e) if e.code == ErrorCode::InvalidClient => {
                let failure = Failure::new(None, None, Reason::MalformedCredentials, e);
                return Err(self.refuse(refusal(failure)));
            }
            Err(e) => return Err(e),
        };
        let (principal, method, claim) = match self.authenticate(presented, now).await {
            Ok(authenticated) => authenticated,
            Err(Refused::Failed(failure)) => return Err(self.refuse(refusal(*failure))),
            Err(Refused::Error(e)) => return Err(e),
        };
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
            AuditError::Replayed => self.refuse(refusal(Failure::new(
                Some(principal.subject.clone()),
                Some(method),
                Reason::AssertionReplay,
                OAuthError::invalid_client("client assertion rejected: jti was used before"),
            ))),
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

    /// Answers a failed authentication: counts it against the client id and
    /// source address (when the id is well formed), hands its decision record
    /// to the sink, and returns what the client is told.
    fn refuse(&self, refusal: Refusal<'_>) -> OAuthError {
        let Refusal {
            failure:
                Failure {
                    client_id,
                    method,
                    reason,
                    evidence,
                    error,
                },
            now,
            source,
            request_id,
        } = refusal;
        let error = match &client_id {
            Some(subject) => self.count_failure(subject, source, error),
            None => error,
        };
        self.decisions.refused(Decision {
            at: now,
            kind: DecisionKind::Authentication,
            client_id,
            reason,
            auth_method: method.map(AuthMethod::as_str),
            source,
            request_id: request_id.map(str::to_owned),
            evidence,
        });
        error
    }

    /// A failed authentication of `subject` from `source`: `error`, or
    /// `slow_down` once that pair has failed too often.
    fn count_failure(
        &self,
        subject: &Subject,
        source: Option<IpAddr>,
        error: OAuthError,
    ) -> OAuthError {
        if let (Some(limit), Some(ip)) = (&self.failure_limit, source) {
            if let Err(wait) = limit.check(&(subject.clone(), address_key(ip))) {
                let seconds = retry_after_seconds(wait);
                return OAuthError {
                    retry_after: Some(seconds),
                    ..OAuthError::new(
                        ErrorCode::SlowDown,
                        format!(
                            "too many failed authentications of this client from this address; retry in {seconds} s"
                        ),
                    )
                };
            }
        }
        error
    }

    /// The principal `subject` names, or a decoy when none exists, so that
    /// checking credentials costs the same either way.
    async fn principal(
        &self,
        subject: &Subject,
        max_age: Option<Duration>,
    ) -> Result<(Arc<Principal>, bool), Refused> {
        let found = match max_age {
            None => self.principals.get(subject).await,
            Some(age) => self.principals.get_within(subject, age).await,
        }
        .map_err(|e| Refused::Error(store_down(e)))?;
        Ok(match found {
            Some(p) => (p, true),
            None => (Arc::new(Principal::decoy(subject.clone())), false),
        })
    }

    /// The principal whose credentials `check` accepts, from the cache or, when
    /// they fail there, from an entry at most [`RECHECK_AGE`] old (a credential
    /// added moments ago on another replica). When they fail there too: the
    /// principal that exists, or `None` when nobody has this client id.
    async fn check(
        &self,
        subject: &Subject,
        check: impl Fn(&Principal) -> bool,
    ) -> Result<Result<Arc<Principal>, Option<Arc<Principal>>>, Refused> {
        let mut known = None;
        for max_age in [None, Some(RECHECK_AGE)] {
            let (principal, exists) = self.principal(subject, max_age).await?;
            if check(&principal) && exists {
                return Ok(Ok(principal));
            }
            known = exists.then_some(principal);
        }
        Ok(Err(known))
    }

    async fn authenticate(
        &self,
        presented: Presented,
        now: i64,
    ) -> Result<(Arc<Principal>, AuthMethod, Option<AssertionClaim>), Refused> {
        match presented {
            Presented::Secret {
                client_id,
                secret,
                method,
            } => {
                let refused = |client, reason, evidence| {
                    Failure::new(client, Some(method), reason, failed()).with(evidence)
                };
                // A malformed id names nobody: refused, not counted, not echoed.
                let Ok(subject) = Subject::parse(&client_id) else {
                    return Err(refused(None, Reason::MalformedClientId, None));
                };
                let known = match self.check(&subject, |p| p.secret_matches(&secret)).await? {
                    Ok(p) => return Ok((p, method, None)),
                    Err(known) => known,
                };
                // Whether the secret is a revoked one is found out after the
                // answer (the decision writer asks the store), so that known
                // and unknown clients are refused in the same time.
                let reason = match known {
                    None => Reason::UnknownClient,
                    Some(p) if p.secret_hashes().is_empty() => Reason::MethodNotRegistered,
                    Some(_) => Reason::WrongSecret,
                };
                let evidence = Evidence::Secret(hash_secret(&secret));
                Err(refused(Some(subject), reason, Some(evidence)))
            }
            Presented::Assertion {
                client_id,
                assertion,
            } => {
                let method = Some(AuthMethod::PrivateKeyJwt);
                let a = Assertion::parse(&assertion).map_err(|e| {
                    let body_id = client_id.as_deref().and_then(|c| Subject::parse(c).ok());
                    Failure::new(body_id, method, Reason::AssertionMalformed, e)
                })?;
                let claimed = a.claims.sub.clone();
                let Ok(subject) = Subject::parse(&claimed) else {
                    return Err(
                        Failure::new(None, method, Reason::MalformedClientId, failed()).into(),
                    );
                };
                if client_id.is_some_and(|c| c != claimed) {
                    let e =
                        OAuthError::invalid_client("client_id differs from the assertion subject");
                    return Err(
                        Failure::new(Some(subject), method, Reason::AssertionClaims, e).into(),
                    );
                }
                let known = match self.check(&subject, |p| a.verify(p.public_keys())).await? {
                    Ok(p) => p,
                    Err(known) => {
                        let reason = match known {
                            None => Reason::UnknownClient,
                            Some(p) if p.public_keys().is_empty() => Reason::MethodNotRegistered,
                            Some(_) => Reason::AssertionSignature,
                        };
                        let evidence = a.kid().map(|k| Evidence::Kid(k.to_owned()));
                        let failure = Failure::new(Some(subject), method, reason, failed());
                        return Err(failure.with(evidence));
                    }
                };
                let audiences = [
                    self.endpoints.token_endpoint.as_str(),
                    self.endpoints.issuer.as_str(),
                ];
                let exp = a
                    .check_claims(&claimed, &audiences, now, self.assertion_skew)
                    .map_err(|(reason, e)| Failure::new(Some(subject), method, reason, e))?;
                // The jti is claimed with the audit row, in one transaction.
                let claim = AssertionClaim {
                    client_id: claimed,
                    jti: a.claims.jti.clone(),
                    expires_at: exp + self.assertion_skew,
                };
                Ok((known, AuthMethod::PrivateKeyJwt, Some(claim)))
            }
        }
    }
}

/// A failed client authentication: what the operator learns and what the
/// client is told.
#[derive(Debug)]
struct Failure {
    /// The claimed client id, when well formed.
    client_id: Option<Subject>,
    /// The method the request used, when it showed one.
    method: Option<AuthMethod>,
    /// Why it failed.
    reason: Reason,
    /// What may name a revoked credential.
    evidence: Option<Evidence>,
    /// The answer.
    error: OAuthError,
}

impl Failure {
    fn new(
        client_id: Option<Subject>,
        method: Option<AuthMethod>,
        reason: Reason,
        error: OAuthError,
    ) -> Self {
        Failure {
            client_id,
            method,
            reason,
            evidence: None,
            error,
        }
    }

    fn with(self, evidence: Option<Evidence>) -> Refused {
        Refused::Failed(Box::new(Failure { evidence, ..self }))
    }
}

/// A failure, with the request it answers.
struct Refusal<'a> {
    failure: Failure,
    now: i64,
    source: Option<IpAddr>,
    request_id: Option<&'a str>,
}

/// Why authentication did not succeed.
enum Refused {
    /// The credentials did not check out: recorded, and counted when the
    /// client id is well formed.
    Failed(Box<Failure>),
    /// Anything else (a store outage): answered as it is.
    Error(OAuthError),
}

impl From<Failure> for Refused {
    fn from(f: Failure) -> Self {
        Refused::Failed(Box::new(f))
    }
}
