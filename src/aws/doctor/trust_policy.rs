//! Whether a role's trust policy admits the token, under IAM's condition
//! semantics. Named apart from `aws::policy`, which writes trust policies.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::report::{Outcome, Report};
use crate::aws::iam::{Verdict, evaluate, parse};
use crate::aws::policy::host_path;
use crate::aws::session::{SOURCE_IDENTITY_CLAIM, TAGS_CLAIM};

pub(super) fn check_policy(
    report: &mut Report,
    path: &Path,
    issuer: &str,
    claims: &Value,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let statements = parse(&doc)?;
    let hp = host_path(issuer);
    let suffix = format!(":oidc-provider/{hp}");
    let principal = statements
        .iter()
        .flat_map(|s| s.federated.iter())
        .find(|f| f.ends_with(&suffix))
        .cloned();
    let Some(principal) = principal else {
        report.add(
            "trust policy admits the token",
            Outcome::Fail,
            format!("no Federated principal for {hp}"),
            "AccessDenied",
        );
        return Ok(());
    };
    let mut actions = vec!["sts:AssumeRoleWithWebIdentity"];
    if claims.get(TAGS_CLAIM).is_some() {
        actions.push("sts:TagSession");
    }
    if claims.get(SOURCE_IDENTITY_CLAIM).is_some() {
        actions.push("sts:SetSourceIdentity");
    }
    let ctx: BTreeMap<String, String> = ["sub", "aud"]
        .iter()
        .filter_map(|c| {
            claims[c]
                .as_str()
                .map(|v| (format!("{hp}:{c}"), v.to_owned()))
        })
        .collect();
    let verdict = evaluate(&statements, &principal, &actions, &ctx);
    let detail = format!(
        "{} for {} ({})",
        match &verdict {
            Verdict::Allowed => "allowed".to_owned(),
            Verdict::ImplicitlyDenied => "no statement allows".to_owned(),
            Verdict::ExplicitlyDenied => "a Deny statement matches".to_owned(),
            Verdict::NotEvaluated(why) => format!("not evaluated: {why}"),
        },
        claims["sub"],
        actions.join(", ")
    );
    let outcome = match verdict {
        Verdict::Allowed => Outcome::Pass,
        Verdict::NotEvaluated(_) => Outcome::Warn,
        _ => Outcome::Fail,
    };
    report.add(
        "trust policy admits the token",
        outcome,
        detail,
        "AccessDenied",
    );
    Ok(())
}
