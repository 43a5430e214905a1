//! Layered settings: flags, then `NOMOS_ISSUER_*` environment, then an optional
//! TOML file (`--config`), then defaults. Validated once, at startup, with
//! messages that name the setting.
//!
//! Every setting is declared once, in [`ConfigArgs`] (`layer.rs`); each
//! concern resolves and validates its own settings, and [`Settings::resolve`]
//! calls them in turn.

mod duration;
mod effective;
mod issuer;
mod keks;
mod layer;
mod limits;
mod retention;
mod rotation;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::keys::rotation::Policy;
use crate::store::Backend;

pub use duration::{DurationText, parse_duration};
pub use effective::{HIDDEN, hide_password, to_toml};
pub use issuer::{check_issuer_url, issuer_warnings};
pub use keks::{DEFAULT_KEK_FILE, KekSource};
pub use layer::ConfigArgs;
pub use tls::TlsFiles;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default database: an embedded SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/nomos-issuer.db";

/// An invalid setting: names it and says why.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {why}")]
pub struct ConfigError {
    /// The setting (flag / environment / file key).
    pub name: String,
    /// What is wrong and how to fix it.
    pub why: String,
}

impl ConfigError {
    /// An invalid setting `name`, and why.
    pub fn new(name: &str, why: impl Into<String>) -> Self {
        invalid(name, why)
    }
}

fn invalid(name: &str, why: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        why: why.into(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Issuer URL, no trailing slash.
    pub issuer: String,
    /// The issuer was not configured: it follows the bound address (useful with port 0).
    pub issuer_follows_listen: bool,
    /// Database URL.
    pub database_url: String,
    /// Which store the URL names.
    pub backend: Backend,
    /// The KEK's source.
    pub kek: KekSource,
    /// Whether the KEK file was chosen explicitly (only the default may be generated).
    pub kek_is_default: bool,
    /// Earlier KEKs, for unwrapping only.
    pub previous_kek_files: Vec<PathBuf>,
    /// The rotation policy.
    pub rotation: Policy,
    /// How often `serve` evaluates the rotation plan.
    pub key_check_interval: Duration,
    /// Default token lifetime, seconds.
    pub token_ttl: u32,
    /// Client assertion clock skew, seconds.
    pub assertion_skew: u32,
    /// Log format.
    pub log_format: LogFormat,
    /// How long principals stay cached.
    pub principal_cache_ttl: Duration,
    /// Largest token request body.
    pub max_body_bytes: usize,
    /// Serve HTTPS with these files (else plain HTTP, e.g. behind a TLS proxy).
    pub tls: Option<TlsFiles>,
    /// Failed authentications per second per client id and address (0: unlimited).
    pub auth_failure_limit: u32,
    /// Token requests per second per source address (0: unlimited).
    pub address_rate_limit: u32,
    /// Requests handled at once, for each of the two classes (documents, work).
    pub max_concurrency: usize,
    /// Token and admin requests in flight per source address (0: no limit).
    pub max_in_flight_per_address: usize,
    /// Open connections per listener.
    pub max_connections: usize,
    /// Open connections per source address and listener (0: no limit).
    pub max_connections_per_address: usize,
    /// The operator listener (`/metrics`, `/admin`), if separate.
    pub operator_listen: Option<SocketAddr>,
    /// How long audit records are kept (`None`: forever).
    pub audit_retention: Option<Duration>,
    /// Warnings to log once logging is up (e.g. a non-https issuer).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Defaults only: what a bare `nomos-issuer serve` uses.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::resolve(&ConfigArgs::default(), None)
    }

    /// Layers flags/environment over the file over defaults and validates.
    /// `kek_env` is the value of `NOMOS_ISSUER_KEK`, if set.
    pub fn resolve(args: &ConfigArgs, kek_env: Option<String>) -> Result<Self, ConfigError> {
        let layer = args.over_file()?;
        let listen = address(
            "listen",
            layer.listen.as_deref().unwrap_or(DEFAULT_LISTEN),
            "127.0.0.1:8080",
        )?;
        let issuer = issuer::resolve(&layer, listen)?;
        let database_url = layer
            .database_url
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        let backend = Backend::of_url(&database_url).ok_or_else(|| {
            invalid(
                "database_url",
                "use postgres://… (production) or sqlite:… (embedded)",
            )
        })?;
        let keks = keks::resolve(&layer, kek_env)?;
        let rotation = rotation::resolve(&layer)?;
        let assertion_skew =
            duration::seconds("assertion_skew", layer.assertion_skew.as_ref(), 30)?;
        if assertion_skew > 300 {
            return Err(invalid("assertion_skew", "at most 300 seconds"));
        }
        let log_format = match layer.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log_format",
                    format!("{other:?}: use text or json"),
                ));
            }
        };
        let cache = duration::seconds(
            "principal_cache_seconds",
            layer.principal_cache_seconds.as_ref(),
            600,
        )?;
        if cache == 0 || cache > 3600 {
            return Err(invalid(
                "principal_cache_seconds",
                "use 1-3600 seconds (1s to 1h)",
            ));
        }
        let tls = tls::resolve(&layer)?;
        let limits = limits::resolve(&layer)?;
        let operator_listen = match layer.operator_listen.as_deref() {
            None => None,
            Some(text) => {
                let addr = address("operator_listen", text, "127.0.0.1:9090")?;
                if addr == listen && addr.port() != 0 {
                    return Err(invalid(
                        "operator_listen",
                        format!("{addr} is also the listen address: use another port"),
                    ));
                }
                Some(addr)
            }
        };
        let audit_retention = retention::resolve(&layer)?;
        Ok(Settings {
            listen,
            issuer: issuer.issuer,
            issuer_follows_listen: issuer.follows_listen,
            database_url,
            backend,
            kek: keks.kek,
            kek_is_default: keks.kek_is_default,
            previous_kek_files: keks.previous_kek_files,
            rotation: rotation.policy,
            key_check_interval: rotation.key_check_interval,
            token_ttl: rotation.token_ttl,
            assertion_skew,
            log_format,
            principal_cache_ttl: Duration::from_secs(cache.into()),
            max_body_bytes: limits.max_body_bytes,
            tls,
            auth_failure_limit: limits.auth_failure_limit,
            address_rate_limit: limits.address_rate_limit,
            max_concurrency: limits.max_concurrency,
            max_in_flight_per_address: limits.max_in_flight_per_address,
            max_connections: limits.max_connections,
            max_connections_per_address: limits.max_connections_per_address,
            operator_listen,
            audit_retention,
            warnings: issuer.warnings,
        })
    }
}

fn address(name: &str, text: &str, example: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|_| invalid(name, format!("{text:?} is not an address like {example}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Alg;

    fn args() -> ConfigArgs {
        ConfigArgs::default()
    }

    #[test]
    fn defaults_are_safe() {
        let s = Settings::defaults().unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.issuer, "http://127.0.0.1:8080");
        assert_eq!(s.backend, Backend::Sqlite);
        assert_eq!(s.token_ttl, 300);
        assert_eq!(s.rotation.alg, Alg::ES256);
        assert!(s.warnings[0].contains("AWS will refuse"));
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "token_ttl = 120\nsigning_alg = \"RS256\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        a.token_ttl = Some("60".into());
        let s = Settings::resolve(&a, None).unwrap();
        assert_eq!(s.token_ttl, 60);
        assert_eq!(s.rotation.alg, Alg::RS256);
    }

    #[test]
    fn bad_values_name_the_setting() {
        type Case = (fn(&mut ConfigArgs), &'static str);
        let cases: Vec<Case> = vec![
            (|a| a.listen = Some("nope".into()), "listen"),
            (|a| a.issuer = Some("https://id.example/".into()), "issuer"),
            (
                |a| a.issuer = Some("https://id.example?x=1".into()),
                "issuer",
            ),
            (|a| a.issuer = Some("ftp://id.example".into()), "issuer"),
            (
                |a| a.database_url = Some("mysql://x".into()),
                "database_url",
            ),
            (|a| a.signing_alg = Some("PS256".into()), "signing_alg"),
            (|a| a.token_ttl = Some("3601".into()), "token_ttl"),
            (|a| a.token_ttl = Some("61m".into()), "token_ttl"),
            (|a| a.token_ttl = Some("1500ms".into()), "token_ttl"),
            (
                |a| a.jwks_max_age = Some("five minutes".into()),
                "jwks_max_age",
            ),
            (|a| a.token_ttl = Some("0".into()), "token_ttl"),
            (|a| a.log_format = Some("xml".into()), "log_format"),
            (|a| a.audit_retention = Some("5m".into()), "audit_retention"),
            (
                |a| a.audit_retention = Some("forever".into()),
                "audit_retention",
            ),
            (|a| a.max_concurrency = Some(0), "max_concurrency"),
            (|a| a.max_connections = Some(1), "max_connections"),
            (
                |a| a.max_connections_per_address = Some(20_000),
                "max_connections_per_address",
            ),
            (
                |a| a.operator_listen = Some("9090".into()),
                "operator_listen",
            ),
            (
                |a| a.operator_listen = Some(DEFAULT_LISTEN.into()),
                "operator_listen",
            ),
        ];
        for (set, name) in cases {
            let mut a = args();
            set(&mut a);
            let e = Settings::resolve(&a, None).unwrap_err();
            assert_eq!(e.name, name, "{e}");
        }
        let mut a = args();
        a.kek_file = Some("k".into());
        assert_eq!(
            Settings::resolve(&a, Some("x".into())).unwrap_err().name,
            "NOMOS_ISSUER_KEK"
        );
    }

    #[test]
    fn unsafe_rotation_is_refused_naming_both_settings() {
        let mut a = args();
        a.rotation_period = Some("5m".into());
        let e = Settings::resolve(&a, None).unwrap_err();
        assert_eq!(e.name, "rotation_period");
        assert!(e.why.contains("jwks_max_age"), "{e}");
        let mut a = args();
        a.token_ttl = Some("900".into());
        a.max_token_lifetime = Some("10m".into());
        let e = Settings::resolve(&a, None).unwrap_err();
        assert!(
            e.why.contains("token_ttl") && e.why.contains("max_token_lifetime"),
            "{e}"
        );
        let mut a = args();
        a.rotation_period = Some("soon".into());
        assert_eq!(
            Settings::resolve(&a, None).unwrap_err().name,
            "rotation_period"
        );
        let s = Settings::defaults().unwrap();
        assert_eq!(s.rotation.rotation_period, 7 * 86_400);
        assert_eq!(s.rotation.publish_lead(), 600);
        assert_eq!(s.rotation.retention(), 3600 + 300 + 300);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "tokn_ttl = 1\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        assert!(
            Settings::resolve(&a, None)
                .unwrap_err()
                .why
                .contains("tokn_ttl")
        );
    }

    /// `nomos-issuer.example.toml`, read with the real loader: its values are
    /// the defaults, it names every file key, and each commented-out
    /// `key = value` line is valid as written.
    #[test]
    fn the_example_file_holds_every_key_at_its_default() {
        use clap::Args;
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("nomos-issuer.example.toml");
        let text = std::fs::read_to_string(&example).unwrap();
        let read = |path: PathBuf| {
            let mut a = args();
            a.config = Some(path);
            Settings::resolve(&a, None)
        };
        let s = read(example.clone()).unwrap();
        assert_eq!(s.effective(), Settings::defaults().unwrap().effective());
        let flags = ConfigArgs::augment_args(clap::Command::new("t"));
        let keys: Vec<&str> = flags
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| *id != "config")
            .collect();
        let is_setting = |line: &str, key: &str| line.starts_with(&format!("{key} = "));
        for key in &keys {
            assert!(
                text.lines()
                    .any(|l| is_setting(l, key) || is_setting(l.trim_start_matches("# "), key)),
                "{key} is not in the example"
            );
        }
        // Every commented-out setting, switched on (the last of a key wins).
        let mut chosen: std::collections::BTreeMap<&str, &str> = Default::default();
        for line in text.lines() {
            let setting = line.trim_start_matches("# ");
            if let Some(key) = keys.iter().find(|k| is_setting(setting, k)) {
                chosen.insert(key, setting);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let all = dir.path().join("all.toml");
        std::fs::write(
            &all,
            chosen
                .values()
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        )
        .unwrap();
        let s = read(all).unwrap();
        assert_eq!(s.issuer, "https://id.example.com");
        assert_eq!(s.backend, Backend::Postgres);
        assert!(s.tls.is_some() && s.operator_listen.is_some());
    }

    #[test]
    fn https_with_path_is_fine() {
        let mut a = args();
        a.issuer = Some("https://id.example.com/orgs/acme".into());
        let s = Settings::resolve(&a, None).unwrap();
        assert!(s.warnings.is_empty());
        assert!(!format!("{:?}", KekSource::Env("c2VjcmV0".into())).contains("c2Vj"));
    }
}
