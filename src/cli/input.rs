//! What the operator typed, checked before a store is opened or a request
//! sent. Input that cannot be used is an [`InvalidInput`], which exits with
//! status 2 like clap's own usage errors; ids are parsed by clap itself
//! (`value_parser`), which also exits 2.

use std::path::Path;

use crate::keys::PublicJwk;

/// Input the command cannot use: exit status 2. The message says what is
/// wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// An [`InvalidInput`] as an error to return.
pub(super) fn invalid(message: impl Into<String>) -> anyhow::Error {
    InvalidInput(message.into()).into()
}

/// The public keys in a file given to `--public-key`: one JWK, a JWKS, or
/// PEM (`-----BEGIN PUBLIC KEY-----`, EC P-256/P-384, RSA or Ed25519, one or
/// more), converted to JWKs.
pub(super) fn public_keys(path: &Path) -> anyhow::Result<Vec<PublicJwk>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("--public-key {}: {e}", path.display())))?;
    let keys = if text.trim_start().starts_with("-----BEGIN") {
        PublicJwk::parse_pem(&text).map_err(|e| e.to_string())
    } else {
        PublicJwk::parse_set(&text).map_err(|e| e.to_string())
    };
    keys.map_err(|e| invalid(format!("--public-key {}: {e}", path.display())))
}
