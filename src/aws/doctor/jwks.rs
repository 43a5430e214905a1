//! The JWKS rules AWS applies to the served keys.

use serde_json::Value;

use super::report::{Outcome, Report};
use super::{AWS_ALGS, STS_TIMEOUT, get_json};
use crate::keys::PublicJwk;

/// Checks every JWKS rule; returns the usable keys.
pub(super) fn check_jwks(report: &mut Report, jwks: &Value) -> Vec<PublicJwk> {
    const E: &str = "InvalidIdentityToken";
    let Some(keys) = jwks["keys"].as_array() else {
        report.add("JWKS has keys", Outcome::Fail, "no \"keys\" array", E);
        return Vec::new();
    };
    report.pass_or_fail(
        "JWKS has keys",
        !keys.is_empty(),
        format!("{} key(s)", keys.len()),
        E,
    );
    let count = |kty: &str| keys.iter().filter(|k| k["kty"] == kty).count();
    let (rsa, ec) = (count("RSA"), count("EC"));
    report.pass_or_fail(
        "JWKS within AWS limits",
        rsa <= 100 && ec <= 100,
        format!("{rsa} RSA, {ec} EC (at most 100 each)"),
        E,
    );
    let mut problems = Vec::new();
    let mut usable = Vec::new();
    let mut kids = std::collections::HashSet::new();
    for k in keys {
        let kid = k["kid"].as_str();
        let label = kid.unwrap_or("<no kid>");
        match kid {
            None => problems.push("a key has no kid".to_owned()),
            Some(kid) if !kids.insert(kid) => problems.push(format!("kid {kid} repeats")),
            _ => {}
        }
        if k.get("use").is_some_and(|u| u != "sig") {
            problems.push(format!("{label}: use is {} (AWS needs sig)", k["use"]));
        }
        if k.get("key_ops").is_some() {
            problems.push(format!("{label}: key_ops breaks AWS validation"));
        }
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| k.get(*m).is_some())
        {
            problems.push(format!("{label}: private key material is published"));
        }
        match k["alg"].as_str() {
            Some(a) if AWS_ALGS.contains(&a) => {}
            other => problems.push(format!("{label}: alg {other:?} is not one AWS accepts")),
        }
        if let Ok(j) = PublicJwk::parse(k) {
            usable.push(j);
        }
    }
    let detail = if problems.is_empty() {
        "kid, use sig, AWS alg, public only".to_owned()
    } else {
        problems.join("; ")
    };
    report.pass_or_fail("JWKS keys", problems.is_empty(), detail, E);
    usable
}

/// Fetches the JWKS as STS would, within its timeout, and checks it; returns
/// the usable keys (none when the fetch fails).
pub(super) async fn check_endpoint(
    report: &mut Report,
    http: &reqwest::Client,
    jwks_uri: &str,
) -> Vec<PublicJwk> {
    match get_json(http, jwks_uri).await {
        Ok((jwks, took)) => {
            report.pass_or_fail(
                "JWKS answers within 5 s",
                took < STS_TIMEOUT,
                format!("{} ms", took.as_millis()),
                "InvalidIdentityToken (not logged in CloudTrail)",
            );
            check_jwks(report, &jwks)
        }
        Err(e) => {
            report.add(
                "JWKS answers within 5 s",
                Outcome::Fail,
                e,
                "InvalidIdentityToken (not logged in CloudTrail)",
            );
            Vec::new()
        }
    }
}
