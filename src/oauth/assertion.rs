//! Client assertions for `private_key_jwt` (RFC 7523 §3, OIDC Core §9).

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::Value;

use super::OAuthError;
use crate::audit::decision::Reason;
use crate::keys::PublicJwk;

/// `client_assertion_type` for JWT bearer client assertions.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest client assertion accepted, in bytes.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// The longest an assertion may live from now: 5 minutes (plus skew).
pub const MAX_ASSERTION_LIFETIME: i64 = 300;

/// Public keys whose private halves were thrown away, one per key type. When
/// a client has no key for an assertion's `alg` (an unknown client has none),
/// the signature is checked against one of these, so that the refusal costs
/// what a wrong signature costs and timing does not tell which clients exist.
static DECOYS: LazyLock<Vec<PublicJwk>> = LazyLock::new(|| {
    PublicJwk::parse_set(include_str!("decoy_keys.json")).expect("the decoy keys parse")
});

fn bad(why: &'static str) -> OAuthError {
    OAuthError::invalid_client(format!("client assertion rejected: {why}"))
}

/// A claim check that failed: the operator's reason and the client's error.
pub type ClaimError = (Reason, OAuthError);

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// The claims of an assertion, before any check.
#[derive(Debug, Deserialize)]
pub struct AssertionClaims {
    /// Must equal the client id.
    pub iss: String,
    /// Must equal the client id.
    pub sub: String,
    aud: Value,
    exp: Value,
    nbf: Option<Value>,
    iat: Option<Value>,
    /// Unique id; never accepted twice for the same client.
    pub jti: String,
}

/// A parsed assertion whose signature is not yet checked.
#[derive(Debug)]
pub struct Assertion<'a> {
    signing_input: &'a str,
    signature: Vec<u8>,
    alg: String,
    kid: Option<String>,
    /// The unverified claims.
    pub claims: AssertionClaims,
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Option<T> {
    serde_json::from_slice(&B64.decode(part).ok()?).ok()
}

fn numeric_date(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        }),
        _ => None,
    }
}

impl<'a> Assertion<'a> {
    /// Parses a compact JWS. Anything malformed, `alg: none`, or a `crit` header is refused.
    pub fn parse(token: &'a str) -> Result<Self, OAuthError> {
        if token.len() > MAX_ASSERTION_LEN {
            return Err(bad("too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a compact JWS"));
        };
        let header: Header = decode_json(h).ok_or_else(|| bad("unreadable header"))?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(bad("unsigned (alg none)"));
        }
        if header.crit.is_some() {
            return Err(bad("unsupported critical header"));
        }
        let claims: AssertionClaims = decode_json(c).ok_or_else(|| bad("unreadable claims"))?;
        let signature = B64.decode(s).map_err(|_| bad("unreadable signature"))?;
        Ok(Assertion {
            signing_input: &token[..h.len() + 1 + c.len()],
            signature,
            alg: header.alg,
            kid: header.kid,
            claims,
        })
    }

    /// The `kid` of the header, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether one of the registered keys verifies the signature. A key restricted
    /// to an algorithm is used with that algorithm only; a `kid` narrows the choice.
    /// With no key to try, a decoy key of the `alg` is tried instead (see `DECOYS`).
    pub fn verify<'k>(&self, keys: impl IntoIterator<Item = &'k PublicJwk>) -> bool {
        let message = self.signing_input.as_bytes();
        let mut tried = false;
        for k in keys
            .into_iter()
            .filter(|k| self.kid.as_deref().is_none_or(|kid| kid == k.kid))
            .filter(|k| k.alg.as_deref().is_none_or(|a| a == self.alg))
            .filter(|k| k.key.fits_alg(&self.alg))
        {
            tried = true;
            if k.key.verify(&self.alg, message, &self.signature) {
                return true;
            }
        }
        if !tried {
            if let Some(decoy) = DECOYS.iter().find(|k| k.key.fits_alg(&self.alg)) {
                std::hint::black_box(decoy.key.verify(&self.alg, message, &self.signature));
            }
        }
        false
    }

    /// Checks the claims for `client_id` at `now`; returns when the assertion expires.
    pub fn check_claims(
        &self,
        client_id: &str,
        audiences: &[&str],
        now: i64,
        skew: i64,
    ) -> Result<i64, ClaimError> {
        let c = &self.claims;
        let claims = |e| (Reason::AssertionClaims, e);
        let expiry = |e| (Reason::AssertionExpiry, e);
        if c.iss != client_id || c.sub != client_id {
            return Err(claims(bad("iss and sub must both equal the client id")));
        }
        // One audience, this issuer's (RFC 7523bis): an assertion that names
        // other audiences too could be replayed to them, or from them.
        let aud = match &c.aud {
            Value::String(a) => Some(a.as_str()),
            Value::Array(list) if list.len() == 1 => list[0].as_str(),
            _ => None,
        };
        if !aud.is_some_and(|a| audiences.contains(&a)) {
            return Err((
                Reason::AssertionAudience,
                bad("aud must be one value: the token endpoint URL or the issuer"),
            ));
        }
        let exp = numeric_date(&c.exp).ok_or_else(|| expiry(bad("exp must be a number")))?;
        if exp <= now - skew {
            return Err(expiry(bad("expired")));
        }
        if exp > now + MAX_ASSERTION_LIFETIME + skew {
            return Err(expiry(bad("exp is more than 5 minutes ahead")));
        }
        for (name, claim) in [("nbf", &c.nbf), ("iat", &c.iat)] {
            if let Some(v) = claim {
                let t = numeric_date(v).ok_or_else(|| {
                    claims(OAuthError::invalid_client(format!(
                        "client assertion rejected: {name} must be a number"
                    )))
                })?;
                if t > now + skew {
                    return Err(claims(OAuthError::invalid_client(format!(
                        "client assertion rejected: {name} is in the future"
                    ))));
                }
            }
        }
        if c.jti.is_empty() || c.jti.len() > 256 {
            return Err(claims(bad("jti must be 1-256 characters")));
        }
        Ok(exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, Signer, signer::generate};
    use serde_json::json;

    fn sign(claims: Value) -> (String, PublicJwk) {
        let g = generate(Alg::ES256).unwrap();
        let s = Signer::load(&g.public.kid, Alg::ES256, &g.private).unwrap();
        (s.sign(claims.to_string().as_bytes()), g.public)
    }

    const AUD: &[&str] = &["https://id.example/oauth2/token", "https://id.example"];

    fn claims(now: i64) -> Value {
        json!({"iss": "org/a", "sub": "org/a", "aud": AUD[0], "exp": now + 60, "jti": "j1", "iat": now})
    }

    #[test]
    fn a_good_assertion_passes() {
        let (t, key) = sign(claims(1000));
        let a = Assertion::parse(&t).unwrap();
        assert!(a.verify([&key]));
        assert_eq!(a.check_claims("org/a", AUD, 1000, 30).unwrap(), 1060);
        // One audience given as a one-element array is one audience.
        let mut c = claims(1000);
        c["aud"] = json!([AUD[1]]);
        let (t, _) = sign(c);
        assert!(
            Assertion::parse(&t)
                .unwrap()
                .check_claims("org/a", AUD, 1000, 30)
                .is_ok()
        );
    }

    #[test]
    fn with_no_key_to_try_a_decoy_is_checked_and_fails() {
        assert_eq!(DECOYS.len(), 4, "one decoy per key type");
        for alg in ["ES256", "ES384", "RS256", "PS256", "EdDSA"] {
            assert!(DECOYS.iter().any(|k| k.key.fits_alg(alg)), "{alg}");
        }
        let (t, _) = sign(claims(0));
        assert!(!Assertion::parse(&t).unwrap().verify([]));
    }

    #[test]
    fn every_bad_claim_is_refused() {
        let now = 1000;
        let mut cases = vec![];
        for (k, v, reason) in [
            ("iss", json!("org/b"), Reason::AssertionClaims),
            ("sub", json!("org/b"), Reason::AssertionClaims),
            ("aud", json!("https://other"), Reason::AssertionAudience),
            ("aud", json!(["https://other"]), Reason::AssertionAudience),
            (
                "aud",
                json!([AUD[0], "https://other"]),
                Reason::AssertionAudience,
            ),
            ("aud", json!([AUD[0], AUD[1]]), Reason::AssertionAudience),
            ("aud", json!([]), Reason::AssertionAudience),
            ("exp", json!(now - 31), Reason::AssertionExpiry),
            ("exp", json!(now + 331), Reason::AssertionExpiry),
            ("exp", json!("soon"), Reason::AssertionExpiry),
            ("nbf", json!(now + 31), Reason::AssertionClaims),
            ("iat", json!(now + 31), Reason::AssertionClaims),
            ("jti", json!(""), Reason::AssertionClaims),
        ] {
            let mut c = claims(now);
            c[k] = v;
            cases.push((c, reason));
        }
        for (c, reason) in cases {
            let (t, _) = sign(c.clone());
            let a = Assertion::parse(&t).unwrap();
            let (why, e) = a.check_claims("org/a", AUD, now, 30).unwrap_err();
            assert_eq!(why, reason, "{c}");
            assert_eq!(e.code, crate::oauth::ErrorCode::InvalidClient, "{c}");
        }
    }

    #[test]
    fn foreign_keys_and_alg_none_fail() {
        let (t, _) = sign(claims(0));
        let (_, other) = sign(claims(0));
        assert!(!Assertion::parse(&t).unwrap().verify([&other]));
        let h = B64.encode(r#"{"alg":"none"}"#);
        let c = B64.encode(claims(0).to_string());
        assert!(Assertion::parse(&format!("{h}.{c}.")).is_err());
        assert!(Assertion::parse("a.b").is_err());
        assert!(Assertion::parse(&"a".repeat(MAX_ASSERTION_LEN + 1)).is_err());
    }
}
