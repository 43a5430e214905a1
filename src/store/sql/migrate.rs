//! The schema migrations of each backend, embedded in the binary and applied
//! with sqlx's migrator (which records them in `_sqlx_migrations`).
//!
//! `build.rs` lists `migrations/postgres/*.sql` and `migrations/sqlite/*.sql`
//! the way sqlx reads a migrations directory; a new file is picked up at the
//! next build. A migration that has been released is never edited: sqlx
//! refuses a database whose applied migration has another checksum.

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::store::Backend;

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The migrator of a backend.
pub(super) fn migrator(backend: Backend) -> Migrator {
    let migrations = match backend {
        Backend::Postgres => POSTGRES,
        Backend::Sqlite => SQLITE,
    };
    Migrator {
        migrations: Cow::Owned(
            migrations
                .iter()
                .map(|&(version, description, sql, no_tx)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        no_tx,
                    )
                })
                .collect(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// How many of the backend's migrations the database has not applied.
pub(super) async fn pending(pool: &AnyPool, backend: Backend) -> Result<usize, sqlx::Error> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(v) => v,
            // No migrations table: nothing applied yet.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
    Ok(migrator(backend)
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(backend: Backend) -> Vec<(i64, String, String)> {
        migrator(backend)
            .iter()
            .map(|m| {
                let checksum = m.checksum.iter().map(|b| format!("{b:02x}")).collect();
                (m.version, m.description.to_string(), checksum)
            })
            .collect()
    }

    /// What databases migrated by earlier releases hold in `_sqlx_migrations`
    /// (read from databases the hand-written list of e86d877 migrated): a
    /// changed checksum would make sqlx refuse them.
    #[test]
    fn released_migrations_keep_their_versions_descriptions_and_checksums() {
        let released = [
            (
                Backend::Postgres,
                [
                    "672f24ed267f6d3cefeda808444b672fe9677214f411a16ced2eb4902c61831247fd8b57b97685db8a362f5e9e31dfa2",
                    "d2e0ecdfefef6b0516b161a1730c35ae34ffeedee2d02bbd4dae52a08168dc87f65675e23ee6c094667ca7ceb04c30b8",
                    "82a31f620bc1811937069ce0a0d3142c343d71e63a8f447deaad3386093c94cb4ce08e1a70b1cf6b82fe1248c88fb7a4",
                    "e3ec4648b93e53cee63ac12b21bab0fa26e050b498c2d9f6d5f9650fa1780d2facdae2db5f3ad9cd4d53d8fac6c3989d",
                    "aa49fc66d9b42c8b6ce485d9a0c055e82e46e4f6e503d6bcc359c223703c58ddb053ef65c05767b91a1f2d60f95d0f4e",
                ],
            ),
            (
                Backend::Sqlite,
                [
                    "1254c1a0dfa662b66718b9a443f29081f8acf0ae6df6850e6101124424ed5f1b12e326cd9b417c7819c9cfc83360d67c",
                    "d2e0ecdfefef6b0516b161a1730c35ae34ffeedee2d02bbd4dae52a08168dc87f65675e23ee6c094667ca7ceb04c30b8",
                    "23e9de21b0d0f696dd87884a2d0add7d0565a4261858bdb4104d54658a78ab4b612ecb467bdbb68041a800ef93fb775a",
                    "12fc299705a954bd69049be64ddcf4e2bd7427896ffd07dc7813cdca64b8318df50262031214080f5ead180cf513f27c",
                    "7bf94d96264a571aab97b07f65a0e55eb33cd7a9114a410808c6ed9d631b78847d646485a01e2b16455f316db9fb023d",
                ],
            ),
        ];
        let descriptions = [
            "init",
            "session claims",
            "principal changes",
            "admin tokens and audit by time",
            "change log in commit order",
        ];
        for (backend, checksums) in released {
            let listed = listed(backend);
            for (i, (description, checksum)) in descriptions.iter().zip(checksums).enumerate() {
                let want = (i as i64 + 1, description.to_string(), checksum.to_string());
                assert_eq!(listed.get(i), Some(&want), "{backend:?}");
            }
        }
    }

    /// The queries are the same on both backends, so their schemas advance
    /// together.
    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |backend| {
            migrator(backend)
                .iter()
                .map(|m| (m.version, m.description.to_string(), m.no_tx))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Backend::Postgres), names(Backend::Sqlite));
    }
}
