//! Decision records: why a request was refused, for the operator. The client
//! hears one generic `invalid_client`; the operator reads the reason here, in
//! the log line and with `audit decisions`. Refused client authentications
//! are recorded today; policy denials will join them as another kind.
//!
//! A record never holds a secret or an assertion, and holds a client id only
//! when it is well formed: a malformed one is the reason, never echoed.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use crate::ids::Subject;
use crate::principal::CredentialKind;

/// What kind of decision a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// A client authentication that failed.
    Authentication,
}

impl DecisionKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Authentication => "authentication",
        }
    }
}

/// Why a client authentication failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No credentials, an unsupported `Authorization` scheme, unreadable
    /// Basic credentials, or two client ids that differ.
    MalformedCredentials,
    /// The client id is not `org/ORG` or `org/ORG/agent/AGENT`.
    MalformedClientId,
    /// No org or agent has this client id.
    UnknownClient,
    /// The secret matches none of the client's secrets.
    WrongSecret,
    /// The secret, or the assertion's key (by `kid`), belongs to one of the
    /// client's revoked credentials.
    RevokedCredential,
    /// The client has no credential of the kind it used: a secret sent by a
    /// client with only keys, or an assertion from one with only secrets.
    MethodNotRegistered,
    /// The client assertion is not a readable signed JWT.
    AssertionMalformed,
    /// No registered key verifies the assertion's signature.
    AssertionSignature,
    /// The assertion's `aud` is not the token endpoint or the issuer.
    AssertionAudience,
    /// The assertion's `exp` is past, too far ahead, or not a number.
    AssertionExpiry,
    /// Another claim is wrong: `iss`/`sub` differ from the client id, `nbf`
    /// or `iat` lie ahead, or the `jti` is empty or too long.
    AssertionClaims,
    /// The assertion's `jti` was used before.
    AssertionReplay,
}

impl Reason {
    /// Every reason, in the order of the documentation.
    pub const ALL: [Reason; 12] = [
        Reason::MalformedCredentials,
        Reason::MalformedClientId,
        Reason::UnknownClient,
        Reason::WrongSecret,
        Reason::RevokedCredential,
        Reason::MethodNotRegistered,
        Reason::AssertionMalformed,
        Reason::AssertionSignature,
        Reason::AssertionAudience,
        Reason::AssertionExpiry,
        Reason::AssertionClaims,
        Reason::AssertionReplay,
    ];

    /// The stored and logged name.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedCredentials => "malformed_credentials",
            Reason::MalformedClientId => "malformed_client_id",
            Reason::UnknownClient => "unknown_client",
            Reason::WrongSecret => "wrong_secret",
            Reason::RevokedCredential => "revoked_credential",
            Reason::MethodNotRegistered => "method_not_registered",
            Reason::AssertionMalformed => "assertion_malformed",
            Reason::AssertionSignature => "assertion_signature",
            Reason::AssertionAudience => "assertion_audience",
            Reason::AssertionExpiry => "assertion_expiry",
            Reason::AssertionClaims => "assertion_claims",
            Reason::AssertionReplay => "assertion_replay",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a refused client presented that could name one of its revoked
/// credentials. Kept in memory only, until the record is written: never
/// stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub enum Evidence {
    /// The SHA-256 of the secret presented (the hash, as the store keeps it).
    Secret([u8; 32]),
    /// The `kid` of the assertion's header.
    Kid(String),
}

impl fmt::Debug for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Secret(_) => f.write_str("Secret(<hidden>)"),
            Evidence::Kid(kid) => f.debug_tuple("Kid").field(kid).finish(),
        }
    }
}

impl Evidence {
    /// Whether a credential of `kind` is the one this names.
    fn names(&self, kind: &CredentialKind) -> bool {
        match (self, kind) {
            (Evidence::Secret(presented), CredentialKind::Secret { hash }) => presented == hash,
            (Evidence::Kid(kid), CredentialKind::PublicKeys(keys)) => {
                keys.iter().any(|k| &k.kid == kid)
            }
            _ => false,
        }
    }
}

/// A refusal, as the token endpoint hands it to a [`DecisionSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// When (Unix seconds).
    pub at: i64,
    /// What kind of decision.
    pub kind: DecisionKind,
    /// The claimed client id, only when it is well formed.
    pub client_id: Option<Subject>,
    /// Why.
    pub reason: Reason,
    /// The authentication method used, when the request showed one.
    pub auth_method: Option<&'static str>,
    /// The caller's address.
    pub source: Option<IpAddr>,
    /// The request id of the access log line.
    pub request_id: Option<String>,
    /// What may name a revoked credential (see [`Decision::refine`]).
    pub evidence: Option<Evidence>,
}

impl Decision {
    /// The subject whose revoked credentials could explain this refusal:
    /// a known client's wrong secret, wrong key or missing method, with
    /// something presented that may name a revoked credential.
    pub fn revocation_candidate(&self) -> Option<&Subject> {
        match self.reason {
            Reason::WrongSecret | Reason::MethodNotRegistered | Reason::AssertionSignature
                if self.evidence.is_some() =>
            {
                self.client_id.as_ref()
            }
            _ => None,
        }
    }

    /// Tells a revoked credential from a wrong one: `revoked` holds revoked
    /// credentials of the candidates' subjects ([`Decision::revocation_candidate`]).
    /// The evidence is dropped either way.
    pub fn refine(&mut self, revoked: &[(Subject, CredentialKind)]) {
        if let (Some(subject), Some(evidence)) = (self.revocation_candidate(), &self.evidence) {
            if revoked
                .iter()
                .any(|(s, kind)| s == subject && evidence.names(kind))
            {
                self.reason = Reason::RevokedCredential;
            }
        }
        self.evidence = None;
    }

    /// The operator's log line, at info: the claimed client id (when well
    /// formed), the reason, and where the request came from. `recorded`
    /// says whether the record reached the store.
    pub fn log(&self, recorded: bool) {
        tracing::info!(
            client_id = %self.client_id.as_ref().map_or_else(|| "-".to_owned(), Subject::to_string),
            reason = self.reason.as_str(),
            auth_method = self.auth_method.unwrap_or("-"),
            source = %self.source.map_or_else(|| "-".to_owned(), |s| s.to_string()),
            request_id = self.request_id.as_deref().unwrap_or("-"),
            kind = self.kind.as_str(),
            recorded,
            "client authentication refused"
        );
    }
}

/// The distinct subjects of a batch whose revoked credentials are worth
/// looking up.
pub fn revocation_candidates(batch: &[Decision]) -> Vec<Subject> {
    let mut seen = HashSet::new();
    batch
        .iter()
        .filter_map(Decision::revocation_candidate)
        .filter(|s| seen.insert(*s))
        .cloned()
        .collect()
}

/// A decision record as stored and read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    /// The store's id (cursor order among records of the same second).
    pub id: i64,
    /// When (Unix seconds).
    pub at: i64,
    /// `authentication`.
    pub kind: String,
    /// The claimed client id, when it was well formed.
    pub client_id: Option<String>,
    /// The org of that client id.
    pub org_id: Option<String>,
    /// Why (a [`Reason`] name).
    pub reason: String,
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub auth_method: Option<String>,
    /// The caller's address.
    pub source: Option<String>,
    /// The request id of the access log line.
    pub request_id: Option<String>,
}

/// Where the token endpoint hands its refusals. Never waits: a refusal is
/// answered at once, and the record follows.
pub trait DecisionSink: Send + Sync {
    /// Takes a refusal to record and log.
    fn refused(&self, decision: Decision);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicJwk;
    use crate::principal::hash_secret;

    fn decision(reason: Reason, client: &str, evidence: Option<Evidence>) -> Decision {
        Decision {
            at: 0,
            kind: DecisionKind::Authentication,
            client_id: Subject::parse(client).ok(),
            reason,
            auth_method: None,
            source: None,
            request_id: None,
            evidence,
        }
    }

    fn key(kid_source: &str) -> PublicJwk {
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": kid_source});
        PublicJwk::parse(&jwk).unwrap()
    }

    #[test]
    fn a_revoked_secret_or_key_is_told_from_a_wrong_one() {
        let acme = Subject::parse("org/acme").unwrap();
        let old = key("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        let revoked = vec![
            (
                acme.clone(),
                CredentialKind::Secret {
                    hash: hash_secret("old"),
                },
            ),
            (acme.clone(), CredentialKind::PublicKeys(vec![old.clone()])),
        ];
        let secret = |s: &str| Some(Evidence::Secret(hash_secret(s)));
        let kid = |k: &str| Some(Evidence::Kid(k.to_owned()));
        for (mut d, want) in [
            (
                decision(Reason::WrongSecret, "org/acme", secret("old")),
                Reason::RevokedCredential,
            ),
            (
                decision(Reason::MethodNotRegistered, "org/acme", secret("old")),
                Reason::RevokedCredential,
            ),
            (
                decision(Reason::AssertionSignature, "org/acme", kid(&old.kid)),
                Reason::RevokedCredential,
            ),
            (
                decision(Reason::WrongSecret, "org/acme", secret("new")),
                Reason::WrongSecret,
            ),
            // Another client's revoked secret is not this one's.
            (
                decision(Reason::WrongSecret, "org/beta", secret("old")),
                Reason::WrongSecret,
            ),
            // A secret does not name a key, nor a kid a secret.
            (
                decision(Reason::AssertionSignature, "org/acme", kid("other")),
                Reason::AssertionSignature,
            ),
            // Nobody is refined who is not a candidate.
            (
                decision(Reason::UnknownClient, "org/acme", secret("old")),
                Reason::UnknownClient,
            ),
            (
                decision(Reason::AssertionExpiry, "org/acme", kid(&old.kid)),
                Reason::AssertionExpiry,
            ),
        ] {
            d.refine(&revoked);
            assert_eq!(d.reason, want, "{d:?}");
            assert_eq!(d.evidence, None, "the evidence goes once used");
        }
    }

    #[test]
    fn candidates_are_distinct_known_clients_with_evidence() {
        let batch = [
            decision(
                Reason::WrongSecret,
                "org/acme",
                Some(Evidence::Secret([1; 32])),
            ),
            decision(
                Reason::WrongSecret,
                "org/acme",
                Some(Evidence::Secret([2; 32])),
            ),
            decision(Reason::WrongSecret, "org/beta", None),
            decision(
                Reason::UnknownClient,
                "org/gamma",
                Some(Evidence::Secret([1; 32])),
            ),
            decision(
                Reason::AssertionSignature,
                "org/delta",
                Some(Evidence::Kid("k".into())),
            ),
        ];
        let names: Vec<String> = revocation_candidates(&batch)
            .iter()
            .map(Subject::to_string)
            .collect();
        assert_eq!(names, ["org/acme", "org/delta"]);
    }

    #[test]
    fn evidence_of_a_secret_is_hidden() {
        let e = Evidence::Secret(hash_secret("s"));
        assert_eq!(format!("{e:?}"), "Secret(<hidden>)");
        let names: HashSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
