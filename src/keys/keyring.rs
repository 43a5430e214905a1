//! The published key set: JWKS and discovery bodies and the current signer,
//! built once from the store and swapped atomically, so that serving them
//! never touches the database.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;

use super::kek::KekError;
use super::signer::SignerError;
use super::{Alg, KekSet, KeyState, Signer, StoredKey};

/// Why a key set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A key did not decrypt under the KEK.
    #[error(transparent)]
    Kek(#[from] KekError),
    /// A decrypted key is unusable.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// No key of the configured algorithm signs.
    #[error("no current {0} signing key in the store")]
    NoCurrentKey(Alg),
}

/// The URLs a deployment publishes, derived once from the issuer URL.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The issuer, exactly as configured.
    pub issuer: String,
    /// `<issuer>/.well-known/jwks.json`.
    pub jwks_uri: String,
    /// `<issuer>/oauth2/token`.
    pub token_endpoint: String,
}

impl Endpoints {
    /// Derives the endpoints from an issuer URL without a trailing slash.
    pub fn new(issuer: &str) -> Self {
        Endpoints {
            issuer: issuer.to_owned(),
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            token_endpoint: format!("{issuer}/oauth2/token"),
        }
    }
}

/// A response body with its strong `ETag`.
#[derive(Debug, Clone)]
pub struct Document {
    /// The JSON body.
    pub body: bytes::Bytes,
    /// A strong entity tag: quoted base64url of a SHA-256 prefix of the body.
    pub etag: String,
}

impl Document {
    fn new(value: &serde_json::Value) -> Self {
        let body = bytes::Bytes::from(value.to_string());
        let digest = ring::digest::digest(&ring::digest::SHA256, &body);
        Document {
            etag: format!("\"{}\"", B64.encode(&digest.as_ref()[..16])),
            body,
        }
    }
}

/// One consistent view: what is published and what signs.
#[derive(Debug)]
pub struct Published {
    /// The JWKS document.
    pub jwks: Document,
    /// The discovery document.
    pub discovery: Document,
    /// The signer of the configured algorithm.
    pub signer: Arc<Signer>,
    /// Kids in the JWKS.
    pub kids: Vec<String>,
    /// What the view was built from: (kid, state) of every key. Equal
    /// fingerprints mean an identical view.
    pub fingerprint: Vec<(String, KeyState)>,
    /// Every stored key as the view was built from it, without private material
    /// (for metrics and the admin API).
    pub keys: Vec<StoredKey>,
}

impl Published {
    /// Builds the published view from the stored keys. Every published key is
    /// decrypted, so a wrong KEK fails here, naming the key. The signer is the
    /// current key of `alg`, or while the algorithm is being switched, the current
    /// key of the other one.
    pub fn build(
        keys: &[StoredKey],
        keks: &KekSet,
        alg: Alg,
        endpoints: &Endpoints,
    ) -> Result<Self, KeyRingError> {
        let mut signer: Option<(bool, Arc<Signer>)> = None;
        for key in keys.iter().filter(|k| k.state.is_published()) {
            let Some(wrapped) = &key.private_key else {
                continue;
            };
            let der = keks.unwrap(&key.kid, key.alg, wrapped)?;
            let loaded = Signer::load(&key.kid, key.alg, &der)?;
            let preferred = key.alg == alg;
            if key.state == KeyState::Current && signer.as_ref().is_none_or(|(p, _)| !p) {
                signer = Some((preferred, Arc::new(loaded)));
            }
        }
        let signer = signer
            .map(|(_, s)| s)
            .ok_or(KeyRingError::NoCurrentKey(alg))?;
        // The order follows creation, not state, so that the body (and its ETag)
        // changes exactly when the set of keys changes.
        let mut published: Vec<&StoredKey> =
            keys.iter().filter(|k| k.state.is_published()).collect();
        published.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        let jwks = json!({
            "keys": published.iter().map(|k| k.public_jwk.to_json()).collect::<Vec<_>>()
        });
        let algs: BTreeSet<&str> = published.iter().map(|k| k.alg.as_str()).collect();
        let discovery = json!({
            "issuer": endpoints.issuer,
            "jwks_uri": endpoints.jwks_uri,
            "token_endpoint": endpoints.token_endpoint,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported":
                ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"],
            "claims_supported":
                ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "org_id", "agent_id"],
        });
        Ok(Published {
            jwks: Document::new(&jwks),
            discovery: Document::new(&discovery),
            signer,
            kids: published.iter().map(|k| k.kid.clone()).collect(),
            fingerprint: fingerprint(keys),
            keys: keys
                .iter()
                .map(|k| StoredKey {
                    private_key: None,
                    ..k.clone()
                })
                .collect(),
        })
    }
}

/// (kid, state) of every key: what a published view depends on.
pub fn fingerprint(keys: &[StoredKey]) -> Vec<(String, KeyState)> {
    let mut f: Vec<_> = keys.iter().map(|k| (k.kid.clone(), k.state)).collect();
    f.sort();
    f
}

/// The live key set, swapped as a whole. Readers never wait on I/O.
#[derive(Debug)]
pub struct KeyRing {
    current: RwLock<Arc<Published>>,
}

impl KeyRing {
    /// Starts with a built view.
    pub fn new(published: Published) -> Self {
        KeyRing {
            current: RwLock::new(Arc::new(published)),
        }
    }

    /// The view in force now.
    pub fn get(&self) -> Arc<Published> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the view.
    pub fn replace(&self, published: Published) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(published);
    }
}
