//! The issuer URL: the `iss` of every token, which AWS compares with the
//! provider URL as a string.

use std::net::SocketAddr;

use super::{ConfigArgs, ConfigError, invalid};

/// The resolved issuer.
pub(super) struct Issuer {
    pub issuer: String,
    /// None was configured: it follows the bound address (useful with port 0).
    pub follows_listen: bool,
    pub warnings: Vec<String>,
}

/// The configured issuer, else `http(s)://<listen>`, https when TLS is set.
pub(super) fn resolve(layer: &ConfigArgs, listen: SocketAddr) -> Result<Issuer, ConfigError> {
    let mut warnings = Vec::new();
    let configured_issuer = layer.issuer.clone();
    let follows_listen = configured_issuer.is_none();
    let scheme = match layer.tls_cert {
        Some(_) => "https",
        None => "http",
    };
    let issuer = configured_issuer.unwrap_or_else(|| format!("{scheme}://{listen}"));
    check_issuer(&issuer, &mut warnings)?;
    Ok(Issuer {
        issuer,
        follows_listen,
        warnings,
    })
}

/// The warnings a valid issuer URL earns (not https, a port).
pub fn issuer_warnings(issuer: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    let _ = check_issuer(issuer, &mut warnings);
    warnings
}

/// AWS compares `iss` with the provider URL as a string: no trailing slash,
/// no query or fragment, at most 255 characters, https.
fn check_issuer(issuer: &str, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    let url = url::Url::parse(issuer)
        .map_err(|e| invalid("issuer", format!("{issuer:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid(
            "issuer",
            "the scheme must be https (or http for local work)",
        ));
    }
    if issuer.ends_with('/') {
        return Err(invalid(
            "issuer",
            "remove the trailing slash: AWS compares iss as a string",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || issuer.contains(['?', '#']) {
        return Err(invalid("issuer", "an issuer URL has no query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("issuer", "an issuer URL has no user info"));
    }
    if issuer.len() > 255 {
        return Err(invalid("issuer", "AWS accepts at most 255 characters"));
    }
    if url.scheme() != "https" {
        warnings.push(format!(
            "issuer {issuer} is not https: AWS will refuse it as an OIDC provider (fine for local work)"
        ));
    } else if url.port().is_some() {
        warnings.push(format!("issuer {issuer} has a port: AWS expects none"));
    }
    Ok(())
}
