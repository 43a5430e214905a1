//! Public keys in PEM, as `openssl` writes them, converted to JWKs: a client
//! registering a key for `private_key_jwt` often has a PEM file, and the
//! issuer stores JWKs.
//!
//! Read: `PUBLIC KEY` (SubjectPublicKeyInfo: EC P-256/P-384, RSA, Ed25519),
//! `RSA PUBLIC KEY` (PKCS #1) and `CERTIFICATE` (its key). A private key is
//! refused with the command that writes its public key.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};

use super::PublicJwk;
use crate::x509;

/// Why a PEM file gave no key; the message says how to get one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PemError(pub String);

/// How to write the public key of a private key file.
const PUBOUT: &str = "`openssl pkey -in KEY.pem -pubout -out public.pem` writes it";

const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

fn err<T>(message: impl Into<String>) -> Result<T, PemError> {
    Err(PemError(message.into()))
}

impl PublicJwk {
    /// Every public key in PEM text, in order, as JWKs checked like any
    /// registered JWK (`kid`: the thumbprint). `EC PARAMETERS` blocks are
    /// skipped; a private key or anything else is refused.
    pub fn parse_pem(text: &str) -> Result<Vec<Self>, PemError> {
        let mut keys = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let after = &rest[start + 11..];
            let Some((label, body)) = after.split_once("-----") else {
                return err("a PEM header is not closed by -----");
            };
            let end = format!("-----END {label}-----");
            let Some((body, next)) = body.split_once(&end) else {
                return err(format!("the PEM block {label} has no {end} line"));
            };
            rest = next;
            if label.contains("PRIVATE KEY") {
                return err(format!(
                    "it holds a private key ({label}): register the public key only; {PUBOUT}"
                ));
            }
            if label == "EC PARAMETERS" {
                continue;
            }
            let der = STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .map_err(|_| PemError(format!("the PEM block {label} is not base64")))?;
            let jwk = match label {
                "PUBLIC KEY" => spki_jwk(&der)?,
                "RSA PUBLIC KEY" => rsa_jwk(&der)?,
                "CERTIFICATE" => match x509::subject_public_key_info(&der) {
                    Some(info) => spki_jwk(info)?,
                    None => return err("the certificate cannot be read"),
                },
                other => {
                    return err(format!(
                        "a PEM {other} is not a public key: give -----BEGIN PUBLIC KEY----- ({PUBOUT}) or a JWK"
                    ));
                }
            };
            keys.push(PublicJwk::parse(&jwk).map_err(|e| PemError(e.0))?);
        }
        if keys.is_empty() {
            return err("no -----BEGIN PUBLIC KEY----- block in the PEM text");
        }
        Ok(keys)
    }
}

/// A SubjectPublicKeyInfo as a JWK (its checks are `PublicJwk::parse`'s).
fn spki_jwk(der: &[u8]) -> Result<Value, PemError> {
    let Some(info) = x509::spki(der) else {
        return err("the public key cannot be read (not a DER SubjectPublicKeyInfo)");
    };
    match info.algorithm {
        EC_PUBLIC_KEY => {
            let (crv, len) = match info.curve {
                Some(P256) => ("P-256", 32),
                Some(P384) => ("P-384", 48),
                _ => return err("an EC key on a curve other than P-256 or P-384"),
            };
            match info.key.split_first() {
                Some((4, xy)) if xy.len() == 2 * len => {
                    let (x, y) = xy.split_at(len);
                    Ok(json!({"kty": "EC", "crv": crv, "x": B64.encode(x), "y": B64.encode(y)}))
                }
                Some((2 | 3, _)) => err(
                    "a compressed EC point: `openssl pkey -pubin -in public.pem -ec_conv_form uncompressed -out uncompressed.pem` writes it uncompressed",
                ),
                _ => err(format!("the {crv} point cannot be read")),
            }
        }
        RSA => rsa_jwk(info.key),
        ED25519 => Ok(json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(info.key)})),
        _ => err("a key type other than EC P-256/P-384, RSA or Ed25519"),
    }
}

/// A PKCS #1 RSAPublicKey as a JWK.
fn rsa_jwk(der: &[u8]) -> Result<Value, PemError> {
    match x509::rsa_public_key(der) {
        Some((n, e)) => Ok(json!({"kty": "RSA", "n": B64.encode(n), "e": B64.encode(e)})),
        None => err("the RSA public key cannot be read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;

    /// The public JWK an independent library (josekit) derives from a private PEM key.
    fn oracle(private_pem: &[u8], alg: &str) -> Value {
        let jwk = match alg {
            "ES256" => josekit::jws::ES256
                .key_pair_from_pem(private_pem)
                .unwrap()
                .to_jwk_public_key(),
            "ES384" => josekit::jws::ES384
                .key_pair_from_pem(private_pem)
                .unwrap()
                .to_jwk_public_key(),
            "RS256" => josekit::jws::RS256
                .key_pair_from_pem(private_pem)
                .unwrap()
                .to_jwk_public_key(),
            _ => josekit::jws::EdDSA
                .key_pair_from_pem(private_pem)
                .unwrap()
                .to_jwk_public_key(),
        };
        serde_json::to_value(jwk.as_ref()).unwrap()
    }

    fn ec(nid: Nid) -> PKey<openssl::pkey::Private> {
        PKey::from_ec_key(EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap())
            .unwrap()
    }

    #[test]
    fn public_keys_in_pem_become_the_same_jwks() {
        let keys = [
            (ec(Nid::X9_62_PRIME256V1), "ES256"),
            (ec(Nid::SECP384R1), "ES384"),
            (
                PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
                "RS256",
            ),
            (PKey::generate_ed25519().unwrap(), "EdDSA"),
        ];
        for (key, alg) in keys {
            let want =
                PublicJwk::parse(&oracle(&key.private_key_to_pem_pkcs8().unwrap(), alg)).unwrap();
            // The same key, named by its thumbprint, usable with any fitting alg.
            let want = PublicJwk { alg: None, ..want };
            assert_eq!(want.kid, want.key.thumbprint());
            let pem = String::from_utf8(key.public_key_to_pem().unwrap()).unwrap();
            assert_eq!(
                PublicJwk::parse_pem(&pem).unwrap(),
                std::slice::from_ref(&want),
                "{alg}"
            );
            if let Ok(rsa) = key.rsa() {
                let pkcs1 = String::from_utf8(rsa.public_key_to_pem_pkcs1().unwrap()).unwrap();
                assert!(pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
                assert_eq!(
                    PublicJwk::parse_pem(&pkcs1).unwrap(),
                    std::slice::from_ref(&want)
                );
            }
        }
    }

    #[test]
    fn several_blocks_and_certificates_are_read() {
        let (a, b) = (ec(Nid::X9_62_PRIME256V1), ec(Nid::SECP384R1));
        let text = format!(
            "comment\n{}{}",
            String::from_utf8(a.public_key_to_pem().unwrap()).unwrap(),
            String::from_utf8(b.public_key_to_pem().unwrap()).unwrap()
        );
        let keys = PublicJwk::parse_pem(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys[1].key.fits_alg("ES384"));

        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let from_cert = PublicJwk::parse_pem(&cert.pem()).unwrap();
        let from_key = PublicJwk::parse_pem(&key.public_key_pem()).unwrap();
        assert_eq!(from_cert, from_key);
    }

    /// A P-256 SubjectPublicKeyInfo with a compressed point, which openssl
    /// writes only when asked.
    fn compressed_p256() -> String {
        let mut der = vec![0x30, 0x39, 0x30, 0x13, 0x06, 0x07];
        der.extend(EC_PUBLIC_KEY);
        der.extend([0x06, 0x08]);
        der.extend(P256);
        der.extend([0x03, 0x22, 0x00, 0x02]);
        der.extend([7; 32]);
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der)
        )
    }

    #[test]
    fn what_is_not_a_usable_public_key_says_what_to_do() {
        let p256 = ec(Nid::X9_62_PRIME256V1);
        let pkcs8 = String::from_utf8(p256.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let sec1 = String::from_utf8(p256.ec_key().unwrap().private_key_to_pem().unwrap()).unwrap();
        let small_rsa = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        let p521 = ec(Nid::SECP521R1);
        let pem = |k: &PKey<openssl::pkey::Private>| {
            String::from_utf8(k.public_key_to_pem().unwrap()).unwrap()
        };
        let cases = [
            (pkcs8, "openssl pkey -in KEY.pem -pubout"),
            (sec1, "private key"),
            (pem(&small_rsa), "2048"),
            (pem(&p521), "P-256 or P-384"),
            (
                "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n".into(),
                "not base64",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n".into(),
                "cannot be read",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nMAA=\n".into(),
                "-----END PUBLIC KEY-----",
            ),
            (
                "-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"
                    .into(),
                "-----BEGIN PUBLIC KEY-----",
            ),
            ("nothing here".into(), "no -----BEGIN PUBLIC KEY-----"),
            (compressed_p256(), "-ec_conv_form uncompressed"),
        ];
        for (text, words) in cases {
            let e = PublicJwk::parse_pem(&text).unwrap_err();
            assert!(e.0.contains(words), "{e} lacks {words:?}");
        }
    }
}
