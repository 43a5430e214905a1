//! Reading IAM policy documents and evaluating trust-policy conditions the way
//! IAM does, for the string operators a web-identity trust policy uses.

use std::collections::BTreeMap;

use serde_json::Value;

/// One statement, normalised: single values become lists.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    /// `Sid`, if any.
    pub sid: Option<String>,
    /// `Allow` or `Deny`.
    pub effect: String,
    /// `Principal.Federated` values.
    pub federated: Vec<String>,
    /// Other principal kinds present (`AWS`, `Service`, `*`).
    pub other_principals: Vec<String>,
    /// `Action` values.
    pub actions: Vec<String>,
    /// Whether the statement uses `NotAction` or `NotPrincipal` (not evaluated).
    pub negated: bool,
    /// operator → key → values.
    pub conditions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an IAM policy document: {0}")]
pub struct ParseError(pub String);

fn strings(v: &Value, what: &str) -> Result<Vec<String>, ParseError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ParseError(format!("{what} must hold strings")))
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        _ => Err(ParseError(format!(
            "{what} must be a string or a list of strings"
        ))),
    }
}

/// Parses a policy document's statements.
pub fn parse(doc: &Value) -> Result<Vec<Statement>, ParseError> {
    let stmts = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => return Err(ParseError("no Statement".into())),
    };
    stmts
        .iter()
        .map(|s| {
            let mut st = Statement {
                sid: s.get("Sid").and_then(Value::as_str).map(str::to_owned),
                effect: s
                    .get("Effect")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ParseError("a statement has no Effect".into()))?
                    .to_owned(),
                negated: s.get("NotAction").is_some() || s.get("NotPrincipal").is_some(),
                ..Default::default()
            };
            if let Some(a) = s.get("Action") {
                st.actions = strings(a, "Action")?;
            }
            match s.get("Principal") {
                Some(Value::String(p)) => st.other_principals.push(p.clone()),
                Some(Value::Object(m)) => {
                    for (kind, v) in m {
                        if kind == "Federated" {
                            st.federated = strings(v, "Principal.Federated")?;
                        } else {
                            st.other_principals.push(kind.clone());
                        }
                    }
                }
                Some(_) => return Err(ParseError("Principal must be an object or \"*\"".into())),
                None => {}
            }
            if let Some(c) = s.get("Condition") {
                let Value::Object(ops) = c else {
                    return Err(ParseError("Condition must be an object".into()));
                };
                for (op, keys) in ops {
                    let Value::Object(keys) = keys else {
                        return Err(ParseError(format!("Condition {op} must be an object")));
                    };
                    let entry = st.conditions.entry(op.clone()).or_default();
                    for (k, v) in keys {
                        entry.insert(k.clone(), strings(v, &format!("Condition {op} {k}"))?);
                    }
                }
            }
            Ok(st)
        })
        .collect()
}

/// IAM wildcard matching: `*` matches any run of characters (slashes included),
/// `?` exactly one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The outcome of evaluating one condition operator.
fn operator_holds(
    op: &str,
    keys: &BTreeMap<String, Vec<String>>,
    ctx: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let (base, if_exists) = match op.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (op, false),
    };
    let base = base
        .strip_prefix("ForAnyValue:")
        .or_else(|| base.strip_prefix("ForAllValues:"))
        .unwrap_or(base);
    let matcher: fn(&str, &str) -> bool = match base {
        "StringEquals" | "StringNotEquals" => |p, v| p == v,
        "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase" => |p, v| p.eq_ignore_ascii_case(v),
        "StringLike" | "StringNotLike" => glob,
        other => return Err(format!("operator {other} is not evaluated")),
    };
    let negative = base.contains("Not");
    for (key, values) in keys {
        let holds = match ctx.get(key) {
            None => if_exists || negative,
            Some(actual) => {
                let any = values.iter().any(|p| matcher(p, actual));
                if negative { !any } else { any }
            }
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The verdict on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An Allow statement matched and no Deny did.
    Allowed,
    /// No statement allowed the request.
    ImplicitlyDenied,
    /// A Deny statement matched.
    ExplicitlyDenied,
    /// The document uses something this evaluator does not model.
    NotEvaluated(String),
}

/// Evaluates a trust policy for a web-identity request: `principal` is the
/// provider ARN, `actions` are all the actions the call needs (e.g.
/// `sts:AssumeRoleWithWebIdentity` and `sts:TagSession`), `ctx` the condition keys.
pub fn evaluate(
    statements: &[Statement],
    principal: &str,
    actions: &[&str],
    ctx: &BTreeMap<String, String>,
) -> Verdict {
    let mut allowed = vec![false; actions.len()];
    for st in statements {
        if st.negated {
            return Verdict::NotEvaluated("NotAction/NotPrincipal is not evaluated".into());
        }
        let principal_ok = st.federated.iter().any(|f| glob(f, principal))
            || st.other_principals.iter().any(|p| p == "*");
        if !principal_ok {
            continue;
        }
        let mut conditions_hold = true;
        for (op, keys) in &st.conditions {
            match operator_holds(op, keys, ctx) {
                Ok(true) => {}
                Ok(false) => {
                    conditions_hold = false;
                    break;
                }
                Err(e) => return Verdict::NotEvaluated(e),
            }
        }
        if !conditions_hold {
            continue;
        }
        for (i, action) in actions.iter().enumerate() {
            if st
                .actions
                .iter()
                .any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            {
                if st.effect == "Deny" {
                    return Verdict::ExplicitlyDenied;
                }
                if st.effect == "Allow" {
                    allowed[i] = true;
                }
            }
        }
    }
    if allowed.iter().all(|a| *a) {
        Verdict::Allowed
    } else {
        Verdict::ImplicitlyDenied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn glob_follows_iam() {
        assert!(glob("org/acme/agent/*", "org/acme/agent/x"));
        assert!(glob("org/acme*", "org/acme-evil/agent/x"));
        assert!(!glob("org/acme/agent/*", "org/acme-agent/agent/x"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("*", "") && glob("**a", "ba"));
        assert!(!glob("", "a"));
    }

    fn ctx(sub: &str, aud: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("id.example.com:sub".to_owned(), sub.to_owned()),
            ("id.example.com:aud".to_owned(), aud.to_owned()),
        ])
    }

    #[test]
    fn conditions_are_anded_and_values_ored() {
        let doc = json!({"Statement": {
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/id.example.com"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {"id.example.com:aud": ["sts.amazonaws.com", "other"]},
                "StringLike": {"id.example.com:sub": "org/acme/agent/*"}
            }
        }});
        let st = parse(&doc).unwrap();
        let p = "arn:aws:iam::111122223333:oidc-provider/id.example.com";
        let a = ["sts:AssumeRoleWithWebIdentity"];
        assert_eq!(
            evaluate(&st, p, &a, &ctx("org/acme/agent/x", "other")),
            Verdict::Allowed
        );
        assert_eq!(
            evaluate(&st, p, &a, &ctx("org/acme/agent/x", "nope")),
            Verdict::ImplicitlyDenied
        );
        assert_eq!(
            evaluate(&st, p, &a, &ctx("org/acme-agent/agent/x", "other")),
            Verdict::ImplicitlyDenied
        );
        assert_eq!(
            evaluate(
                &st,
                "arn:aws:iam::1:oidc-provider/x",
                &a,
                &ctx("org/acme/agent/x", "other")
            ),
            Verdict::ImplicitlyDenied
        );
        let tag = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"];
        assert_eq!(
            evaluate(&st, p, &tag, &ctx("org/acme/agent/x", "other")),
            Verdict::ImplicitlyDenied
        );
        let mut missing = ctx("org/acme/agent/x", "other");
        missing.remove("id.example.com:aud");
        assert_eq!(evaluate(&st, p, &a, &missing), Verdict::ImplicitlyDenied);
    }

    #[test]
    fn deny_wins_and_unknown_operators_are_reported() {
        let doc = json!({"Statement": [
            {"Effect": "Allow", "Principal": {"Federated": "*"}, "Action": "sts:*"},
            {"Effect": "Deny", "Principal": {"Federated": "*"}, "Action": "sts:AssumeRoleWithWebIdentity",
             "Condition": {"StringNotEquals": {"id.example.com:sub": "org/a"}}}
        ]});
        let st = parse(&doc).unwrap();
        let a = ["sts:AssumeRoleWithWebIdentity"];
        assert_eq!(
            evaluate(&st, "p", &a, &ctx("org/b", "x")),
            Verdict::ExplicitlyDenied
        );
        assert_eq!(evaluate(&st, "p", &a, &ctx("org/a", "x")), Verdict::Allowed);
        let doc = json!({"Statement": {"Effect": "Allow", "Principal": {"Federated": "*"}, "Action": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01"}}}});
        assert!(matches!(
            evaluate(&parse(&doc).unwrap(), "p", &a, &ctx("s", "a")),
            Verdict::NotEvaluated(_)
        ));
        assert!(parse(&json!({"Version": "2012-10-17"})).is_err());
    }
}
