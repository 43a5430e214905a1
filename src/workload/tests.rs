//! Unit tests of the workload side.

use std::time::Duration;

use super::*;

fn target(issuer: &str, endpoint: &str) -> Result<String, String> {
    check_token_endpoint(issuer, endpoint)
        .map(|t| t.url().to_string())
        .map_err(|e| e.to_string())
}

#[test]
fn token_endpoints_on_the_issuers_origin_are_accepted() {
    for (issuer, endpoint) in [
        (
            "https://id.example.com",
            "https://id.example.com/oauth2/token",
        ),
        // The issuer may have a path: only the origin must match.
        (
            "https://id.example.com/orgs/acme",
            "https://id.example.com/orgs/acme/oauth2/token",
        ),
        (
            "https://id.example.com/orgs/acme",
            "https://id.example.com/oauth2/token",
        ),
        (
            "https://id.example.com",
            "https://ID.example.com:443/oauth2/token",
        ),
        (
            "https://id.example.com:8443",
            "https://id.example.com:8443/t",
        ),
        // Plain http only to loopback, for development.
        (
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/oauth2/token",
        ),
        (
            "http://127.1.2.3:8080",
            "http://127.1.2.3:8080/oauth2/token",
        ),
        (
            "http://localhost:8080",
            "http://localhost:8080/oauth2/token",
        ),
        ("http://[::1]:8080", "http://[::1]:8080/oauth2/token"),
    ] {
        assert!(
            target(issuer, endpoint).is_ok(),
            "{issuer} {endpoint}: {:?}",
            target(issuer, endpoint)
        );
    }
    // The assertion audience is the endpoint as discovery named it.
    let t = check_token_endpoint("https://id.example.com", "https://ID.example.com/t").unwrap();
    assert_eq!(t.as_str(), "https://ID.example.com/t");
    assert_eq!(t.url().as_str(), "https://id.example.com/t");
}

#[test]
fn token_endpoints_off_the_issuers_origin_are_refused() {
    for (issuer, endpoint, why) in [
        (
            "https://id.example.com",
            "https://evil.example.com/oauth2/token",
            "another origin (https://evil.example.com)",
        ),
        (
            "https://id.example.com",
            "https://id.example.com.evil.net/oauth2/token",
            "another origin",
        ),
        (
            "https://id.example.com",
            "https://id.example.com:8443/oauth2/token",
            "another origin (https://id.example.com:8443)",
        ),
        (
            "https://id.example.com",
            "http://id.example.com/oauth2/token",
            "over plain http to a host that is not loopback",
        ),
        (
            "https://id.example.com",
            "http://id.example.com:443/oauth2/token",
            "over plain http",
        ),
        (
            "http://127.0.0.1:8080",
            "http://127.0.0.1:9090/oauth2/token",
            "another origin (http://127.0.0.1:9090)",
        ),
        (
            "http://127.0.0.1:8080",
            "http://localhost:8080/oauth2/token",
            "another origin (http://localhost:8080)",
        ),
        (
            "http://127.0.0.1:8080",
            "https://127.0.0.1:8080/oauth2/token",
            "another origin",
        ),
        (
            "http://[::1]:8080",
            "http://[::2]:8080/oauth2/token",
            "another origin",
        ),
        (
            "https://id.example.com",
            "https://user:hunter2@id.example.com/oauth2/token",
            "with user info",
        ),
        (
            "https://id.example.com",
            "https://user@id.example.com/oauth2/token",
            "with user info",
        ),
        ("https://id.example.com", "/oauth2/token", "not a URL"),
        ("https://id.example.com", "", "not a URL"),
    ] {
        let e = target(issuer, endpoint).expect_err(endpoint);
        assert!(e.contains(why), "{endpoint}: {e}");
        assert!(
            e.contains(&format!(
                "the discovery document at {issuer}/.well-known/openid-configuration"
            )) && e.contains("only to the issuer's own origin")
                && e.contains("Check --issuer, or the proxy in front of the issuer"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "user info is not repeated: {e}");
    }
}

#[test]
fn issuers_without_https_get_no_credentials_unless_loopback() {
    for (issuer, why) in [
        (
            "http://id.example.com",
            "plain http to a host that is not loopback",
        ),
        (
            "http://10.0.0.1:8080",
            "plain http to a host that is not loopback",
        ),
        (
            "http://0.0.0.0:8080",
            "plain http to a host that is not loopback",
        ),
        (
            "http://[::ffff:127.0.0.1]:8080",
            "plain http to a host that is not loopback",
        ),
        (
            "http://localhost.example.com",
            "plain http to a host that is not loopback",
        ),
        ("https://user:hunter2@id.example.com", "carries user info"),
        ("http://user@127.0.0.1:8080", "carries user info"),
        ("ftp://id.example.com", "is not an https URL"),
        ("id.example.com", "is not a URL"),
    ] {
        let e = check_issuer_url(issuer).expect_err(issuer).to_string();
        assert!(
            e.contains(why) && e.contains("Give an https --issuer"),
            "{issuer}: {e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        // The token endpoint of such an issuer is refused for the same reason.
        let e = target(issuer, &format!("{issuer}/oauth2/token")).unwrap_err();
        assert!(e.contains(why), "{issuer}: {e}");
    }
    for issuer in [
        "https://id.example.com",
        "https://id.example.com/orgs/acme",
        "http://127.0.0.1:8080",
        "http://LOCALHOST:8080",
        "http://[::1]",
    ] {
        assert!(check_issuer_url(issuer).is_ok(), "{issuer}");
    }
}

#[test]
fn session_names_follow_aws() {
    assert_eq!(
        role_session_name("org/acme/agent/deployer"),
        "org.acme.agent.deployer"
    );
    assert_eq!(role_session_name("a"), "a_");
    assert_eq!(
        role_session_name(&format!("org/{}", "a".repeat(80))).len(),
        64
    );
}

#[test]
fn refresh_and_backoff_are_bounded() {
    assert_eq!(refresh_after(300), Duration::from_secs(240));
    assert_eq!(refresh_after(0), Duration::from_secs(1));
    for attempt in 0..20 {
        let b = backoff(attempt);
        assert!(
            b >= Duration::from_millis(500) && b <= Duration::from_secs(60),
            "{b:?}"
        );
    }
    assert!(backoff(10) >= Duration::from_secs(30));
}

#[test]
fn atomic_writes_leave_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("token");
    write_atomically(&p, b"one").unwrap();
    write_atomically(&p, b"two").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert!(write_atomically(&dir.path().join("missing/token"), b"x").is_err());
}
