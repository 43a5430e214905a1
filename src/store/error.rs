//! The store's error, as the domain sees it: what happened (conflict, not
//! found, corrupt, aborted, unavailable), never which driver said so.

/// A storage failure. Messages name the object, never secrets. The driver
/// stays inside the store: callers see what happened, not which library
/// reported it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object exists already.
    #[error("{0} already exists")]
    Conflict(String),
    /// A referenced object does not exist.
    #[error("{0} does not exist")]
    NotFound(String),
    /// A row holds something this version cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A key update gave up because the keys changed under it (another replica or
    /// command acted first). Nothing was written.
    #[error("key update abandoned: {0}")]
    Aborted(String),
    /// The database could not be reached, or refused or failed the operation.
    /// The cause is opaque: the store's driver is no part of its interface.
    /// Its message is part of this one, so it is not also the `source` (a
    /// printed error chain would say it twice).
    #[error("the database is unavailable: {0}")]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// The database is unavailable because of `cause` (a message or an error;
    /// neither may hold a secret).
    pub fn unavailable(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Unavailable(cause.into())
    }
}
