//! The key-encryption key (KEK) and AES-256-GCM wrapping of private signing keys.
//!
//! Wire format of a wrapped key: `[version 0x01][12-byte nonce][ciphertext+tag]`.
//! The associated data binds the ciphertext to its `kid` and `alg`, so a row
//! whose private key was swapped for another key's fails to unwrap.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::Alg;

const WRAP_VERSION: u8 = 1;

/// Errors about the KEK or wrapped keys. They never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// The KEK text was not base64 of exactly 32 bytes.
    #[error("{source_name}: the key-encryption key must be base64 of exactly 32 bytes")]
    Malformed {
        /// Where the KEK came from (file path or environment variable).
        source_name: String,
    },
    /// The KEK file could not be read or written.
    #[error("{path}: cannot {action} the key-encryption key file: {err}")]
    Io {
        /// The file.
        path: String,
        /// `read` or `create`.
        action: &'static str,
        /// The OS error.
        err: std::io::Error,
    },
    /// A key is wrapped under a KEK that is not configured.
    #[error(
        "signing key {kid} is encrypted under key-encryption key {wanted}, which is not configured (configured: {configured}): add that KEK with --previous-kek-file, or fix --kek-file / NOMOS_ISSUER_KEK. Nothing was changed"
    )]
    UnknownKek {
        /// The key.
        kid: String,
        /// The KEK id recorded with the key.
        wanted: String,
        /// Ids of the configured KEKs.
        configured: String,
    },
    /// Authentication of a wrapped key failed: wrong KEK, or tampered ciphertext.
    #[error(
        "cannot decrypt signing key {kid} with the key-encryption key (kek id {kek_id}; the key was wrapped under kek id {wrapped_with}): wrong KEK, or the stored key was tampered with. Nothing was changed"
    )]
    Unwrap {
        /// The key that failed.
        kid: String,
        /// Id of the configured KEK.
        kek_id: String,
        /// Id of the KEK recorded with the key.
        wrapped_with: String,
    },
}

/// A 256-bit key-encryption key. `Debug` never shows the key.
pub struct Kek {
    key: LessSafeKey,
    id: String,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("key", &"<hidden>")
            .finish()
    }
}

/// A wrapped private key and the id of the KEK that wrapped it.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Id of the wrapping KEK.
    pub kek_id: String,
    /// `[version][nonce][ciphertext+tag]`.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedKey")
            .field("kek_id", &self.kek_id)
            .field("bytes", &"<hidden>")
            .finish()
    }
}

/// Private key material in clear, zeroed on drop as far as Rust allows. `Debug` hides it.
pub struct PrivateDer(pub Vec<u8>);

impl Drop for PrivateDer {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // Volatile so the compiler does not elide the wipe of a value about to be freed.
            // SAFETY: `b` is a valid, aligned, exclusive reference to a byte we own.
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::write_volatile(b, 0)
            };
        }
    }
}

impl fmt::Debug for PrivateDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateDer(<hidden>)")
    }
}

fn aad(kid: &str, alg: Alg) -> Vec<u8> {
    format!("nomos-issuer signing key v1\0{kid}\0{alg}").into_bytes()
}

impl Kek {
    /// Builds a KEK from its 32 raw bytes.
    pub fn from_bytes(raw: &[u8; 32]) -> Self {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"nomos-issuer kek id\0".as_slice(), raw].concat(),
        );
        let id = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, raw).expect("32-byte AES key"));
        Kek { key, id }
    }

    /// Parses base64 text (surrounding whitespace ignored). `source_name` names it in errors.
    pub fn from_base64(text: &str, source_name: &str) -> Result<Self, KekError> {
        let malformed = || KekError::Malformed {
            source_name: source_name.to_owned(),
        };
        let raw = STANDARD.decode(text.trim()).map_err(|_| malformed())?;
        let raw: [u8; 32] = raw.as_slice().try_into().map_err(|_| malformed())?;
        Ok(Self::from_bytes(&raw))
    }

    /// Reads a KEK file.
    pub fn read_file(path: &Path) -> Result<Self, KekError> {
        let text = std::fs::read_to_string(path).map_err(|err| KekError::Io {
            path: path.display().to_string(),
            action: "read",
            err,
        })?;
        Self::from_base64(&text, &path.display().to_string())
    }

    /// Creates a new random KEK file with mode 0600. Fails if the file exists.
    pub fn create_file(path: &Path) -> Result<Self, KekError> {
        let io = |err| KekError::Io {
            path: path.display().to_string(),
            action: "create",
            err,
        };
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| io(std::io::Error::other("no system randomness")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path).map_err(io)?;
        let text = format!("{}\n", STANDARD.encode(raw));
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        let kek = Self::from_bytes(&raw);
        raw.fill(0);
        Ok(kek)
    }

    /// A short, non-secret id of this KEK (hex of a domain-separated SHA-256 prefix).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts a private key, binding it to `kid` and `alg`.
    pub fn wrap(&self, kid: &str, alg: Alg, private: &PrivateDer) -> WrappedKey {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("system randomness is available");
        let mut buf = private.0.clone();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(kid, alg)),
                &mut buf,
            )
            .expect("AES-GCM sealing cannot fail for small inputs");
        let mut bytes = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        bytes.push(WRAP_VERSION);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&buf);
        buf.fill(0);
        WrappedKey {
            kek_id: self.id.clone(),
            bytes,
        }
    }

    /// Decrypts a wrapped private key; fails unless this KEK wrapped it for this `kid` and `alg`.
    pub fn unwrap(
        &self,
        kid: &str,
        alg: Alg,
        wrapped: &WrappedKey,
    ) -> Result<PrivateDer, KekError> {
        let fail = || KekError::Unwrap {
            kid: kid.to_owned(),
            kek_id: self.id.clone(),
            wrapped_with: wrapped.kek_id.clone(),
        };
        let b = &wrapped.bytes;
        if b.len() < 1 + NONCE_LEN + AES_256_GCM.tag_len() || b[0] != WRAP_VERSION {
            return Err(fail());
        }
        let nonce = Nonce::try_assume_unique_for_key(&b[1..1 + NONCE_LEN]).map_err(|_| fail())?;
        let mut buf = b[1 + NONCE_LEN..].to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad(kid, alg)), &mut buf)
            .map_err(|_| fail())?
            .len();
        buf.truncate(plain_len);
        Ok(PrivateDer(buf))
    }
}

/// The configured KEKs: one active (wraps new keys), others only unwrap, so that
/// keys can be re-wrapped online (`keys rewrap`) before an old KEK is dropped.
#[derive(Debug)]
pub struct KekSet {
    active: Kek,
    previous: Vec<Kek>,
}

impl KekSet {
    /// A set with `active` and any previous KEKs.
    pub fn new(active: Kek, previous: Vec<Kek>) -> Self {
        KekSet { active, previous }
    }

    /// The KEK that wraps new keys.
    pub fn active(&self) -> &Kek {
        &self.active
    }

    /// Ids of every configured KEK, the active one first.
    pub fn ids(&self) -> Vec<&str> {
        std::iter::once(&self.active)
            .chain(&self.previous)
            .map(Kek::id)
            .collect()
    }

    /// Unwraps with the KEK the key was wrapped under.
    pub fn unwrap(
        &self,
        kid: &str,
        alg: Alg,
        wrapped: &WrappedKey,
    ) -> Result<PrivateDer, KekError> {
        let kek = std::iter::once(&self.active)
            .chain(&self.previous)
            .find(|k| k.id == wrapped.kek_id);
        match kek {
            Some(k) => k.unwrap(kid, alg, wrapped),
            None => Err(KekError::UnknownKek {
                kid: kid.to_owned(),
                wanted: wrapped.kek_id.clone(),
                configured: self.ids().join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> Kek {
        Kek::from_bytes(&[byte; 32])
    }

    #[test]
    fn wrap_round_trips_and_binds_kid_and_alg() {
        let k = kek(7);
        let w = k.wrap("kid-a", Alg::ES256, &PrivateDer(b"secret der".to_vec()));
        assert_eq!(k.unwrap("kid-a", Alg::ES256, &w).unwrap().0, b"secret der");
        assert!(k.unwrap("kid-b", Alg::ES256, &w).is_err());
        assert!(k.unwrap("kid-a", Alg::RS256, &w).is_err());
        assert!(!w.bytes.windows(10).any(|x| x == b"secret der"));
    }

    #[test]
    fn wrong_kek_is_named_not_leaked() {
        let w = kek(1).wrap("kid-a", Alg::ES256, &PrivateDer(vec![9; 40]));
        let err = kek(2)
            .unwrap("kid-a", Alg::ES256, &w)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key-encryption key") && err.contains("kid-a"),
            "{err}"
        );
        assert!(
            err.contains(kek(2).id()) && err.contains(kek(1).id()),
            "{err}"
        );
    }

    #[test]
    fn a_set_unwraps_with_the_kek_that_wrapped() {
        let w = kek(1).wrap("kid", Alg::ES256, &PrivateDer(vec![7; 40]));
        let set = KekSet::new(kek(2), vec![kek(1)]);
        assert_eq!(set.unwrap("kid", Alg::ES256, &w).unwrap().0, vec![7; 40]);
        assert_eq!(set.ids(), vec![kek(2).id(), kek(1).id()]);
        let err = KekSet::new(kek(3), vec![])
            .unwrap("kid", Alg::ES256, &w)
            .unwrap_err();
        assert!(matches!(err, KekError::UnknownKek { .. }));
        assert!(err.to_string().contains(kek(1).id()), "{err}");
    }

    #[test]
    fn tampering_is_detected() {
        let k = kek(3);
        let mut w = k.wrap("kid", Alg::ES256, &PrivateDer(vec![1; 32]));
        let last = w.bytes.len() - 1;
        w.bytes[last] ^= 1;
        assert!(k.unwrap("kid", Alg::ES256, &w).is_err());
        w.bytes.truncate(5);
        assert!(k.unwrap("kid", Alg::ES256, &w).is_err());
    }

    #[test]
    fn base64_must_be_32_bytes() {
        assert!(Kek::from_base64(&STANDARD.encode([0u8; 31]), "env").is_err());
        assert!(Kek::from_base64("not base64!", "env").is_err());
        let ok = Kek::from_base64(&format!(" {}\n", STANDARD.encode([5u8; 32])), "env").unwrap();
        assert_eq!(ok.id(), kek(5).id());
        assert!(!format!("{ok:?}").contains("5, 5"));
    }

    #[test]
    fn kek_file_is_private_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/kek");
        let a = Kek::create_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Kek::create_file(&path).is_err());
        assert_eq!(Kek::read_file(&path).unwrap().id(), a.id());
    }
}
