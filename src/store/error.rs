//! The store's error, as the domain sees it.

pub use super::StoreError;
