//! The one declaration of every setting: a flag, a `NOMOS_ISSUER_*` variable
//! and a key of the `--config` file alike, and how the layers cover each other.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::duration::DurationText;
use super::{ConfigError, invalid};

/// One layer of settings: the flags and `NOMOS_ISSUER_*` variables, or the
/// TOML file, whose keys are the field names. Every field is optional so that
/// a lower layer and the defaults can fill the gaps.
///
/// Every flag is global (accepted after any command) and listed by `--help`
/// under "Global options"; `-h` leaves them out, so that a command's short
/// help shows its own flags, and says where the others are.
#[derive(clap::Args, Deserialize, Debug, Clone, Default)]
#[serde(default, deny_unknown_fields)]
#[command(next_help_heading = "Global options")]
pub struct ConfigArgs {
    /// TOML configuration file (lowest precedence above the defaults)
    #[arg(
        long,
        env = "NOMOS_ISSUER_CONFIG",
        global = true,
        hide_short_help = true,
        value_name = "FILE"
    )]
    // The file names no other file.
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(
        long,
        env = "NOMOS_ISSUER_LISTEN",
        global = true,
        hide_short_help = true,
        value_name = "ADDR"
    )]
    pub listen: Option<String>,
    /// Issuer URL, the `iss` of every token; AWS requires https [default: http://<listen>]
    #[arg(
        long,
        env = "NOMOS_ISSUER_ISSUER",
        global = true,
        hide_short_help = true,
        value_name = "URL"
    )]
    pub issuer: Option<String>,
    /// postgres://… or sqlite:… [default: sqlite://data/nomos-issuer.db]
    #[arg(
        long,
        env = "NOMOS_ISSUER_DATABASE_URL",
        global = true,
        hide_short_help = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// File holding the base64 key-encryption key; NOMOS_ISSUER_KEK may hold it instead [default: keys/kek]
    #[arg(
        long,
        env = "NOMOS_ISSUER_KEK_FILE",
        global = true,
        hide_short_help = true,
        value_name = "FILE"
    )]
    pub kek_file: Option<PathBuf>,
    /// Token signing algorithm: ES256 or RS256 [default: ES256]
    #[arg(
        long,
        env = "NOMOS_ISSUER_SIGNING_ALG",
        global = true,
        hide_short_help = true,
        value_name = "ALG"
    )]
    pub signing_alg: Option<String>,
    /// Default token lifetime, capped by each org's maximum, e.g. 300 or 5m [default: 5m]
    #[arg(
        long,
        env = "NOMOS_ISSUER_TOKEN_TTL",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub token_ttl: Option<DurationText>,
    /// The longest a verifier may cache the JWKS (Cache-Control max-age; key rotation waits on it), e.g. 300 or 5m [default: 5m]
    #[arg(
        long,
        env = "NOMOS_ISSUER_JWKS_MAX_AGE",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub jwks_max_age: Option<DurationText>,
    /// Clock skew allowed on client assertions, e.g. 30 or 30s [default: 30s]
    #[arg(
        long,
        env = "NOMOS_ISSUER_ASSERTION_SKEW",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub assertion_skew: Option<DurationText>,
    /// How long a client's credentials stay cached (1s-1h), e.g. 600 or 10m; changes reach every replica within a second anyway [default: 10m]
    #[arg(
        long,
        env = "NOMOS_ISSUER_PRINCIPAL_CACHE_SECONDS",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub principal_cache_seconds: Option<DurationText>,
    /// Earlier key-encryption keys, only to decrypt keys not yet re-wrapped (repeat, or comma-separate)
    #[arg(
        long = "previous-kek-file",
        env = "NOMOS_ISSUER_PREVIOUS_KEK_FILES",
        global = true,
        hide_short_help = true,
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub previous_kek_files: Vec<PathBuf>,
    /// How long a key signs before the next one takes over, e.g. 7d or 12h [default: 7d]
    #[arg(
        long,
        env = "NOMOS_ISSUER_ROTATION_PERIOD",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub rotation_period: Option<DurationText>,
    /// Safety margin added to every rotation wait, e.g. 5m [default: 5m]
    #[arg(
        long,
        env = "NOMOS_ISSUER_ROTATION_MARGIN",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub rotation_margin: Option<DurationText>,
    /// The longest lifetime any token may have (at most 1h), e.g. 3600 or 1h [default: 1h]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_TOKEN_LIFETIME",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub max_token_lifetime: Option<DurationText>,
    /// Clock skew verifiers allow past exp (AWS allows 5m), e.g. 300 or 5m [default: 5m]
    #[arg(
        long,
        env = "NOMOS_ISSUER_VERIFIER_SKEW",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub verifier_skew: Option<DurationText>,
    /// How often serve checks the rotation plan, e.g. 10s [default: 10s]
    #[arg(
        long,
        env = "NOMOS_ISSUER_KEY_CHECK_INTERVAL",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub key_check_interval: Option<DurationText>,
    /// PEM file with the TLS certificate chain, leaf first; serves HTTPS (reloaded on change and on SIGHUP)
    #[arg(
        long,
        env = "NOMOS_ISSUER_TLS_CERT",
        global = true,
        hide_short_help = true,
        value_name = "FILE"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the TLS private key (PKCS#8, PKCS#1 or SEC1)
    #[arg(
        long,
        env = "NOMOS_ISSUER_TLS_KEY",
        global = true,
        hide_short_help = true,
        value_name = "FILE"
    )]
    pub tls_key: Option<PathBuf>,
    /// Failed authentications per second allowed per client id and source address, bursts of twice that (then 429); valid credentials are never refused; 0 turns it off [default: 20]
    #[arg(
        long,
        env = "NOMOS_ISSUER_AUTH_FAILURE_LIMIT",
        global = true,
        hide_short_help = true,
        value_name = "PER_SECOND"
    )]
    pub auth_failure_limit: Option<u32>,
    /// Token requests per second allowed per source address, bursts of twice that; 0 turns it off. Behind a proxy every request comes from the proxy's address [default: 200]
    #[arg(
        long,
        env = "NOMOS_ISSUER_ADDRESS_RATE_LIMIT",
        global = true,
        hide_short_help = true,
        value_name = "PER_SECOND"
    )]
    pub address_rate_limit: Option<u32>,
    /// Requests handled at once, counted apart for discovery/JWKS/health and for everything else; beyond it the issuer answers 503 at once [default: 1024]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_CONCURRENCY",
        global = true,
        hide_short_help = true,
        value_name = "N"
    )]
    pub max_concurrency: Option<usize>,
    /// Token and admin requests one source address may have in flight (then 429); 0 turns it off. Behind a proxy every request comes from the proxy's address [default: 128]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_IN_FLIGHT_PER_ADDRESS",
        global = true,
        hide_short_help = true,
        value_name = "N"
    )]
    pub max_in_flight_per_address: Option<usize>,
    /// Open connections per listener; more are closed at once (also capped by the file-descriptor limit) [default: 10000]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_CONNECTIONS",
        global = true,
        hide_short_help = true,
        value_name = "N"
    )]
    pub max_connections: Option<usize>,
    /// Open connections one source address may hold per listener; 0 turns it off. Behind a proxy, raise it or turn it off [default: 256]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_CONNECTIONS_PER_ADDRESS",
        global = true,
        hide_short_help = true,
        value_name = "N"
    )]
    pub max_connections_per_address: Option<usize>,
    /// Largest token request body, in bytes (1024-1048576); the admin API takes up to 64 KiB [default: 16384]
    #[arg(
        long,
        env = "NOMOS_ISSUER_MAX_BODY_BYTES",
        global = true,
        hide_short_help = true,
        value_name = "BYTES"
    )]
    pub max_body_bytes: Option<usize>,
    /// A second listener for /metrics and /admin (operators only); when set, the main listener answers 404 for them [default: none: everything on --listen]
    #[arg(
        long,
        env = "NOMOS_ISSUER_OPERATOR_LISTEN",
        global = true,
        hide_short_help = true,
        value_name = "ADDR"
    )]
    pub operator_listen: Option<String>,
    /// How long audit records are kept, e.g. 90d; serve purges older ones hourly; 0 keeps them forever [default: 90d]
    #[arg(
        long,
        env = "NOMOS_ISSUER_AUDIT_RETENTION",
        global = true,
        hide_short_help = true,
        value_name = "DURATION"
    )]
    pub audit_retention: Option<DurationText>,
    /// Log format: text or json [default: text]
    #[arg(
        long,
        env = "NOMOS_ISSUER_LOG_FORMAT",
        global = true,
        hide_short_help = true,
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

impl ConfigArgs {
    /// These flags and variables over the `--config` file, if there is one.
    pub(super) fn over_file(&self) -> Result<ConfigArgs, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => ConfigArgs::default(),
        };
        Ok(self.clone().over(file))
    }
}

fn read_file(path: &Path) -> Result<ConfigArgs, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| invalid("config", format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Settings;

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
            assert!(arg.is_hide_short_help_set(), "{id} is only in --help");
            assert_eq!(arg.get_help_heading(), Some("Global options"), "{id}");
            // `--config` names the file: it is no key of it.
            if id != "config" {
                flags.push(id);
            }
        }
        let keys = file_keys::<ConfigArgs>();
        let no_key: Vec<_> = flags.iter().filter(|id| !keys.contains(id)).collect();
        let no_flag: Vec<_> = keys.iter().filter(|key| !flags.contains(key)).collect();
        assert!(
            no_key.is_empty() && no_flag.is_empty(),
            "flags that are no file key: {no_key:?}; file keys that are no flag: {no_flag:?}"
        );
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

    /// Every duration setting takes seconds (`300`) or units (`5m`, `7d`), as a
    /// flag and in the file, where an integer is seconds as it always was.
    #[test]
    fn durations_take_seconds_or_units_in_flags_and_the_file() {
        let argv = [
            "t",
            "--token-ttl",
            "2m",
            "--jwks-max-age",
            "240",
            "--assertion-skew",
            "1m",
            "--principal-cache-seconds",
            "1h",
            "--max-token-lifetime",
            "30m",
            "--verifier-skew",
            "2m",
            "--rotation-period",
            "86400",
            "--rotation-margin",
            "600",
            "--key-check-interval",
            "30",
            "--audit-retention",
            "7200",
        ];
        let s = parse(&argv).unwrap();
        assert_eq!(s.token_ttl, 120);
        assert_eq!(s.rotation.jwks_max_age, 240);
        assert_eq!(s.assertion_skew, 60);
        assert_eq!(s.principal_cache_ttl, Duration::from_secs(3600));
        assert_eq!(s.rotation.max_token_lifetime, 1800);
        assert_eq!(s.rotation.verifier_skew, 120);
        assert_eq!(s.rotation.rotation_period, 86_400);
        assert_eq!(s.rotation.margin, 600);
        assert_eq!(s.key_check_interval, Duration::from_secs(30));
        assert_eq!(s.audit_retention, Some(Duration::from_secs(7200)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "token_ttl = 120\njwks_max_age = \"4m\"\nrotation_period = 86400\nkey_check_interval = \"30s\"\naudit_retention = \"2h\"\n",
        )
        .unwrap();
        let s = parse(&["t", "--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(s.token_ttl, 120);
        assert_eq!(s.rotation.jwks_max_age, 240);
        assert_eq!(s.rotation.rotation_period, 86_400);
        assert_eq!(s.key_check_interval, Duration::from_secs(30));
        assert_eq!(s.audit_retention, Some(Duration::from_secs(7200)));
        // A bad value names its setting, from a flag or from the file.
        let e = parse(&["t", "--token-ttl", "5x"]).unwrap_err();
        assert_eq!(e.name, "token_ttl");
        assert!(e.why.contains("like 300 (seconds), 5m or 7d"), "{e}");
        std::fs::write(&path, "verifier_skew = true\n").unwrap();
        let e = parse(&["t", "--config", path.to_str().unwrap()]).unwrap_err();
        assert!(
            e.why.contains("verifier_skew") && e.why.contains("duration"),
            "{e}"
        );
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
