//! How long audit records are kept.

use std::time::Duration;

use super::duration::duration;
use super::{ConfigArgs, ConfigError, invalid};

/// `None`: records are kept forever (`0`).
pub(super) fn resolve(layer: &ConfigArgs) -> Result<Option<Duration>, ConfigError> {
    let retention = layer.audit_retention.as_ref();
    match retention.map(|r| r.0.trim()) {
        Some("0" | "0s") => Ok(None),
        _ => {
            let d = duration("audit_retention", retention, "90d")?;
            if d < Duration::from_secs(3600) {
                return Err(invalid(
                    "audit_retention",
                    "at least 1h (or 0 to keep records forever)",
                ));
            }
            Ok(Some(d))
        }
    }
}
