//! What credentials a token request presents (RFC 6749 §2.3, RFC 7523 §2.2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;

use super::OAuthError;
use super::assertion::JWT_BEARER;
use super::form::Params;

/// A client authentication method, as recorded in the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with the form-urlencoded client id and secret.
    SecretBasic,
    /// `client_id` and `client_secret` in the body.
    SecretPost,
    /// A signed JWT client assertion.
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The registered name (RFC 8414 `token_endpoint_auth_methods_supported`).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::SecretBasic => "client_secret_basic",
            AuthMethod::SecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// Credentials presented with a request, not yet checked.
pub enum Presented {
    /// A client secret.
    Secret {
        /// The claimed client id.
        client_id: String,
        /// The secret. Never logged.
        secret: String,
        /// Basic or post.
        method: AuthMethod,
    },
    /// A JWT client assertion.
    Assertion {
        /// `client_id` if the body gave one.
        client_id: Option<String>,
        /// The compact JWS.
        assertion: String,
    },
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Presented::Secret {
                client_id, method, ..
            } => f
                .debug_struct("Secret")
                .field("client_id", client_id)
                .field("method", method)
                .finish_non_exhaustive(),
            Presented::Assertion { client_id, .. } => f
                .debug_struct("Assertion")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

fn form_decode(s: &str) -> Option<String> {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn basic(value: &str) -> Result<(String, String), OAuthError> {
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let decoded = STANDARD.decode(value.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        form_decode(id).ok_or_else(bad)?,
        form_decode(secret).ok_or_else(bad)?,
    ))
}

/// Works out which single authentication method a request uses. Using more than
/// one is `invalid_request` (RFC 6749 §2.3); using none is `invalid_client`.
pub fn presented(authorization: Option<&str>, params: &Params) -> Result<Presented, OAuthError> {
    let body_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let assertion_type = params.get("client_assertion_type");
    let body_id = params.get("client_id");
    let header = match authorization {
        None => None,
        Some(h) => {
            let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(
                    "unsupported Authorization scheme: use Basic",
                ));
            }
            Some(basic(rest)?)
        }
    };
    let methods = [header.is_some(), body_secret.is_some(), assertion.is_some()];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method is used",
        ));
    }
    if let Some((client_id, secret)) = header {
        if body_id.is_some_and(|b| b != client_id) {
            return Err(OAuthError::invalid_client(
                "client_id differs from the Basic credentials",
            ));
        }
        return Ok(Presented::Secret {
            client_id,
            secret,
            method: AuthMethod::SecretBasic,
        });
    }
    if let Some(secret) = body_secret {
        let client_id =
            body_id.ok_or_else(|| OAuthError::invalid_request("client_secret needs client_id"))?;
        return Ok(Presented::Secret {
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            method: AuthMethod::SecretPost,
        });
    }
    if let Some(assertion) = assertion {
        return match assertion_type {
            Some(JWT_BEARER) => Ok(Presented::Assertion {
                client_id: body_id.map(str::to_owned),
                assertion: assertion.to_owned(),
            }),
            Some(_) => Err(OAuthError::invalid_request(
                "unsupported client_assertion_type",
            )),
            None => Err(OAuthError::invalid_request(
                "client_assertion needs client_assertion_type",
            )),
        };
    }
    Err(OAuthError::invalid_client("no client authentication"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str) -> Params {
        Params::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let h = format!("Basic {}", STANDARD.encode("org%2Facme:s%2Bx+y"));
        match presented(Some(&h), &params("")).unwrap() {
            Presented::Secret {
                client_id,
                secret,
                method,
            } => {
                assert_eq!(client_id, "org/acme");
                assert_eq!(secret, "s+x y");
                assert_eq!(method, AuthMethod::SecretBasic);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_methods_or_none_are_refused() {
        let h = format!("Basic {}", STANDARD.encode("org%2Fa:s"));
        let e = presented(Some(&h), &params("client_secret=x&client_id=org/a")).unwrap_err();
        assert_eq!(e.code, super::super::ErrorCode::InvalidRequest);
        let e = presented(None, &params("grant_type=client_credentials")).unwrap_err();
        assert_eq!(e.code, super::super::ErrorCode::InvalidClient);
        let e = presented(Some("Bearer x"), &params("")).unwrap_err();
        assert_eq!(e.code, super::super::ErrorCode::InvalidClient);
        let e = presented(Some("Basic !!!"), &params("")).unwrap_err();
        assert_eq!(e.code, super::super::ErrorCode::InvalidClient);
        assert!(presented(None, &params("client_assertion=x")).is_err());
    }
}
