//! `serve`, and the issuer other commands take from it: what
//! `serve` recorded in the store, or what it would serve under.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::app::now;
use crate::config::{ConfigError, Settings};
use crate::server::Server;
use crate::store::{ServedIssuer, Store};

/// Options of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Apply pending migrations first (always done on the embedded store)
    #[arg(long)]
    pub migrate: bool,
    /// Serve HTTPS with a development CA (valid only for localhost and this
    /// issuer's host, for two years) and a certificate made in keys/; clients
    /// trust keys/dev-ca.pem. The default issuer becomes https://<listen>. Not
    /// for production
    #[arg(long)]
    pub dev_tls: bool,
}

/// The directory of the development TLS files.
pub const DEV_TLS_DIR: &str = "keys";

pub async fn run(mut settings: Settings, args: ServeArgs) -> anyhow::Result<()> {
    if args.dev_tls {
        anyhow::ensure!(
            settings.tls.is_none(),
            "--dev-tls makes its own certificate: drop tls_cert and tls_key"
        );
        let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        if !settings.listen.ip().is_unspecified() {
            hosts.push(settings.listen.ip().to_string());
        }
        if let Some(host) = url::Url::parse(&settings.issuer)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
        {
            hosts.push(host);
        }
        hosts.sort();
        hosts.dedup();
        let dev = crate::http::dev_tls::dev_certificates(std::path::Path::new(DEV_TLS_DIR), &hosts)
            .context("cannot make the development TLS certificate")?;
        if let Some(why) = &dev.replaced_ca {
            tracing::warn!(
                ca = %dev.ca.display(),
                "made a new development CA because {why}: clients must trust the new {}",
                dev.ca.display()
            );
        }
        tracing::warn!(
            ca = %dev.ca.display(),
            "development TLS: trust this CA on clients (e.g. curl --cacert {}); not for production",
            dev.ca.display()
        );
        settings.tls = Some(dev.files);
        if settings.issuer_follows_listen {
            settings.issuer = format!("https://{}", settings.listen);
            settings.warnings = crate::config::issuer_warnings(&settings.issuer);
        }
    }
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let backend = format!("{:?}", settings.backend).to_lowercase();
    let alg = settings.rotation.alg;
    let server = Server::start(settings, args.migrate).await?;
    // The signal handlers are installed by the first poll: poll once before
    // the address is announced, so that a SIGTERM sent as soon as it is (by a
    // supervisor, or a test) stops the server gracefully instead of killing it.
    let mut shutdown = std::pin::pin!(super::shutdown_signal());
    let signalled =
        std::future::poll_fn(|cx| std::task::Poll::Ready(shutdown.as_mut().poll(cx).is_ready()))
            .await;
    let served = ServedIssuer {
        issuer: server.app.settings.issuer.clone(),
        dev_tls: args.dev_tls,
        served_at: now(),
    };
    // Local minting (`token mint`) reads it; serving matters more than the record.
    if let Err(e) = server.app.store.record_served_issuer(&served).await {
        tracing::warn!(error = %e, "cannot record the served issuer; `token mint` cannot check its iss against it");
    }
    tracing::info!(
        addr = %server.addr,
        operator_addr = server.operator_addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        issuer = %server.app.settings.issuer,
        store = backend,
        %alg,
        kid = server.app.keys.get().signer.kid(),
        tls = server.app.settings.tls.is_some(),
        "nomos-issuer listening"
    );
    if !signalled {
        shutdown.await;
    }
    tracing::info!("shutting down: draining requests and flushing the audit");
    server.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

/// The development CA of `serve --dev-tls`, when it is in `keys/` here.
pub(super) fn dev_ca() -> Option<PathBuf> {
    let ca = Path::new(DEV_TLS_DIR).join("dev-ca.pem");
    ca.is_file().then_some(ca)
}

/// Where an issuer a command uses came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum IssuerSource {
    /// `--issuer`, `NOMOS_ISSUER_ISSUER` or the file.
    Configured,
    /// The store's record of what `serve` last served under.
    Recorded,
    /// Neither: `http(s)://<listen>`, as `serve` would default to.
    Listen,
    /// Neither, but `serve --dev-tls` left its CA here: `https://<listen>`.
    DevTls,
}

/// The issuer a command uses, where it came from, and the store's record.
#[derive(Debug, Clone)]
pub(super) struct Issuer {
    /// The URL.
    pub url: String,
    /// Where it came from.
    pub source: IssuerSource,
    /// What `serve` last served under, when the store was read and has a record.
    pub recorded: Option<ServedIssuer>,
}

impl Issuer {
    /// The issuer of a command that reads the store (`token mint`, `aws
    /// provider`, `aws trust-policy`): the configured one; else the one `serve`
    /// last served under, so that `serve --dev-tls` (https) and a `serve` on
    /// another port are followed; else `serve`'s own default.
    pub(super) async fn of_store(
        settings: &Settings,
        store: Option<&dyn Store>,
    ) -> anyhow::Result<Issuer> {
        let recorded = match store {
            Some(store) => store
                .served_issuer()
                .await
                .context("cannot read the issuer `serve` last served under")?,
            None => None,
        };
        let (url, source) = match &recorded {
            _ if !settings.issuer_follows_listen => {
                (settings.issuer.clone(), IssuerSource::Configured)
            }
            Some(r) => (r.issuer.clone(), IssuerSource::Recorded),
            None => (settings.issuer.clone(), IssuerSource::Listen),
        };
        Ok(Issuer {
            url,
            source,
            recorded,
        })
    }

    /// The configured issuer when it is not the one the store was last served
    /// under: the message names both.
    pub(super) fn disagreement(&self) -> Option<String> {
        let r = self.recorded.as_ref()?;
        (self.source == IssuerSource::Configured && r.issuer != self.url).then(|| {
            format!(
                "this store was last served under the issuer {}{}, but this command is configured with {}",
                r.issuer,
                if r.dev_tls { " (serve --dev-tls)" } else { "" },
                self.url
            )
        })
    }

    /// Refuses to mint when [`Issuer::disagreement`] finds one: a token would
    /// carry an `iss` the running issuer's discovery contradicts.
    pub(super) fn check_for_minting(&self) -> Result<(), ConfigError> {
        match self.disagreement() {
            None => Ok(()),
            Some(why) => Err(ConfigError::new(
                "issuer",
                format!(
                    "{why}: its tokens would carry an iss that the issuer's discovery contradicts. \
                     Give the --issuer that serve uses, or start serve with {} first",
                    self.url
                ),
            )),
        }
    }

    /// The issuer of a network client (`token fetch|watch`, `aws check`), which
    /// does not open the store: the configured one; else `http://<listen>`, or
    /// https when `serve --dev-tls` left its CA here.
    pub(super) fn of_network(settings: &Settings) -> Issuer {
        let (url, source) = if !settings.issuer_follows_listen {
            (settings.issuer.clone(), IssuerSource::Configured)
        } else if settings.issuer.starts_with("http://") && dev_ca().is_some() {
            (format!("https://{}", settings.listen), IssuerSource::DevTls)
        } else {
            (settings.issuer.clone(), IssuerSource::Listen)
        };
        Issuer {
            url,
            source,
            recorded: None,
        }
    }

    /// A note for stderr when the issuer was not configured, so that a guess
    /// is never silent.
    pub(super) fn note(&self) -> Option<String> {
        let why = match self.source {
            IssuerSource::Configured => return None,
            IssuerSource::Recorded => "the issuer serve last served this store under".to_owned(),
            IssuerSource::DevTls => format!(
                "https because serve --dev-tls made {} here",
                Path::new(DEV_TLS_DIR).join("dev-ca.pem").display()
            ),
            IssuerSource::Listen => "the listen address".to_owned(),
        };
        Some(format!(
            "note: no --issuer given: using {} ({why})",
            self.url
        ))
    }
}

/// The CA file a network client trusts: `--ca-file`, else the development CA
/// of `serve --dev-tls` when it is here. The development CA is name-constrained
/// to loopback and the hosts it was made for, so trusting it is safe.
pub(super) fn ca_file_or_dev_ca(ca_file: Option<&Path>) -> Option<PathBuf> {
    ca_file.map(Path::to_path_buf).or_else(dev_ca)
}
