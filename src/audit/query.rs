//! The filters over the audit log and the decision records, parsed once for
//! both front ends: the admin API's `GET /admin/v1/audit` and
//! `GET /admin/v1/audit/decisions`, and the command line's `audit list` and
//! `audit decisions`. Also the JSON both print, so that a script can switch
//! between them.

use serde::Deserialize;
use serde_json::{Value, json};

use super::AuditRecord;
use super::decision::DecisionRecord;
use crate::ids::{AgentId, IdError, OrgId, Subject};

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
    /// The cursor was not made by [`AuditQuery::next`] (or
    /// [`DecisionQuery::next`]).
    #[error("before: {0:?} is not a cursor from a previous page")]
    Cursor(String),
    /// The client id is not `org/ORG` or `org/ORG/agent/AGENT`.
    #[error("client_id: {0}")]
    ClientId(IdError),
}

/// The page size a filter asks for.
fn limit(limit: Option<u32>) -> Result<u32, AuditQueryError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        l @ 1..=MAX_LIMIT => Ok(l),
        _ => Err(AuditQueryError::Limit),
    }
}

/// The org a filter names.
fn org(org: Option<&str>) -> Result<Option<OrgId>, AuditQueryError> {
    org.map(OrgId::parse)
        .transpose()
        .map_err(AuditQueryError::Org)
}

/// A cursor a filter gives, read by `parse`.
fn cursor<T>(
    before: Option<&str>,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, AuditQueryError> {
    before
        .map(|c| parse(c).ok_or_else(|| AuditQueryError::Cursor(c.to_owned())))
        .transpose()
}

impl AuditQuery {
    /// Checks a filter.
    pub fn parse(filter: &AuditFilter) -> Result<Self, AuditQueryError> {
        let limit = limit(filter.limit)?;
        let org = org(filter.org.as_deref())?;
        let agent = filter
            .agent
            .as_deref()
            .map(AgentId::parse)
            .transpose()
            .map_err(AuditQueryError::Agent)?;
        if agent.is_some() && org.is_none() {
            return Err(AuditQueryError::AgentWithoutOrg);
        }
        let before = cursor(filter.before.as_deref(), parse_cursor)?;
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
pub fn parse_cursor(cursor: &str) -> Option<(i64, String)> {
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

/// A filter over the decision records; results come newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionQuery {
    /// Only refusals of client ids of this org.
    pub org: Option<OrgId>,
    /// Only refusals of this client id.
    pub client_id: Option<Subject>,
    /// Only refusals at or after this time.
    pub since: Option<i64>,
    /// Only refusals before this time.
    pub until: Option<i64>,
    /// Only records older than this `(at, id)`: the cursor of the previous page.
    pub before: Option<(i64, i64)>,
    /// At most this many.
    pub limit: u32,
}

/// A filter over the decision records as given: the admin API's query
/// string (unknown parameters are refused) or the flags of `audit decisions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionFilter {
    /// An org id.
    pub org: Option<String>,
    /// A client id: `org/ORG` or `org/ORG/agent/AGENT`.
    pub client_id: Option<String>,
    /// Unix seconds.
    pub since: Option<i64>,
    /// Unix seconds.
    pub until: Option<i64>,
    /// A cursor from a previous page's `next`.
    pub before: Option<String>,
    /// 1-[`MAX_LIMIT`]; [`DEFAULT_LIMIT`] when absent.
    pub limit: Option<u32>,
}

impl DecisionQuery {
    /// Checks a filter.
    pub fn parse(filter: &DecisionFilter) -> Result<Self, AuditQueryError> {
        Ok(DecisionQuery {
            org: org(filter.org.as_deref())?,
            client_id: filter
                .client_id
                .as_deref()
                .map(Subject::parse)
                .transpose()
                .map_err(AuditQueryError::ClientId)?,
            since: filter.since,
            until: filter.until,
            before: cursor(filter.before.as_deref(), parse_decision_cursor)?,
            limit: limit(filter.limit)?,
        })
    }

    /// The cursor of the page after `records`, the answer to this query, if
    /// the page was full.
    pub fn next(&self, records: &[DecisionRecord]) -> Option<String> {
        (records.len() == self.limit as usize)
            .then(|| records.last().map(|r| format!("{}:{}", r.at, r.id)))
            .flatten()
    }

    /// The JSON of a page answering this query: `{"decisions": [...], "next": cursor}`.
    pub fn page_json(&self, records: &[DecisionRecord]) -> Value {
        json!({
            "decisions": records.iter().map(decision_json).collect::<Vec<_>>(),
            "next": self.next(records),
        })
    }
}

/// `at:id`, as [`DecisionQuery::next`] makes it.
pub fn parse_decision_cursor(cursor: &str) -> Option<(i64, i64)> {
    let (at, id) = cursor.split_once(':')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

/// The JSON of one decision record.
pub fn decision_json(r: &DecisionRecord) -> Value {
    json!({
        "id": r.id, "at": r.at, "kind": r.kind, "client_id": r.client_id,
        "org_id": r.org_id, "reason": r.reason, "auth_method": r.auth_method,
        "source": r.source, "request_id": r.request_id,
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

    fn decision(at: i64, id: i64) -> DecisionRecord {
        DecisionRecord {
            id,
            at,
            kind: "authentication".into(),
            client_id: Some("org/acme".into()),
            org_id: Some("acme".into()),
            reason: "wrong_secret".into(),
            auth_method: None,
            source: None,
            request_id: None,
        }
    }

    #[test]
    fn a_decision_filter_is_checked_and_its_cursor_round_trips() {
        let q = DecisionQuery::parse(&DecisionFilter {
            org: Some("acme".into()),
            client_id: Some("org/acme/agent/ci".into()),
            limit: Some(2),
            ..DecisionFilter::default()
        })
        .unwrap();
        assert_eq!(
            q.client_id.as_ref().unwrap().to_string(),
            "org/acme/agent/ci"
        );
        let page = [decision(20, 7), decision(10, 3)];
        let next = q.next(&page).unwrap();
        assert_eq!(next, "10:3");
        let again = DecisionQuery::parse(&DecisionFilter {
            before: Some(next),
            ..DecisionFilter::default()
        })
        .unwrap();
        assert_eq!(again.before, Some((10, 3)));
        assert_eq!(again.limit, DEFAULT_LIMIT);
        assert_eq!(q.page_json(&page[..1])["next"], Value::Null);
        assert_eq!(q.page_json(&page)["decisions"][1]["reason"], "wrong_secret");
        let bad = |f: DecisionFilter| DecisionQuery::parse(&f).unwrap_err().to_string();
        assert!(
            bad(DecisionFilter {
                client_id: Some("acme".into()),
                ..DecisionFilter::default()
            })
            .starts_with("client_id: ")
        );
        for cursor in ["10", "10:x", "x:1", "10:3:4"] {
            assert!(
                bad(DecisionFilter {
                    before: Some(cursor.into()),
                    ..DecisionFilter::default()
                })
                .starts_with("before: "),
                "{cursor}"
            );
        }
        assert_eq!(
            bad(DecisionFilter {
                limit: Some(0),
                ..DecisionFilter::default()
            }),
            "limit must be 1-1000"
        );
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
