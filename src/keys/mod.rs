//! Signing keys: the key model, AEAD wrapping under the KEK, JWKs and the signer.
//!
//! Life cycle of a key (PRODUCT.md): `next` (published, not signing) →
//! `current` (signs; one per algorithm) → `previous` (published until every
//! token it signed has expired) → `retired` (private material destroyed).
//! `revoked` leaves the JWKS at once.

pub mod jwk;
pub mod kek;
pub mod keyring;
pub mod pem;
pub mod rotation;
pub mod signer;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use jwk::PublicJwk;
pub use kek::{Kek, KekSet, WrappedKey};
pub use keyring::{KeyRing, Published};
pub use signer::{GeneratedKey, Signer};

/// Algorithms nomos-issuer signs tokens with. AWS accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// ECDSA on P-256 with SHA-256: the default (AWS accepts ECDSA since 2024-11).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 on a 2048-bit key.
    RS256,
}

impl Alg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::RS256 => "RS256",
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ES256" => Ok(Alg::ES256),
            "RS256" => Ok(Alg::RS256),
            other => Err(format!(
                "unsupported signing algorithm {other:?}: use ES256 or RS256 (AWS accepts no EdDSA or PS*)"
            )),
        }
    }
}

/// Where a signing key is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published in the JWKS, not yet signing.
    Next,
    /// Signs new tokens; at most one per algorithm.
    Current,
    /// No longer signs; published until its tokens have expired.
    Previous,
    /// Out of the JWKS; private material destroyed.
    Retired,
    /// Withdrawn in an emergency; out of the JWKS at once.
    Revoked,
}

impl KeyState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Previous => "previous",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
        }
    }

    /// Whether keys in this state belong in the published JWKS.
    pub fn is_published(self) -> bool {
        matches!(
            self,
            KeyState::Next | KeyState::Current | KeyState::Previous
        )
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "next" => KeyState::Next,
            "current" => KeyState::Current,
            "previous" => KeyState::Previous,
            "retired" => KeyState::Retired,
            "revoked" => KeyState::Revoked,
            other => return Err(format!("unknown key state {other:?}")),
        })
    }
}

/// A signing key as the store holds it: public half in clear, private half wrapped.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// Signing algorithm.
    pub alg: Alg,
    /// Life-cycle state.
    pub state: KeyState,
    /// The public JWK as published.
    pub public_jwk: PublicJwk,
    /// The AEAD-wrapped private key; `None` once destroyed.
    pub private_key: Option<WrappedKey>,
    /// Unix seconds: when the key was created (and first published).
    pub created_at: i64,
    /// Unix seconds: when the key started signing.
    pub activated_at: Option<i64>,
    /// Unix seconds: when the key stopped signing.
    pub retired_at: Option<i64>,
}
