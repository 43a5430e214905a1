//! How a workload proves who it is: a client secret, or a private key that
//! signs client assertions.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::{Value, json};

use crate::principal::random_id;

/// How the workload proves who it is.
pub enum ClientCredential {
    /// A client secret (read from a file).
    Secret(String),
    /// A private JWK (EC P-256 or RSA) for `private_key_jwt`.
    PrivateKey(Box<AssertionSigner>),
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Secret(_) => f.write_str("Secret(<hidden>)"),
            ClientCredential::PrivateKey(s) => write!(f, "PrivateKey({})", s.alg),
        }
    }
}

/// Signs client assertions with a private JWK.
pub struct AssertionSigner {
    alg: &'static str,
    kid: Option<String>,
    pair: SignerPair,
}

enum SignerPair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

fn member(jwk: &Value, name: &str) -> anyhow::Result<Vec<u8>> {
    let text = jwk[name]
        .as_str()
        .with_context(|| format!("the private JWK has no {name:?}"))?;
    B64.decode(text)
        .with_context(|| format!("member {name:?} of the private JWK is not base64url"))
}

impl AssertionSigner {
    /// Reads a private JWK: EC P-256 (ES256) or RSA (RS256).
    pub fn from_jwk(text: &str) -> anyhow::Result<Self> {
        let jwk: Value =
            serde_json::from_str(text).context("the private key file is not a JSON JWK")?;
        let kid = jwk["kid"].as_str().map(str::to_owned);
        let rng = SystemRandom::new();
        match jwk["kty"].as_str() {
            Some("EC") => {
                if jwk["crv"] != "P-256" {
                    bail!("only P-256 EC keys are supported");
                }
                let point = [vec![4u8], member(&jwk, "x")?, member(&jwk, "y")?].concat();
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &member(&jwk, "d")?,
                    &point,
                    &rng,
                )
                .map_err(|e| anyhow::anyhow!("invalid EC private key: {e}"))?;
                Ok(AssertionSigner {
                    alg: "ES256",
                    kid,
                    pair: SignerPair::Ec(pair),
                })
            }
            Some("RSA") => {
                let components = ring::rsa::KeyPairComponents {
                    public_key: signature::RsaPublicKeyComponents {
                        n: member(&jwk, "n")?,
                        e: member(&jwk, "e")?,
                    },
                    d: member(&jwk, "d")?,
                    p: member(&jwk, "p")?,
                    q: member(&jwk, "q")?,
                    dP: member(&jwk, "dp")?,
                    dQ: member(&jwk, "dq")?,
                    qInv: member(&jwk, "qi")?,
                };
                let pair = RsaKeyPair::from_components(&components)
                    .map_err(|e| anyhow::anyhow!("invalid RSA private key: {e}"))?;
                Ok(AssertionSigner {
                    alg: "RS256",
                    kid,
                    pair: SignerPair::Rsa(pair),
                })
            }
            _ => bail!("the private key must be an EC (P-256) or RSA JWK"),
        }
    }

    /// A fresh assertion for `client_id`, addressed to `token_endpoint`, valid 60 s.
    pub fn assertion(&self, client_id: &str, token_endpoint: &str, now: i64) -> String {
        let mut header = json!({"alg": self.alg, "typ": "JWT"});
        if let Some(kid) = &self.kid {
            header["kid"] = kid.clone().into();
        }
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": token_endpoint,
            "iat": now, "exp": now + 60, "jti": random_id("", 16),
        });
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.pair {
            SignerPair::Ec(k) => k
                .sign(&rng, input.as_bytes())
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            SignerPair::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .expect("RSA signing");
                sig
            }
        };
        format!("{input}.{}", B64.encode(sig))
    }
}

impl ClientCredential {
    /// Reads a secret file or a private JWK file.
    pub fn load(
        secret_file: Option<&Path>,
        private_key_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        match (secret_file, private_key_file) {
            (Some(f), None) => {
                let s = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                let s = s.trim().to_owned();
                if s.is_empty() {
                    bail!("{} is empty", f.display());
                }
                Ok(ClientCredential::Secret(s))
            }
            (None, Some(f)) => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                Ok(ClientCredential::PrivateKey(Box::new(
                    AssertionSigner::from_jwk(&text).with_context(|| f.display().to_string())?,
                )))
            }
            _ => bail!("give exactly one of --client-secret-file and --private-key-file"),
        }
    }
}

/// What to do about a TLS failure, when its text names one worth a hint: a
/// certificate from a CA this machine does not trust (rustls `UnknownIssuer`).
pub fn tls_hint(error_text: &str) -> Option<&'static str> {
    error_text.contains("UnknownIssuer").then_some(
        "the issuer's TLS certificate is signed by a CA this machine does not trust: \
         pass --ca-file with that CA's PEM certificate (for `serve --dev-tls`: keys/dev-ca.pem)",
    )
}

/// Adds the PEM certificates of `ca_file` (a private CA) to a client's trusted roots.
pub fn trust_ca_file(
    builder: reqwest::ClientBuilder,
    ca_file: Option<&Path>,
) -> anyhow::Result<reqwest::ClientBuilder> {
    let Some(f) = ca_file else {
        return Ok(builder);
    };
    let pem = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("{}: not PEM certificates", f.display()))?;
    Ok(certs
        .into_iter()
        .fold(builder, |b, cert| b.add_root_certificate(cert)))
}
