//! The issuer URL, judged by config's rules (`config::check_issuer_url`), so
//! that `serve` and `aws check` cannot disagree about what a valid issuer is.
//!
//! The doctor adds one rule of its own, because it is AWS's alone: the URL must
//! be https. Config accepts http for local work and only warns; AWS refuses it
//! as an OIDC provider.

use super::report::{Outcome, Report};
use crate::config::check_issuer_url;

/// What AWS answers when the URL itself is wrong.
const REFUSED: &str = "CreateOpenIDConnectProvider refuses the URL";

/// The rows for the issuer URL. Returns whether it is https, which the TLS
/// checks need.
pub(super) fn check(report: &mut Report, issuer: &str) -> bool {
    let https = issuer.starts_with("https://");
    let warnings = match check_issuer_url(issuer) {
        Ok(warnings) => warnings,
        Err(e) => {
            report.add(
                "issuer URL",
                Outcome::Fail,
                format!("{issuer}: {}", e.why),
                REFUSED,
            );
            return https;
        }
    };
    if https {
        report.add("issuer URL", Outcome::Pass, issuer, REFUSED);
    } else {
        report.add(
            "issuer URL",
            Outcome::Fail,
            format!("{issuer}: AWS needs https"),
            REFUSED,
        );
    }
    // Config's warnings are sentences: the port warning keeps the row the
    // doctor has always shown (the unit tests below pin config's wording), the
    // http warning is the failure above, and any other becomes a row of its own.
    let warnings = warnings
        .into_iter()
        .filter(|w| https || !w.contains("not https"));
    for warning in warnings {
        if warning.contains("has a port") {
            report.add(
                "issuer URL has no port",
                Outcome::Warn,
                "AWS expects no port",
                "InvalidIdentityToken",
            );
        } else {
            report.add(
                "issuer URL warning",
                Outcome::Warn,
                warning,
                "InvalidIdentityToken",
            );
        }
    }
    https
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(issuer: &str) -> Vec<(String, Outcome, String)> {
        let mut report = Report::default();
        check(&mut report, issuer);
        report
            .rows
            .into_iter()
            .map(|r| (r.check, r.outcome, r.detail))
            .collect()
    }

    #[test]
    fn a_good_https_issuer_passes_alone() {
        assert_eq!(
            rows("https://id.example.com/orgs/acme"),
            [(
                "issuer URL".into(),
                Outcome::Pass,
                "https://id.example.com/orgs/acme".into()
            )]
        );
    }

    #[test]
    fn a_port_is_a_warning_with_the_doctors_own_row() {
        let r = rows("https://id.example.com:8443");
        assert_eq!(r[0].1, Outcome::Pass);
        assert_eq!(
            r[1..],
            [(
                "issuer URL has no port".into(),
                Outcome::Warn,
                "AWS expects no port".into()
            )]
        );
    }

    #[test]
    fn http_fails_once_as_aws_needs_https() {
        let r = rows("http://127.0.0.1:1");
        assert_eq!(
            r,
            [(
                "issuer URL".into(),
                Outcome::Fail,
                "http://127.0.0.1:1: AWS needs https".into()
            )]
        );
    }

    #[test]
    fn what_config_refuses_fails_with_configs_reason() {
        let long = format!("https://id.example.com/{}", "a".repeat(250));
        for (issuer, why) in [
            ("https://id.example.com/", "trailing slash"),
            ("https://id.example.com?x=1", "query"),
            ("https://id.example.com#f", "fragment"),
            ("https://me@id.example.com", "user info"),
            ("ftp://id.example.com", "scheme"),
            ("not a url", "not a URL"),
            (long.as_str(), "255"),
        ] {
            let r = rows(issuer);
            assert_eq!(r.len(), 1, "{issuer}: {r:?}");
            assert_eq!((r[0].0.as_str(), r[0].1), ("issuer URL", Outcome::Fail));
            assert!(r[0].2.contains(why), "{issuer}: {}", r[0].2);
        }
    }
}
