//! Start-up: open the store, check the KEK against every stored key, make sure a
//! current and a next key exist, and build the state every request shares.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::task::JoinHandle;

use crate::audit::AuditWriter;
use crate::config::{KekSource, Settings};
use crate::keys::keyring::Endpoints;
use crate::keys::{Alg, Kek, KeyRing, KeyState, Published, StoredKey, signer};
use crate::oauth::grant::TokenService;
use crate::oauth::principals::PrincipalCache;
use crate::store::{self, Backend, NewKey, Store};

/// The current time in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

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

/// Loads the KEK. Only the embedded default, with no keys stored yet, generates one.
pub fn load_kek(settings: &Settings, stored_keys: &[StoredKey]) -> anyhow::Result<Kek> {
    match &settings.kek {
        KekSource::Env(text) => Ok(Kek::from_base64(text, "NOMOS_ISSUER_KEK")?),
        KekSource::File(path) if path.exists() => Ok(Kek::read_file(path)?),
        KekSource::File(path) => {
            let wrapped = stored_keys
                .iter()
                .filter(|k| k.private_key.is_some())
                .count();
            if wrapped > 0 {
                bail!(
                    "the key-encryption key file {} is missing, but the store holds {wrapped} signing key(s) encrypted under kek id {}: restore that file or set NOMOS_ISSUER_KEK. A new KEK could not decrypt them, so nothing was changed",
                    path.display(),
                    stored_keys[0]
                        .private_key
                        .as_ref()
                        .map(|w| w.kek_id.as_str())
                        .unwrap_or("?"),
                );
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
            Ok(kek)
        }
    }
}

/// Decrypts every stored key that still has private material, so that a wrong
/// KEK is found before anything is written.
pub fn check_kek(kek: &Kek, keys: &[StoredKey]) -> anyhow::Result<()> {
    for key in keys.iter().filter(|k| k.state.is_published()) {
        if let Some(w) = &key.private_key {
            kek.unwrap(&key.kid, key.alg, w)?;
        }
    }
    Ok(())
}

async fn fresh_key(alg: Alg, kek: &Kek) -> anyhow::Result<NewKey> {
    // RSA generation takes a while; keep it off the async workers.
    let generated = tokio::task::spawn_blocking(move || signer::generate(alg))
        .await
        .context("key generation task failed")??;
    let kid = generated.public.kid.clone();
    Ok(NewKey {
        alg,
        private_key: kek.wrap(&kid, alg, &generated.private),
        public_jwk: generated.public,
    })
}

/// Checks the KEK, then makes sure `alg` has a current and a next key, and builds
/// the published view.
pub async fn load_keys(
    store: &dyn Store,
    settings: &Settings,
    endpoints: &Endpoints,
) -> anyhow::Result<(Kek, Published)> {
    let mut keys = store
        .list_keys()
        .await
        .context("cannot list signing keys")?;
    let kek = load_kek(settings, &keys)?;
    check_kek(&kek, &keys)?;
    let alg = settings.signing_alg;
    let has = |keys: &[StoredKey], s| keys.iter().any(|k| k.alg == alg && k.state == s);
    if !has(&keys, KeyState::Current) || !has(&keys, KeyState::Next) {
        if !has(&keys, KeyState::Current) && keys.iter().any(|k| k.state.is_published()) {
            tracing::warn!(%alg, "no current {alg} key although other keys are published: verifiers that cached the JWKS may reject new tokens until they refetch it");
        }
        let (current, next) = (fresh_key(alg, &kek).await?, fresh_key(alg, &kek).await?);
        let changed = store
            .ensure_keys(&current, &next, now())
            .await
            .context("cannot store new signing keys")?;
        for kid in &changed {
            tracing::info!(%kid, %alg, "signing key added or promoted");
        }
        keys = store
            .list_keys()
            .await
            .context("cannot list signing keys")?;
    }
    let published = Published::build(&keys, &kek, alg, endpoints)?;
    Ok((kek, published))
}

impl App {
    /// Builds the shared state and starts the audit writer. Await the returned
    /// handle after dropping the `App` to flush the audit.
    pub async fn build(
        settings: Settings,
        migrate: bool,
    ) -> anyhow::Result<(Arc<App>, JoinHandle<()>)> {
        let store = open_store(&settings, migrate).await?;
        let endpoints = Endpoints::new(&settings.issuer);
        let (_kek, published) = load_keys(store.as_ref(), &settings, &endpoints).await?;
        let keys = Arc::new(KeyRing::new(published));
        let (audit, audit_task) = AuditWriter::start(store.clone());
        let tokens = TokenService {
            principals: PrincipalCache::new(store.clone(), settings.principal_cache_ttl),
            replay: store.clone(),
            keys: keys.clone(),
            endpoints,
            audit,
            token_ttl: settings.token_ttl,
            assertion_skew: i64::from(settings.assertion_skew),
        };
        let app = Arc::new(App {
            settings,
            store,
            keys,
            tokens,
        });
        Ok((app, audit_task))
    }
}
