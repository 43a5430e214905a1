//! How long audit records are kept.

use std::time::Duration;

use super::{ConfigArgs, ConfigError, duration, invalid};

/// `None`: records are kept forever (`0`).
pub(super) fn resolve(layer: &ConfigArgs) -> Result<Option<Duration>, ConfigError> {
    let retention_text = layer
        .audit_retention
        .clone()
        .unwrap_or_else(|| "90d".into());
    match retention_text.trim() {
        "0" | "0s" => Ok(None),
        text => {
            let d = duration("audit_retention", text)?;
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
