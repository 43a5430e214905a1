//! The development TLS setup of `serve --dev-tls`: a CA and a server
//! certificate made in `keys/` and kept across restarts.
//!
//! Clients are told to trust the CA, so it must not be able to vouch for
//! anything but the development server: it carries critical name constraints
//! (localhost and its subdomains, 127.0.0.0/8, ::1, and exactly the extra
//! hosts asked for when it was made) and lives about two years. Its permitted
//! names are recorded beside it, in `dev-ca.hosts`.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, PublicKeyData,
};
use time::{Duration, OffsetDateTime};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;

use super::tls::load;
use crate::config::TlsFiles;
use crate::x509;

/// How long a new development CA lives.
const CA_LIFETIME: Duration = Duration::days(730);
/// How long a new server certificate lives (never past its CA).
const LEAF_LIFETIME: Duration = Duration::days(365);
/// A CA or certificate this close to its end is made anew.
const RENEW_BEFORE: Duration = Duration::days(30);
/// Certificates start this long before they are made, for clients whose
/// clocks are behind.
const CLOCK_SKEW: Duration = Duration::hours(1);

/// Files of the development TLS setup (`serve --dev-tls`).
pub struct DevTls {
    /// The CA certificate clients should trust.
    pub ca: PathBuf,
    /// The server's chain and key.
    pub files: TlsFiles,
    /// Why a kept CA was replaced by a new one, which clients must now trust
    /// instead (`None` when the kept CA serves, or on the first start).
    pub replaced_ca: Option<String>,
}

/// A name the development CA permits (an RFC 5280 name constraint): a DNS
/// name with its subdomains, or an IP network.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Permitted {
    Dns(String),
    Ip(IpAddr, u8),
}

impl Permitted {
    /// What every development CA permits: localhost and its subdomains,
    /// 127.0.0.0/8 and ::1.
    fn base() -> Vec<Permitted> {
        vec![
            Permitted::Dns("localhost".into()),
            Permitted::Ip([127, 0, 0, 0].into(), 8),
            Permitted::Ip(std::net::Ipv6Addr::LOCALHOST.into(), 128),
        ]
    }

    /// The narrowest entry that permits `host`: the name, or the one address.
    fn exactly(host: &str) -> Permitted {
        match host.parse::<IpAddr>() {
            Ok(ip @ IpAddr::V4(_)) => Permitted::Ip(ip, 32),
            Ok(ip @ IpAddr::V6(_)) => Permitted::Ip(ip, 128),
            Err(_) => Permitted::Dns(host.to_ascii_lowercase()),
        }
    }

    /// Whether a certificate for `host` (a DNS name or an IP address) falls
    /// under this entry, as a verifier applying the constraint decides.
    fn permits(&self, host: &str) -> bool {
        match (self, host.parse::<IpAddr>()) {
            (Permitted::Ip(net, prefix), Ok(ip)) => match (net, ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                    u32::from(*n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                    u128::from(*n) & mask == u128::from(a) & mask
                }
                _ => false,
            },
            (Permitted::Dns(name), Err(_)) => {
                let host = host.to_ascii_lowercase();
                host == *name || host.ends_with(&format!(".{name}"))
            }
            _ => false,
        }
    }

    /// Reads a line of `dev-ca.hosts`: a DNS name, or `address/prefix`.
    fn parse(line: &str) -> Option<Permitted> {
        match line.split_once('/') {
            Some((ip, prefix)) => {
                let ip: IpAddr = ip.parse().ok()?;
                let prefix: u8 = prefix.parse().ok()?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                (prefix <= max).then_some(Permitted::Ip(ip, prefix))
            }
            None if !line.is_empty() && line.parse::<IpAddr>().is_err() => {
                Some(Permitted::Dns(line.to_ascii_lowercase()))
            }
            None => None,
        }
    }

    fn subtree(&self) -> GeneralSubtree {
        match self {
            Permitted::Dns(name) => GeneralSubtree::DnsName(name.clone()),
            Permitted::Ip(ip, prefix) => {
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*ip, *prefix))
            }
        }
    }
}

impl fmt::Display for Permitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Permitted::Dns(name) => f.write_str(name),
            Permitted::Ip(ip, prefix) => write!(f, "{ip}/{prefix}"),
        }
    }
}

const HOSTS_HEADER: &str = "# The names keys/dev-ca.pem permits (its name constraints), one a line.\n\
     # Written with the CA; a start that needs another host makes a new CA.\n";

/// The parameters of the development CA. The name and key usages are fixed:
/// a kept CA's key with these parameters signs certificates that chain to it.
fn ca_params(
    permitted: &[Permitted],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "nomos-issuer development CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted.iter().map(Permitted::subtree).collect(),
        excluded_subtrees: Vec::new(),
    });
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

/// A development CA kept in `keys/`.
struct KeptCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    permitted: Vec<Permitted>,
    not_after: OffsetDateTime,
}

/// The CA files in a directory.
struct CaFiles {
    cert: PathBuf,
    key: PathBuf,
    hosts: PathBuf,
}

impl CaFiles {
    /// Reads the kept CA, or says why it cannot be used.
    fn read(&self) -> Result<KeptCa, String> {
        let der = CertificateDer::from_pem_file(&self.cert)
            .map_err(|_| format!("{} cannot be read", self.cert.display()))?;
        // The error of a key file never echoes its content.
        let key = std::fs::read_to_string(&self.key)
            .ok()
            .and_then(|pem| KeyPair::from_pem(&pem).ok())
            .ok_or_else(|| format!("{} cannot be read", self.key.display()))?;
        if x509::subject_public_key_info(&der) != Some(key.subject_public_key_info().as_slice()) {
            return Err(format!(
                "{} does not belong to {}",
                self.key.display(),
                self.cert.display()
            ));
        }
        let (not_before, not_after) = x509::validity(&der)
            .ok_or_else(|| format!("{} has no readable validity", self.cert.display()))?;
        let text = std::fs::read_to_string(&self.hosts).map_err(|_| {
            format!(
                "the kept CA predates name constraints (no {})",
                self.hosts.display()
            )
        })?;
        let permitted = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                Permitted::parse(l)
                    .ok_or_else(|| format!("{} has a bad line {l:?}", self.hosts.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let issuer = Issuer::new(ca_params(&permitted, not_before, not_after), key);
        Ok(KeptCa {
            issuer,
            der,
            permitted,
            not_after,
        })
    }

    /// Makes a new CA permitting `permitted`. The hosts file goes first and
    /// comes back last, so a start cut short leaves a CA that is made anew.
    fn create(&self, permitted: Vec<Permitted>, now: OffsetDateTime) -> anyhow::Result<KeptCa> {
        match std::fs::remove_file(&self.hosts) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", self.hosts.display()));
            }
            _ => {}
        }
        let key = KeyPair::generate()?;
        let not_after = now + CA_LIFETIME;
        let params = ca_params(&permitted, now - CLOCK_SKEW, not_after);
        let cert = params.self_signed(&key)?;
        write_private(&self.key, &key.serialize_pem())
            .with_context(|| format!("cannot write {}", self.key.display()))?;
        std::fs::write(&self.cert, cert.pem())
            .with_context(|| format!("cannot write {}", self.cert.display()))?;
        let lines: String = permitted.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(&self.hosts, format!("{HOSTS_HEADER}{lines}"))
            .with_context(|| format!("cannot write {}", self.hosts.display()))?;
        Ok(KeptCa {
            issuer: Issuer::new(params, key),
            der: cert.der().clone(),
            permitted,
            not_after,
        })
    }
}

/// Makes a name-constrained CA and a server certificate for `hosts` in `dir`,
/// or reuses them. The CA is kept (clients trust it) while it permits every
/// host and has more than 30 days left; otherwise a new one is made and
/// [`DevTls::replaced_ca`] says why. The server certificate is kept while it
/// is for the same hosts, from that CA, and has more than 30 days left.
pub fn dev_certificates(dir: &Path, hosts: &[String]) -> anyhow::Result<DevTls> {
    dev_certificates_at(dir, hosts, OffsetDateTime::now_utc())
}

fn dev_certificates_at(
    dir: &Path,
    hosts: &[String],
    now: OffsetDateTime,
) -> anyhow::Result<DevTls> {
    let ca_files = CaFiles {
        cert: dir.join("dev-ca.pem"),
        key: dir.join("dev-ca.key"),
        hosts: dir.join("dev-ca.hosts"),
    };
    let files = TlsFiles {
        cert: dir.join("dev-tls.pem"),
        key: dir.join("dev-tls.key"),
    };
    let hosts_file = dir.join("dev-tls.hosts");
    let wanted = hosts.join(",");
    // Certificates hold whole seconds.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let renew_by = now + RENEW_BEFORE;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let first = !ca_files.cert.exists() && !ca_files.key.exists();
    let kept = ca_files.read().and_then(|ca| {
        if ca.not_after <= renew_by {
            return Err(format!("the kept CA expires on {}", ca.not_after.date()));
        }
        match hosts
            .iter()
            .find(|h| !ca.permitted.iter().any(|p| p.permits(h)))
        {
            Some(h) => Err(format!("the kept CA does not permit {h}")),
            None => Ok(ca),
        }
    });
    let (ca, replaced_ca) = match kept {
        Ok(ca) => (ca, None),
        Err(why) => {
            let mut permitted = Permitted::base();
            for h in hosts {
                if !permitted.iter().any(|p| p.permits(h)) {
                    permitted.push(Permitted::exactly(h));
                }
            }
            let ca = ca_files
                .create(permitted, now)
                .context("cannot make the development CA")?;
            (ca, (!first).then_some(why))
        }
    };

    // Kept while a client trusting the CA accepts it for every host 30 days
    // from now: same CA (all of them share one name), same hosts, not ending.
    let leaf_is_current = replaced_ca.is_none()
        && load(&files).is_ok()
        && std::fs::read_to_string(&hosts_file).is_ok_and(|h| h.trim() == wanted)
        && CertificateDer::from_pem_file(&files.cert).is_ok_and(|der| {
            hosts
                .iter()
                .all(|h| verify_for(&ca.der, &der, h, renew_by).is_ok())
        });
    if !leaf_is_current {
        let leaf_pair = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "nomos-issuer (development)");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = (now + LEAF_LIFETIME).min(ca.not_after);
        let leaf = params.signed_by(&leaf_pair, &ca.issuer)?;
        write_private(&files.key, &leaf_pair.serialize_pem())
            .with_context(|| format!("cannot write {}", files.key.display()))?;
        std::fs::write(&files.cert, leaf.pem())
            .with_context(|| format!("cannot write {}", files.cert.display()))?;
        std::fs::write(&hosts_file, &wanted)
            .with_context(|| format!("cannot write {}", hosts_file.display()))?;
    }
    Ok(DevTls {
        ca: ca_files.cert,
        files,
        replaced_ca,
    })
}

/// What a client that trusts only `ca` says of `cert` for `host` at `at`.
fn verify_for(
    ca: &CertificateDer<'static>,
    cert: &CertificateDer<'_>,
    host: &str,
    at: OffsetDateTime,
) -> Result<(), tokio_rustls::rustls::Error> {
    use tokio_rustls::rustls::client::WebPkiServerVerifier;
    use tokio_rustls::rustls::client::danger::ServerCertVerifier;
    use tokio_rustls::rustls::pki_types::{ServerName, UnixTime};
    use tokio_rustls::rustls::{Error, RootCertStore, crypto::ring};
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone())?;
    let verifier = WebPkiServerVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        std::sync::Arc::new(ring::default_provider()),
    )
    .build()
    .map_err(|e| Error::General(e.to_string()))?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| Error::General(format!("{host:?} is not a server name")))?;
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
    ));
    verifier.verify_server_cert(cert, &[], &name, &[], at)?;
    Ok(())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_files(dir: &Path) -> CaFiles {
        CaFiles {
            cert: dir.join("dev-ca.pem"),
            key: dir.join("dev-ca.key"),
            hosts: dir.join("dev-ca.hosts"),
        }
    }

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|h| h.to_string()).collect()
    }

    /// What rustls (webpki) says of `leaf` for `name` at `now`, trusting only `ca`.
    fn verify(
        ca: &CertificateDer<'static>,
        leaf: &CertificateDer<'static>,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<(), String> {
        verify_for(ca, leaf, name, now).map_err(|e| format!("{e:?}"))
    }

    /// A server certificate for `name` signed with the CA's key, as anyone
    /// holding keys/dev-ca.key could make.
    fn signed_by_ca(ca: &KeptCa, name: &str, now: OffsetDateTime) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + Duration::days(30);
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &ca.issuer).unwrap().der().clone()
    }

    fn served(dev: &DevTls) -> CertificateDer<'static> {
        CertificateDer::from_pem_file(&dev.files.cert).unwrap()
    }

    #[test]
    fn the_dev_ca_vouches_only_for_localhost_and_the_hosts_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let asked = hosts(&["10.1.2.3", "127.0.0.1", "::1", "id.dev.test", "localhost"]);
        let dev = dev_certificates_at(dir.path(), &asked, now).unwrap();
        assert!(dev.replaced_ca.is_none(), "a first CA replaces nothing");
        let ca = ca_files(dir.path()).read().unwrap();
        for h in &asked {
            verify(&ca.der, &served(&dev), h, now).unwrap_or_else(|e| panic!("{h}: {e}"));
        }
        // Whatever the CA's key signs, verifiers accept only the permitted names.
        for name in [
            "localhost",
            "api.localhost",
            "127.0.0.1",
            "127.200.0.9",
            "::1",
            "id.dev.test",
            "a.id.dev.test",
            "10.1.2.3",
        ] {
            let leaf = signed_by_ca(&ca, name, now);
            verify(&ca.der, &leaf, name, now).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for name in [
            "evil.example.com",
            "localhost.evil.example.com",
            "dev.test",
            "10.1.2.4",
            "192.168.1.1",
            "::2",
            "::ffff:127.0.0.1",
        ] {
            let leaf = signed_by_ca(&ca, name, now);
            let e = verify(&ca.der, &leaf, name, now).unwrap_err();
            assert!(e.contains("NameConstraintViolation"), "{name}: {e}");
        }

        // OpenSSL reads the same constraints, critical, and the validity.
        use openssl::asn1::Asn1Time;
        use openssl::x509::X509;
        let pem = std::fs::read(&dev.ca).unwrap();
        let x = X509::from_pem(&pem).unwrap();
        let text = String::from_utf8(x.to_text().unwrap()).unwrap();
        let constraints: Vec<&str> = text
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "X509v3 Name Constraints: critical")
            .skip(2) // the header and "Permitted:"
            .take_while(|l| l.starts_with("DNS:") || l.starts_with("IP:"))
            .collect();
        assert_eq!(
            constraints,
            [
                "DNS:localhost",
                "IP:127.0.0.0/255.0.0.0",
                "IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
                "IP:10.1.2.3/255.255.255.255",
                "DNS:id.dev.test",
            ],
            "{text}"
        );
        let now_asn1 = Asn1Time::from_unix(now.unix_timestamp()).unwrap();
        let ca_life = now_asn1.diff(x.not_after()).unwrap();
        assert!((729..=731).contains(&ca_life.days), "{ca_life:?}");
        let skew = x.not_before().diff(&now_asn1).unwrap();
        assert!(
            skew.days == 0 && (3500..=3700).contains(&skew.secs),
            "{skew:?}"
        );
        let leaf = X509::from_pem(&std::fs::read(&dev.files.cert).unwrap()).unwrap();
        let leaf_life = now_asn1.diff(leaf.not_after()).unwrap();
        assert!((364..=366).contains(&leaf_life.days), "{leaf_life:?}");
        let skew = leaf.not_before().diff(&now_asn1).unwrap();
        assert!(
            skew.days == 0 && (3500..=3700).contains(&skew.secs),
            "{skew:?}"
        );

        // And OpenSSL's chain verification refuses a name outside them too.
        let openssl_verifies = |der: &CertificateDer<'_>| {
            use openssl::stack::Stack;
            use openssl::x509::store::X509StoreBuilder;
            use openssl::x509::{X509StoreContext, X509VerifyResult};
            let mut store = X509StoreBuilder::new().unwrap();
            store.add_cert(x.clone()).unwrap();
            let store = store.build();
            let leaf = X509::from_der(der).unwrap();
            let mut ctx = X509StoreContext::new().unwrap();
            ctx.init(&store, &leaf, &Stack::new().unwrap(), |c| {
                c.verify_cert().map(|_| c.error())
            })
            .unwrap()
                == X509VerifyResult::OK
        };
        assert!(openssl_verifies(&signed_by_ca(&ca, "localhost", now)));
        assert!(!openssl_verifies(&signed_by_ca(
            &ca,
            "evil.example.com",
            now
        )));
    }

    #[test]
    fn a_kept_dev_ca_is_replaced_only_when_it_cannot_serve() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let read = |f: &str| std::fs::read(d.join(f)).unwrap();
        let t0 = OffsetDateTime::now_utc();
        let base = hosts(&["127.0.0.1", "::1", "localhost"]);
        assert!(
            dev_certificates_at(d, &base, t0)
                .unwrap()
                .replaced_ca
                .is_none()
        );
        let (ca0, leaf0) = (read("dev-ca.pem"), read("dev-tls.pem"));
        // The same hosts again: nothing is made.
        let dev = dev_certificates_at(d, &base, t0).unwrap();
        assert!(dev.replaced_ca.is_none());
        assert_eq!(
            (read("dev-ca.pem"), read("dev-tls.pem")),
            (ca0.clone(), leaf0.clone())
        );
        // Hosts the CA already permits: a new certificate from the same CA.
        let covered = hosts(&[
            "127.0.0.1",
            "127.0.0.2",
            "::1",
            "dev.localhost",
            "localhost",
        ]);
        let dev = dev_certificates_at(d, &covered, t0).unwrap();
        assert!(dev.replaced_ca.is_none());
        assert_eq!(read("dev-ca.pem"), ca0);
        assert_ne!(read("dev-tls.pem"), leaf0);
        let ca = ca_files(d).read().unwrap();
        verify(&ca.der, &served(&dev), "dev.localhost", t0).unwrap();

        // A host outside the constraints: a new CA, and the reason to say so.
        let wider = hosts(&["127.0.0.1", "::1", "id.dev.test", "localhost"]);
        let dev = dev_certificates_at(d, &wider, t0).unwrap();
        let why = dev.replaced_ca.clone().unwrap();
        assert_eq!(why, "the kept CA does not permit id.dev.test");
        let ca1 = read("dev-ca.pem");
        assert_ne!(ca1, ca0);
        let listed = std::fs::read_to_string(d.join("dev-ca.hosts")).unwrap();
        assert!(
            listed.ends_with("localhost\n127.0.0.0/8\n::1/128\nid.dev.test\n"),
            "{listed}"
        );
        let ca = ca_files(d).read().unwrap();
        verify(&ca.der, &served(&dev), "id.dev.test", t0).unwrap();
        assert!(
            dev_certificates_at(d, &wider, t0)
                .unwrap()
                .replaced_ca
                .is_none()
        );

        // The certificate renews on its own 30 days before its end; the CA stays.
        let leaf1 = read("dev-tls.pem");
        let t = t0 + Duration::days(330);
        assert!(
            dev_certificates_at(d, &wider, t)
                .unwrap()
                .replaced_ca
                .is_none()
        );
        assert_eq!(read("dev-tls.pem"), leaf1, "still 35 days left");
        let t = t0 + Duration::days(340);
        let dev = dev_certificates_at(d, &wider, t).unwrap();
        assert!(dev.replaced_ca.is_none());
        assert_eq!(read("dev-ca.pem"), ca1);
        assert_ne!(read("dev-tls.pem"), leaf1);
        verify(&ca.der, &served(&dev), "localhost", t).unwrap();
        // Made late in the CA's life, it ends with the CA.
        std::fs::remove_file(d.join("dev-tls.hosts")).unwrap();
        let dev = dev_certificates_at(d, &wider, t0 + Duration::days(500)).unwrap();
        let leaf_end = x509::validity(&served(&dev)).unwrap().1;
        assert_eq!(leaf_end, ca.not_after);

        // Within 30 days of its end the CA is made anew.
        let t = t0 + Duration::days(701);
        let why = dev_certificates_at(d, &wider, t)
            .unwrap()
            .replaced_ca
            .unwrap();
        assert!(why.starts_with("the kept CA expires on "), "{why}");
        let ca2 = read("dev-ca.pem");
        assert_ne!(ca2, ca1);
        let ca = ca_files(d).read().unwrap();
        assert_eq!(
            ca.not_after,
            (t + CA_LIFETIME).replace_nanosecond(0).unwrap()
        );

        // A CA kept from before name constraints (no hosts file) is replaced.
        std::fs::remove_file(d.join("dev-ca.hosts")).unwrap();
        let dev = dev_certificates_at(d, &wider, t).unwrap();
        let why = dev.replaced_ca.clone().unwrap();
        assert!(why.contains("predates name constraints"), "{why}");
        assert_ne!(read("dev-ca.pem"), ca2);
        let ca = ca_files(d).read().unwrap();
        verify(&ca.der, &served(&dev), "localhost", t).unwrap();

        // So is one whose key is not its own (a start cut short).
        let ca3 = read("dev-ca.pem");
        let leaf3 = (read("dev-tls.pem"), read("dev-tls.key"));
        write_private(
            &d.join("dev-ca.key"),
            &KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        let why = dev_certificates_at(d, &wider, t)
            .unwrap()
            .replaced_ca
            .unwrap();
        assert!(why.contains("does not belong to"), "{why}");
        assert_ne!(read("dev-ca.pem"), ca3);
        assert!(!why.contains("PRIVATE KEY"));

        // A certificate left from an earlier CA (they all bear one name) is
        // made anew from the kept CA.
        std::fs::write(d.join("dev-tls.pem"), &leaf3.0).unwrap();
        write_private(&d.join("dev-tls.key"), &String::from_utf8(leaf3.1).unwrap()).unwrap();
        let dev = dev_certificates_at(d, &wider, t).unwrap();
        assert!(dev.replaced_ca.is_none());
        assert_ne!(read("dev-tls.pem"), leaf3.0);
        let ca = ca_files(d).read().unwrap();
        verify(&ca.der, &served(&dev), "localhost", t).unwrap();
    }

    #[test]
    fn permitted_names_match_as_verifiers_match_them() {
        let localhost = Permitted::Dns("localhost".into());
        assert!(localhost.permits("localhost") && localhost.permits("a.b.LOCALHOST"));
        assert!(!localhost.permits("notlocalhost") && !localhost.permits("localhost.evil"));
        assert!(!localhost.permits("127.0.0.1"));
        let loop4 = Permitted::Ip([127, 0, 0, 0].into(), 8);
        assert!(loop4.permits("127.255.0.1") && !loop4.permits("128.0.0.1"));
        assert!(!loop4.permits("::ffff:127.0.0.1") && !loop4.permits("localhost"));
        let any6 = Permitted::Ip(std::net::Ipv6Addr::UNSPECIFIED.into(), 0);
        assert!(any6.permits("2001:db8::1") && !any6.permits("10.0.0.1"));
        for p in Permitted::base().into_iter().chain([
            Permitted::exactly("10.0.0.1"),
            Permitted::exactly("Id.Dev.Test"),
        ]) {
            assert_eq!(Permitted::parse(&p.to_string()), Some(p));
        }
        for bad in ["", "10.0.0.1", "10.0.0.1/33", "::1/129", "x/8"] {
            assert_eq!(Permitted::parse(bad), None, "{bad}");
        }
    }
}
