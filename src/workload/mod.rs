//! The workload side: getting a token from an issuer with a client secret or a
//! private key, and keeping an AWS web identity token file fresh.

mod credential;
mod fetch;
mod origin;
mod token_file;

pub use credential::*;
pub use fetch::*;
pub use origin::*;
pub use token_file::*;

#[cfg(test)]
mod tests;
