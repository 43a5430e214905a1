//! Start-up: open the store, check the KEKs against every stored key, bring the
//! keys up to date with the rotation plan, and build the state every request shares.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;

use crate::audit::writer::AuditWriter;
use crate::audit::writer::decisions::DecisionWriter;
use crate::clock::SystemClock;
use crate::config::{KekSource, Settings};
use crate::key_manager::KeyManager;
use crate::keys::kek::KekError;
use crate::keys::keyring::Endpoints;
use crate::keys::rotation::Request;
use crate::keys::{Kek, KekSet, KeyRing, Published, StoredKey};
use crate::metrics::Metrics;
use crate::oauth::grant::TokenService;
use crate::oauth::principals::PrincipalCache;
use crate::ratelimit::KeyedLimit;
use crate::store::{self, Backend, Store};

pub use crate::clock::now;

/// State shared by every request, built once.
pub struct App {
    /// Validated settings.
    pub settings: Settings,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Published keys and the signer.
    pub keys: Arc<KeyRing>,
    /// The token endpoint's logic.
    pub tokens: TokenService,
    /// Key rotation and reloading.
    pub manager: Arc<KeyManager>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Token requests per source address.
    pub address_limit: Option<Arc<KeyedLimit<IpAddr>>>,
    /// The audit writer (the token service records through it).
    pub audit: AuditWriter,
}

/// Opens the store. Migrations run on the embedded store always and on Postgres
/// only when asked; a Postgres schema that is behind is a clear error.
pub async fn open_store(settings: &Settings, migrate: bool) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::open(&settings.database_url)
        .await
        .with_context(|| format!("cannot open the {} store", backend_name(settings.backend)))?;
    if migrate || settings.backend == Backend::Sqlite {
        store.migrate().await.context("cannot apply migrations")?;
    } else {
        let pending = store
            .pending_migrations()
            .await
            .context("cannot read the schema version")?;
        if pending > 0 {
            bail!(
                "the database schema is {pending} migration(s) behind: run `nomos-issuer migrate` (or `serve --migrate`)"
            );
        }
    }
    Ok(store)
}

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Postgres => "Postgres",
        Backend::Sqlite => "embedded SQLite",
    }
}

/// Loads the KEKs. Only the embedded default, with no keys stored yet, generates one.
pub fn load_keks(settings: &Settings, stored_keys: &[StoredKey]) -> anyhow::Result<KekSet> {
    let active = match &settings.kek {
        KekSource::Env(text) => Kek::from_base64(text, "NOMOS_ISSUER_KEK")?,
        KekSource::File(path) if path.exists() => Kek::read_file(path)?,
        KekSource::File(path) => {
            let wrapped: Vec<&str> = stored_keys
                .iter()
                .filter_map(|k| k.private_key.as_ref().map(|w| w.kek_id.as_str()))
                .collect();
            if let Some(kek_id) = wrapped.first() {
                return Err(KekError::Io {
                    path: path.display().to_string(),
                    action: "read",
                    err: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "the file is missing, but the store holds {} signing key(s) encrypted under kek id {kek_id}: restore that file or set NOMOS_ISSUER_KEK. A new KEK could not decrypt them, so nothing was changed",
                            wrapped.len()
                        ),
                    ),
                }
                .into());
            }
            if settings.backend != Backend::Sqlite || !settings.kek_is_default {
                bail!(
                    "no key-encryption key at {}: create one with `head -c 32 /dev/urandom | base64 > {}` (mode 0600) or set NOMOS_ISSUER_KEK; only the embedded default generates its own",
                    path.display(),
                    path.display()
                );
            }
            let kek = Kek::create_file(path)?;
            tracing::warn!(path = %path.display(), kek_id = kek.id(), "generated a new key-encryption key; back it up: without it the signing keys cannot be decrypted");
            kek
        }
    };
    let previous = settings
        .previous_kek_files
        .iter()
        .map(|p| Kek::read_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KekSet::new(active, previous))
}

/// Decrypts every published key, so that a wrong KEK is found before anything
/// is written.
pub fn check_keks(keks: &KekSet, keys: &[StoredKey]) -> anyhow::Result<()> {
    for key in keys.iter().filter(|k| k.state.is_published()) {
        if let Some(w) = &key.private_key {
            keks.unwrap(&key.kid, key.alg, w)?;
        }
    }
    Ok(())
}

/// Checks the KEKs, applies whatever the rotation plan says is due (on an empty
/// store: a current and a next key), and builds the published view.
pub async fn start_keys(
    store: Arc<dyn Store>,
    settings: &Settings,
) -> anyhow::Result<(Arc<KeyManager>, Published)> {
    let keys = store
        .list_keys()
        .await
        .context("cannot list signing keys")?;
    let keks = load_keks(settings, &keys)?;
    check_keks(&keks, &keys)?;
    let endpoints = Endpoints::new(&settings.issuer);
    let manager = Arc::new(KeyManager::new(
        store,
        Arc::new(keks),
        settings.rotation.clone(),
        endpoints,
    ));
    manager
        .run(&Request::Scheduled, now())
        .await
        .context("cannot bring the signing keys up to date")?;
    let published = manager.build().await?;
    Ok((manager, published))
}

impl App {
    /// Builds the shared state and starts the audit and decision writers.
    /// Await the returned handle after dropping the `App` to flush them.
    pub async fn build(
        settings: Settings,
        migrate: bool,
    ) -> anyhow::Result<(Arc<App>, JoinHandle<()>)> {
        let store = open_store(&settings, migrate).await?;
        let (manager, published) = start_keys(store.clone(), &settings).await?;
        let keys = Arc::new(KeyRing::new(published));
        manager.attach(keys.clone());
        let metrics = Arc::new(Metrics::new());
        let (audit, audit_task) = AuditWriter::start(store.clone(), metrics.audit_commit.clone());
        let (decisions, decisions_task) =
            DecisionWriter::start(store.clone(), metrics.decisions_dropped.clone());
        let tokens = TokenService {
            principals: Arc::new(PrincipalCache::new(
                store.clone(),
                settings.principal_cache_ttl,
            )),
            keys: keys.clone(),
            endpoints: manager.endpoints().clone(),
            audit: Arc::new(audit.clone()),
            decisions: Arc::new(decisions),
            clock: Arc::new(SystemClock),
            token_ttl: settings
                .token_ttl
                .min(settings.rotation.max_token_lifetime as u32),
            assertion_skew: i64::from(settings.assertion_skew),
            failure_limit: KeyedLimit::new(settings.auth_failure_limit),
        };
        let address_limit = KeyedLimit::new(settings.address_rate_limit).map(Arc::new);
        let app = Arc::new(App {
            settings,
            store,
            keys,
            tokens,
            manager,
            metrics,
            address_limit,
            audit,
        });
        // The handle flushes both writers.
        let writers = tokio::spawn(async move {
            for task in [audit_task, decisions_task] {
                if let Err(e) = task.await {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            }
        });
        Ok((app, writers))
    }
}
