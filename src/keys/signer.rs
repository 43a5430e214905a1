//! Key generation and JWS signing on `ring`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaKeyPair,
    RsaPublicKeyComponents,
};

use super::Alg;
use super::jwk::{Curve, PublicJwk, PublicKey};
use super::kek::PrivateDer;

/// Failure to generate or load a signing key. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The system random source or the key generator failed.
    #[error("cannot generate a {0} signing key")]
    Generate(Alg),
    /// A decrypted private key is not a valid PKCS#8 document for its algorithm.
    #[error("signing key {kid}: the stored private key is not a valid {alg} key")]
    Invalid {
        /// The key.
        kid: String,
        /// Its algorithm.
        alg: Alg,
    },
    /// The private key does not belong to the public key published under this kid.
    #[error("signing key {kid}: the private key does not match the published public key")]
    Mismatch {
        /// The key.
        kid: String,
    },
}

/// A freshly generated key: public JWK plus private PKCS#8 DER (to be wrapped at once).
#[derive(Debug)]
pub struct GeneratedKey {
    /// Algorithm.
    pub alg: Alg,
    /// The public JWK; its `kid` is the thumbprint.
    pub public: PublicJwk,
    /// PKCS#8 DER of the private key.
    pub private: PrivateDer,
}

enum KeyPairKind {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// Signs JWTs with one key. `Debug` shows only the kid and alg.
pub struct Signer {
    kid: String,
    alg: Alg,
    header_b64: String,
    pair: KeyPairKind,
    rng: SystemRandom,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn public_of(pair: &KeyPairKind) -> PublicKey {
    match pair {
        KeyPairKind::Ec(kp) => {
            let point = kp.public_key().as_ref();
            PublicKey::Ec {
                crv: Curve::P256,
                x: point[1..33].to_vec(),
                y: point[33..65].to_vec(),
            }
        }
        KeyPairKind::Rsa(kp) => {
            let c = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
            PublicKey::Rsa { n: c.n, e: c.e }
        }
    }
}

fn load_pair(alg: Alg, der: &[u8], rng: &SystemRandom) -> Option<KeyPairKind> {
    match alg {
        Alg::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, rng)
            .ok()
            .map(KeyPairKind::Ec),
        Alg::RS256 => RsaKeyPair::from_pkcs8(der).ok().map(KeyPairKind::Rsa),
    }
}

/// Generates a new key: ES256 on P-256 with `ring`, RS256 with 2048 bits.
///
/// `ring` cannot generate RSA keys, so RSA generation uses the `rsa` crate;
/// the result is loaded and used for signing by `ring` like any other key.
pub fn generate(alg: Alg) -> Result<GeneratedKey, SignerError> {
    let rng = SystemRandom::new();
    let der = match alg {
        Alg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| SignerError::Generate(alg))?
            .as_ref()
            .to_vec(),
        Alg::RS256 => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(|_| SignerError::Generate(alg))?;
            key.to_pkcs8_der()
                .map_err(|_| SignerError::Generate(alg))?
                .as_bytes()
                .to_vec()
        }
    };
    let private = PrivateDer(der);
    let pair = load_pair(alg, &private.0, &rng).ok_or(SignerError::Generate(alg))?;
    Ok(GeneratedKey {
        alg,
        public: PublicJwk::new(public_of(&pair), alg.as_str()),
        private,
    })
}

impl Signer {
    /// Loads a signer from decrypted PKCS#8 DER and checks it matches `kid`.
    pub fn load(kid: &str, alg: Alg, der: &PrivateDer) -> Result<Self, SignerError> {
        let rng = SystemRandom::new();
        let pair = load_pair(alg, &der.0, &rng).ok_or_else(|| SignerError::Invalid {
            kid: kid.to_owned(),
            alg,
        })?;
        if public_of(&pair).thumbprint() != kid {
            return Err(SignerError::Mismatch {
                kid: kid.to_owned(),
            });
        }
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#);
        Ok(Signer {
            kid: kid.to_owned(),
            alg,
            header_b64: B64.encode(header),
            pair,
            rng,
        })
    }

    /// The key id placed in every header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Produces a compact JWS over `claims` (already serialized JSON).
    pub fn sign(&self, claims: &[u8]) -> String {
        let mut out = String::with_capacity(self.header_b64.len() + claims.len() * 4 / 3 + 400);
        out.push_str(&self.header_b64);
        out.push('.');
        B64.encode_string(claims, &mut out);
        let sig = match &self.pair {
            KeyPairKind::Ec(kp) => kp
                .sign(&self.rng, out.as_bytes())
                .expect("ECDSA signing with a valid key and system randomness")
                .as_ref()
                .to_vec(),
            KeyPairKind::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    out.as_bytes(),
                    &mut sig,
                )
                .expect("RSA signing with a valid key and a right-sized buffer");
                sig
            }
        };
        out.push('.');
        B64.encode_string(sig, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(alg: Alg) {
        let g = generate(alg).unwrap();
        let signer = Signer::load(&g.public.kid, alg, &g.private).unwrap();
        let jws = signer.sign(br#"{"sub":"x"}"#);
        let (signed, sig) = jws.rsplit_once('.').unwrap();
        let sig = B64.decode(sig).unwrap();
        assert!(g.public.key.verify(alg.as_str(), signed.as_bytes(), &sig));
        assert!(!g.public.key.verify(alg.as_str(), b"other", &sig));
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(jws.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["kid"], g.public.kid.as_str());
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["alg"], alg.as_str());
    }

    #[test]
    fn es256_signs_and_verifies() {
        round_trip(Alg::ES256);
    }

    #[test]
    fn rs256_signs_and_verifies() {
        round_trip(Alg::RS256);
    }

    #[test]
    fn a_private_key_under_a_foreign_kid_is_refused() {
        let a = generate(Alg::ES256).unwrap();
        let b = generate(Alg::ES256).unwrap();
        assert!(matches!(
            Signer::load(&b.public.kid, Alg::ES256, &a.private),
            Err(SignerError::Mismatch { .. })
        ));
        assert!(Signer::load(&a.public.kid, Alg::RS256, &a.private).is_err());
        assert!(
            !format!(
                "{:?}",
                Signer::load(&a.public.kid, Alg::ES256, &a.private).unwrap()
            )
            .contains("pair")
        );
    }
}
