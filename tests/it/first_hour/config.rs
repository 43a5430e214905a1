//! `config check`: the configuration validated as every command reads it, the
//! settings in effect printed with secrets hidden; `--json` on the commands
//! that print a result.

use crate::common::process::{json_out, run, stderr};

const KEK: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

#[test]
fn config_check_prints_the_settings_in_effect_with_secrets_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "NOMOS_ISSUER_DATABASE_URL",
            "postgres://nomos:pa55word@db.internal/nomos",
        ),
        ("NOMOS_ISSUER_KEK", KEK),
        ("NOMOS_ISSUER_TOKEN_TTL", "2m"),
    ];
    let o = run(
        dir.path(),
        &["--issuer", "https://id.example.com", "config", "check"],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(
        text.contains("database_url = \"postgres://nomos:<hidden>@db.internal/nomos\""),
        "{text}"
    );
    assert!(
        text.contains("token_ttl = \"2m\"") && text.contains("issuer = \"https://id.example.com\"")
    );
    assert!(text.contains("NOMOS_ISSUER_KEK (<hidden>)"), "{text}");
    let everything = format!("{text}{}", stderr(&o));
    assert!(
        !everything.contains("pa55word") && !everything.contains(KEK),
        "{everything}"
    );
    let out = json_out(&run(dir.path(), &["config", "check", "--json"], &env));
    assert_eq!(
        out["settings"]["database_url"],
        "postgres://nomos:<hidden>@db.internal/nomos"
    );
    assert_eq!(out["settings"]["token_ttl"], "2m");
    assert_eq!(out["kek"], "NOMOS_ISSUER_KEK (<hidden>)");
    assert!(
        out["warnings"][0].as_str().unwrap().contains("not https"),
        "{out}"
    );
    assert!(!out.to_string().contains("pa55word"));

    // What it prints is a configuration file that means the same.
    let o = run(
        dir.path(),
        &["--signing-alg", "RS256", "config", "check"],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(dir.path().join("effective.toml"), &o.stdout).unwrap();
    let again = run(
        dir.path(),
        &["--config", "effective.toml", "config", "check"],
        &[],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn config_check_refuses_an_invalid_configuration_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), "token_ttl = \"2h\"\n").unwrap();
    let o = run(dir.path(), &["--config", "c.toml", "config", "check"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid setting token_ttl") && stderr(&o).contains("1-3600 seconds"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
    let o = run(
        dir.path(),
        &[
            "--tls-cert",
            "missing.pem",
            "--tls-key",
            "missing.key",
            "config",
            "check",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("invalid setting tls_cert") && stderr(&o).contains("missing.pem"),
        "{}",
        stderr(&o)
    );
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/kek"), "not base64!").unwrap();
    let o = run(dir.path(), &["config", "check"], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("key-encryption key"), "{}", stderr(&o));
}

#[test]
fn migrate_and_keys_commands_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = json_out(&run(dir.path(), &["migrate", "--json"], &[]));
    assert_eq!(out, serde_json::json!({ "store": "sqlite", "pending": 0 }));
    let out = json_out(&run(
        dir.path(),
        &["keys", "rotate", "--now", "--json"],
        &[],
    ));
    let applied = out["applied"].as_array().unwrap();
    assert!(
        applied.iter().any(|t| t["transition"] == "create_current"),
        "{out}"
    );
    assert!(
        out["warnings"][0].as_str().unwrap().contains("may reject"),
        "{out}"
    );
    let out = json_out(&run(dir.path(), &["keys", "rewrap", "--json"], &[]));
    // Every key is under the only KEK already.
    assert_eq!(out["rewrapped"], 0, "{out}");
}
