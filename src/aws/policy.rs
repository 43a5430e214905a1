//! The trust policy model: one statement that lets one org's agent (or all its
//! agents) assume a role with a nomos-issuer token. JSON and Terraform are two
//! renderings of the same `serde_json::Value`.

use serde_json::{Map, Value, json};

use crate::ids::{AgentId, Audience, OrgId};

/// The AWS side of an issuer: its provider URL and the account it is registered in.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The issuer URL (`https://host/path`).
    pub issuer: String,
    /// The AWS account id (12 digits).
    pub account: String,
    /// The partition: `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
}

/// Why a provider or binding was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// Checks an AWS account id: 12 digits.
pub fn check_account(account: &str) -> Result<(), PolicyError> {
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PolicyError(format!(
            "AWS account id {account:?} must be 12 digits"
        )));
    }
    Ok(())
}

/// Checks an AWS partition: `aws`, `aws-cn` or `aws-us-gov`.
pub fn check_partition(partition: &str) -> Result<(), PolicyError> {
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(PolicyError(format!(
            "partition {partition:?} must be aws, aws-cn or aws-us-gov"
        )));
    }
    Ok(())
}

impl Provider {
    /// Checks the account id and partition.
    pub fn new(issuer: &str, account: &str, partition: &str) -> Result<Self, PolicyError> {
        check_account(account)?;
        check_partition(partition)?;
        Ok(Provider {
            issuer: issuer.to_owned(),
            account: account.to_owned(),
            partition: partition.to_owned(),
        })
    }

    /// The provider URL without its scheme: the prefix of IAM condition keys.
    pub fn host_path(&self) -> &str {
        host_path(&self.issuer)
    }

    /// `arn:<partition>:iam::<account>:oidc-provider/<host/path>`.
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:iam::{}:oidc-provider/{}",
            self.partition,
            self.account,
            self.host_path()
        )
    }
}

/// An issuer URL without `https://` (or `http://`).
pub fn host_path(issuer: &str) -> &str {
    issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .unwrap_or(issuer)
}

/// Who may assume the role.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The org.
    pub org: OrgId,
    /// One agent, or `None` for every agent of the org.
    pub agent: Option<AgentId>,
    /// The token audience (one of the provider's client ids).
    pub audience: Audience,
    /// Tokens carry session tags: the role must allow `sts:TagSession`.
    pub tags: bool,
    /// Tokens carry a source identity: the role must allow `sts:SetSourceIdentity`.
    pub source_identity: bool,
}

fn title(id: &str) -> String {
    let cleaned: String = id.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let mut chars = cleaned.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

impl Binding {
    /// The statement id: `NomosOrg<Org>Agent<Agent>` or `NomosOrg<Org>AnyAgent`.
    pub fn sid(&self) -> String {
        match &self.agent {
            Some(a) => format!(
                "NomosOrg{}Agent{}",
                title(self.org.as_str()),
                title(a.as_str())
            ),
            None => format!("NomosOrg{}AnyAgent", title(self.org.as_str())),
        }
    }

    /// A role name: `<prefix>-<org>-<agent>` or `<prefix>-<org>-any-agent`, at most 64 characters.
    pub fn role_name(&self, prefix: &str) -> String {
        let agent = self.agent.as_ref().map_or("any-agent", |a| a.as_str());
        let mut name = format!("{prefix}-{}-{agent}", self.org);
        name.truncate(64);
        name
    }

    /// The `sub` the trust policy matches: exact for one agent; `org/<org>/agent/*`
    /// for any agent, which ids make safe (they contain no `/`, so the pattern
    /// cannot reach into another org).
    pub fn sub_pattern(&self) -> String {
        match &self.agent {
            Some(a) => format!("org/{}/agent/{a}", self.org),
            None => format!("org/{}/agent/*", self.org),
        }
    }

    /// The actions the role must allow.
    pub fn actions(&self) -> Vec<&'static str> {
        let mut a = vec!["sts:AssumeRoleWithWebIdentity"];
        if self.tags {
            a.push("sts:TagSession");
        }
        if self.source_identity {
            a.push("sts:SetSourceIdentity");
        }
        a
    }

    /// The trust policy document.
    pub fn trust_policy(&self, provider: &Provider) -> Value {
        let hp = provider.host_path();
        let aud_key = format!("{hp}:aud");
        let sub_key = format!("{hp}:sub");
        let mut equals = Map::new();
        equals.insert(aud_key, self.audience.as_str().into());
        let mut condition = Map::new();
        match &self.agent {
            Some(_) => {
                equals.insert(sub_key, self.sub_pattern().into());
                condition.insert("StringEquals".into(), equals.into());
            }
            None => {
                condition.insert("StringEquals".into(), equals.into());
                condition.insert("StringLike".into(), json!({ sub_key: self.sub_pattern() }));
            }
        }
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": self.sid(),
                "Effect": "Allow",
                "Principal": {"Federated": provider.arn()},
                "Action": self.actions(),
                "Condition": condition,
            }]
        })
    }
}

fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            // Template sequences would be interpolated: escape them.
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn hcl_key(k: &str) -> String {
    let ident = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ident { k.to_owned() } else { hcl_string(k) }
}

/// Renders a JSON value as an HCL expression (for `jsonencode(...)`).
pub fn to_hcl(v: &Value, indent: usize) -> String {
    let pad = "  ".repeat(indent + 1);
    let end = "  ".repeat(indent);
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => hcl_string(s),
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Array(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|i| format!("{pad}{},\n", to_hcl(i, indent + 1)))
                .collect();
            format!("[\n{}{end}]", inner.concat())
        }
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Object(m) => {
            // `terraform fmt` aligns the `=` of consecutive one-line
            // attributes; an attribute whose value spans lines stands alone
            // and ends the run.
            let items: Vec<(String, String)> = m
                .iter()
                .map(|(k, v)| (hcl_key(k), to_hcl(v, indent + 1)))
                .collect();
            let mut out = String::from("{\n");
            for run in items.chunk_by(|a, b| !a.1.contains('\n') && !b.1.contains('\n')) {
                let width = run
                    .iter()
                    .map(|(k, _)| k.chars().count())
                    .max()
                    .unwrap_or(0);
                for (k, v) in run {
                    let width = if v.contains('\n') { 0 } else { width };
                    out.push_str(&format!("{pad}{k:<width$} = {v}\n"));
                }
            }
            out.push_str(&end);
            out.push('}');
            out
        }
    }
}

/// The Terraform rendering: a `locals` block holding the policy object, to be
/// used as `assume_role_policy = jsonencode(local.<name>)`, and an output of it.
pub fn terraform(binding: &Binding, policy: &Value) -> String {
    let name = format!(
        "trust_policy_{}",
        binding.role_name("nomos").replace('-', "_")
    );
    format!(
        "# Trust policy generated by nomos-issuer for {sub}.\n# Use it as: assume_role_policy = jsonencode(local.{name})\nlocals {{\n  {name} = {}\n}}\n\noutput \"{name}\" {{\n  value = jsonencode(local.{name})\n}}\n",
        to_hcl(policy, 1),
        sub = binding.sub_pattern(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(agent: Option<&str>, tags: bool) -> Binding {
        Binding {
            org: OrgId::parse("acme-corp").unwrap(),
            agent: agent.map(|a| AgentId::parse(a).unwrap()),
            audience: Audience::sts(),
            tags,
            source_identity: false,
        }
    }

    #[test]
    fn one_agent_is_matched_exactly() {
        let p = Provider::new("https://id.example.com/orgs/acme", "111122223333", "aws").unwrap();
        let doc = binding(Some("deployer-1"), false).trust_policy(&p);
        let st = &doc["Statement"][0];
        assert_eq!(st["Sid"], "NomosOrgAcmecorpAgentDeployer1");
        assert_eq!(
            st["Principal"]["Federated"],
            "arn:aws:iam::111122223333:oidc-provider/id.example.com/orgs/acme"
        );
        assert_eq!(st["Action"], json!(["sts:AssumeRoleWithWebIdentity"]));
        assert_eq!(
            st["Condition"],
            json!({"StringEquals": {
                "id.example.com/orgs/acme:aud": "sts.amazonaws.com",
                "id.example.com/orgs/acme:sub": "org/acme-corp/agent/deployer-1"
            }})
        );
    }

    #[test]
    fn any_agent_uses_string_like_only_for_sub() {
        let p = Provider::new("https://id.example.com", "111122223333", "aws").unwrap();
        let doc = binding(None, true).trust_policy(&p);
        let st = &doc["Statement"][0];
        assert_eq!(
            st["Action"],
            json!(["sts:AssumeRoleWithWebIdentity", "sts:TagSession"])
        );
        assert_eq!(
            st["Condition"]["StringEquals"],
            json!({"id.example.com:aud": "sts.amazonaws.com"})
        );
        assert_eq!(
            st["Condition"]["StringLike"],
            json!({"id.example.com:sub": "org/acme-corp/agent/*"})
        );
        assert_eq!(
            binding(None, true).role_name("nomos"),
            "nomos-acme-corp-any-agent"
        );
    }

    #[test]
    fn bad_accounts_and_partitions_are_refused() {
        assert!(Provider::new("https://x", "1234", "aws").is_err());
        assert!(Provider::new("https://x", "11112222333a", "aws").is_err());
        assert!(Provider::new("https://x", "111122223333", "gcp").is_err());
    }

    #[test]
    fn hcl_escapes_templates_and_quotes() {
        assert_eq!(hcl_string("a${b}%{c}\"d"), "\"a$${b}%%{c}\\\"d\"");
        assert_eq!(hcl_key("Version"), "Version");
        assert_eq!(hcl_key("id.example.com:aud"), "\"id.example.com:aud\"");
        let h = to_hcl(&json!({"A": [1, "x"], "b:c": {}}), 0);
        // A multi-line value stands alone; one-line values align in runs.
        assert_eq!(h, "{\n  A = [\n    1,\n    \"x\",\n  ]\n  \"b:c\" = {}\n}");
        let h = to_hcl(&json!({"a": 1, "bbb": 2, "c": [1], "dd": 3}), 0);
        assert_eq!(
            h,
            "{\n  a   = 1\n  bbb = 2\n  c = [\n    1,\n  ]\n  dd = 3\n}"
        );
    }
}
