//! HTTPS: the certificate chain and key files, set both or neither.

use std::path::PathBuf;

use super::{ConfigArgs, ConfigError, invalid};

/// HTTPS: the certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `None`: plain HTTP (e.g. behind a TLS proxy).
pub(super) fn resolve(layer: &ConfigArgs) -> Result<Option<TlsFiles>, ConfigError> {
    match (layer.tls_cert.clone(), layer.tls_key.clone()) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid("tls_key", "tls_cert is set: set tls_key too")),
        (None, Some(_)) => Err(invalid("tls_cert", "tls_key is set: set tls_cert too")),
    }
}
