//! The filter over the audit log, parsed once for both front ends: the admin
//! API's `GET /admin/v1/audit` and the command line's `audit list`. Also the
//! JSON both print, so that a script can switch between them.

use serde::Deserialize;
use serde_json::{Value, json};

use super::AuditRecord;
use crate::ids::{AgentId, IdError, OrgId};

/// The page size unless one is given.
pub const DEFAULT_LIMIT: u32 = 100;

/// The largest page.
pub const MAX_LIMIT: u32 = 1000;

/// The longest `jti` worth looking up: longer ones were never issued.
pub const MAX_JTI: usize = 128;

/// A filter over the audit log; results come newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this org's tokens.
    pub org: Option<OrgId>,
    /// Only this agent's tokens (with `org`).
    pub agent: Option<AgentId>,
    /// Only tokens issued at or after this time.
    pub since: Option<i64>,
    /// Only tokens issued before this time.
    pub until: Option<i64>,
    /// Only tokens older than this `(iat, jti)`: the cursor of the previous page.
    pub before: Option<(i64, String)>,
    /// At most this many.
    pub limit: u32,
}

/// A filter as given, not yet checked: the admin API's query string (unknown
/// parameters are refused) or the flags of `audit list`. The field names are
/// the parameters' and the flags'.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// An org id.
    pub org: Option<String>,
    /// An agent id (needs `org`).
    pub agent: Option<String>,
    /// Unix seconds.
    pub since: Option<i64>,
    /// Unix seconds.
    pub until: Option<i64>,
    /// A cursor from a previous page's `next`.
    pub before: Option<String>,
    /// 1-[`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when absent.
    pub limit: Option<u32>,
}

/// Why a filter cannot be used. Each message starts with the name of the
/// field at fault, which is also the name of its flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditQueryError {
    /// The page size is out of range.
    #[error("limit must be 1-{MAX_LIMIT}")]
    Limit,
    /// The org id is invalid.
    #[error("org: {0}")]
    Org(IdError),
    /// The agent id is invalid.
    #[error("agent: {0}")]
    Agent(IdError),
    /// An agent was given without its org.
    #[error("agent needs org too")]
    AgentWithoutOrg,
    /// The cursor was not made by [`AuditQuery::next`].
    #[error("before: {0:?} is not a cursor from a previous page")]
    Cursor(String),
}

impl AuditQuery {
    /// Checks a filter.
    pub fn parse(filter: &AuditFilter) -> Result<Self, AuditQueryError> {
        let limit = match filter.limit.unwrap_or(DEFAULT_LIMIT) {
            l @ 1..=MAX_LIMIT => l,
            _ => return Err(AuditQueryError::Limit),
        };
        let org = filter
            .org
            .as_deref()
            .map(OrgId::parse)
            .transpose()
            .map_err(AuditQueryError::Org)?;
        let agent = filter
            .agent
            .as_deref()
            .map(AgentId::parse)
            .transpose()
            .map_err(AuditQueryError::Agent)?;
        if agent.is_some() && org.is_none() {
            return Err(AuditQueryError::AgentWithoutOrg);
        }
        let before = filter
            .before
            .as_deref()
            .map(|c| parse_cursor(c).ok_or_else(|| AuditQueryError::Cursor(c.to_owned())))
            .transpose()?;
        Ok(AuditQuery {
            org,
            agent,
            since: filter.since,
            until: filter.until,
            before,
            limit,
        })
    }

    /// The cursor of the page after `records`, the answer to this query, if
    /// the page was full.
    pub fn next(&self, records: &[AuditRecord]) -> Option<String> {
        (records.len() == self.limit as usize)
            .then(|| records.last().map(|r| format!("{}:{}", r.iat, r.jti)))
            .flatten()
    }

    /// The JSON of a page answering this query: `{"tokens": [...], "next": cursor}`.
    pub fn page_json(&self, records: &[AuditRecord]) -> Value {
        json!({
            "tokens": records.iter().map(record_json).collect::<Vec<_>>(),
            "next": self.next(records),
        })
    }
}

/// `iat:jti`, as [`AuditQuery::next`] makes it.
fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
    let (iat, jti) = cursor.split_once(':')?;
    let iat = iat.parse::<i64>().ok()?;
    (!jti.is_empty() && jti.len() <= MAX_JTI).then(|| (iat, jti.to_owned()))
}

/// The JSON of one record, as `GET /admin/v1/audit/{jti}` and `audit show --json` print it.
pub fn record_json(r: &AuditRecord) -> Value {
    json!({
        "jti": r.jti, "subject": r.subject, "org_id": r.org_id, "agent_id": r.agent_id,
        "audience": r.audience, "kid": r.kid, "iat": r.iat, "exp": r.exp,
        "auth_method": r.auth_method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(iat: i64, jti: &str) -> AuditRecord {
        AuditRecord {
            jti: jti.into(),
            subject: "org/acme".into(),
            org_id: "acme".into(),
            agent_id: None,
            audience: "sts.amazonaws.com".into(),
            kid: "k".into(),
            iat,
            exp: iat + 60,
            auth_method: "cli".into(),
        }
    }

    #[test]
    fn an_empty_filter_is_the_newest_hundred() {
        let q = AuditQuery::parse(&AuditFilter::default()).unwrap();
        assert_eq!(
            q,
            AuditQuery {
                limit: DEFAULT_LIMIT,
                ..AuditQuery::default()
            }
        );
    }

    #[test]
    fn a_cursor_round_trips_and_only_a_full_page_has_one() {
        let q = AuditQuery::parse(&AuditFilter {
            limit: Some(2),
            ..AuditFilter::default()
        })
        .unwrap();
        let page = [record(20, "b"), record(10, "a:x")];
        let next = q.next(&page).unwrap();
        assert_eq!(next, "10:a:x");
        let again = AuditQuery::parse(&AuditFilter {
            before: Some(next),
            ..AuditFilter::default()
        })
        .unwrap();
        assert_eq!(again.before, Some((10, "a:x".to_owned())));
        assert_eq!(q.next(&page[..1]), None);
        assert_eq!(q.page_json(&page[..1])["next"], Value::Null);
    }

    #[test]
    fn bad_filters_name_their_field() {
        let bad = |f: AuditFilter| AuditQuery::parse(&f).unwrap_err().to_string();
        for limit in [0, MAX_LIMIT + 1] {
            let e = bad(AuditFilter {
                limit: Some(limit),
                ..AuditFilter::default()
            });
            assert_eq!(e, "limit must be 1-1000");
        }
        assert!(
            bad(AuditFilter {
                org: Some("ACME".into()),
                ..AuditFilter::default()
            })
            .starts_with("org: ")
        );
        assert_eq!(
            bad(AuditFilter {
                agent: Some("ci".into()),
                ..AuditFilter::default()
            }),
            "agent needs org too"
        );
        for cursor in [
            "nonsense",
            "x:jti",
            "10:",
            &format!("10:{}", "j".repeat(129)),
        ] {
            assert!(
                bad(AuditFilter {
                    before: Some(cursor.into()),
                    ..AuditFilter::default()
                })
                .starts_with("before: "),
                "{cursor}"
            );
        }
    }
}
