//! The embedded SQLite store's files: private whatever the directory's mode, and
//! holding no copy of a signing key once it is destroyed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nomos_issuer::keys::{Alg, KeyState, StoredKey, WrappedKey, signer};
use nomos_issuer::store::{self, Store};
use ring::rand::SecureRandom;

/// Sets the process umask to the usual default, so that files created without
/// an explicit mode come out 0644 and the tests below can tell.
#[cfg(unix)]
#[allow(unsafe_code)] // libc's umask has no safe wrapper in std.
fn default_umask() {
    // SAFETY: umask(2) only sets the process's file creation mask.
    unsafe { libc::umask(0o022) };
}

/// A directory that anyone may list, as `data/` often is when made by hand.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

/// Every file in `dir` with its permission bits.
#[cfg(unix)]
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path(), e.metadata().unwrap().permissions().mode() & 0o777)
        })
        .collect();
    files.sort();
    files
}

/// A key with a valid public JWK and `wrapped` as its stored private key.
fn key_with(wrapped: Vec<u8>, state: KeyState) -> StoredKey {
    let g = signer::generate(Alg::ES256).unwrap();
    StoredKey {
        kid: g.public.kid.clone(),
        alg: Alg::ES256,
        state,
        public_jwk: g.public,
        private_key: Some(WrappedKey {
            kek_id: "kek-test".into(),
            bytes: wrapped,
        }),
        created_at: 100,
        activated_at: (state == KeyState::Current).then_some(100),
        retired_at: None,
    }
}

async fn insert(s: &dyn Store, key: StoredKey) {
    s.update_keys(&move |keys: &[StoredKey]| {
        let mut keys = keys.to_vec();
        keys.push(key.clone());
        Ok(keys)
    })
    .await
    .unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_files_are_private_in_an_open_directory() {
    default_umask();
    let dir = open_dir();
    let db = dir.path().join("nomos-issuer.db");
    let s = store::open(&url(&db)).await.unwrap();
    s.migrate().await.unwrap();
    insert(s.as_ref(), key_with(vec![7; 64], KeyState::Next)).await;
    let files = modes(dir.path());
    let names: Vec<_> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "nomos-issuer.db",
            "nomos-issuer.db-shm",
            "nomos-issuer.db-wal"
        ],
        "the write left a WAL and its index beside the database"
    );
    for (path, mode) in files {
        assert_eq!(mode, 0o600, "{} is mode {mode:o}", path.display());
    }
    s.close().await;
}

/// Log lines written while a test runs on this thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Captures this thread's log lines until the guard is dropped.
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish(),
        );
        (logs, guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_readable_database_file_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    default_umask();
    let (logs, _guard) = Logs::capture();
    let dir = open_dir();
    let db = dir.path().join("nomos-issuer.db");
    // A database made by an earlier version, readable by everyone.
    let s = store::open(&url(&db)).await.unwrap();
    s.migrate().await.unwrap();
    insert(s.as_ref(), key_with(vec![7; 64], KeyState::Next)).await;
    s.close().await;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!logs.text().contains("WARN"), "{}", logs.text());
    let s = store::open(&url(&db)).await.unwrap();
    let warned = logs.text();
    assert!(
        warned.contains("WARN") && warned.contains(&db.display().to_string()),
        "the warning names the file: {warned}"
    );
    s.migrate().await.unwrap();
    assert_eq!(s.list_keys().await.unwrap().len(), 1, "nothing was lost");
    insert(s.as_ref(), key_with(vec![8; 64], KeyState::Next)).await;
    for (path, mode) in modes(dir.path()) {
        assert_eq!(mode, 0o600, "{} is mode {mode:o}", path.display());
    }
    s.close().await;
}

/// The files in `dir` that hold any 16 consecutive bytes of `secret`.
fn files_holding(dir: &Path, secret: &[u8]) -> Vec<String> {
    let pieces: HashSet<&[u8]> = secret.windows(16).collect();
    let mut holding = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if bytes.windows(16).any(|w| pieces.contains(w)) {
            holding.push(path.display().to_string());
        }
    }
    holding
}

/// For a wrapped ES256 key (167 bytes) and a wrapped RS256 one (1,800): the
/// WAL keeps the page image from before the destruction, and a long key's
/// bytes stay in the page's free space unless they are zeroed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_key_leaves_no_copy_in_the_database_files() {
    for len in [167, 1800] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nomos-issuer.db");
        let s = store::open(&url(&db)).await.unwrap();
        s.migrate().await.unwrap();
        let wrapped = random_bytes(len);
        let doomed = key_with(wrapped.clone(), KeyState::Current);
        let kid = doomed.kid.clone();
        insert(s.as_ref(), doomed).await;
        // Another key stays, so that the page keeps a live row beside the freed bytes.
        insert(s.as_ref(), key_with(random_bytes(len), KeyState::Next)).await;
        assert!(
            !files_holding(dir.path(), &wrapped).is_empty(),
            "the stored key is in the files before it is destroyed"
        );
        revoke(s.as_ref(), &kid).await;
        // Read while the store is open: closing the last connection would
        // checkpoint and delete the WAL by itself.
        let holding = files_holding(dir.path(), &wrapped);
        assert!(
            holding.is_empty(),
            "{len} bytes: the destroyed key's bytes remain in {holding:?}"
        );
        let keys = s.list_keys().await.unwrap();
        assert_eq!(
            keys.iter().filter(|k| k.private_key.is_some()).count(),
            1,
            "the other key is intact"
        );
        s.close().await;
    }
}

/// `len` random bytes: a wrapped ES256 key is 167 bytes, a wrapped RS256
/// (3072-bit) key about 1,800.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    bytes
}

async fn revoke(s: &dyn Store, kid: &str) {
    let kid = kid.to_owned();
    s.update_keys(&move |keys: &[StoredKey]| {
        let mut keys = keys.to_vec();
        let k = keys.iter_mut().find(|k| k.kid == kid).unwrap();
        k.state = KeyState::Revoked;
        k.retired_at = Some(200);
        k.private_key = None;
        Ok(keys)
    })
    .await
    .unwrap();
}

/// Takes the busy timeout (5 s) once, waiting for a reader.
#[tokio::test]
async fn a_busy_reader_delays_the_cleanup_to_the_next_destruction() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nomos-issuer.db");
    let s = store::open(&url(&db)).await.unwrap();
    s.migrate().await.unwrap();
    let (first, second) = (random_bytes(167), random_bytes(167));
    let (a, b) = (
        key_with(first.clone(), KeyState::Next),
        key_with(second.clone(), KeyState::Next),
    );
    let (kid_a, kid_b) = (a.kid.clone(), b.kid.clone());
    insert(s.as_ref(), a).await;
    insert(s.as_ref(), b).await;
    // Another process in the middle of a read transaction.
    sqlx::any::install_default_drivers();
    let other = sqlx::AnyPool::connect(&url(&db)).await.unwrap();
    let mut reading = other.begin().await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys")
        .fetch_one(&mut *reading)
        .await
        .unwrap();
    revoke(s.as_ref(), &kid_a).await;
    let warned = logs.text();
    assert!(
        warned.contains("WARN") && warned.contains("readers kept it busy"),
        "{warned}"
    );
    assert!(
        !files_holding(dir.path(), &first).is_empty(),
        "the reader kept the WAL, and the destroyed key in it"
    );
    reading.rollback().await.unwrap();
    revoke(s.as_ref(), &kid_b).await;
    for destroyed in [&first, &second] {
        let holding = files_holding(dir.path(), destroyed);
        assert!(
            holding.is_empty(),
            "destroyed key bytes remain in {holding:?}"
        );
    }
    other.close().await;
    s.close().await;
}
