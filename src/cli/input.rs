//! What the operator typed, checked before a store is opened or a request
//! sent. Input that cannot be used is an [`InvalidInput`], which exits with
//! status 2 like clap's own usage errors; ids are parsed by clap itself
//! (`value_parser`), which also exits 2.

use std::path::Path;
use std::time::Duration;

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

/// A duration for clap: whole seconds (`3600`) or with units (`90m`, `12h`,
/// `30d`, `1h 30m`).
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    match crate::config::parse_duration(text) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err("it must be at least one second".into()),
        Err(e) => Err(format!(
            "{e}: use seconds (3600) or a number with a unit (90m, 12h, 30d)"
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_or_units() {
        for (text, secs) in [
            ("3600", 3600),
            ("90m", 5400),
            ("12h", 43_200),
            ("30d", 2_592_000),
            ("1h 30m", 5400),
        ] {
            assert_eq!(duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["", "0", "0s", "soon", "-5", "30 days ago"] {
            let e = duration(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(duration("tomorrow").unwrap_err().contains("30d"));
    }
}
