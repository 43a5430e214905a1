//! The development TLS setup of `serve --dev-tls`: a CA and a server
//! certificate made in `keys/` and kept across restarts.

use std::path::{Path, PathBuf};

use super::tls::load;
use crate::config::TlsFiles;

/// Files of the development TLS setup (`serve --dev-tls`).
pub struct DevTls {
    /// The CA certificate clients should trust.
    pub ca: PathBuf,
    /// The server's chain and key.
    pub files: TlsFiles,
}

/// Makes (once) a self-signed CA and a server certificate for `hosts` in `dir`.
/// Existing files are reused while they still load; the CA key is kept so that
/// a new server certificate (for new host names) chains to the same CA.
pub fn dev_certificates(dir: &Path, hosts: &[String]) -> anyhow::Result<DevTls> {
    use anyhow::Context;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_cert = dir.join("dev-ca.pem");
    let ca_key = dir.join("dev-ca.key");
    let files = TlsFiles {
        cert: dir.join("dev-tls.pem"),
        key: dir.join("dev-tls.key"),
    };
    let hosts_file = dir.join("dev-tls.hosts");
    let wanted = hosts.join(",");
    if load(&files).is_ok()
        && std::fs::read_to_string(&hosts_file).is_ok_and(|h| h.trim() == wanted)
    {
        return Ok(DevTls { ca: ca_cert, files });
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The CA's parameters are fixed, so its kept key re-creates the same issuer.
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nomos-issuer development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let kept = std::fs::read_to_string(&ca_key)
        .ok()
        .and_then(|pem| KeyPair::from_pem(&pem).ok())
        .filter(|_| ca_cert.exists());
    let ca_pair = match kept {
        Some(pair) => pair,
        None => {
            let pair = KeyPair::generate()?;
            let cert = ca_params.self_signed(&pair)?;
            write_private(&ca_key, &pair.serialize_pem())?;
            std::fs::write(&ca_cert, cert.pem())?;
            pair
        }
    };
    let issuer = Issuer::new(ca_params, ca_pair);
    let leaf_pair = KeyPair::generate()?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "nomos-issuer (development)");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&leaf_pair, &issuer)?;
    write_private(&files.key, &leaf_pair.serialize_pem())?;
    std::fs::write(&files.cert, leaf.pem())?;
    std::fs::write(&hosts_file, &wanted)?;
    Ok(DevTls { ca: ca_cert, files })
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
