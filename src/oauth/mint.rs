//! The claims of a token and minting itself: pure, no I/O.

use serde::Serialize;
use serde_json::Value;

use crate::principal::session_claims::{SOURCE_IDENTITY_CLAIM, TAGS_CLAIM};

use crate::audit::AuditRecord;
use crate::ids::{Audience, Subject};
use crate::keys::Signer;

/// The claims of every token (PRODUCT.md "Tokens"). Times are integer seconds.
#[derive(Debug, Serialize)]
pub struct Claims<'a> {
    /// The issuer URL, byte-for-byte the discovery `issuer`.
    pub iss: &'a str,
    /// `org/<org>` or `org/<org>/agent/<agent>`.
    pub sub: String,
    /// One audience string.
    pub aud: &'a str,
    /// Issued at.
    pub iat: i64,
    /// Not before (= `iat`).
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Unique token id: a UUIDv7 (48-bit millisecond time, then 74 random
    /// bits), so that ids sort by issue time and the audit table's primary key
    /// grows at its right edge instead of touching a random page per insert.
    pub jti: String,
    /// The org id.
    pub org_id: &'a str,
    /// The agent id, on agent tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<&'a str>,
    /// AWS session tags, when the org or agent turned them on.
    #[serde(
        rename = "https://aws.amazon.com/tags",
        skip_serializing_if = "Option::is_none"
    )]
    pub session_tags: Option<&'a Value>,
    /// AWS source identity, when turned on.
    #[serde(
        rename = "https://aws.amazon.com/source_identity",
        skip_serializing_if = "Option::is_none"
    )]
    pub source_identity: Option<&'a Value>,
}

/// What to mint.
#[derive(Debug, Clone, Copy)]
pub struct MintRequest<'a> {
    /// The subject.
    pub subject: &'a Subject,
    /// The audience (already checked against the org's list).
    pub audience: &'a Audience,
    /// Lifetime in seconds (already capped).
    pub ttl: u32,
    /// How the client authenticated, for the audit.
    pub auth_method: &'static str,
    /// Extra AWS claims (from `SessionClaims::claims`).
    pub aws_claims: &'a [(&'static str, Value)],
}

/// A minted token and its audit record.
#[derive(Debug)]
pub struct Minted {
    /// The compact JWS.
    pub token: String,
    /// Lifetime in seconds.
    pub expires_in: u32,
    /// The row to commit before the token is handed out.
    pub record: AuditRecord,
}

fn aws_claim<'a>(claims: &'a [(&'static str, Value)], name: &str) -> Option<&'a Value> {
    claims.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Signs a token for `req` at `now`.
pub fn mint(signer: &Signer, issuer: &str, req: MintRequest<'_>, now: i64) -> Minted {
    let subject = req.subject.to_string();
    let claims = Claims {
        iss: issuer,
        sub: subject.clone(),
        aud: req.audience.as_str(),
        iat: now,
        nbf: now,
        exp: now + i64::from(req.ttl),
        jti: uuid::Uuid::now_v7().to_string(),
        org_id: req.subject.org().as_str(),
        agent_id: req.subject.agent().map(|a| a.as_str()),
        session_tags: aws_claim(req.aws_claims, TAGS_CLAIM),
        source_identity: aws_claim(req.aws_claims, SOURCE_IDENTITY_CLAIM),
    };
    let body = serde_json::to_vec(&claims).expect("claims serialise");
    let token = signer.sign(&body);
    Minted {
        token,
        expires_in: req.ttl,
        record: AuditRecord {
            jti: claims.jti,
            subject,
            org_id: claims.org_id.to_owned(),
            agent_id: claims.agent_id.map(str::to_owned),
            audience: claims.aud.to_owned(),
            kid: signer.kid().to_owned(),
            iat: claims.iat,
            exp: claims.exp,
            auth_method: req.auth_method.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Alg;
    use crate::keys::signer::generate;

    #[test]
    fn token_ids_are_uuid_v7_unique_and_in_issue_order() {
        let g = generate(Alg::ES256).unwrap();
        let signer = Signer::load(&g.public.kid, Alg::ES256, &g.private).unwrap();
        let subject = Subject::parse("org/acme/agent/ci").unwrap();
        let audience = Audience::sts();
        let req = MintRequest {
            subject: &subject,
            audience: &audience,
            ttl: 300,
            auth_method: "client_secret_post",
            aws_claims: &[],
        };
        let mut ids = Vec::new();
        for i in 0..2000 {
            if i % 500 == 0 {
                // Cross a millisecond boundary now and then.
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            ids.push(
                mint(&signer, "https://issuer.example", req, 1_800_000_000)
                    .record
                    .jti,
            );
        }
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert_eq!(id, &u.hyphenated().to_string(), "canonical lower-case form");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "ids sort in the order they were issued");
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "ids are unique");
    }
}
