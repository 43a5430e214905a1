//! Layered settings: flags, then `NOMOS_ISSUER_*` environment, then an optional
//! TOML file (`--config`), then defaults. Validated once, at startup, with
//! messages that name the setting.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::keys::Alg;
use crate::keys::rotation::Policy;
use crate::principal::MAX_TOKEN_TTL;
use crate::store::Backend;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default database: an embedded SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/nomos-issuer.db";
/// The default KEK file.
pub const DEFAULT_KEK_FILE: &str = "keys/kek";

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

/// Settings given on the command line or in the environment. Every field is
/// optional so that the file and the defaults can fill the gaps.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// TOML configuration file (lowest precedence above the defaults)
    #[arg(long, env = "NOMOS_ISSUER_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "NOMOS_ISSUER_LISTEN", global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Issuer URL, the `iss` of every token; AWS requires https [default: http://<listen>]
    #[arg(long, env = "NOMOS_ISSUER_ISSUER", global = true, value_name = "URL")]
    pub issuer: Option<String>,
    /// postgres://… or sqlite:… [default: sqlite://data/nomos-issuer.db]
    #[arg(
        long,
        env = "NOMOS_ISSUER_DATABASE_URL",
        global = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// File holding the base64 key-encryption key; NOMOS_ISSUER_KEK may hold it instead [default: keys/kek]
    #[arg(
        long,
        env = "NOMOS_ISSUER_KEK_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub kek_file: Option<PathBuf>,
    /// Token signing algorithm: ES256 or RS256 [default: ES256]
    #[arg(
        long,
        env = "NOMOS_ISSUER_SIGNING_ALG",
        global = true,
        value_name = "ALG"
    )]
    pub signing_alg: Option<String>,
    /// Default token lifetime in seconds, capped by each org's maximum [default: 300]
    #[arg(
        long,
        env = "NOMOS_ISSUER_TOKEN_TTL",
        global = true,
        value_name = "SECONDS"
    )]
    pub token_ttl: Option<u32>,
    /// The longest a verifier may cache the JWKS (Cache-Control max-age; key rotation waits on it), in seconds [default: 300]
    #[arg(
        long,
        env = "NOMOS_ISSUER_JWKS_MAX_AGE",
        global = true,
        value_name = "SECONDS"
    )]
    pub jwks_max_age: Option<u32>,
    /// Clock skew allowed on client assertions, in seconds [default: 30]
    #[arg(
        long,
        env = "NOMOS_ISSUER_ASSERTION_SKEW",
        global = true,
        value_name = "SECONDS"
    )]
    pub assertion_skew: Option<u32>,
    /// Earlier key-encryption keys, only to decrypt keys not yet re-wrapped (repeat, or comma-separate)
    #[arg(
        long = "previous-kek-file",
        env = "NOMOS_ISSUER_PREVIOUS_KEK_FILES",
        global = true,
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub previous_kek_files: Vec<PathBuf>,
    /// How long a key signs before the next one takes over, e.g. 7d, 12h [default: 7d]
    #[arg(
        long,
        env = "NOMOS_ISSUER_ROTATION_PERIOD",
        global = true,
        value_name = "DURATION"
    )]
    pub rotation_period: Option<String>,
    /// Safety margin added to every rotation wait, e.g. 5m [default: 5m]
    #[arg(
        long,
        env = "NOMOS_ISSUER_ROTATION_MARGIN",
        global = true,
        value_name = "DURATION"
    )]
    pub rotation_margin: Option<String>,
    /// The longest lifetime any token may have, in seconds (at most 3600) [default: 3600]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_TOKEN_LIFETIME",
        global = true,
        value_name = "SECONDS"
    )]
    pub max_token_lifetime: Option<u32>,
    /// Clock skew verifiers allow past exp, in seconds (AWS allows 300) [default: 300]
    #[arg(
        long,
        env = "NOMOS_ISSUER_VERIFIER_SKEW",
        global = true,
        value_name = "SECONDS"
    )]
    pub verifier_skew: Option<u32>,
    /// How often serve checks the rotation plan, e.g. 10s [default: 10s]
    #[arg(
        long,
        env = "NOMOS_ISSUER_KEY_CHECK_INTERVAL",
        global = true,
        value_name = "DURATION"
    )]
    pub key_check_interval: Option<String>,
    /// PEM file with the TLS certificate chain, leaf first; serves HTTPS (reloaded on change and on SIGHUP)
    #[arg(
        long,
        env = "NOMOS_ISSUER_TLS_CERT",
        global = true,
        value_name = "FILE"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the TLS private key (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "NOMOS_ISSUER_TLS_KEY", global = true, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Failed authentications per second allowed per client id and source address, bursts of twice that (then 429); valid credentials are never refused; 0 turns it off [default: 20]
    #[arg(
        long,
        env = "NOMOS_ISSUER_AUTH_FAILURE_LIMIT",
        global = true,
        value_name = "PER_SECOND"
    )]
    pub auth_failure_limit: Option<u32>,
    /// Token requests per second allowed per source address, bursts of twice that; 0 turns it off. Behind a proxy every request comes from the proxy's address [default: 200]
    #[arg(
        long,
        env = "NOMOS_ISSUER_ADDRESS_RATE_LIMIT",
        global = true,
        value_name = "PER_SECOND"
    )]
    pub address_rate_limit: Option<u32>,
    /// Requests handled at once, counted apart for discovery/JWKS/health and for everything else; beyond it the issuer answers 503 at once [default: 1024]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_CONCURRENCY",
        global = true,
        value_name = "N"
    )]
    pub max_concurrency: Option<usize>,
    /// Token and admin requests one source address may have in flight (then 429); 0 turns it off. Behind a proxy every request comes from the proxy's address [default: 128]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_IN_FLIGHT_PER_ADDRESS",
        global = true,
        value_name = "N"
    )]
    pub max_in_flight_per_address: Option<usize>,
    /// Open connections per listener; more are closed at once (also capped by the file-descriptor limit) [default: 10000]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_CONNECTIONS",
        global = true,
        value_name = "N"
    )]
    pub max_connections: Option<usize>,
    /// Open connections one source address may hold per listener; 0 turns it off. Behind a proxy, raise it or turn it off [default: 256]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_CONNECTIONS_PER_ADDRESS",
        global = true,
        value_name = "N"
    )]
    pub max_connections_per_address: Option<usize>,
    /// A second listener for /metrics and /admin (operators only); when set, the main listener answers 404 for them [default: none: everything on --listen]
    #[arg(
        long,
        env = "NOMOS_ISSUER_OPERATOR_LISTEN",
        global = true,
        value_name = "ADDR"
    )]
    pub operator_listen: Option<String>,
    /// How long audit records are kept, e.g. 90d; serve purges older ones hourly; 0 keeps them forever [default: 90d]
    #[arg(
        long,
        env = "NOMOS_ISSUER_AUDIT_RETENTION",
        global = true,
        value_name = "DURATION"
    )]
    pub audit_retention: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(
        long,
        env = "NOMOS_ISSUER_LOG_FORMAT",
        global = true,
        value_name = "FORMAT"
    )]
    pub log_format: Option<String>,
}

/// The TOML file: the same settings, snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    issuer: Option<String>,
    database_url: Option<String>,
    kek_file: Option<PathBuf>,
    signing_alg: Option<String>,
    token_ttl: Option<u32>,
    jwks_max_age: Option<u32>,
    assertion_skew: Option<u32>,
    log_format: Option<String>,
    previous_kek_files: Option<Vec<PathBuf>>,
    rotation_period: Option<String>,
    rotation_margin: Option<String>,
    max_token_lifetime: Option<u32>,
    verifier_skew: Option<u32>,
    key_check_interval: Option<String>,
    principal_cache_seconds: Option<u32>,
    max_body_bytes: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    auth_failure_limit: Option<u32>,
    address_rate_limit: Option<u32>,
    max_concurrency: Option<usize>,
    max_in_flight_per_address: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
    operator_listen: Option<String>,
    audit_retention: Option<String>,
}

/// HTTPS: the certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

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
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen_text = pick(&args.listen, &file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an address like 127.0.0.1:8080"),
            )
        })?;
        let mut warnings = Vec::new();
        let configured_issuer = pick(&args.issuer, &file.issuer);
        let issuer_follows_listen = configured_issuer.is_none();
        let scheme = match pick(&args.tls_cert, &file.tls_cert) {
            Some(_) => "https",
            None => "http",
        };
        let issuer = configured_issuer.unwrap_or_else(|| format!("{scheme}://{listen}"));
        check_issuer(&issuer, &mut warnings)?;
        let database_url = pick(&args.database_url, &file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        let backend = Backend::of_url(&database_url).ok_or_else(|| {
            invalid(
                "database_url",
                "use postgres://… (production) or sqlite:… (embedded)",
            )
        })?;
        let kek_file = pick(&args.kek_file, &file.kek_file);
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
        let alg_text = pick(&args.signing_alg, &file.signing_alg).unwrap_or_else(|| "ES256".into());
        let signing_alg: Alg = alg_text.parse().map_err(|e| invalid("signing_alg", e))?;
        let token_ttl = pick(&args.token_ttl, &file.token_ttl).unwrap_or(300);
        if token_ttl == 0 || token_ttl > MAX_TOKEN_TTL {
            return Err(invalid(
                "token_ttl",
                format!("{token_ttl} is outside 1-{MAX_TOKEN_TTL} seconds"),
            ));
        }
        let jwks_max_age = pick(&args.jwks_max_age, &file.jwks_max_age).unwrap_or(300);
        if jwks_max_age > 86_400 {
            return Err(invalid("jwks_max_age", "at most 86400 seconds"));
        }
        let max_token_lifetime =
            pick(&args.max_token_lifetime, &file.max_token_lifetime).unwrap_or(MAX_TOKEN_TTL);
        if max_token_lifetime == 0 || max_token_lifetime > MAX_TOKEN_TTL {
            return Err(invalid(
                "max_token_lifetime",
                format!("{max_token_lifetime} is outside 1-{MAX_TOKEN_TTL} seconds"),
            ));
        }
        if token_ttl > max_token_lifetime {
            return Err(invalid(
                "token_ttl",
                format!(
                    "token_ttl ({token_ttl} s) is longer than max_token_lifetime ({max_token_lifetime} s), which sizes how long old keys stay published"
                ),
            ));
        }
        let verifier_skew = pick(&args.verifier_skew, &file.verifier_skew).unwrap_or(300);
        if verifier_skew > 3600 {
            return Err(invalid("verifier_skew", "at most 3600 seconds"));
        }
        let rotation_period = duration(
            "rotation_period",
            pick(&args.rotation_period, &file.rotation_period)
                .as_deref()
                .unwrap_or("7d"),
        )?;
        let rotation_margin = duration(
            "rotation_margin",
            pick(&args.rotation_margin, &file.rotation_margin)
                .as_deref()
                .unwrap_or("5m"),
        )?;
        if rotation_margin.as_secs() < 1 {
            return Err(invalid(
                "rotation_margin",
                "at least 1s: key timestamps are whole seconds",
            ));
        }
        let key_check_interval = duration(
            "key_check_interval",
            pick(&args.key_check_interval, &file.key_check_interval)
                .as_deref()
                .unwrap_or("10s"),
        )?;
        if key_check_interval.is_zero() || key_check_interval > Duration::from_secs(600) {
            return Err(invalid("key_check_interval", "use 1s to 10m"));
        }
        let rotation = Policy {
            alg: signing_alg,
            rotation_period: rotation_period.as_secs() as i64,
            jwks_max_age: i64::from(jwks_max_age),
            margin: rotation_margin.as_secs() as i64,
            max_token_lifetime: i64::from(max_token_lifetime),
            verifier_skew: i64::from(verifier_skew),
        };
        rotation
            .validate()
            .map_err(|(name, why)| invalid(&name, why))?;
        let previous_kek_files = if args.previous_kek_files.is_empty() {
            file.previous_kek_files.clone().unwrap_or_default()
        } else {
            args.previous_kek_files.clone()
        };
        let assertion_skew = pick(&args.assertion_skew, &file.assertion_skew).unwrap_or(30);
        if assertion_skew > 300 {
            return Err(invalid("assertion_skew", "at most 300 seconds"));
        }
        let log_format = match pick(&args.log_format, &file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log_format",
                    format!("{other:?}: use text or json"),
                ));
            }
        };
        let cache = file.principal_cache_seconds.unwrap_or(600);
        if cache == 0 || cache > 3600 {
            return Err(invalid("principal_cache_seconds", "use 1-3600 seconds"));
        }
        let max_body_bytes = file.max_body_bytes.unwrap_or(16 * 1024);
        if !(1024..=1024 * 1024).contains(&max_body_bytes) {
            return Err(invalid("max_body_bytes", "use 1024-1048576 bytes"));
        }
        let tls = match (
            pick(&args.tls_cert, &file.tls_cert),
            pick(&args.tls_key, &file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(invalid("tls_key", "tls_cert is set: set tls_key too")),
            (None, Some(_)) => return Err(invalid("tls_cert", "tls_key is set: set tls_cert too")),
        };
        let auth_failure_limit =
            pick(&args.auth_failure_limit, &file.auth_failure_limit).unwrap_or(20);
        let address_rate_limit =
            pick(&args.address_rate_limit, &file.address_rate_limit).unwrap_or(200);
        let max_concurrency = pick(&args.max_concurrency, &file.max_concurrency).unwrap_or(1024);
        if !(1..=100_000).contains(&max_concurrency) {
            return Err(invalid("max_concurrency", "use 1-100000"));
        }
        let max_in_flight_per_address = pick(
            &args.max_in_flight_per_address,
            &file.max_in_flight_per_address,
        )
        .unwrap_or(128);
        let max_connections = pick(&args.max_connections, &file.max_connections).unwrap_or(10_000);
        if !(16..=1_000_000).contains(&max_connections) {
            return Err(invalid("max_connections", "use 16-1000000"));
        }
        let max_connections_per_address = pick(
            &args.max_connections_per_address,
            &file.max_connections_per_address,
        )
        .unwrap_or(256);
        if max_connections_per_address > max_connections {
            return Err(invalid(
                "max_connections_per_address",
                format!(
                    "{max_connections_per_address} is more than max_connections ({max_connections}): one address could take every connection"
                ),
            ));
        }
        let operator_listen = match pick(&args.operator_listen, &file.operator_listen) {
            None => None,
            Some(text) => {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    invalid(
                        "operator_listen",
                        format!("{text:?} is not an address like 127.0.0.1:9090"),
                    )
                })?;
                if addr == listen && addr.port() != 0 {
                    return Err(invalid(
                        "operator_listen",
                        format!("{addr} is also the listen address: use another port"),
                    ));
                }
                Some(addr)
            }
        };
        let retention_text =
            pick(&args.audit_retention, &file.audit_retention).unwrap_or_else(|| "90d".into());
        let audit_retention = match retention_text.trim() {
            "0" | "0s" => None,
            text => {
                let d = duration("audit_retention", text)?;
                if d < Duration::from_secs(3600) {
                    return Err(invalid(
                        "audit_retention",
                        "at least 1h (or 0 to keep records forever)",
                    ));
                }
                Some(d)
            }
        };
        Ok(Settings {
            tls,
            auth_failure_limit,
            address_rate_limit,
            max_concurrency,
            max_in_flight_per_address,
            max_connections,
            max_connections_per_address,
            operator_listen,
            audit_retention,
            listen,
            issuer,
            issuer_follows_listen,
            database_url,
            backend,
            kek,
            kek_is_default,
            previous_kek_files,
            rotation,
            key_check_interval,
            token_ttl,
            assertion_skew,
            log_format,
            principal_cache_ttl: Duration::from_secs(cache.into()),
            max_body_bytes,
            warnings,
        })
    }
}

fn duration(name: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text).map_err(|e| {
        invalid(
            name,
            format!("{text:?} is not a duration like 7d, 12h or 90s: {e}"),
        )
    })
}

fn pick<T: Clone>(flag_or_env: &Option<T>, file: &Option<T>) -> Option<T> {
    flag_or_env.clone().or_else(|| file.clone())
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| invalid("config", format!("{}: {e}", path.display())))
}

/// The warnings a valid issuer URL earns (not https, a port).
pub fn issuer_warnings(issuer: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    let _ = check_issuer(issuer, &mut warnings);
    warnings
}

/// AWS compares `iss` with the provider URL as a string: no trailing slash,
/// no query or fragment, at most 255 characters, https.
fn check_issuer(issuer: &str, warnings: &mut Vec<String>) -> Result<(), ConfigError> {
    let url = url::Url::parse(issuer)
        .map_err(|e| invalid("issuer", format!("{issuer:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid(
            "issuer",
            "the scheme must be https (or http for local work)",
        ));
    }
    if issuer.ends_with('/') {
        return Err(invalid(
            "issuer",
            "remove the trailing slash: AWS compares iss as a string",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || issuer.contains(['?', '#']) {
        return Err(invalid("issuer", "an issuer URL has no query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("issuer", "an issuer URL has no user info"));
    }
    if issuer.len() > 255 {
        return Err(invalid("issuer", "AWS accepts at most 255 characters"));
    }
    if url.scheme() != "https" {
        warnings.push(format!(
            "issuer {issuer} is not https: AWS will refuse it as an OIDC provider (fine for local work)"
        ));
    } else if url.port().is_some() {
        warnings.push(format!("issuer {issuer} has a port: AWS expects none"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        a.token_ttl = Some(60);
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
            (|a| a.token_ttl = Some(3601), "token_ttl"),
            (|a| a.token_ttl = Some(0), "token_ttl"),
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
        a.token_ttl = Some(900);
        a.max_token_lifetime = Some(600);
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

    #[test]
    fn https_with_path_is_fine() {
        let mut a = args();
        a.issuer = Some("https://id.example.com/orgs/acme".into());
        let s = Settings::resolve(&a, None).unwrap();
        assert!(s.warnings.is_empty());
        assert!(!format!("{:?}", KekSource::Env("c2VjcmV0".into())).contains("c2Vj"));
    }
}
