//! The schema migrations of each backend, embedded in the binary and applied
//! with sqlx's migrator (which records them in `_sqlx_migrations`).

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::store::Backend;

/// The migrations of each backend, embedded in the binary: (version, name, SQL).
fn migrations(backend: Backend) -> [(i64, &'static str, &'static str); 5] {
    match backend {
        Backend::Postgres => [
            (
                1,
                "init",
                include_str!("../../../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "session claims",
                include_str!("../../../migrations/postgres/0002_session_claims.sql"),
            ),
            (
                3,
                "principal changes",
                include_str!("../../../migrations/postgres/0003_principal_changes.sql"),
            ),
            (
                4,
                "admin tokens and audit by time",
                include_str!(
                    "../../../migrations/postgres/0004_admin_tokens_and_audit_by_time.sql"
                ),
            ),
            (
                5,
                "change log in commit order",
                include_str!("../../../migrations/postgres/0005_change_log_in_commit_order.sql"),
            ),
        ],
        Backend::Sqlite => [
            (
                1,
                "init",
                include_str!("../../../migrations/sqlite/0001_init.sql"),
            ),
            (
                2,
                "session claims",
                include_str!("../../../migrations/sqlite/0002_session_claims.sql"),
            ),
            (
                3,
                "principal changes",
                include_str!("../../../migrations/sqlite/0003_principal_changes.sql"),
            ),
            (
                4,
                "admin tokens and audit by time",
                include_str!("../../../migrations/sqlite/0004_admin_tokens_and_audit_by_time.sql"),
            ),
            (
                5,
                "change log in commit order",
                include_str!("../../../migrations/sqlite/0005_change_log_in_commit_order.sql"),
            ),
        ],
    }
}

pub(super) fn migrator(backend: Backend) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            migrations(backend)
                .into_iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(name),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}
