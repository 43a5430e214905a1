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
    let configured_issuer = layer.issuer.clone();
    let follows_listen = configured_issuer.is_none();
    let scheme = match layer.tls_cert {
        Some(_) => "https",
        None => "http",
    };
    let issuer = configured_issuer.unwrap_or_else(|| format!("{scheme}://{listen}"));
    let warnings = check_issuer_url(&issuer)?;
    Ok(Issuer {
        issuer,
        follows_listen,
        warnings,
    })
}

/// The warnings a valid issuer URL earns (not https, a port); none for an
/// invalid one.
pub fn issuer_warnings(issuer: &str) -> Vec<String> {
    check_issuer_url(issuer).unwrap_or_default()
}

/// Checks an issuer URL by the rules of an AWS OIDC provider, whose URL AWS
/// compares with `iss` as a string: no trailing slash, no query or fragment,
/// at most 255 characters, https. Returns the warnings a valid URL earns (not
/// https, a port), or the error naming `issuer`.
pub fn check_issuer_url(issuer: &str) -> Result<Vec<String>, ConfigError> {
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
    let mut warnings = Vec::new();
    if url.scheme() != "https" {
        warnings.push(format!(
            "issuer {issuer} is not https: AWS will refuse it as an OIDC provider (fine for local work)"
        ));
    } else if url.port().is_some() {
        warnings.push(format!("issuer {issuer} has a port: AWS expects none"));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_issuer_url_returns_the_warnings_or_the_error() {
        assert_eq!(
            check_issuer_url("https://id.example.com/acme").unwrap(),
            Vec::<String>::new()
        );
        let warnings = check_issuer_url("https://id.example.com:8443").unwrap();
        assert!(warnings[0].contains("has a port"), "{warnings:?}");
        let warnings = check_issuer_url("http://127.0.0.1:8080").unwrap();
        assert!(warnings[0].contains("AWS will refuse"), "{warnings:?}");
        for bad in [
            "https://id.example.com/",
            "https://u@id.example.com",
            "id.example.com",
        ] {
            assert_eq!(check_issuer_url(bad).unwrap_err().name, "issuer", "{bad}");
            assert!(issuer_warnings(bad).is_empty(), "{bad}");
        }
        assert_eq!(issuer_warnings("http://127.0.0.1:8080").len(), 1);
    }
}
