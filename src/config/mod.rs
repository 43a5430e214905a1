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

/// One layer of settings: the flags and `NOMOS_ISSUER_*` variables, or the
/// TOML file, whose keys are the field names. Every field is optional so that
/// a lower layer and the defaults can fill the gaps.
#[derive(clap::Args, Deserialize, Debug, Clone, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigArgs {
    /// TOML configuration file (lowest precedence above the defaults)
    #[arg(long, env = "NOMOS_ISSUER_CONFIG", global = true, value_name = "FILE")]
    // The file names no other file.
    #[serde(skip)]
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
    /// How long a client's credentials stay cached, in seconds (1-3600); changes reach every replica within a second anyway [default: 600]
    #[arg(
        long,
        env = "NOMOS_ISSUER_PRINCIPAL_CACHE_SECONDS",
        global = true,
        value_name = "SECONDS"
    )]
    pub principal_cache_seconds: Option<u32>,
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
    /// Largest token request body, in bytes (1024-1048576); the admin API takes up to 64 KiB [default: 16384]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_BODY_BYTES",
        global = true,
        value_name = "BYTES"
    )]
    pub max_body_bytes: Option<usize>,
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

/// How a higher layer's value covers a lower one's.
trait Layered {
    fn over(self, lower: Self) -> Self;
}

impl<T> Layered for Option<T> {
    fn over(self, lower: Self) -> Self {
        self.or(lower)
    }
}

/// A list is set when it is not empty: a flag cannot say "none" apart from absent.
impl<T> Layered for Vec<T> {
    fn over(self, lower: Self) -> Self {
        if self.is_empty() { lower } else { self }
    }
}

/// `ConfigArgs::over`, written once for every field. Both the pattern and the
/// struct expression are exhaustive, so a field left out of the list does not
/// compile.
macro_rules! layer_over {
    ($($field:ident),* $(,)?) => {
        impl ConfigArgs {
            /// Each setting of `self` where it is set, else that of `lower`.
            fn over(self, lower: ConfigArgs) -> ConfigArgs {
                let ConfigArgs { $($field),* } = lower;
                ConfigArgs { $($field: Layered::over(self.$field, $field)),* }
            }
        }
    };
}

layer_over!(
    config,
    listen,
    issuer,
    database_url,
    kek_file,
    signing_alg,
    token_ttl,
    jwks_max_age,
    assertion_skew,
    principal_cache_seconds,
    previous_kek_files,
    rotation_period,
    rotation_margin,
    max_token_lifetime,
    verifier_skew,
    key_check_interval,
    tls_cert,
    tls_key,
    auth_failure_limit,
    address_rate_limit,
    max_concurrency,
    max_in_flight_per_address,
    max_connections,
    max_connections_per_address,
    max_body_bytes,
    operator_listen,
    audit_retention,
    log_format,
);

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
            None => ConfigArgs::default(),
        };
        let layer = args.clone().over(file);
        let listen_text = layer
            .listen
            .clone()
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an address like 127.0.0.1:8080"),
            )
        })?;
        let mut warnings = Vec::new();
        let configured_issuer = layer.issuer.clone();
        let issuer_follows_listen = configured_issuer.is_none();
        let scheme = match layer.tls_cert {
            Some(_) => "https",
            None => "http",
        };
        let issuer = configured_issuer.unwrap_or_else(|| format!("{scheme}://{listen}"));
        check_issuer(&issuer, &mut warnings)?;
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
        let alg_text = layer.signing_alg.clone().unwrap_or_else(|| "ES256".into());
        let signing_alg: Alg = alg_text.parse().map_err(|e| invalid("signing_alg", e))?;
        let token_ttl = layer.token_ttl.unwrap_or(300);
        if token_ttl == 0 || token_ttl > MAX_TOKEN_TTL {
            return Err(invalid(
                "token_ttl",
                format!("{token_ttl} is outside 1-{MAX_TOKEN_TTL} seconds"),
            ));
        }
        let jwks_max_age = layer.jwks_max_age.unwrap_or(300);
        if jwks_max_age > 86_400 {
            return Err(invalid("jwks_max_age", "at most 86400 seconds"));
        }
        let max_token_lifetime = layer.max_token_lifetime.unwrap_or(MAX_TOKEN_TTL);
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
        let verifier_skew = layer.verifier_skew.unwrap_or(300);
        if verifier_skew > 3600 {
            return Err(invalid("verifier_skew", "at most 3600 seconds"));
        }
        let rotation_period = duration(
            "rotation_period",
            layer.rotation_period.as_deref().unwrap_or("7d"),
        )?;
        let rotation_margin = duration(
            "rotation_margin",
            layer.rotation_margin.as_deref().unwrap_or("5m"),
        )?;
        if rotation_margin.as_secs() < 1 {
            return Err(invalid(
                "rotation_margin",
                "at least 1s: key timestamps are whole seconds",
            ));
        }
        let key_check_interval = duration(
            "key_check_interval",
            layer.key_check_interval.as_deref().unwrap_or("10s"),
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
        let previous_kek_files = layer.previous_kek_files.clone();
        let assertion_skew = layer.assertion_skew.unwrap_or(30);
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
        let cache = layer.principal_cache_seconds.unwrap_or(600);
        if cache == 0 || cache > 3600 {
            return Err(invalid("principal_cache_seconds", "use 1-3600 seconds"));
        }
        let max_body_bytes = layer.max_body_bytes.unwrap_or(16 * 1024);
        if !(1024..=1024 * 1024).contains(&max_body_bytes) {
            return Err(invalid("max_body_bytes", "use 1024-1048576 bytes"));
        }
        let tls = match (layer.tls_cert.clone(), layer.tls_key.clone()) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(invalid("tls_key", "tls_cert is set: set tls_key too")),
            (None, Some(_)) => return Err(invalid("tls_cert", "tls_key is set: set tls_cert too")),
        };
        let auth_failure_limit = layer.auth_failure_limit.unwrap_or(20);
        let address_rate_limit = layer.address_rate_limit.unwrap_or(200);
        let max_concurrency = layer.max_concurrency.unwrap_or(1024);
        if !(1..=100_000).contains(&max_concurrency) {
            return Err(invalid("max_concurrency", "use 1-100000"));
        }
        let max_in_flight_per_address = layer.max_in_flight_per_address.unwrap_or(128);
        let max_connections = layer.max_connections.unwrap_or(10_000);
        if !(16..=1_000_000).contains(&max_connections) {
            return Err(invalid("max_connections", "use 16-1000000"));
        }
        let max_connections_per_address = layer.max_connections_per_address.unwrap_or(256);
        if max_connections_per_address > max_connections {
            return Err(invalid(
                "max_connections_per_address",
                format!(
                    "{max_connections_per_address} is more than max_connections ({max_connections}): one address could take every connection"
                ),
            ));
        }
        let operator_listen = match layer.operator_listen.clone() {
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
        let retention_text = layer
            .audit_retention
            .clone()
            .unwrap_or_else(|| "90d".into());
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

fn read_file(path: &Path) -> Result<ConfigArgs, ConfigError> {
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

    /// The keys serde accepts for `T`: its derive hands them to `deserialize_struct`.
    fn file_keys<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        struct Keys<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Keys<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(
                self,
                _: V,
            ) -> Result<V::Value, Self::Error> {
                Err(serde::de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(serde::de::Error::custom("only the keys were wanted"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
                enum identifier ignored_any
            }
        }
        let mut keys: &'static [&'static str] = &[];
        let _ = T::deserialize(Keys(&mut keys));
        keys
    }

    #[test]
    fn every_setting_is_a_flag_a_variable_and_a_file_key() {
        use clap::Args;
        let command = ConfigArgs::augment_args(clap::Command::new("t"));
        let mut flags = Vec::new();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            // One file per flag, a list in the file and the variable.
            let long = match id {
                "previous_kek_files" => "previous-kek-file".to_owned(),
                _ => id.replace('_', "-"),
            };
            assert_eq!(arg.get_long(), Some(long.as_str()), "the flag of {id}");
            let env = format!("NOMOS_ISSUER_{}", id.to_uppercase());
            assert_eq!(arg.get_env(), Some(env.as_ref()), "the variable of {id}");
            assert!(arg.is_global_set(), "{id} is accepted after any command");
            // `--config` names the file: it is no key of it.
            if id != "config" {
                flags.push(id);
            }
        }
        let mut keys = file_keys::<ConfigArgs>().to_vec();
        flags.sort_unstable();
        keys.sort_unstable();
        assert_eq!(flags, keys, "the flags and the file keys");
    }

    /// Settings from a command line (and this process's environment).
    fn parse(argv: &[&str]) -> Result<Settings, ConfigError> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            config: ConfigArgs,
        }
        let cli = <Cli as clap::Parser>::try_parse_from(argv).unwrap();
        Settings::resolve(&cli.config, None)
    }

    #[test]
    fn principal_cache_seconds_and_max_body_bytes_are_flags() {
        let s = parse(&["t"]).unwrap();
        assert_eq!(s.principal_cache_ttl, Duration::from_secs(600));
        assert_eq!(s.max_body_bytes, 16_384);
        let argv = [
            "t",
            "--principal-cache-seconds",
            "60",
            "--max-body-bytes",
            "2048",
        ];
        let s = parse(&argv).unwrap();
        assert_eq!(s.principal_cache_ttl, Duration::from_secs(60));
        assert_eq!(s.max_body_bytes, 2048);
        let e = parse(&["t", "--principal-cache-seconds", "0"]).unwrap_err();
        assert_eq!(e.name, "principal_cache_seconds");
        let e = parse(&["t", "--max-body-bytes", "10"]).unwrap_err();
        assert_eq!(e.name, "max_body_bytes");
        // Over the file's.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "principal_cache_seconds = 30\nmax_body_bytes = 4096\n",
        )
        .unwrap();
        let config = path.to_str().unwrap();
        let s = parse(&["t", "--config", config]).unwrap();
        assert_eq!(s.principal_cache_ttl, Duration::from_secs(30));
        assert_eq!(s.max_body_bytes, 4096);
        let s = parse(&["t", "--config", config, "--max-body-bytes", "2048"]).unwrap();
        assert_eq!(s.principal_cache_ttl, Duration::from_secs(30));
        assert_eq!(s.max_body_bytes, 2048);
    }

    #[test]
    fn principal_cache_seconds_and_max_body_bytes_are_variables() {
        const VARIABLES: [(&str, &str); 2] = [
            ("NOMOS_ISSUER_PRINCIPAL_CACHE_SECONDS", "60"),
            ("NOMOS_ISSUER_MAX_BODY_BYTES", "2048"),
        ];
        const CHILD: &str = "NOMOS_CONFIG_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let s = parse(&["t"]).unwrap();
            assert_eq!(s.principal_cache_ttl, Duration::from_secs(60));
            assert_eq!(s.max_body_bytes, 2048);
            return;
        }
        // Setting a variable in this multi-threaded test process is unsound,
        // so this test runs itself again in a child that has them.
        let module = module_path!().split_once("::").unwrap().1;
        let name = format!("{module}::principal_cache_seconds_and_max_body_bytes_are_variables");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name.as_str(), "--exact"])
            .envs(VARIABLES)
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains("1 passed"),
            "the child ran the test: {stdout}"
        );
    }
}
