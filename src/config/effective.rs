//! The settings in effect, by their file keys, with secrets hidden: what
//! `config check` prints. As TOML it is itself a configuration file.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{KekSource, LogFormat, Settings};

/// What a hidden secret prints as.
pub const HIDDEN: &str = "<hidden>";

impl Settings {
    /// Every setting by its file key, as a file would say it (durations as
    /// `5m`, `7d`). The database URL's password is hidden; a KEK given in
    /// `NOMOS_ISSUER_KEK` is no file key and is left out (see [`Settings::kek_source`]);
    /// settings that are off (`tls_cert`, `operator_listen`) are left out.
    pub fn effective(&self) -> Map<String, Value> {
        let secs = |s: u32| Value::from(span(Duration::from_secs(s.into())));
        let p = &self.rotation;
        let mut m = Map::new();
        m.insert("listen".into(), json!(self.listen.to_string()));
        m.insert("issuer".into(), json!(self.issuer));
        m.insert(
            "database_url".into(),
            json!(hide_password(&self.database_url)),
        );
        if let KekSource::File(path) = &self.kek {
            m.insert("kek_file".into(), json!(path.display().to_string()));
        }
        m.insert(
            "previous_kek_files".into(),
            json!(
                self.previous_kek_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
            ),
        );
        m.insert("signing_alg".into(), json!(p.alg.to_string()));
        m.insert("token_ttl".into(), secs(self.token_ttl));
        m.insert("jwks_max_age".into(), secs(p.jwks_max_age as u32));
        m.insert("assertion_skew".into(), secs(self.assertion_skew));
        m.insert(
            "principal_cache_seconds".into(),
            json!(span(self.principal_cache_ttl)),
        );
        m.insert(
            "rotation_period".into(),
            json!(span(Duration::from_secs(p.rotation_period as u64))),
        );
        m.insert(
            "rotation_margin".into(),
            json!(span(Duration::from_secs(p.margin as u64))),
        );
        m.insert(
            "max_token_lifetime".into(),
            secs(p.max_token_lifetime as u32),
        );
        m.insert("verifier_skew".into(), secs(p.verifier_skew as u32));
        m.insert(
            "key_check_interval".into(),
            json!(span(self.key_check_interval)),
        );
        if let Some(tls) = &self.tls {
            m.insert("tls_cert".into(), json!(tls.cert.display().to_string()));
            m.insert("tls_key".into(), json!(tls.key.display().to_string()));
        }
        m.insert("auth_failure_limit".into(), json!(self.auth_failure_limit));
        m.insert("address_rate_limit".into(), json!(self.address_rate_limit));
        m.insert("max_concurrency".into(), json!(self.max_concurrency));
        m.insert(
            "max_in_flight_per_address".into(),
            json!(self.max_in_flight_per_address),
        );
        m.insert("max_connections".into(), json!(self.max_connections));
        m.insert(
            "max_connections_per_address".into(),
            json!(self.max_connections_per_address),
        );
        m.insert("max_body_bytes".into(), json!(self.max_body_bytes));
        if let Some(addr) = self.operator_listen {
            m.insert("operator_listen".into(), json!(addr.to_string()));
        }
        m.insert(
            "audit_retention".into(),
            json!(self.audit_retention.map_or_else(|| "0".into(), span)),
        );
        m.insert(
            "log_format".into(),
            json!(match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }),
        );
        m
    }

    /// Where the KEK comes from, its value hidden.
    pub fn kek_source(&self) -> String {
        match &self.kek {
            KekSource::File(path) => format!("the file {}", path.display()),
            KekSource::Env(_) => format!("NOMOS_ISSUER_KEK ({HIDDEN})"),
        }
    }
}

/// A duration in the largest unit that says it exactly (`300 s` as `5m`,
/// 90 days as `90d`, `90 s` as `90s`): the form a file would use, and one
/// that reads back as the same duration.
fn span(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// A database URL with its password, if any, replaced by [`HIDDEN`].
pub fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let tail = hide_query_password(tail);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{HIDDEN}@{host}{tail}"),
            None => format!("{scheme}://{authority}{tail}"),
        },
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// `?password=…` (libpq's form) hidden too.
fn hide_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}={HIDDEN}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The settings as TOML lines (`key = value`), in the order given.
pub fn to_toml(settings: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (key, value) in settings {
        out.push_str(&format!("{key} = {}\n", toml_value(value)));
    }
    out
}

/// A JSON string, number or array of them as TOML (a JSON string is a valid
/// TOML basic string).
fn toml_value(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigArgs;

    #[test]
    fn passwords_are_hidden_and_nothing_else_changes() {
        for (url, shown) in [
            (
                "postgres://nomos:s3cr%40t@db:5432/nomos",
                "postgres://nomos:<hidden>@db:5432/nomos",
            ),
            ("postgres://nomos@db/nomos", "postgres://nomos@db/nomos"),
            (
                "postgres://db/nomos?user=n&password=s3cret&sslmode=require",
                "postgres://db/nomos?user=n&password=<hidden>&sslmode=require",
            ),
            (
                "sqlite://data/nomos-issuer.db",
                "sqlite://data/nomos-issuer.db",
            ),
            ("sqlite:x.db", "sqlite:x.db"),
        ] {
            assert_eq!(hide_password(url), shown);
        }
    }

    /// The printed settings are a configuration file that means the same.
    #[test]
    fn the_effective_settings_read_back_as_the_same_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "token_ttl = 90\nrotation_period = \"1d 12h\"\naudit_retention = \"0\"\n\
             operator_listen = \"127.0.0.1:9090\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n\
             previous_kek_files = [\"old\"]\nlog_format = \"json\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let first = Settings::resolve(&args, None).unwrap().effective();
        assert_eq!(first["token_ttl"], "90s");
        assert_eq!(first["rotation_period"], "36h");
        assert_eq!(first["audit_retention"], "0");
        assert_eq!(span(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(span(Duration::from_millis(1500)), "1500ms");
        std::fs::write(&path, to_toml(&first)).unwrap();
        let again = Settings::resolve(&args, None).unwrap().effective();
        assert_eq!(first, again);
        // Every file key is shown when it is set.
        use clap::Args;
        let flags = ConfigArgs::augment_args(clap::Command::new("t"));
        let mut expected: Vec<&str> = flags
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| *id != "config")
            .collect();
        expected.sort();
        let mut shown: Vec<&str> = first.keys().map(String::as_str).collect();
        shown.sort();
        assert_eq!(shown, expected);
    }
}
