//! The rules STS applies to a token: its form, signature and claims.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;

use super::report::{Outcome, Report};
use super::{AWS_ALGS, CheckArgs};
use crate::aws::session::TAGS_CLAIM;
use crate::keys::PublicJwk;
use crate::workload::{ClientCredential, check_token_endpoint, fetch_token};

/// Mints a token with the credential of `args`, as a workload would; `None`
/// (with the row that says why) when there is no credential or minting fails.
pub(super) async fn mint(
    report: &mut Report,
    http: &reqwest::Client,
    issuer: &str,
    discovery: &Value,
    args: &CheckArgs,
) -> anyhow::Result<Option<String>> {
    let Some(client_id) = &args.client_id else {
        report.add(
            "token",
            Outcome::Skip,
            "pass --client-id and a credential to check a real token",
            "-",
        );
        return Ok(None);
    };
    let credential = ClientCredential::load(
        args.client_secret_file.as_deref(),
        args.private_key_file.as_deref(),
    )?;
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap_or_default();
    let token_endpoint = match check_token_endpoint(issuer, token_endpoint) {
        Ok(t) => t,
        Err(e) => {
            // Nothing was sent: the credentials stay on this machine.
            report.add(
                "token endpoint on the issuer's origin",
                Outcome::Fail,
                e.to_string(),
                "-",
            );
            return Ok(None);
        }
    };
    let fetched = match fetch_token(
        http,
        &token_endpoint,
        client_id,
        &credential,
        Some(&args.audience),
        crate::clock::now(),
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            report.add("token minted", Outcome::Fail, e.to_string(), "-");
            return Ok(None);
        }
    };
    report.add(
        "token minted",
        Outcome::Pass,
        format!("expires in {} s", fetched.expires_in),
        "-",
    );
    Ok(Some(fetched.token))
}

/// Checks a token the way STS would; returns its claims when it is readable.
pub(super) fn check_token(
    report: &mut Report,
    token: &str,
    issuer: &str,
    audience: &str,
    keys: &[PublicJwk],
) -> Option<Value> {
    const REJECTED: &str = "IDPRejectedClaim";
    const INVALID: &str = "InvalidIdentityToken";
    report.pass_or_fail(
        "token length",
        (4..=20_000).contains(&token.len()),
        format!("{} characters (4-20000)", token.len()),
        INVALID,
    );
    let parts: Vec<&str> = token.split('.').collect();
    let decode = |p: &str| {
        B64.decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let (Some(header), Some(claims)) = (
        parts.first().and_then(|p| decode(p)),
        parts.get(1).and_then(|p| decode(p)),
    ) else {
        report.add("token is a JWS", Outcome::Fail, "unreadable", INVALID);
        return None;
    };
    let alg = header["alg"].as_str().unwrap_or_default();
    report.pass_or_fail(
        "token alg",
        AWS_ALGS.contains(&alg),
        alg.to_owned(),
        INVALID,
    );
    let kid = header["kid"].as_str().unwrap_or_default();
    let key = keys.iter().find(|k| k.kid == kid);
    report.pass_or_fail(
        "token kid is in the JWKS",
        key.is_some(),
        if kid.is_empty() {
            "no kid".into()
        } else {
            kid.to_owned()
        },
        INVALID,
    );
    if let (Some(k), Some(sig)) = (key, parts.get(2).and_then(|s| B64.decode(s).ok())) {
        let signed = &token[..parts[0].len() + 1 + parts[1].len()];
        report.pass_or_fail(
            "token signature",
            k.key.verify(alg, signed.as_bytes(), &sig),
            "verified against the served JWKS",
            INVALID,
        );
    }
    report.pass_or_fail(
        "iss equals the provider URL",
        claims["iss"] == issuer,
        format!("{}", claims["iss"]),
        INVALID,
    );
    let aud_ok = claims["aud"].as_str() == Some(audience);
    report.pass_or_fail(
        "aud is one string, a client id",
        aud_ok,
        format!("{}", claims["aud"]),
        INVALID,
    );
    let sub_len = claims["sub"].as_str().map_or(0, str::len);
    report.pass_or_fail(
        "sub present, at most 255",
        (1..=255).contains(&sub_len),
        format!("{}", claims["sub"]),
        REJECTED,
    );
    let ints = ["iat", "exp"].iter().all(|c| claims[c].is_i64())
        && claims.get("nbf").is_none_or(Value::is_i64);
    report.pass_or_fail(
        "iat, exp (nbf) are integers",
        ints,
        "whole seconds",
        REJECTED,
    );
    let exp = claims["exp"].as_i64().unwrap_or(0);
    report.pass_or_fail(
        "token not expired",
        exp > crate::clock::now(),
        format!("exp {exp}"),
        "ExpiredTokenException",
    );
    if let Some(tags) = claims.get(TAGS_CLAIM) {
        let pt = tags["principal_tags"].as_object();
        let ok = pt.is_some_and(|m| {
            m.len() <= 50
                && m.iter().all(|(k, v)| {
                    k.chars().count() <= 128
                        && v.as_array().is_some_and(|a| {
                            a.len() == 1 && a[0].as_str().is_some_and(|s| s.chars().count() <= 256)
                        })
                })
        });
        report.pass_or_fail(
            "session tags within AWS limits",
            ok,
            "50 tags, key 128, one value of 256",
            INVALID,
        );
    }
    Some(claims)
}
