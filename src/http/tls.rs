//! HTTPS with rustls: TLS 1.2 and 1.3, ALPN h2 and http/1.1, and a
//! certificate that is reloaded without a restart (on change and on SIGHUP).
//!
//! Handshakes run on each connection's own task (`http::serve`), so a slow
//! client never holds up the accept loop; each handshake takes the
//! certificate current when it starts, so a reload never disturbs one in
//! flight.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{ServerConfig, crypto::ring};

use crate::config::TlsFiles;

/// Why a certificate or key could not be loaded. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The key does not belong to the first certificate, or cannot sign.
    #[error("{cert} and {key} do not go together: {why}")]
    Mismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What rustls said.
        why: String,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Reads a PEM chain (leaf first) and its key, and checks they match.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let file_error = |path: &Path, why: String| TlsError::File {
        path: path.display().to_string(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(file_error(
            &files.cert,
            "no CERTIFICATE block: give the chain as PEM, leaf first".into(),
        ));
    }
    // The error of a key file never echoes its content.
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        file_error(
            &files.key,
            format!(
                "no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {}",
                match e {
                    tokio_rustls::rustls::pki_types::pem::Error::Io(io) => io.to_string(),
                    _ => "unreadable PEM".into(),
                }
            ),
        )
    })?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Mismatch {
        cert: files.cert.display().to_string(),
        key: files.key.display().to_string(),
        why: e.to_string(),
    })
}

/// The certificate in use, swapped whole on reload.
#[derive(Debug)]
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: RwLock<Option<(SystemTime, SystemTime)>>,
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Certificates {
    /// Loads the files once; a failure here stops the start.
    pub fn open(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let key = load(&files)?;
        let stamp = modified(&files.cert).zip(modified(&files.key));
        Ok(Arc::new(Certificates {
            files,
            current: RwLock::new(Arc::new(key)),
            stamp: RwLock::new(stamp),
        }))
    }

    /// Loads the files again. On failure the previous certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = modified(&self.files.cert).zip(modified(&self.files.key));
        let key = load(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        *self.stamp.write().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(())
    }

    /// Reloads when either file changed since the last load.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamp = modified(&self.files.cert).zip(modified(&self.files.key));
        if stamp.is_none() || stamp == *self.stamp.read().unwrap_or_else(|p| p.into_inner()) {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    /// The certificate chain in use (leaf first).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cert
            .clone()
    }

    /// Watches the files every 2 s and reloads on SIGHUP too, logging the outcome.
    pub async fn watch(self: Arc<Self>) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            let result = tokio::select! {
                _ = tick.tick() => self.reload_if_changed(),
                _ = hangup => self.reload().map(|()| true),
            };
            match result {
                Ok(true) => {
                    tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, "cannot reload the TLS certificate; still serving the previous one")
                }
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// The rustls server configuration: TLS 1.2 and 1.3, ALPN h2 then http/1.1.
pub fn server_config(certs: Arc<Certificates>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}
