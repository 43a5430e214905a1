//! TLS as STS sees it: the chain the issuer serves, verified against the
//! trusted roots, and the thumbprint AWS wants for the provider.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use super::report::{Outcome, Report};
use super::{STS_TIMEOUT, client};
use crate::workload::{request_error_text, tls_hint};
use crate::x509::issuer_and_subject;

fn roots(ca_file: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut store = rustls::RootCertStore::empty();
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(f) = ca_file {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        for cert in CertificateDer::pem_file_iter(f)
            .with_context(|| format!("cannot read {}", f.display()))?
        {
            store.add(cert.with_context(|| format!("{}: bad PEM", f.display()))?)?;
        }
    }
    Ok(store)
}

/// The certificate chain a host serves, verified against the trusted roots.
pub(super) async fn served_chain(
    url: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let u = url::Url::parse(url)?;
    let host = u.host_str().context("no host")?.to_owned();
    let port = u.port_or_known_default().unwrap_or(443);
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::time::timeout(
        STS_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .context("connect timed out")??;
    let name = ServerName::try_from(host.clone())?;
    let tls = tokio::time::timeout(STS_TIMEOUT, connector.connect(name, tcp))
        .await
        .context("TLS handshake timed out")?
        .map_err(|e| match tls_hint(&e.to_string()) {
            Some(hint) => anyhow::anyhow!("the TLS chain does not verify: {e}; {hint}"),
            None => anyhow::anyhow!("the TLS chain does not verify: {e}"),
        })?;
    let (_, conn) = tls.get_ref();
    Ok(conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect())
}

/// SHA-1 of the last certificate of the served chain, as AWS's thumbprint.
pub(super) fn thumbprint(chain: &[Vec<u8>]) -> Option<String> {
    let last = chain.last()?;
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, last);
    Some(d.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// The thumbprints AWS wants for the discovery host and, if different, the jwks_uri host.
pub async fn thumbprints(issuer: &str, ca_file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    if !issuer.starts_with("https://") {
        bail!("thumbprints need an https issuer");
    }
    let http = client(ca_file)?;
    let discovery: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| anyhow::anyhow!(request_error_text(&e)))?
        .json()
        .await?;
    let jwks_uri = discovery["jwks_uri"]
        .as_str()
        .context("discovery has no jwks_uri")?;
    let mut out = Vec::new();
    for url in [issuer, jwks_uri] {
        let chain = served_chain(url, ca_file).await?;
        let t = thumbprint(&chain).context("empty chain")?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The rows for the chain `issuer` serves: it verifies, it is in order, and its
/// thumbprint. Skipped when the issuer is not https.
pub(super) async fn check_chain(report: &mut Report, issuer: &str, https: bool, ca: Option<&Path>) {
    if https {
        match served_chain(issuer, ca).await {
            Ok(chain) => {
                let ordered = chain.windows(2).all(|w| {
                    match (issuer_and_subject(&w[0]), issuer_and_subject(&w[1])) {
                        (Some((iss, _)), Some((_, sub))) => iss == sub,
                        _ => false,
                    }
                });
                report.pass(
                    "TLS chain verifies",
                    format!("{} certificate(s)", chain.len()),
                );
                report.pass_or_fail(
                    "TLS chain in order",
                    ordered,
                    if ordered {
                        "each certificate is issued by the next"
                    } else {
                        "the served chain is out of order"
                    },
                    "InvalidIdentityToken (JWKS fetch fails)",
                );
                if let Some(t) = thumbprint(&chain) {
                    report.add("thumbprint", Outcome::Pass, t, "-");
                }
            }
            Err(e) => report.add(
                "TLS chain verifies",
                Outcome::Fail,
                format!("{e:#}"),
                "InvalidIdentityToken (JWKS fetch fails)",
            ),
        }
    } else {
        report.add(
            "TLS chain verifies",
            Outcome::Skip,
            "not https",
            "InvalidIdentityToken",
        );
    }
}
