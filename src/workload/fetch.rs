//! One token request, as a workload makes it.

use serde_json::Value;

use super::*;
use crate::oauth::assertion::JWT_BEARER;

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
    /// A failed request, with its causes (see [`request_error_text`]).
    pub fn transport(e: reqwest::Error) -> Self {
        FetchError::Transport(request_error_text(&e))
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

/// A failed request as text, with its causes: reqwest's own message names
/// only the URL, and a refused redirect says why in its cause. A TLS failure
/// worth a hint gets it ([`tls_hint`]).
pub fn request_error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    if let Some(hint) = tls_hint(&text) {
        text.push_str(&format!("; {hint}"));
    }
    text
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
