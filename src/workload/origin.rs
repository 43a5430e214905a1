//! Where a workload may send its credentials: only the issuer's own origin.

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
