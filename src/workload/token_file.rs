//! Keeping an AWS web identity token file fresh: atomic writes, refresh and
//! back-off times, the role session name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ring::rand::SystemRandom;

use crate::principal::random_id;

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory, mode 0600, fsync, rename, fsync of the directory. A reader sees
/// the old file or the new one, never a part.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", random_id("", 6)));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// When to refresh a token of `expires_in` seconds: at 80% of its life.
pub fn refresh_after(expires_in: u64) -> Duration {
    Duration::from_millis(expires_in.saturating_mul(800).max(1000))
}

/// The back-off before retry `attempt` (0-based): exponential from 1 s, capped at
/// 60 s, with up to 50% random jitter so a fleet does not retry in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(6)).min(60_000);
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b);
    let jitter = u64::from(u16::from_le_bytes(b)) * (base / 2) / u64::from(u16::MAX);
    Duration::from_millis(base - base / 2 + jitter)
}

/// A role session name from a client id: AWS allows 2-64 characters of `[\w+=,.@-]`.
pub fn role_session_name(client_id: &str) -> String {
    let mut s: String = client_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    s.truncate(64);
    while s.len() < 2 {
        s.push('_');
    }
    s
}
