//! Orgs, agents and their credentials, as the token endpoint sees them.

pub mod session_claims;

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use self::session_claims::SessionClaims;
use crate::ids::{Audience, Subject};
use crate::keys::PublicJwk;

/// The hard cap on any token lifetime, in seconds.
pub const MAX_TOKEN_TTL: u32 = 3600;

/// The per-org lifetime maximum given to a new org unless the operator says otherwise.
pub const DEFAULT_ORG_MAX_TTL: u32 = 900;

/// How many client secrets one org or agent may have active at once: two, so
/// that a secret can be replaced without downtime.
pub const MAX_ACTIVE_SECRETS: usize = 2;

/// The prefix of every client secret, so that secret scanners and humans recognise one.
pub const SECRET_PREFIX: &str = "nomos_cs_";

/// What an org allows its tokens to be.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgPolicy {
    /// Audiences tokens may be minted for; the first is the default.
    pub audiences: Vec<Audience>,
    /// Longest lifetime of a token of this org, in seconds (at most [`MAX_TOKEN_TTL`]).
    pub max_ttl: u32,
}

/// The most audiences an org may allow: AWS accepts at most 100 client IDs
/// (audiences) on one IAM OIDC provider, and an org's tokens are only useful
/// for audiences the provider lists.
pub const MAX_AUDIENCES: usize = 100;

/// Why an org policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No audience, or more than [`MAX_AUDIENCES`].
    #[error("an org allows 1-{MAX_AUDIENCES} audiences, not {0}")]
    AudienceCount(usize),
    /// The same audience twice.
    #[error("audience {0} is given twice")]
    DuplicateAudience(Audience),
    /// A longest token lifetime out of range.
    #[error("the longest token lifetime must be 1-{MAX_TOKEN_TTL} seconds, not {0}")]
    MaxTtl(u32),
}

impl PolicyError {
    /// Whether the audiences (`false`) or the longest lifetime (`true`) is
    /// wrong, so that each surface names its own flag or field.
    pub fn is_max_ttl(&self) -> bool {
        matches!(self, PolicyError::MaxTtl(_))
    }
}

impl OrgPolicy {
    /// A policy of 1-[`MAX_AUDIENCES`] distinct audiences (the first is the
    /// default) and a longest token lifetime of 1-[`MAX_TOKEN_TTL`] seconds.
    /// The one check of a policy: `org create`, `org update` and the admin API
    /// all call it (an update through [`PolicyChange::new`]).
    pub fn new(audiences: Vec<Audience>, max_ttl: u32) -> Result<Self, PolicyError> {
        check_audiences(&audiences)?;
        check_max_ttl(max_ttl)?;
        Ok(OrgPolicy { audiences, max_ttl })
    }
}

// The two checks of a policy are independent of each other: any valid audience
// list with any valid lifetime is a valid policy, so a change that replaces
// one of them can be checked alone and applied to whatever the org holds.
fn check_audiences(audiences: &[Audience]) -> Result<(), PolicyError> {
    if !(1..=MAX_AUDIENCES).contains(&audiences.len()) {
        return Err(PolicyError::AudienceCount(audiences.len()));
    }
    let mut seen = std::collections::HashSet::with_capacity(audiences.len());
    if let Some(twice) = audiences.iter().find(|a| !seen.insert(*a)) {
        return Err(PolicyError::DuplicateAudience(twice.clone()));
    }
    Ok(())
}

fn check_max_ttl(max_ttl: u32) -> Result<(), PolicyError> {
    if !(1..=MAX_TOKEN_TTL).contains(&max_ttl) {
        return Err(PolicyError::MaxTtl(max_ttl));
    }
    Ok(())
}

/// A checked change to an org's policy: the parts to replace. The store
/// applies it in one statement, so that two changes of different parts made
/// at once both take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChange {
    audiences: Option<Vec<Audience>>,
    max_ttl: Option<u32>,
}

impl PolicyChange {
    /// A change of the audiences, the longest lifetime or both, each checked
    /// as [`OrgPolicy::new`] checks it. `None` when it changes nothing.
    pub fn new(
        audiences: Option<Vec<Audience>>,
        max_ttl: Option<u32>,
    ) -> Result<Option<Self>, PolicyError> {
        if let Some(a) = &audiences {
            check_audiences(a)?;
        }
        if let Some(t) = max_ttl {
            check_max_ttl(t)?;
        }
        Ok((audiences.is_some() || max_ttl.is_some())
            .then_some(PolicyChange { audiences, max_ttl }))
    }

    /// The new audiences, if they change.
    pub fn audiences(&self) -> Option<&[Audience]> {
        self.audiences.as_deref()
    }

    /// The new longest lifetime, if it changes.
    pub fn max_ttl(&self) -> Option<u32> {
        self.max_ttl
    }
}

impl Default for OrgPolicy {
    fn default() -> Self {
        OrgPolicy {
            audiences: vec![Audience::sts()],
            max_ttl: DEFAULT_ORG_MAX_TTL,
        }
    }
}

/// How a credential proves possession.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKind {
    /// A client secret, known only by its SHA-256.
    Secret {
        /// SHA-256 of the whole secret string.
        hash: [u8; 32],
    },
    /// Public keys for `private_key_jwt` client assertions.
    PublicKeys(Vec<PublicJwk>),
}

/// One active credential of an org or agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Opaque credential id (not secret).
    pub id: String,
    /// What it is.
    pub kind: CredentialKind,
}

impl Credential {
    /// A credential of the given kind with a fresh id.
    pub fn new(kind: CredentialKind) -> Self {
        Credential {
            id: random_id("cred_", 12),
            kind,
        }
    }

    /// A fresh client secret and the credential that stores only its hash.
    pub fn new_secret() -> (ClientSecret, Self) {
        let secret = ClientSecret::generate();
        let hash = secret.hash();
        (secret, Self::new(CredentialKind::Secret { hash }))
    }

    /// The credential an org, agent or `credential add` gets: these public
    /// keys, or else a fresh client secret (returned to be shown once).
    pub fn keys_or_secret(public_keys: Option<Vec<PublicJwk>>) -> (Self, Option<ClientSecret>) {
        match public_keys {
            Some(keys) => (Self::new(CredentialKind::PublicKeys(keys)), None),
            None => {
                let (secret, credential) = Self::new_secret();
                (credential, Some(secret))
            }
        }
    }
}

/// Why another secret is refused: [`MAX_ACTIVE_SECRETS`] are active.
pub fn secret_limit_reached(subject: &Subject) -> String {
    format!(
        "{subject} already has {MAX_ACTIVE_SECRETS} active secrets: revoke one first (see `credential list`)"
    )
}

/// Everything the token endpoint needs about a client: its policy, the hashes
/// of its active secrets, its active public keys and its session claims.
///
/// Kept compact, because the principal cache holds one per client: credential
/// ids, which only the admin API shows, are not kept, and the common case of
/// no session claims costs one pointer.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The subject, also the OAuth `client_id`.
    pub subject: Subject,
    /// The policy of its org (the principal cache shares one copy per org).
    pub policy: Arc<OrgPolicy>,
    secrets: Box<[[u8; 32]]>,
    keys: Box<[PublicJwk]>,
    session_claims: Option<Box<SessionClaims>>,
}

/// The session claims of a principal that has none set.
static NO_SESSION_CLAIMS: SessionClaims = SessionClaims::NONE;

impl Principal {
    /// A principal with these active credentials (in any order) and session
    /// claims (the agent's own setting, else its org's).
    pub fn new<'a>(
        subject: Subject,
        policy: impl Into<Arc<OrgPolicy>>,
        credentials: impl IntoIterator<Item = &'a CredentialKind>,
        session_claims: SessionClaims,
    ) -> Self {
        let (mut secrets, mut keys) = (Vec::new(), Vec::new());
        for kind in credentials {
            match kind {
                CredentialKind::Secret { hash } => secrets.push(*hash),
                CredentialKind::PublicKeys(k) => keys.extend(k.iter().cloned()),
            }
        }
        Principal {
            subject,
            policy: policy.into(),
            secrets: secrets.into_boxed_slice(),
            keys: keys.into_boxed_slice(),
            session_claims: (session_claims != SessionClaims::NONE)
                .then(|| Box::new(session_claims)),
        }
    }

    /// Whether `secret` matches one of the active secrets. Compares in constant
    /// time against [`MAX_ACTIVE_SECRETS`] slots whatever the number of secrets,
    /// so timing reveals neither which matched, nor how many exist, nor whether
    /// the principal exists (an unknown one is checked as [`Principal::decoy`]).
    pub fn secret_matches(&self, secret: &str) -> bool {
        let presented = hash_secret(secret);
        let mut matched = subtle::Choice::from(0);
        for slot in 0..MAX_ACTIVE_SECRETS.max(self.secrets.len()) {
            let (hash, real) = match self.secrets.get(slot) {
                Some(h) => (h, 1),
                None => (&[0u8; 32], 0),
            };
            matched |= hash.ct_eq(&presented) & subtle::Choice::from(real);
        }
        matched.into()
    }

    /// A principal with no credentials, standing in for an unknown subject so
    /// that checking a credential against it does the same work.
    pub fn decoy(subject: Subject) -> Self {
        Principal::new(subject, OrgPolicy::default(), [], SessionClaims::NONE)
    }

    /// The SHA-256 of every active secret, oldest first.
    pub fn secret_hashes(&self) -> &[[u8; 32]] {
        &self.secrets
    }

    /// All registered public keys, oldest credential first.
    pub fn public_keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    /// Session claims for AWS: the agent's own setting, else its org's.
    pub fn session_claims(&self) -> &SessionClaims {
        self.session_claims.as_deref().unwrap_or(&NO_SESSION_CLAIMS)
    }
}

/// A client secret in clear, as shown once at creation. `Debug` and `Display` hide it.
pub struct ClientSecret(String);

impl ClientSecret {
    /// Generates a secret: the prefix plus 256 random bits, base64url.
    pub fn generate() -> Self {
        Self::with_prefix(SECRET_PREFIX)
    }

    /// A secret of 256 random bits, base64url, after `prefix`.
    pub fn with_prefix(prefix: &str) -> Self {
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .expect("system randomness is available");
        ClientSecret(format!("{prefix}{}", B64.encode(raw)))
    }

    /// The secret itself, for printing it once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash stored in place of the secret.
    pub fn hash(&self) -> [u8; 32] {
        hash_secret(&self.0)
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<hidden>)")
    }
}

/// The secret itself, as in the one response that shows it (`Debug` still hides it).
impl serde::Serialize for ClientSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A secret as the admin API shows it once.
impl<'de> serde::Deserialize<'de> for ClientSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d).map(ClientSecret)
    }
}

/// SHA-256 of a secret. Secrets carry 256 random bits, so a fast hash is enough.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// A random opaque id with a prefix, e.g. for credentials and token `jti`s.
pub fn random_id(prefix: &str, bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut raw)
        .expect("system randomness is available");
    format!("{prefix}{}", B64.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Subject;

    #[test]
    fn an_org_policy_is_checked_once_here() {
        let aud = |s: &str| Audience::parse(s).unwrap();
        let p = OrgPolicy::new(vec![aud("a"), aud("b")], MAX_TOKEN_TTL).unwrap();
        assert_eq!(p.audiences, [aud("a"), aud("b")]);
        let many: Vec<Audience> = (0..=MAX_AUDIENCES).map(|i| aud(&format!("a{i}"))).collect();
        assert!(OrgPolicy::new(many[..MAX_AUDIENCES].to_vec(), 900).is_ok());
        assert_eq!(
            OrgPolicy::new(many, 900),
            Err(PolicyError::AudienceCount(MAX_AUDIENCES + 1))
        );
        assert_eq!(
            OrgPolicy::new(Vec::new(), 900),
            Err(PolicyError::AudienceCount(0))
        );
        assert_eq!(
            OrgPolicy::new(vec![aud("a"), aud("b"), aud("a")], 900),
            Err(PolicyError::DuplicateAudience(aud("a")))
        );
        for ttl in [0, MAX_TOKEN_TTL + 1] {
            assert_eq!(
                OrgPolicy::new(vec![aud("a")], ttl),
                Err(PolicyError::MaxTtl(ttl))
            );
        }
        let d = OrgPolicy::default();
        assert_eq!(OrgPolicy::new(d.audiences.clone(), d.max_ttl), Ok(d));
    }

    #[test]
    fn a_policy_change_is_checked_as_a_policy_is() {
        let aud = |s: &str| Audience::parse(s).unwrap();
        assert_eq!(PolicyChange::new(None, None), Ok(None));
        let c = PolicyChange::new(Some(vec![aud("a")]), None)
            .unwrap()
            .unwrap();
        assert_eq!((c.audiences(), c.max_ttl()), (Some(&[aud("a")][..]), None));
        let c = PolicyChange::new(None, Some(60)).unwrap().unwrap();
        assert_eq!((c.audiences(), c.max_ttl()), (None, Some(60)));
        assert_eq!(
            PolicyChange::new(Some(Vec::new()), Some(60)),
            Err(PolicyError::AudienceCount(0))
        );
        assert_eq!(
            PolicyChange::new(Some(vec![aud("a"), aud("a")]), None),
            Err(PolicyError::DuplicateAudience(aud("a")))
        );
        let e = PolicyChange::new(None, Some(MAX_TOKEN_TTL + 1)).unwrap_err();
        assert!(e.is_max_ttl() && !PolicyError::AudienceCount(0).is_max_ttl());
    }

    #[test]
    fn a_new_credential_is_the_keys_given_or_a_secret() {
        let (c, secret) = Credential::keys_or_secret(None);
        let secret = secret.expect("a secret");
        assert_eq!(
            c.kind,
            CredentialKind::Secret {
                hash: secret.hash()
            }
        );
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let keys = vec![PublicJwk::parse(&jwk).unwrap()];
        let (c, secret) = Credential::keys_or_secret(Some(keys.clone()));
        assert!(secret.is_none());
        assert_eq!(c.kind, CredentialKind::PublicKeys(keys));
        assert!(c.id.starts_with("cred_"));
    }

    #[test]
    fn secrets_are_prefixed_long_and_hidden() {
        let s = ClientSecret::generate();
        assert!(s.expose().starts_with(SECRET_PREFIX));
        assert_eq!(s.expose().len(), SECRET_PREFIX.len() + 43);
        assert!(!format!("{s:?}").contains(&s.expose()[SECRET_PREFIX.len()..]));
        assert_ne!(s.expose(), ClientSecret::generate().expose());
    }

    #[test]
    fn any_of_two_active_secrets_matches() {
        let (a, b) = (ClientSecret::generate(), ClientSecret::generate());
        let kinds = [&a, &b].map(|s| CredentialKind::Secret { hash: s.hash() });
        let p = Principal::new(
            Subject::parse("org/acme").unwrap(),
            OrgPolicy::default(),
            &kinds,
            SessionClaims::default(),
        );
        assert!(p.secret_matches(a.expose()));
        assert!(p.secret_matches(b.expose()));
        assert!(!p.secret_matches(ClientSecret::generate().expose()));
        assert!(!p.secret_matches(""));
    }

    #[test]
    fn a_principal_keeps_only_what_authentication_needs() {
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let key = PublicJwk::parse(&jwk).unwrap();
        let secret = ClientSecret::generate();
        let kinds = [
            CredentialKind::PublicKeys(vec![key.clone(), key.clone()]),
            CredentialKind::Secret {
                hash: secret.hash(),
            },
        ];
        let subject = Subject::parse("org/acme/agent/ci").unwrap();
        let plain = Principal::new(
            subject.clone(),
            OrgPolicy::default(),
            &kinds,
            SessionClaims::default(),
        );
        assert_eq!(plain.public_keys(), [key.clone(), key.clone()]);
        assert_eq!(plain.secret_hashes(), [secret.hash()]);
        assert!(plain.secret_matches(secret.expose()));
        assert_eq!(plain.session_claims(), &SessionClaims::default());
        let claims = SessionClaims {
            tags: true,
            source_identity: true,
            ..SessionClaims::default()
        };
        let tagged = Principal::new(subject, OrgPolicy::default(), &kinds, claims.clone());
        assert_eq!(tagged.session_claims(), &claims);
    }
}
