//! The workload side: getting a token from an issuer with a client secret or a
//! private key, and keeping an AWS web identity token file fresh.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::{Value, json};

use crate::oauth::assertion::JWT_BEARER;
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

/// Why a workload client will not send its credentials to a URL. The URLs in
/// the messages never carry user info.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialTargetError {
    /// The issuer URL itself is no place for credentials.
    #[error(
        "the issuer {issuer} {why}; nomos clients send credentials only over https (plain http \
         only to 127.0.0.0/8, ::1 or localhost, for development). Give an https --issuer"
    )]
    Issuer {
        /// The issuer URL as configured.
        issuer: String,
        /// What is wrong with it.
        why: String,
    },
    /// Discovery names a token endpoint off the issuer's origin (or not a URL).
    #[error(
        "the discovery document at {discovery} names a token_endpoint {endpoint} {why}; nomos \
         clients send credentials only to the issuer's own origin ({origin}). Check --issuer, \
         or the proxy in front of the issuer"
    )]
    TokenEndpoint {
        /// The discovery URL.
        discovery: String,
        /// The token endpoint it names.
        endpoint: String,
        /// What is wrong with it.
        why: String,
        /// The issuer's origin.
        origin: String,
    },
    /// A request to the issuer was redirected off its origin: not followed.
    #[error(
        "{from} redirected to {to}, on another origin; nomos clients send credentials only to \
         the issuer's own origin ({origin}). Check --issuer, or the proxy in front of the issuer"
    )]
    Redirect {
        /// The URL that answered with the redirect.
        from: String,
        /// Where it pointed.
        to: String,
        /// The issuer's origin.
        origin: String,
    },
}

/// A URL as shown in an error: without user info, and not too long.
fn shown(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let mut s = u.to_string();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Whether a URL's host is loopback: 127.0.0.0/8, ::1 or `localhost`.
fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// Checks that `issuer` is a place for credentials: https, or plain http to a
/// loopback host (development), and no user info.
pub fn check_issuer_url(issuer: &str) -> Result<url::Url, CredentialTargetError> {
    let refuse = |why: String| CredentialTargetError::Issuer {
        issuer: issuer.to_owned(),
        why,
    };
    let url = url::Url::parse(issuer).map_err(|e| refuse(format!("is not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(CredentialTargetError::Issuer {
            issuer: shown(&url),
            why: "carries user info".into(),
        });
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback(&url) => Ok(url),
        "http" => Err(refuse(
            "is plain http to a host that is not loopback".into(),
        )),
        _ => Err(refuse("is not an https URL".into())),
    }
}

/// The redirect policy of a client that talks to `issuer` with credentials:
/// redirects are followed (at most 10) only within the issuer's origin. A 307
/// or 308 re-sends the body, client assertion included, and reqwest keeps the
/// Authorization header when only the scheme changes.
pub fn same_origin_redirects(issuer: &url::Url) -> reqwest::redirect::Policy {
    let origin = issuer.origin();
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.url().origin() != origin {
            let from = attempt.previous().last().map(shown).unwrap_or_default();
            let to = shown(attempt.url());
            attempt.error(CredentialTargetError::Redirect {
                from,
                to,
                origin: origin.ascii_serialization(),
            })
        } else if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    })
}

/// A token endpoint that passed [`check_token_endpoint`]: on the issuer's own
/// origin, so credentials may be sent to it.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    url: url::Url,
    named: String,
}

impl TokenEndpoint {
    /// The URL to send the token request to.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The endpoint exactly as discovery named it: the `aud` of a client
    /// assertion, which the issuer compares byte for byte.
    pub fn as_str(&self) -> &str {
        &self.named
    }
}

/// Checks the `token_endpoint` that the issuer's discovery names before any
/// credential is sent to it: the issuer must pass [`check_issuer_url`], and the
/// endpoint must be on the issuer's origin (scheme, host and port; the paths
/// may differ) without user info. A discovery document answered by a
/// compromised or misconfigured proxy would otherwise collect client secrets.
pub fn check_token_endpoint(
    issuer: &str,
    token_endpoint: &str,
) -> Result<TokenEndpoint, CredentialTargetError> {
    let issuer_url = check_issuer_url(issuer)?;
    let origin = issuer_url.origin().ascii_serialization();
    let refuse = |endpoint: String, why: String| CredentialTargetError::TokenEndpoint {
        discovery: format!("{issuer}/.well-known/openid-configuration"),
        endpoint,
        why,
        origin: origin.clone(),
    };
    let url = url::Url::parse(token_endpoint).map_err(|e| {
        let mut named = format!("{token_endpoint:?}");
        if named.len() > 200 {
            named = "(over 200 characters)".into();
        }
        refuse(named, format!("that is not a URL ({e})"))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(shown(&url), "with user info in it".into()));
    }
    if url.origin() != issuer_url.origin() {
        let theirs = url.origin().ascii_serialization();
        let why = if url.scheme() != "https" && !loopback(&url) {
            format!("on another origin ({theirs}), over plain http to a host that is not loopback")
        } else {
            format!("on another origin ({theirs})")
        };
        return Err(refuse(shown(&url), why));
    }
    Ok(TokenEndpoint {
        url,
        named: token_endpoint.to_owned(),
    })
}

/// A token as the endpoint returned it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The JWT.
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
}

/// An error answered by the token endpoint, or a transport failure.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The issuer refused: an OAuth error (not worth retrying for 4xx but 429).
    #[error("the issuer refused ({status}): {error}: {description}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// OAuth error code.
        error: String,
        /// Its description.
        description: String,
    },
    /// The issuer could not be reached, or answered garbage.
    #[error("cannot reach the issuer: {0}")]
    Transport(String),
    /// The credentials would have gone off the issuer's origin: nothing was sent.
    #[error(transparent)]
    Target(#[from] CredentialTargetError),
}

impl FetchError {
    /// A failed request, with its causes: reqwest's own message names only
    /// the URL, and a refused redirect says why in its cause.
    pub fn transport(e: reqwest::Error) -> Self {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        FetchError::Transport(text)
    }

    /// Whether trying again later may help.
    pub fn retryable(&self) -> bool {
        match self {
            FetchError::Refused { status, .. } => *status >= 500 || *status == 429,
            FetchError::Transport(_) => true,
            FetchError::Target(_) => false,
        }
    }
}

/// Requests a token with the client-credentials grant from a token endpoint that
/// passed [`check_token_endpoint`].
pub async fn fetch_token(
    http: &reqwest::Client,
    token_endpoint: &TokenEndpoint,
    client_id: &str,
    credential: &ClientCredential,
    audience: Option<&str>,
    now: i64,
) -> Result<Fetched, FetchError> {
    let mut form: Vec<(&str, String)> = vec![("grant_type", "client_credentials".into())];
    if let Some(a) = audience {
        form.push(("audience", a.into()));
    }
    let mut req = http.post(token_endpoint.url().clone());
    match credential {
        ClientCredential::Secret(s) => {
            let enc =
                |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(client_id), Some(enc(s)));
        }
        ClientCredential::PrivateKey(signer) => {
            form.push(("client_assertion_type", JWT_BEARER.into()));
            form.push((
                "client_assertion",
                signer.assertion(client_id, token_endpoint.as_str(), now),
            ));
        }
    }
    let resp = req
        .form(&form)
        .send()
        .await
        .map_err(FetchError::transport)?;
    let status = resp.status().as_u16();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| FetchError::Transport(format!("unreadable answer ({status}): {e}")))?;
    if status != 200 {
        return Err(FetchError::Refused {
            status,
            error: body["error"].as_str().unwrap_or("unknown").to_owned(),
            description: body["error_description"].as_str().unwrap_or("").to_owned(),
        });
    }
    match (body["access_token"].as_str(), body["expires_in"].as_u64()) {
        (Some(t), Some(e)) => Ok(Fetched {
            token: t.to_owned(),
            expires_in: e,
        }),
        _ => Err(FetchError::Transport(
            "the answer has no access_token/expires_in".into(),
        )),
    }
}

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory, mode 0600, fsync, rename, fsync of the directory. A reader sees
/// the old file or the new one, never a part.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", random_id("", 6)));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// When to refresh a token of `expires_in` seconds: at 80% of its life.
pub fn refresh_after(expires_in: u64) -> Duration {
    Duration::from_millis(expires_in.saturating_mul(800).max(1000))
}

/// The back-off before retry `attempt` (0-based): exponential from 1 s, capped at
/// 60 s, with up to 50% random jitter so a fleet does not retry in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(6)).min(60_000);
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b);
    let jitter = u64::from(u16::from_le_bytes(b)) * (base / 2) / u64::from(u16::MAX);
    Duration::from_millis(base - base / 2 + jitter)
}

/// A role session name from a client id: AWS allows 2-64 characters of `[\w+=,.@-]`.
pub fn role_session_name(client_id: &str) -> String {
    let mut s: String = client_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    s.truncate(64);
    while s.len() < 2 {
        s.push('_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(issuer: &str, endpoint: &str) -> Result<String, String> {
        check_token_endpoint(issuer, endpoint)
            .map(|t| t.url().to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn token_endpoints_on_the_issuers_origin_are_accepted() {
        for (issuer, endpoint) in [
            (
                "https://id.example.com",
                "https://id.example.com/oauth2/token",
            ),
            // The issuer may have a path: only the origin must match.
            (
                "https://id.example.com/orgs/acme",
                "https://id.example.com/orgs/acme/oauth2/token",
            ),
            (
                "https://id.example.com/orgs/acme",
                "https://id.example.com/oauth2/token",
            ),
            (
                "https://id.example.com",
                "https://ID.example.com:443/oauth2/token",
            ),
            (
                "https://id.example.com:8443",
                "https://id.example.com:8443/t",
            ),
            // Plain http only to loopback, for development.
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/oauth2/token",
            ),
            (
                "http://127.1.2.3:8080",
                "http://127.1.2.3:8080/oauth2/token",
            ),
            (
                "http://localhost:8080",
                "http://localhost:8080/oauth2/token",
            ),
            ("http://[::1]:8080", "http://[::1]:8080/oauth2/token"),
        ] {
            assert!(
                target(issuer, endpoint).is_ok(),
                "{issuer} {endpoint}: {:?}",
                target(issuer, endpoint)
            );
        }
        // The assertion audience is the endpoint as discovery named it.
        let t = check_token_endpoint("https://id.example.com", "https://ID.example.com/t").unwrap();
        assert_eq!(t.as_str(), "https://ID.example.com/t");
        assert_eq!(t.url().as_str(), "https://id.example.com/t");
    }

    #[test]
    fn token_endpoints_off_the_issuers_origin_are_refused() {
        for (issuer, endpoint, why) in [
            (
                "https://id.example.com",
                "https://evil.example.com/oauth2/token",
                "another origin (https://evil.example.com)",
            ),
            (
                "https://id.example.com",
                "https://id.example.com.evil.net/oauth2/token",
                "another origin",
            ),
            (
                "https://id.example.com",
                "https://id.example.com:8443/oauth2/token",
                "another origin (https://id.example.com:8443)",
            ),
            (
                "https://id.example.com",
                "http://id.example.com/oauth2/token",
                "over plain http to a host that is not loopback",
            ),
            (
                "https://id.example.com",
                "http://id.example.com:443/oauth2/token",
                "over plain http",
            ),
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:9090/oauth2/token",
                "another origin (http://127.0.0.1:9090)",
            ),
            (
                "http://127.0.0.1:8080",
                "http://localhost:8080/oauth2/token",
                "another origin (http://localhost:8080)",
            ),
            (
                "http://127.0.0.1:8080",
                "https://127.0.0.1:8080/oauth2/token",
                "another origin",
            ),
            (
                "http://[::1]:8080",
                "http://[::2]:8080/oauth2/token",
                "another origin",
            ),
            (
                "https://id.example.com",
                "https://user:hunter2@id.example.com/oauth2/token",
                "with user info",
            ),
            (
                "https://id.example.com",
                "https://user@id.example.com/oauth2/token",
                "with user info",
            ),
            ("https://id.example.com", "/oauth2/token", "not a URL"),
            ("https://id.example.com", "", "not a URL"),
        ] {
            let e = target(issuer, endpoint).expect_err(endpoint);
            assert!(e.contains(why), "{endpoint}: {e}");
            assert!(
                e.contains(&format!(
                    "the discovery document at {issuer}/.well-known/openid-configuration"
                )) && e.contains("only to the issuer's own origin")
                    && e.contains("Check --issuer, or the proxy in front of the issuer"),
                "{e}"
            );
            assert!(!e.contains("hunter2"), "user info is not repeated: {e}");
        }
    }

    #[test]
    fn issuers_without_https_get_no_credentials_unless_loopback() {
        for (issuer, why) in [
            (
                "http://id.example.com",
                "plain http to a host that is not loopback",
            ),
            (
                "http://10.0.0.1:8080",
                "plain http to a host that is not loopback",
            ),
            (
                "http://0.0.0.0:8080",
                "plain http to a host that is not loopback",
            ),
            (
                "http://[::ffff:127.0.0.1]:8080",
                "plain http to a host that is not loopback",
            ),
            (
                "http://localhost.example.com",
                "plain http to a host that is not loopback",
            ),
            ("https://user:hunter2@id.example.com", "carries user info"),
            ("http://user@127.0.0.1:8080", "carries user info"),
            ("ftp://id.example.com", "is not an https URL"),
            ("id.example.com", "is not a URL"),
        ] {
            let e = check_issuer_url(issuer).expect_err(issuer).to_string();
            assert!(
                e.contains(why) && e.contains("Give an https --issuer"),
                "{issuer}: {e}"
            );
            assert!(!e.contains("hunter2"), "{e}");
            // The token endpoint of such an issuer is refused for the same reason.
            let e = target(issuer, &format!("{issuer}/oauth2/token")).unwrap_err();
            assert!(e.contains(why), "{issuer}: {e}");
        }
        for issuer in [
            "https://id.example.com",
            "https://id.example.com/orgs/acme",
            "http://127.0.0.1:8080",
            "http://LOCALHOST:8080",
            "http://[::1]",
        ] {
            assert!(check_issuer_url(issuer).is_ok(), "{issuer}");
        }
    }

    #[test]
    fn session_names_follow_aws() {
        assert_eq!(
            role_session_name("org/acme/agent/deployer"),
            "org.acme.agent.deployer"
        );
        assert_eq!(role_session_name("a"), "a_");
        assert_eq!(
            role_session_name(&format!("org/{}", "a".repeat(80))).len(),
            64
        );
    }

    #[test]
    fn refresh_and_backoff_are_bounded() {
        assert_eq!(refresh_after(300), Duration::from_secs(240));
        assert_eq!(refresh_after(0), Duration::from_secs(1));
        for attempt in 0..20 {
            let b = backoff(attempt);
            assert!(
                b >= Duration::from_millis(500) && b <= Duration::from_secs(60),
                "{b:?}"
            );
        }
        assert!(backoff(10) >= Duration::from_secs(30));
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        write_atomically(&p, b"one").unwrap();
        write_atomically(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(write_atomically(&dir.path().join("missing/token"), b"x").is_err());
    }
}
