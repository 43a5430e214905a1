//! Identifiers of the domain: org and agent ids, subjects, audiences.
//!
//! Every id is parsed once, strictly, at the edge. After parsing, code never
//! re-checks strings: a `Subject` in hand is always well formed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// An org or agent id outside `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
    #[error(
        "invalid {what} id {value:?}: use 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
    )]
    Id {
        /// `org` or `agent`.
        what: &'static str,
        /// The refused text.
        value: String,
    },
    /// A client id that is neither `org/ORG` nor `org/ORG/agent/AGENT`.
    #[error("invalid client id {0:?}: expected org/ORG or org/ORG/agent/AGENT")]
    Subject(String),
    /// An audience outside the 1-255 printable ASCII characters AWS accepts.
    #[error("invalid audience {0:?}: use 1-255 printable ASCII characters without spaces")]
    Audience(String),
}

/// Checks the id grammar shared by orgs and agents.
fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && edge(&b[0])
        && edge(&b[b.len() - 1])
        && b.iter().all(|c| edge(c) || *c == b'-')
}

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A validated ", $what, " id.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Parses a ", $what, " id, refusing anything outside the id grammar.")]
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if valid_id(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::Id {
                        what: $what,
                        value: s.chars().take(80).collect(),
                    })
                }
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(OrgId, "org");
id_type!(AgentId, "agent");

/// The principal a token is about, and the OAuth `client_id` of its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// `org/<org>`: the org itself (for example a policy decision point).
    Org(OrgId),
    /// `org/<org>/agent/<agent>`: one agent of an org.
    Agent(OrgId, AgentId),
}

impl Subject {
    /// Parses `org/ORG` or `org/ORG/agent/AGENT`; nothing else is a subject.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bad = || IdError::Subject(s.chars().take(160).collect());
        let mut parts = s.split('/');
        if parts.next() != Some("org") {
            return Err(bad());
        }
        let org = parts
            .next()
            .and_then(|o| OrgId::parse(o).ok())
            .ok_or_else(bad)?;
        match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => Ok(Subject::Org(org)),
            (Some("agent"), Some(a), None) => {
                let agent = AgentId::parse(a).map_err(|_| bad())?;
                Ok(Subject::Agent(org, agent))
            }
            _ => Err(bad()),
        }
    }

    /// The org this subject belongs to.
    pub fn org(&self) -> &OrgId {
        match self {
            Subject::Org(o) | Subject::Agent(o, _) => o,
        }
    }

    /// The agent, for agent subjects.
    pub fn agent(&self) -> Option<&AgentId> {
        match self {
            Subject::Org(_) => None,
            Subject::Agent(_, a) => Some(a),
        }
    }
}

impl std::str::FromStr for Subject {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

/// Checks the shape of a `--client-id` before the command line sends it
/// anywhere: clap's `value_parser` for the flag. A malformed id is then a
/// usage error (exit 2) that names the flag and the grammar, instead of an
/// `invalid_client` from the issuer, which never says why. The id is kept as
/// given.
pub fn client_id_arg(s: &str) -> Result<String, IdError> {
    Subject::parse(s).map(|_| s.to_owned())
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Org(o) => write!(f, "org/{o}"),
            Subject::Agent(o, a) => write!(f, "org/{o}/agent/{a}"),
        }
    }
}

/// A token audience: one AWS client id (1-255 printable ASCII characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Audience(String);

/// The audience AWS STS expects by default.
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";

impl Audience {
    /// Parses an audience string.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if !s.is_empty() && s.len() <= 255 && s.bytes().all(|c| c.is_ascii_graphic()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError::Audience(s.chars().take(80).collect()))
        }
    }

    /// `sts.amazonaws.com`.
    pub fn sts() -> Self {
        Self(DEFAULT_AUDIENCE.to_owned())
    }

    /// The audience as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_follow_the_grammar() {
        for ok in ["a", "acme", "a-b", "0", "a1-2b", &"a".repeat(63)] {
            assert!(OrgId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "acme/x",
            "a*",
            "a?",
            "a:b",
            "a b",
            "é",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(OrgId::parse(bad).is_err(), "{bad}");
            assert!(AgentId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subjects_round_trip() {
        let s = Subject::parse("org/acme/agent/deployer").unwrap();
        assert_eq!(s.org().as_str(), "acme");
        assert_eq!(s.agent().unwrap().as_str(), "deployer");
        assert_eq!(s.to_string(), "org/acme/agent/deployer");
        assert_eq!(Subject::parse("org/acme").unwrap().to_string(), "org/acme");
        for bad in [
            "org",
            "org/",
            "org/acme/",
            "org/acme/agent",
            "org/acme/agent/",
            "org/acme/x/y",
            "org/acme/agent/a/b",
            "orgs/acme",
            "/org/acme",
            "org/Acme",
            "org/acme/agent/*",
        ] {
            assert!(Subject::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_id_flag_refuses_a_malformed_id_as_a_usage_error() {
        let cmd = || {
            clap::Command::new("t").arg(
                clap::Arg::new("client_id")
                    .long("client-id")
                    .value_parser(client_id_arg),
            )
        };
        let ok = cmd()
            .try_get_matches_from(["t", "--client-id", "org/acme/agent/ci"])
            .unwrap();
        assert_eq!(
            ok.get_one::<String>("client_id").unwrap(),
            "org/acme/agent/ci"
        );
        for bad in ["acme", "org/Acme", "org/acme/agent", "org/acme/x/ci"] {
            let e = cmd()
                .try_get_matches_from(["t", "--client-id", bad])
                .unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            let text = e.to_string();
            assert!(
                text.contains("--client-id") && text.contains("org/ORG or org/ORG/agent/AGENT"),
                "{text}"
            );
        }
    }

    #[test]
    fn audiences_are_bounded() {
        assert!(Audience::parse("sts.amazonaws.com").is_ok());
        assert!(Audience::parse("").is_err());
        assert!(Audience::parse("a b").is_err());
        assert!(Audience::parse(&"a".repeat(256)).is_err());
    }

    proptest! {
        #[test]
        fn subject_parse_display_is_identity(s in "org/[a-z0-9/-]{0,40}") {
            if let Ok(sub) = Subject::parse(&s) {
                prop_assert_eq!(sub.to_string(), s);
            }
        }

        #[test]
        fn parsed_ids_never_contain_separators(s in "\\PC{0,70}") {
            if let Ok(id) = OrgId::parse(&s) {
                prop_assert!(!id.as_str().contains(['/', '*', '?', ':']));
            }
        }
    }
}
