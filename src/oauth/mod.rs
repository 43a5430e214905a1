//! The token endpoint's logic: client authentication, the client-credentials
//! grant and the claims of a token. Nothing here knows HTTP or SQL.

pub mod assertion;
pub mod client_auth;
pub mod error;
pub mod form;
pub mod grant;
pub mod mint;
pub mod principals;

pub use error::{ErrorCode, OAuthError};
pub use mint::{Claims, MintRequest, Minted, mint};
