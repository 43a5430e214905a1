//! The key-encryption keys: where the current one comes from, and the
//! earlier ones kept to unwrap keys not yet re-wrapped.

use std::fmt;
use std::path::PathBuf;

use super::{ConfigArgs, ConfigError, invalid};

/// The default KEK file.
pub const DEFAULT_KEK_FILE: &str = "keys/kek";

/// Where the KEK comes from.
#[derive(Clone)]
pub enum KekSource {
    /// A file of base64 text.
    File(PathBuf),
    /// `NOMOS_ISSUER_KEK`: the base64 itself.
    Env(String),
}

impl fmt::Debug for KekSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KekSource::File(p) => f.debug_tuple("File").field(p).finish(),
            KekSource::Env(_) => f.write_str("Env(<hidden>)"),
        }
    }
}

/// The resolved KEKs.
pub(super) struct Keks {
    pub kek: KekSource,
    /// No KEK was chosen explicitly (only the default file may be generated).
    pub kek_is_default: bool,
    pub previous_kek_files: Vec<PathBuf>,
}

/// `kek_env` is the value of `NOMOS_ISSUER_KEK`, if set (a variable only:
/// neither a flag nor a file key).
pub(super) fn resolve(layer: &ConfigArgs, kek_env: Option<String>) -> Result<Keks, ConfigError> {
    let kek_file = layer.kek_file.clone();
    let kek_is_default = kek_file.is_none();
    let kek = match (kek_env.filter(|k| !k.trim().is_empty()), kek_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "NOMOS_ISSUER_KEK",
                "set either NOMOS_ISSUER_KEK or kek_file, not both",
            ));
        }
        (Some(k), None) => KekSource::Env(k),
        (None, Some(f)) => KekSource::File(f),
        (None, None) => KekSource::File(PathBuf::from(DEFAULT_KEK_FILE)),
    };
    Ok(Keks {
        kek,
        kek_is_default,
        previous_kek_files: layer.previous_kek_files.clone(),
    })
}
