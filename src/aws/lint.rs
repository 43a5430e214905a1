//! `aws lint`: checks a role trust policy against this issuer, with a fix for
//! every finding.

use std::fmt;

use serde_json::Value;

use super::iam::{Statement, glob, parse};
use super::policy::host_path;
use super::session::SessionClaims;
use crate::ids::{OrgId, Subject};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The policy is unsafe or cannot work: `aws lint` exits non-zero.
    Error,
    /// Works, but looser or noisier than it needs to be.
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Which statement (Sid or index).
    pub statement: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev} [{}]: {}\n  fix: {}",
            self.statement, self.message, self.fix
        )
    }
}

/// What the issuer knows of a subject a policy admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// It exists; its tokens carry these session claims.
    Claims(SessionClaims),
    /// The issuer has no such org or agent.
    Missing,
    /// Not checked (no store, or `--allow-unknown`).
    Unchecked,
}

/// What the issuer knows of an org (agent `None`) or one of its agents.
pub type ClaimsLookup<'a> = dyn Fn(&OrgId, Option<&str>) -> Known + 'a;

/// The issuer a trust policy is for, read from its `Federated` principals
/// (`arn:<partition>:iam::<account>:oidc-provider/<host/path>`) in the
/// statements that allow `sts:AssumeRoleWithWebIdentity`. An error says why it
/// cannot tell: none, or several providers.
pub fn issuer_of_policy(doc: &Value) -> Result<String, String> {
    let statements = parse(doc).map_err(|e| e.to_string())?;
    let mut providers: Vec<&str> = statements
        .iter()
        .filter(|st| st.effect == "Allow" && is_web_identity(st))
        .flat_map(|st| st.federated.iter())
        .filter_map(|f| provider_of_arn(f).map(|(_, hp)| hp))
        .collect();
    providers.sort_unstable();
    providers.dedup();
    match providers.as_slice() {
        [one] => Ok(format!("https://{one}")),
        [] => Err("no statement that allows sts:AssumeRoleWithWebIdentity names an OIDC provider (Principal.Federated arn:aws:iam::<account>:oidc-provider/<host/path>)".into()),
        many => Err(format!("it names {} OIDC providers ({})", many.len(), many.join(", "))),
    }
}

/// The account and the provider URL (without `https://`) of an OIDC provider ARN.
fn provider_of_arn(arn: &str) -> Option<(&str, &str)> {
    let (head, url) = arn.split_once(":oidc-provider/")?;
    let account = head.strip_prefix("arn:")?.rsplit(':').next()?;
    (!url.is_empty()).then_some((account, url))
}

/// A subject of another org than the one the pattern seems to mean
/// ([`meant_org`]) that a crossing `sub` pattern also matches, built from the
/// pattern itself, so that the finding shows the user's own hole.
fn crossing_example(pattern: &str) -> Option<Subject> {
    let meant = meant_org(pattern);
    [
        "-other/agent/x",
        "org/other/agent/x",
        "org/other",
        "other/agent/x",
        "other",
        "x",
    ]
    .iter()
    .filter_map(|fill| {
        let example = pattern.replace('*', fill).replace('?', "x");
        Subject::parse(&example).ok()
    })
    .find(|s| Some(s.org().as_str()) != meant && glob(pattern, &s.to_string()))
}

/// The org a `sub` pattern seems to mean: `acme` in `org/acme*` or
/// `org/acme/...`; none when its org part holds another wildcard.
fn meant_org(pattern: &str) -> Option<&str> {
    let org = pattern.strip_prefix("org/")?.split('/').next()?;
    let org = org.strip_suffix('*').unwrap_or(org);
    (!org.is_empty() && !org.contains(['*', '?'])).then_some(org)
}

/// Whether a `sub` pattern stays inside one org: it must start `org/<id>/`
/// before any wildcard, so that it cannot match `org/<id>-other/...`.
fn org_of_pattern(pattern: &str) -> Option<OrgId> {
    let rest = pattern.strip_prefix("org/")?;
    let (org, _) = rest.split_once('/')?;
    if org.contains(['*', '?']) {
        return None;
    }
    OrgId::parse(org).ok()
}

fn is_web_identity(st: &Statement) -> bool {
    st.actions
        .iter()
        .any(|a| glob(&a.to_ascii_lowercase(), "sts:assumerolewithwebidentity"))
}

fn allows(st: &Statement, action: &str) -> bool {
    let action = action.to_ascii_lowercase();
    st.actions
        .iter()
        .any(|a| glob(&a.to_ascii_lowercase(), &action))
}

/// Lints `doc` for `issuer`. `claims` says, where the store knows, whether the
/// subjects a statement admits get session tags or a source identity.
pub fn lint(doc: &Value, issuer: &str, claims: &ClaimsLookup<'_>) -> Vec<Finding> {
    let hp = host_path(issuer);
    let (aud_key, sub_key) = (format!("{hp}:aud"), format!("{hp}:sub"));
    let mut out = Vec::new();
    let statements = match parse(doc) {
        Ok(s) => s,
        Err(e) => {
            return vec![Finding {
                severity: Severity::Error,
                statement: "-".into(),
                message: e.to_string(),
                fix: "give a JSON trust policy with a Statement list".into(),
            }];
        }
    };
    if doc.get("Version").and_then(Value::as_str) != Some("2012-10-17") {
        out.push(Finding {
            severity: Severity::Warning,
            statement: "-".into(),
            message: "Version is not 2012-10-17".into(),
            fix: "set \"Version\": \"2012-10-17\"; older versions do not support policy variables"
                .into(),
        });
    }
    for (i, st) in statements.iter().enumerate() {
        if st.effect != "Allow" || !is_web_identity(st) {
            continue;
        }
        let name = st.sid.clone().unwrap_or_else(|| format!("statement {i}"));
        let mut push = |severity, message: String, fix: String| {
            out.push(Finding {
                severity,
                statement: name.clone(),
                message,
                fix,
            })
        };
        // The user's own account, for the fixes that name the provider ARN.
        let account = st
            .federated
            .iter()
            .find_map(|f| provider_of_arn(f).map(|(a, _)| a))
            .filter(|a| !a.is_empty())
            .unwrap_or("<account>");
        // The principal must be this issuer's provider.
        if !st.other_principals.is_empty() {
            push(
                Severity::Error,
                format!(
                    "the principal admits {:?}, not only this issuer's OIDC provider",
                    st.other_principals
                ),
                format!(
                    "use \"Principal\": {{\"Federated\": \"arn:aws:iam::{account}:oidc-provider/{hp}\"}}"
                ),
            );
        }
        let ours = |f: &String| {
            f.split_once(":oidc-provider/")
                .is_some_and(|(arn, url)| arn.starts_with("arn:") && url == hp)
        };
        if st.federated.is_empty() {
            push(
                Severity::Error,
                "no Federated principal".into(),
                format!(
                    "add \"Principal\": {{\"Federated\": \"arn:aws:iam::{account}:oidc-provider/{hp}\"}}"
                ),
            );
        } else if !st.federated.iter().any(ours) {
            push(
                Severity::Error,
                format!(
                    "the principal {:?} is the OIDC provider of another URL, not {hp}",
                    st.federated
                ),
                format!(
                    "use \"arn:aws:iam::{account}:oidc-provider/{hp}\" (register it with `nomos-issuer aws provider`), or lint with the --issuer this policy is for"
                ),
            );
        }
        // Where do the aud and sub conditions stand?
        let find = |key: &str| -> Vec<(String, Vec<String>)> {
            st.conditions
                .iter()
                .filter_map(|(op, keys)| keys.get(key).map(|v| (op.clone(), v.clone())))
                .collect()
        };
        let positive = |op: &str| !op.contains("Not");
        let aud = find(&aud_key);
        if !aud.iter().any(|(op, _)| positive(op)) {
            push(
                Severity::Error,
                format!(
                    "no condition on {aud_key}: a token minted for any audience of this issuer is accepted"
                ),
                format!("add \"StringEquals\": {{\"{aud_key}\": \"sts.amazonaws.com\"}}"),
            );
        }
        for (op, values) in &aud {
            if op.contains("Like") && positive(op) {
                push(
                    Severity::Warning,
                    format!("{op} on {aud_key}: an audience is an exact value"),
                    format!("use \"StringEquals\": {{\"{aud_key}\": {values:?}}}"),
                );
            }
        }
        let sub = find(&sub_key);
        if !sub.iter().any(|(op, _)| positive(op)) {
            push(
                Severity::Error,
                format!(
                    "no condition on {sub_key}: every org and agent of this issuer can assume the role"
                ),
                format!(
                    "add \"StringEquals\": {{\"{sub_key}\": \"org/<org>/agent/<agent>\"}} (or StringLike \"org/<org>/agent/*\" for every agent of one org)"
                ),
            );
        }
        // (org, agent, the subject or pattern as the policy writes it)
        let mut admitted: Vec<(OrgId, Option<String>, String)> = Vec::new();
        for (op, values) in sub.iter().filter(|(op, _)| positive(op)) {
            let like = op.contains("Like");
            for v in values {
                let wild = like && v.contains(['*', '?']);
                if like && !wild {
                    push(
                        Severity::Warning,
                        format!("{op} on {sub_key} with {v:?}, which has no wildcard"),
                        format!("use \"StringEquals\": {{\"{sub_key}\": \"{v}\"}}"),
                    );
                }
                if !wild {
                    match Subject::parse(v) {
                        Ok(s) => admitted.push((
                            s.org().clone(),
                            s.agent().map(|a| a.to_string()),
                            v.clone(),
                        )),
                        Err(_) => push(
                            Severity::Warning,
                            format!(
                                "{v:?} is not a subject this issuer issues; the condition never matches"
                            ),
                            "use org/<org> or org/<org>/agent/<agent> with ids of a-z, 0-9 and -"
                                .into(),
                        ),
                    }
                    continue;
                }
                match org_of_pattern(v) {
                    None => push(
                        Severity::Error,
                        match crossing_example(v) {
                            Some(e) => format!(
                                "the pattern {v:?} on {sub_key} crosses org boundaries: it also matches {:?}, a subject of org {}",
                                e.to_string(),
                                e.org()
                            ),
                            None => format!(
                                "the pattern {v:?} on {sub_key} crosses org boundaries: it also matches subjects of other orgs"
                            ),
                        },
                        {
                            let org = meant_org(v)
                                .and_then(|o| OrgId::parse(o).ok())
                                .map_or_else(|| "<org>".to_owned(), |o| o.to_string());
                            format!(
                                "use \"StringLike\": {{\"{sub_key}\": \"org/{org}/agent/*\"}} (every agent of {org}), or StringEquals with exact subjects"
                            )
                        },
                    ),
                    Some(org) => {
                        let canonical = format!("org/{org}/agent/*");
                        if *v != canonical {
                            push(
                                Severity::Warning,
                                format!(
                                    "the pattern {v:?} stays inside org {org} but is not the documented form"
                                ),
                                format!(
                                    "use \"{canonical}\" for every agent of {org}, or StringEquals with exact subjects"
                                ),
                            );
                        }
                        admitted.push((org, None, v.clone()));
                    }
                }
            }
        }
        // Session claims the admitted subjects get versus what the role allows.
        for (org, agent, who) in &admitted {
            let c = match claims(org, agent.as_deref()) {
                Known::Claims(c) => c,
                Known::Unchecked => continue,
                Known::Missing => {
                    let (what, create) = match agent {
                        Some(a) => (
                            format!("agent {a} in org {org}"),
                            format!("nomos-issuer agent create {org} {a}"),
                        ),
                        None => (
                            format!("org {org}"),
                            format!("nomos-issuer org create {org}"),
                        ),
                    };
                    push(
                        Severity::Error,
                        format!(
                            "the policy admits {who:?}, but this issuer has no {what}: the condition matches no token it issues"
                        ),
                        format!(
                            "create it (`{create}`), correct the subject, or pass --allow-unknown for a policy written ahead of time"
                        ),
                    );
                    continue;
                }
            };
            let set_claims = match agent {
                Some(a) => format!("nomos-issuer agent set-claims {org} {a}"),
                None => format!("nomos-issuer org set-claims {org}"),
            };
            // (is on, the action it needs, what tokens carry, what they lack, its flag)
            for (on, action, what, none, flag) in [
                (
                    c.tags,
                    "sts:TagSession",
                    "session tags",
                    "no session tags",
                    "--session-tags",
                ),
                (
                    c.source_identity,
                    "sts:SetSourceIdentity",
                    "a source identity",
                    "no source identity",
                    "--source-identity",
                ),
            ] {
                match (on, allows(st, action)) {
                    (true, false) => push(
                        Severity::Error,
                        format!(
                            "tokens of {who} carry {what}, but the policy does not allow {action}: STS rejects them"
                        ),
                        format!("add \"{action}\" to Action"),
                    ),
                    (false, true) => push(
                        Severity::Warning,
                        format!("{action} is allowed, but the issuer sends {none} for {who}"),
                        format!(
                            "remove \"{action}\" from Action, or turn it on: `{set_claims} {flag}` (set-claims replaces the whole setting: repeat the flags it keeps)"
                        ),
                    ),
                    _ => {}
                }
            }
        }
    }
    out.sort_by_key(|f| f.severity);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://id.example.com/orgs/acme";

    fn policy(cond: Value, actions: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "S", "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/id.example.com/orgs/acme"},
            "Action": actions, "Condition": cond}]})
    }

    fn none(_: &OrgId, _: Option<&str>) -> Known {
        Known::Claims(SessionClaims::default())
    }

    fn messages(doc: &Value) -> Vec<String> {
        lint(doc, ISSUER, &none)
            .iter()
            .map(|f| f.to_string())
            .collect()
    }

    const AUD: &str = "id.example.com/orgs/acme:aud";
    const SUB: &str = "id.example.com/orgs/acme:sub";

    #[test]
    fn the_generated_policy_is_clean() {
        let doc = policy(
            json!({"StringEquals": {AUD: "sts.amazonaws.com", SUB: "org/acme/agent/deployer"}}),
            json!("sts:AssumeRoleWithWebIdentity"),
        );
        assert!(messages(&doc).is_empty(), "{:?}", messages(&doc));
        let doc = policy(
            json!({"StringEquals": {AUD: "sts.amazonaws.com"}, "StringLike": {SUB: "org/acme/agent/*"}}),
            json!(["sts:AssumeRoleWithWebIdentity"]),
        );
        assert!(messages(&doc).is_empty(), "{:?}", messages(&doc));
    }

    #[test]
    fn every_classic_hole_is_an_error_with_a_fix() {
        let cases = [
            (
                json!({"StringLike": {AUD: "sts.amazonaws.com", SUB: "org/acme*"}}),
                "crosses org boundaries",
            ),
            (
                json!({"StringLike": {SUB: "*"}, "StringEquals": {AUD: "sts.amazonaws.com"}}),
                "crosses org boundaries",
            ),
            (
                json!({"StringEquals": {SUB: "org/acme/agent/x"}}),
                "no condition on id.example.com/orgs/acme:aud",
            ),
            (
                json!({"StringEquals": {AUD: "sts.amazonaws.com"}}),
                "every org and agent",
            ),
        ];
        for (cond, want) in cases {
            let f = lint(
                &policy(cond.clone(), json!("sts:AssumeRoleWithWebIdentity")),
                ISSUER,
                &none,
            );
            let hit = f
                .iter()
                .find(|f| f.message.contains(want))
                .unwrap_or_else(|| panic!("{cond}: {f:?}"));
            assert_eq!(hit.severity, Severity::Error);
            assert!(!hit.fix.is_empty());
        }
        let mut other = policy(
            json!({"StringEquals": {AUD: "a", SUB: "org/acme"}}),
            json!("sts:AssumeRoleWithWebIdentity"),
        );
        other["Statement"][0]["Principal"]["Federated"] =
            "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com".into();
        assert!(messages(&other)[0].contains("another URL"));
    }

    #[test]
    fn looser_than_needed_is_a_warning() {
        let doc = policy(
            json!({"StringEquals": {AUD: "sts.amazonaws.com"}, "StringLike": {SUB: "org/acme/agent/deployer"}}),
            json!("sts:AssumeRoleWithWebIdentity"),
        );
        let f = lint(&doc, ISSUER, &none);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].fix.contains("StringEquals"));
    }

    #[test]
    fn tags_must_match_the_issuer() {
        let tags_on = |_: &OrgId, _: Option<&str>| {
            Known::Claims(SessionClaims {
                tags: true,
                ..Default::default()
            })
        };
        let doc = policy(
            json!({"StringEquals": {AUD: "sts.amazonaws.com", SUB: "org/acme/agent/x"}}),
            json!("sts:AssumeRoleWithWebIdentity"),
        );
        let f = lint(&doc, ISSUER, &tags_on);
        assert!(
            f[0].message.contains("sts:TagSession") && f[0].severity == Severity::Error,
            "{f:?}"
        );
        let doc = policy(
            json!({"StringEquals": {AUD: "sts.amazonaws.com", SUB: "org/acme/agent/x"}}),
            json!(["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]),
        );
        assert!(lint(&doc, ISSUER, &tags_on).is_empty());
        let f = lint(&doc, ISSUER, &none);
        assert_eq!(f[0].severity, Severity::Warning);
    }

    #[test]
    fn the_issuer_is_read_from_the_principal() {
        let doc = policy(json!({}), json!("sts:AssumeRoleWithWebIdentity"));
        assert_eq!(issuer_of_policy(&doc).unwrap(), ISSUER);
        let mut two = doc.clone();
        two["Statement"][0]["Principal"]["Federated"] = json!([
            "arn:aws:iam::111122223333:oidc-provider/id.example.com/orgs/acme",
            "arn:aws-cn:iam::111122223333:oidc-provider/id.example.com/orgs/acme",
        ]);
        assert_eq!(
            issuer_of_policy(&two).unwrap(),
            ISSUER,
            "one provider, two partitions"
        );
        two["Statement"][0]["Principal"]["Federated"] = json!([
            "arn:aws:iam::111122223333:oidc-provider/id.example.com/orgs/acme",
            "arn:aws:iam::111122223333:oidc-provider/token.actions.githubusercontent.com",
        ]);
        assert!(
            issuer_of_policy(&two)
                .unwrap_err()
                .contains("2 OIDC providers")
        );
        let mut none = doc.clone();
        none["Statement"][0]["Principal"] = json!({"AWS": "arn:aws:iam::111122223333:root"});
        assert!(
            issuer_of_policy(&none)
                .unwrap_err()
                .contains("names an OIDC provider")
        );
        let mut deny = doc;
        deny["Statement"][0]["Effect"] = "Deny".into();
        assert!(
            issuer_of_policy(&deny).is_err(),
            "only what the policy allows counts"
        );
    }

    #[test]
    fn unknown_subjects_are_errors_unless_unchecked() {
        let doc = policy(
            json!({"StringEquals": {AUD: "sts.amazonaws.com"}, "StringLike": {SUB: "org/ghost/agent/*"}}),
            json!("sts:AssumeRoleWithWebIdentity"),
        );
        let missing = |_: &OrgId, _: Option<&str>| Known::Missing;
        let f = lint(&doc, ISSUER, &missing);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert!(
            f[0].message.contains("\"org/ghost/agent/*\"") && f[0].message.contains("no org ghost"),
            "{f:?}"
        );
        assert!(
            f[0].fix.contains("nomos-issuer org create ghost")
                && f[0].fix.contains("--allow-unknown")
        );
        let unchecked = |_: &OrgId, _: Option<&str>| Known::Unchecked;
        assert!(lint(&doc, ISSUER, &unchecked).is_empty());
    }

    #[test]
    fn a_crossing_pattern_is_shown_with_a_subject_it_also_matches() {
        for (pattern, example, fix) in [
            (
                "org/beta*",
                "\"org/beta-other/agent/x\", a subject of org beta-other",
                "org/beta/agent/*",
            ),
            (
                "*",
                "\"org/other/agent/x\", a subject of org other",
                "org/<org>/agent/*",
            ),
            (
                "org/*/agent/deployer",
                "\"org/other/agent/deployer\", a subject of org other",
                "org/<org>/agent/*",
            ),
            (
                "org/be?a/agent/*",
                "\"org/bexa/agent/other\", a subject of org bexa",
                "org/<org>/agent/*",
            ),
        ] {
            let doc = policy(
                json!({"StringEquals": {AUD: "sts.amazonaws.com"}, "StringLike": {SUB: pattern}}),
                json!("sts:AssumeRoleWithWebIdentity"),
            );
            let f = lint(&doc, ISSUER, &none);
            let hit = f
                .iter()
                .find(|f| f.message.contains("crosses org boundaries"))
                .unwrap_or_else(|| panic!("{pattern}: {f:?}"));
            assert!(hit.message.contains(&format!("{pattern:?}")), "{hit:?}");
            assert!(hit.message.contains(example), "{pattern}: {}", hit.message);
            assert!(!hit.message.contains("acme-evil"), "{}", hit.message);
            assert!(hit.fix.contains(fix), "{pattern}: {}", hit.fix);
        }
    }

    #[test]
    fn fixes_name_the_users_own_account() {
        let mut doc = policy(
            json!({"StringEquals": {AUD: "a", SUB: "org/acme"}}),
            json!("sts:AssumeRoleWithWebIdentity"),
        );
        doc["Statement"][0]["Principal"]["Federated"] =
            "arn:aws:iam::444455556666:oidc-provider/other.example.com".into();
        let f = lint(&doc, ISSUER, &none);
        assert!(
            f[0].fix
                .contains("arn:aws:iam::444455556666:oidc-provider/id.example.com/orgs/acme"),
            "{f:?}"
        );
    }

    #[test]
    fn allowed_actions_without_claims_read_as_english() {
        let doc = policy(
            json!({"StringEquals": {AUD: "sts.amazonaws.com", SUB: "org/acme/agent/x"}}),
            json!([
                "sts:AssumeRoleWithWebIdentity",
                "sts:TagSession",
                "sts:SetSourceIdentity"
            ]),
        );
        let f = lint(&doc, ISSUER, &none);
        let text: Vec<String> = f.iter().map(|f| f.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.contains("the issuer sends no source identity for org/acme/agent/x")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("sends no session tags")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("`nomos-issuer agent set-claims acme x --source-identity`")),
            "{text:?}"
        );
        assert!(!text.iter().any(|t| t.contains("no a ")), "{text:?}");
    }
}
