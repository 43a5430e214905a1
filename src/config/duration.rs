//! Durations, written one way everywhere: a bare number of seconds (`300`) or
//! numbers with units (`5m`, `12h`, `7d`, `1h 30m`), in flags, `NOMOS_ISSUER_*`
//! variables and the file (where a TOML integer is seconds too).

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Parses a duration: `300` (seconds), `5m`, `7d`, `1h 30m`. Also a clap
/// value parser: `#[arg(value_parser = crate::config::parse_duration)]` on a
/// `Duration` field gives a flag the forms of every setting.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{text:?} is too large"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{text:?} is not a duration like 300 (seconds), 5m or 7d: {e}"))
}

/// A duration setting as written (a flag's or variable's text, or a file's
/// string or integer), read when the settings are resolved, so that a bad
/// value names its setting wherever it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationText(pub String);

impl From<&str> for DurationText {
    fn from(text: &str) -> Self {
        DurationText(text.to_owned())
    }
}

impl std::str::FromStr for DurationText {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(text.into())
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// Seconds as a TOML integer (as the seconds-only settings were), or a string.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Seconds(u64),
            Text(String),
        }
        match Written::deserialize(d) {
            Ok(Written::Seconds(n)) => Ok(DurationText(n.to_string())),
            Ok(Written::Text(t)) => Ok(DurationText(t)),
            Err(_) => Err(serde::de::Error::custom(
                "expected a duration: seconds (300) or a string (\"5m\", \"7d\")",
            )),
        }
    }
}

/// The setting `name`, `default` when unset.
pub(super) fn duration(
    name: &str,
    value: Option<&DurationText>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.map_or(default, |v| v.0.as_str());
    parse_duration(text).map_err(|e| invalid(name, e))
}

/// The setting `name` in whole seconds, `default` when unset.
pub(super) fn seconds(
    name: &str,
    value: Option<&DurationText>,
    default: u32,
) -> Result<u32, ConfigError> {
    let default = default.to_string();
    let d = duration(name, value, &default)?;
    if d.subsec_nanos() != 0 {
        return Err(invalid(
            name,
            format!("{d:?} is not a whole number of seconds"),
        ));
    }
    u32::try_from(d.as_secs()).map_err(|_| invalid(name, format!("{} s is too long", d.as_secs())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_number_is_seconds_and_units_are_accepted() {
        for (text, secs) in [
            ("300", 300),
            ("5m", 300),
            ("7d", 7 * 86_400),
            ("1h 30m", 5400),
            (" 90s ", 90),
            ("0", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in ["", "5x", "-5", "soon"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("300 (seconds), 5m or 7d"), "{bad}: {e}");
        }
        let e = seconds("token_ttl", Some(&"1500ms".into()), 300).unwrap_err();
        assert_eq!(e.name, "token_ttl");
        assert!(e.why.contains("whole number of seconds"), "{e}");
        assert_eq!(seconds("token_ttl", None, 300).unwrap(), 300);
    }
}
