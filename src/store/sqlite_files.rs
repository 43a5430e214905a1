//! The embedded store's files: readable by their owner only, whatever the mode
//! of the directory they are in.
//!
//! The database holds client secret hashes and wrapped signing keys. SQLite
//! creates a new database file with mode 0644 (less the umask), and gives its
//! `-wal`, `-shm` and `-journal` files the permission bits of the database file.
//! So the database file is created here, 0600, before SQLite opens it, and its
//! companions follow.
//!
//! A destroyed private key must leave no copy in these files: the connections
//! run with `secure_delete`, which zeroes deleted content in the pages they
//! write, and [`truncate_wal`] drops the pages' earlier images from the WAL.

use std::path::{Path, PathBuf};

use sqlx::AnyPool;

use super::StoreError;

fn configuration(message: String) -> StoreError {
    StoreError::unavailable(message)
}

/// What a `sqlite:` URL asks of the file system.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// The database file; `None` for an in-memory or temporary database.
    path: Option<PathBuf>,
    /// Whether a missing file is created (`mode=rwc`, or no `mode` at all).
    create: bool,
    /// Whether the URL names a `mode`.
    has_mode: bool,
}

/// Reads a `sqlite:` URL the way sqlx does: `sqlite://PATH?PARAMS`,
/// `sqlite:PATH`, `sqlite::memory:`, `mode=ro|rw|rwc|memory`.
fn target(url: &str) -> Result<Target, StoreError> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mode = url::form_urlencoded::parse(params.as_bytes())
        .find(|(k, _)| k == "mode")
        .map(|(_, v)| v.into_owned());
    let path = percent_encoding::percent_decode_str(database)
        .decode_utf8()
        .map_err(|_| configuration(format!("the SQLite path in {url} is not UTF-8")))?;
    let in_memory = path.is_empty() || path == ":memory:" || mode.as_deref() == Some("memory");
    Ok(Target {
        path: (!in_memory).then(|| PathBuf::from(&*path)),
        create: matches!(mode.as_deref(), None | Some("rwc")),
        has_mode: mode.is_some(),
    })
}

/// Makes the files a `sqlite:` URL names private, creating the database file
/// (and its directory) when the URL allows, and returns the URL to open. A URL
/// without a `mode` opens read-write and creates what is missing.
pub(super) fn prepare(url: &str) -> Result<String, StoreError> {
    let target = target(url)?;
    let Some(path) = &target.path else {
        return Ok(url.to_owned());
    };
    if target.create {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        create_private_file(path)?;
    }
    for file in companions(path) {
        make_private(&file)?;
    }
    Ok(match (target.has_mode, url.contains('?')) {
        (true, _) => url.to_owned(),
        (false, true) => format!("{url}&mode=rwc"),
        (false, false) => format!("{url}?mode=rwc"),
    })
}

/// The database file and the files SQLite keeps beside it.
fn companions(db: &Path) -> Vec<PathBuf> {
    let mut files = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    files
}

/// Creates the embedded store's directory, readable by its owner only: it holds
/// secret hashes and wrapped keys.
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| configuration(format!("cannot create directory {}: {e}", dir.display())))
}

/// Creates an empty database file with mode 0600 unless one exists (an empty
/// file is an empty SQLite database). An existing file is never truncated.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(configuration(format!(
            "cannot create the database file {}: {e}",
            path.display()
        ))),
    }
}

/// Takes group and other access away from an existing file, with a warning:
/// a store made by an earlier version, or copied in, may be readable by all.
#[cfg(unix)]
fn make_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = match std::fs::metadata(path) {
        Ok(m) => m.permissions().mode() & 0o7777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(configuration(format!(
                "cannot read the permissions of {}: {e}",
                path.display()
            )));
        }
    };
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let private = mode & 0o700;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(private)).map_err(|e| {
        configuration(format!(
            "{} is mode {mode:o}: other users can read the store's secret hashes and \
             wrapped keys, and it cannot be made private ({e}); run `chmod 600` on it as its owner",
            path.display()
        ))
    })?;
    tracing::warn!(
        file = %path.display(),
        was = format!("{mode:o}"),
        now = format!("{private:o}"),
        "a database file was readable by other users; it is now readable by its owner only"
    );
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// Copies the WAL into the database file and truncates it to zero bytes; run
/// after a private key was destroyed. `secure_delete` zeroed the key's bytes in
/// the page the destruction wrote, but the WAL still holds that page's earlier
/// images, key included, until a checkpoint copies the new image into the
/// database file and the WAL is emptied. A reader in the middle of a
/// transaction blocks this past the busy timeout: that is logged, never an
/// error for the key update, and the next destruction tries again.
pub(super) async fn truncate_wal(pool: &AnyPool) {
    let checkpoint = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(pool)
        .await;
    let why = match checkpoint {
        Ok((0, _, _)) => return,
        Ok(_) => "readers kept it busy".to_owned(),
        Err(e) => e.to_string(),
    };
    tracing::warn!(
        reason = %why,
        "a private key was destroyed, but the write-ahead log (the -wal file) could not be \
         checkpointed and emptied: it still holds the destroyed key, wrapped under the KEK, \
         until the next key destruction (or the store's last connection closing) empties it"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: Option<&str>, create: bool, has_mode: bool) -> Target {
        Target {
            path: path.map(PathBuf::from),
            create,
            has_mode,
        }
    }

    #[test]
    fn urls_name_their_files_like_sqlx_reads_them() {
        let cases = [
            ("sqlite://data/a.db", t(Some("data/a.db"), true, false)),
            ("sqlite:data/a.db", t(Some("data/a.db"), true, false)),
            ("sqlite:///abs/a.db", t(Some("/abs/a.db"), true, false)),
            ("sqlite://a%3Fb.db", t(Some("a?b.db"), true, false)),
            ("sqlite://a.db?mode=rwc", t(Some("a.db"), true, true)),
            ("sqlite://a.db?mode=rw", t(Some("a.db"), false, true)),
            ("sqlite://a.db?mode=ro", t(Some("a.db"), false, true)),
            ("sqlite://a.db?cache=shared", t(Some("a.db"), true, false)),
            ("sqlite://a.db?mode=memory", t(None, false, true)),
            ("sqlite::memory:", t(None, true, false)),
            ("sqlite://:memory:", t(None, true, false)),
            ("sqlite://", t(None, true, false)),
        ];
        for (url, want) in cases {
            assert_eq!(target(url).unwrap(), want, "{url}");
        }
    }

    #[test]
    fn the_opened_url_creates_what_is_missing_unless_it_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db").display().to_string();
        for (url, want) in [
            (format!("sqlite://{db}"), format!("sqlite://{db}?mode=rwc")),
            (
                format!("sqlite://{db}?cache=shared"),
                format!("sqlite://{db}?cache=shared&mode=rwc"),
            ),
            (
                format!("sqlite://{db}?mode=rw"),
                format!("sqlite://{db}?mode=rw"),
            ),
            ("sqlite::memory:".into(), "sqlite::memory:".into()),
        ] {
            assert_eq!(prepare(&url).unwrap(), want);
        }
    }

    #[test]
    fn a_url_that_may_not_create_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub/x.db");
        for mode in ["ro", "rw"] {
            prepare(&format!("sqlite://{}?mode={mode}", db.display())).unwrap();
            assert!(!dir.path().join("sub").exists(), "mode={mode}");
        }
    }

    #[test]
    fn an_existing_file_keeps_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"not empty").unwrap();
        prepare(&format!("sqlite://{}", db.display())).unwrap();
        assert_eq!(std::fs::read(&db).unwrap(), b"not empty");
    }
}
