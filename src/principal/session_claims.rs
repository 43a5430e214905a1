//! A principal's AWS session claims: session tags (`https://aws.amazon.com/tags`) and source
//! identity (`https://aws.amazon.com/source_identity`). Off by default: a role
//! whose trust policy lacks `sts:TagSession` rejects a token that carries tags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ids::Subject;

/// The claim that carries session tags.
pub const TAGS_CLAIM: &str = "https://aws.amazon.com/tags";
/// The claim that carries the source identity.
pub const SOURCE_IDENTITY_CLAIM: &str = "https://aws.amazon.com/source_identity";
/// AWS accepts at most 50 session tags.
pub const MAX_TAGS: usize = 50;

/// What an org (or an agent, overriding its org) puts in its tokens for AWS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionClaims {
    /// Whether tokens carry session tags: `org` and `agent` from the ids, plus `extra_tags`.
    #[serde(default)]
    pub tags: bool,
    /// Operator-defined principal tags, one value each.
    #[serde(default)]
    pub extra_tags: BTreeMap<String, String>,
    /// Tag keys that are transitive (they follow role chaining).
    #[serde(default)]
    pub transitive: Vec<String>,
    /// Whether tokens carry a source identity (`<agent>@<org>`, or `<org>`).
    #[serde(default)]
    pub source_identity: bool,
}

fn tag_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)
}

impl Default for SessionClaims {
    fn default() -> Self {
        SessionClaims::NONE
    }
}

impl SessionClaims {
    /// No session claims: the default.
    pub const NONE: SessionClaims = SessionClaims {
        tags: false,
        extra_tags: BTreeMap::new(),
        transitive: Vec::new(),
        source_identity: false,
    };

    /// Checks AWS's limits: at most 50 tags in all, keys 1-128 and values 0-256
    /// characters of letters, digits, space and `_ . : / = + - @`, no `aws:` keys,
    /// keys unique ignoring case, `org`/`agent` reserved for the ids, and every
    /// transitive key a tag key.
    pub fn validate(&self) -> Result<(), String> {
        if (!self.extra_tags.is_empty() || !self.transitive.is_empty()) && !self.tags {
            return Err("tags and transitive keys need session tags turned on".into());
        }
        if self.extra_tags.len() + 2 > MAX_TAGS {
            return Err(format!(
                "at most {} extra tags: AWS accepts {MAX_TAGS} session tags and org and agent take two",
                MAX_TAGS - 2
            ));
        }
        let mut seen: Vec<String> = vec!["org".into(), "agent".into()];
        for (k, v) in &self.extra_tags {
            if k.is_empty() || k.chars().count() > 128 || !k.chars().all(tag_char_ok) {
                return Err(format!(
                    "tag key {k:?}: use 1-128 characters of letters, digits, space and _ . : / = + - @"
                ));
            }
            if k.to_ascii_lowercase().starts_with("aws:") {
                return Err(format!("tag key {k:?}: the aws: prefix is reserved by AWS"));
            }
            if v.chars().count() > 256 || !v.chars().all(tag_char_ok) {
                return Err(format!(
                    "tag {k:?}: the value must be at most 256 characters of letters, digits, space and _ . : / = + - @"
                ));
            }
            let lower = k.to_ascii_lowercase();
            if seen.contains(&lower) {
                return Err(format!(
                    "tag key {k:?} repeats another key (AWS compares tag keys ignoring case; org and agent are set from the ids)"
                ));
            }
            seen.push(lower);
        }
        for t in &self.transitive {
            if !seen.contains(&t.to_ascii_lowercase()) {
                return Err(format!("transitive key {t:?} is not a tag key"));
            }
        }
        Ok(())
    }

    /// [`SessionClaims::validate`], and for a source identity, that `subject`'s
    /// fits AWS's limits: the one check before a setting is stored.
    pub fn validate_for(&self, subject: &Subject) -> Result<(), String> {
        self.validate()?;
        if self.source_identity {
            Self::source_identity_of(subject)?;
        }
        Ok(())
    }

    /// The source identity of a subject: `<agent>@<org>` or `<org>`; AWS wants
    /// 2-64 characters.
    pub fn source_identity_of(subject: &Subject) -> Result<String, String> {
        let v = match subject.agent() {
            Some(a) => format!("{a}@{}", subject.org()),
            None => subject.org().to_string(),
        };
        if (2..=64).contains(&v.len()) {
            Ok(v)
        } else {
            Err(format!(
                "the source identity {v:?} of {subject} is not 2-64 characters as AWS requires; shorten the ids or turn source identity off"
            ))
        }
    }

    /// The claims to add to a token of `subject`.
    pub fn claims(&self, subject: &Subject) -> Result<Vec<(&'static str, Value)>, String> {
        let mut out = Vec::new();
        if self.tags {
            let mut principal = serde_json::Map::new();
            principal.insert("org".into(), json!([subject.org()]));
            if let Some(a) = subject.agent() {
                principal.insert("agent".into(), json!([a]));
            }
            for (k, v) in &self.extra_tags {
                principal.insert(k.clone(), json!([v]));
            }
            let mut tags = json!({ "principal_tags": principal });
            let transitive: Vec<&String> = self
                .transitive
                .iter()
                .filter(|t| subject.agent().is_some() || t.as_str() != "agent")
                .collect();
            if !transitive.is_empty() {
                tags["transitive_tag_keys"] = json!(transitive);
            }
            out.push((TAGS_CLAIM, tags));
        }
        if self.source_identity {
            out.push((
                SOURCE_IDENTITY_CLAIM,
                Self::source_identity_of(subject)?.into(),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> SessionClaims {
        SessionClaims {
            tags: true,
            ..Default::default()
        }
    }

    #[test]
    fn limits_are_enforced() {
        assert!(SessionClaims::default().validate().is_ok());
        let mut c = on();
        c.extra_tags.insert("team".into(), "payments".into());
        c.transitive = vec!["org".into(), "team".into()];
        assert!(c.validate().is_ok());
        let bad = |f: fn(&mut SessionClaims)| {
            let mut c = on();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(
            bad(|c| {
                c.extra_tags.insert("k".repeat(129), "v".into());
            })
            .contains("1-128")
        );
        assert!(
            bad(|c| {
                c.extra_tags.insert("k".into(), "v".repeat(257));
            })
            .contains("256")
        );
        assert!(
            bad(|c| {
                c.extra_tags.insert("k*".into(), "v".into());
            })
            .contains("letters")
        );
        assert!(
            bad(|c| {
                c.extra_tags.insert("aws:x".into(), "v".into());
            })
            .contains("reserved")
        );
        assert!(
            bad(|c| {
                c.extra_tags.insert("ORG".into(), "v".into());
            })
            .contains("ignoring case")
        );
        assert!(bad(|c| c.transitive = vec!["nope".into()]).contains("not a tag key"));
        assert!(
            bad(|c| {
                for i in 0..49 {
                    c.extra_tags.insert(format!("k{i}"), "v".into());
                }
            })
            .contains("50")
        );
        let mut off = SessionClaims::default();
        off.extra_tags.insert("k".into(), "v".into());
        assert!(off.validate().is_err());
    }

    #[test]
    fn claims_follow_the_subject() {
        let mut c = on();
        c.extra_tags.insert("team".into(), "payments".into());
        c.transitive = vec!["agent".into(), "org".into()];
        c.source_identity = true;
        let agent = Subject::parse("org/acme/agent/deployer").unwrap();
        let claims = c.claims(&agent).unwrap();
        assert_eq!(
            claims[0].1,
            json!({"principal_tags": {"org": ["acme"], "agent": ["deployer"], "team": ["payments"]},
                   "transitive_tag_keys": ["agent", "org"]})
        );
        assert_eq!(claims[1], (SOURCE_IDENTITY_CLAIM, json!("deployer@acme")));
        let org = Subject::parse("org/acme").unwrap();
        let claims = c.claims(&org).unwrap();
        assert_eq!(claims[0].1["transitive_tag_keys"], json!(["org"]));
        assert_eq!(claims[1].1, "acme");
        assert!(SessionClaims::default().claims(&agent).unwrap().is_empty());
        let short = Subject::parse("org/a").unwrap();
        assert!(c.claims(&short).is_err());
    }
}
