//! Public JWKs: the ones nomos-issuer publishes and the ones clients register
//! for `private_key_jwt`. Key ids are RFC 7638 thumbprints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value, json};

/// Why a JWK was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JWK: {0}")]
pub struct JwkError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, JwkError> {
    Err(JwkError(msg.into()))
}

/// An elliptic curve nomos-issuer understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (ES256).
    P256,
    /// NIST P-384 (ES384).
    P384,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

/// The public parameters of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An EC key: affine coordinates, big-endian, fixed length.
    Ec {
        /// The curve.
        crv: Curve,
        /// x coordinate.
        x: Vec<u8>,
        /// y coordinate.
        y: Vec<u8>,
    },
    /// An RSA key.
    Rsa {
        /// Modulus, big-endian without leading zeros.
        n: Vec<u8>,
        /// Public exponent, big-endian.
        e: Vec<u8>,
    },
    /// An Ed25519 key (accepted for client assertions only; AWS does not accept EdDSA).
    Ed25519 {
        /// The 32-byte public key.
        x: Vec<u8>,
    },
}

/// A public JWK with its `kid` and optional `alg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// Key id.
    pub kid: String,
    /// The algorithm this key is restricted to, if any.
    pub alg: Option<String>,
    /// Public parameters.
    pub key: PublicKey,
}

fn b64(v: &[u8]) -> String {
    B64.encode(v)
}

fn strip_zeros(v: &[u8]) -> Vec<u8> {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    v[first..].to_vec()
}

impl PublicKey {
    /// The RFC 7638 thumbprint: base64url SHA-256 of the required members in lexicographic order.
    pub fn thumbprint(&self) -> String {
        let canonical = match self {
            PublicKey::Ec { crv, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                crv.name(),
                b64(x),
                b64(y)
            ),
            PublicKey::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
            }
            PublicKey::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x))
            }
        };
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// Whether a JWS `alg` fits this key type.
    pub fn fits_alg(&self, alg: &str) -> bool {
        matches!(
            (self, alg),
            (
                PublicKey::Ec {
                    crv: Curve::P256,
                    ..
                },
                "ES256"
            ) | (
                PublicKey::Ec {
                    crv: Curve::P384,
                    ..
                },
                "ES384"
            ) | (
                PublicKey::Rsa { .. },
                "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
            ) | (PublicKey::Ed25519 { .. }, "EdDSA")
        )
    }

    /// Verifies a JWS signature made with `alg`. Any mismatch is simply `false`.
    pub fn verify(&self, alg: &str, message: &[u8], sig: &[u8]) -> bool {
        if !self.fits_alg(alg) {
            return false;
        }
        match self {
            PublicKey::Ec { crv, x, y } => {
                let algorithm: &dyn signature::VerificationAlgorithm = match crv {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                };
                let point = [&[4u8][..], x, y].concat();
                UnparsedPublicKey::new(algorithm, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::Rsa { n, e } => {
                let params = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            PublicKey::Ed25519 { x } => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, JwkError> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => err(format!("member {name:?} must be a string")),
        None => err(format!("member {name:?} is missing")),
    }
}

fn bytes(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, JwkError> {
    B64.decode(field(obj, name)?)
        .map_err(|_| JwkError(format!("member {name:?} is not base64url without padding")))
}

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

impl PublicJwk {
    /// Builds a published key: `kid` is the thumbprint.
    pub fn new(key: PublicKey, alg: &str) -> Self {
        PublicJwk {
            kid: key.thumbprint(),
            alg: Some(alg.to_owned()),
            key,
        }
    }

    /// Parses one public JWK strictly. A JWK carrying private members is refused,
    /// so that a private key pasted by mistake is never stored. Without a `kid`,
    /// the thumbprint becomes the `kid`.
    pub fn parse(value: &Value) -> Result<Self, JwkError> {
        let Value::Object(obj) = value else {
            return err("a JWK must be a JSON object");
        };
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return err(format!(
                "it contains the private member {m:?}: register the public key only"
            ));
        }
        if let Some(u) = obj.get("use") {
            if u != "sig" {
                return err("\"use\" must be \"sig\"");
            }
        }
        if let Some(ops) = obj.get("key_ops") {
            let ok = ops
                .as_array()
                .is_some_and(|a| a.iter().any(|o| o == "verify"));
            if !ok {
                return err("\"key_ops\" must allow \"verify\"");
            }
        }
        let key = match field(obj, "kty")? {
            "EC" => {
                let crv = match field(obj, "crv")? {
                    "P-256" => Curve::P256,
                    "P-384" => Curve::P384,
                    other => return err(format!("unsupported EC curve {other:?}")),
                };
                let (x, y) = (bytes(obj, "x")?, bytes(obj, "y")?);
                if x.len() != crv.coordinate_len() || y.len() != crv.coordinate_len() {
                    return err(format!("wrong coordinate length for {}", crv.name()));
                }
                PublicKey::Ec { crv, x, y }
            }
            "RSA" => {
                let n = strip_zeros(&bytes(obj, "n")?);
                let e = strip_zeros(&bytes(obj, "e")?);
                if n.len() < 256 {
                    return err("RSA keys must have at least 2048 bits");
                }
                if n.len() > 1024 || e.is_empty() || e.len() > 4 {
                    return err("RSA modulus or exponent out of range");
                }
                PublicKey::Rsa { n, e }
            }
            "OKP" => {
                if field(obj, "crv")? != "Ed25519" {
                    return err("only the Ed25519 OKP curve is supported");
                }
                let x = bytes(obj, "x")?;
                if x.len() != 32 {
                    return err("Ed25519 keys are 32 bytes");
                }
                PublicKey::Ed25519 { x }
            }
            other => return err(format!("unsupported key type {other:?}")),
        };
        let alg = match obj.get("alg") {
            None => None,
            Some(Value::String(a)) if key.fits_alg(a) => Some(a.clone()),
            Some(a) => return err(format!("\"alg\" {a} does not fit this key")),
        };
        let kid = match obj.get("kid") {
            None => key.thumbprint(),
            Some(Value::String(k)) if !k.is_empty() && k.len() <= 128 => k.clone(),
            Some(_) => return err("\"kid\" must be a string of 1-128 characters"),
        };
        Ok(PublicJwk { kid, alg, key })
    }

    /// Parses a file's content: one JWK, or a JWKS `{"keys": [...]}` with 1-10 keys.
    pub fn parse_set(text: &str) -> Result<Vec<Self>, JwkError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| JwkError(format!("not JSON: {e}")))?;
        let keys = match value.get("keys") {
            Some(Value::Array(keys)) => keys
                .iter()
                .map(Self::parse)
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return err("\"keys\" must be an array"),
            None => vec![Self::parse(&value)?],
        };
        if keys.is_empty() || keys.len() > 10 {
            return err("a key set must hold 1-10 keys");
        }
        let mut kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        kids.sort_unstable();
        if kids.windows(2).any(|w| w[0] == w[1]) {
            return err("two keys share a \"kid\"");
        }
        Ok(keys)
    }

    /// The JWK as published: `kty`, `use: "sig"`, `alg`, `kid` and public parameters only.
    pub fn to_json(&self) -> Value {
        let mut v = match &self.key {
            PublicKey::Ec { crv, x, y } => {
                json!({"kty": "EC", "crv": crv.name(), "x": b64(x), "y": b64(y)})
            }
            PublicKey::Rsa { n, e } => json!({"kty": "RSA", "n": b64(n), "e": b64(e)}),
            PublicKey::Ed25519 { x } => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(x)}),
        };
        let obj = v.as_object_mut().expect("object");
        obj.insert("use".into(), "sig".into());
        obj.insert("kid".into(), self.kid.clone().into());
        if let Some(alg) = &self.alg {
            obj.insert("alg".into(), alg.clone().into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // The RSA example key of RFC 7638 section 3.1 and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let jwk = PublicJwk::parse(&json!({"kty": "RSA", "n": n, "e": "AQAB"})).unwrap();
        assert_eq!(jwk.kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn private_members_are_refused() {
        let e = PublicJwk::parse(
            &json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[1; 32]), "d": "AA"}),
        )
        .unwrap_err();
        assert!(e.0.contains("private"), "{e}");
    }

    #[test]
    fn malformed_jwks_are_refused_with_reasons() {
        for bad in [
            json!([]),
            json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
            json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
            json!({"kty": "RSA", "n": b64(&[1; 128]), "e": "AQAB"}),
            json!({"kty": "oct", "k": "AA"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[1; 32]), "use": "enc"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&[1; 32]), "alg": "ES256"}),
        ] {
            assert!(PublicJwk::parse(&bad).is_err(), "{bad}");
        }
        assert!(PublicJwk::parse_set("{").is_err());
        assert!(PublicJwk::parse_set(r#"{"keys": []}"#).is_err());
    }

    #[test]
    fn published_form_has_no_private_members() {
        let jwk = PublicJwk::new(PublicKey::Ed25519 { x: vec![3; 32] }, "EdDSA");
        let v = jwk.to_json();
        assert_eq!(v["use"], "sig");
        assert_eq!(v["kid"], jwk.key.thumbprint());
        assert_eq!(PublicJwk::parse(&v).unwrap(), jwk);
    }
}
