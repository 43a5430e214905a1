//! AWS session claims (session tags and source identity), named here for the
//! AWS kit: they are the domain's own, in [`crate::principal::session_claims`].

pub use crate::principal::session_claims::*;
