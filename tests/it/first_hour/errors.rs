//! Errors that name their root cause once, with the exit code of the README.

use crate::common::process::{run, stderr};

/// A KEK for commands that open Postgres (which never generates one).
const KEK: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

fn keys_list(database_url: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &["keys", "list"],
        &[
            ("NOMOS_ISSUER_DATABASE_URL", database_url),
            ("NOMOS_ISSUER_KEK", KEK),
        ],
    );
    (o.status.code(), stderr(&o))
}

/// A refused connection, a name that does not resolve and a server that takes
/// the connection but never answers are told apart, each said once (they
/// read "pool timed out" twice, and the DNS failure three times).
#[test]
fn an_unreachable_database_says_why_once() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = unused.local_addr().unwrap().port();
    drop(unused);
    let (code, err) = keys_list(&format!("postgres://nomos@127.0.0.1:{port}/nomos"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot open the Postgres store"), "{err}");
    assert!(
        err.contains(&format!("connection refused by 127.0.0.1:{port}"))
            && err.contains("is Postgres running"),
        "{err}"
    );
    assert_eq!(err.matches("refused").count(), 1, "{err}");
    assert!(!err.contains("pool timed out"), "{err}");

    let (code, err) = keys_list("postgres://nomos@db.nohost.invalid/nomos");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot resolve the database host \"db.nohost.invalid\"")
            && err.contains("DNS failure"),
        "{err}"
    );
    assert_eq!(err.matches("db.nohost.invalid").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (code, err) = keys_list(&format!("postgres://nomos@127.0.0.1:{port}/nomos"));
    drop(silent);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("accepted the connection but did not complete the Postgres handshake")
            && err.contains("pool timeout"),
        "{err}"
    );
    assert_eq!(err.matches("pool timeout").count(), 1, "{err}");
}
