//! Prometheus metrics: what an operator graphs and alerts on.
//!
//! Counters and histograms are updated on the request path (atomics only);
//! gauges that describe state (keys, audit queue, connection pools) are read
//! when `/metrics` is scraped.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::keys::StoredKey;
use crate::keys::rotation::{Policy, next_transition};
use crate::store::PoolStats;

type Labels = Vec<(&'static str, String)>;

/// The endpoints whose requests are counted.
pub const ENDPOINTS: [&str; 4] = ["discovery", "jwks", "healthz", "readyz"];

/// Every metric the issuer exports.
pub struct Metrics {
    registry: Registry,
    tokens: Family<Labels, Counter>,
    token_latency: Histogram,
    requests: [Counter; ENDPOINTS.len()],
    rate_limited: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    /// Audit commit latency; the audit writer observes it.
    pub audit_commit: Histogram,
    /// Decision records dropped (queue full or store down); the decision writer counts them.
    pub decisions_dropped: Counter,
    audit_queue: Gauge,
    key_age: Family<Labels, Gauge>,
    key_next: Family<Labels, Gauge>,
    pool: Family<Labels, Gauge>,
    pool_max: Family<Labels, Gauge>,
}

/// State read when `/metrics` is scraped.
pub struct Snapshot<'a> {
    /// Every stored key, as published.
    pub keys: &'a [StoredKey],
    /// The rotation policy.
    pub policy: &'a Policy,
    /// Records waiting for the audit writer.
    pub audit_queued: usize,
    /// Connection pools of the store.
    pub pools: Vec<PoolStats>,
    /// The time, Unix seconds.
    pub now: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nomos_issuer");
        let tokens = Family::<Labels, Counter>::default();
        registry.register(
            "tokens",
            "Token requests answered, by org (\"-\" before the client authenticated) and outcome (issued, or the OAuth error code)",
            tokens.clone(),
        );
        let token_latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        registry.register(
            "token_request_duration_seconds",
            "Time to answer a token request, audit commit included",
            token_latency.clone(),
        );
        // Counted on the hottest path: one counter per endpoint, made once.
        let family = Family::<Labels, Counter>::default();
        let requests = ENDPOINTS.map(|e| {
            family
                .get_or_create(&vec![("endpoint", e.to_owned())])
                .clone()
        });
        registry.register(
            "requests",
            "Requests to the public documents and health endpoints, by endpoint",
            family,
        );
        let rate_limited = Family::<Labels, Counter>::default();
        registry.register(
            "rate_limited",
            "Token requests refused with 429, by limit (address: the source address's rate; failures: failed authentications of one client id from one address)",
            rate_limited.clone(),
        );
        let refused = Family::<Labels, Counter>::default();
        registry.register(
            "refused",
            "Connections and requests refused before any handler ran, by reason (connections_total, connections_per_address, documents_at_capacity, work_at_capacity, address_in_flight)",
            refused.clone(),
        );
        let audit_commit = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        registry.register(
            "audit_commit_duration_seconds",
            "Time of one audit group commit",
            audit_commit.clone(),
        );
        let decisions_dropped = Counter::default();
        registry.register(
            "decision_records_dropped",
            "Decision records of refusals not written: the writer's queue was full (a flood of failures) or the store failed. Their log lines were written",
            decisions_dropped.clone(),
        );
        let audit_queue = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Token records waiting for an audit commit",
            audit_queue.clone(),
        );
        let key_age = Family::<Labels, Gauge>::default();
        registry.register(
            "signing_key_age_seconds",
            "Age of every published signing key, by kid, alg and state",
            key_age.clone(),
        );
        let key_next = Family::<Labels, Gauge>::default();
        registry.register(
            "signing_key_next_transition_seconds",
            "Seconds until a key's next scheduled transition (negative: overdue), by kid, alg, state and transition",
            key_next.clone(),
        );
        let pool = Family::<Labels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections, by pool and state (idle or in_use)",
            pool.clone(),
        );
        let pool_max = Family::<Labels, Gauge>::default();
        registry.register(
            "db_pool_max_connections",
            "Largest size of each database connection pool",
            pool_max.clone(),
        );
        Metrics {
            registry,
            tokens,
            token_latency,
            requests,
            rate_limited,
            refused,
            audit_commit,
            decisions_dropped,
            audit_queue,
            key_age,
            key_next,
            pool,
            pool_max,
        }
    }

    /// Counts one answered token request.
    pub fn token(&self, org: &str, outcome: &str, seconds: f64) {
        self.tokens
            .get_or_create(&vec![
                ("org", org.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        self.token_latency.observe(seconds);
    }

    /// Counts a request to a public endpoint (one of [`ENDPOINTS`]).
    pub fn request(&self, endpoint: &'static str) {
        if let Some(i) = ENDPOINTS.iter().position(|e| *e == endpoint) {
            self.requests[i].inc();
        }
    }

    /// Counts a request refused by a rate limit.
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&vec![("limit", limit.to_owned())])
            .inc();
    }

    /// Counts a connection or request refused by a capacity limit.
    pub fn refused(&self, reason: &'static str) {
        self.refused
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    /// The Prometheus text exposition, with the state gauges read from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot<'_>) -> String {
        self.audit_queue.set(snapshot.audit_queued as i64);
        self.key_age.clear();
        self.key_next.clear();
        for k in snapshot.keys.iter().filter(|k| k.state.is_published()) {
            let labels = vec![
                ("kid", k.kid.clone()),
                ("alg", k.alg.as_str().to_owned()),
                ("state", k.state.as_str().to_owned()),
            ];
            self.key_age
                .get_or_create(&labels)
                .set(snapshot.now - k.created_at);
            if let Some((at, what)) = next_transition(snapshot.keys, k, snapshot.policy) {
                let mut labels = labels;
                labels.push(("transition", what.to_owned()));
                self.key_next.get_or_create(&labels).set(at - snapshot.now);
            }
        }
        for p in &snapshot.pools {
            let name = ("pool", p.name.to_owned());
            self.pool
                .get_or_create(&vec![name.clone(), ("state", "idle".into())])
                .set(i64::from(p.idle));
            self.pool
                .get_or_create(&vec![name.clone(), ("state", "in_use".into())])
                .set(i64::from(p.size.saturating_sub(p.idle)));
            self.pool_max
                .get_or_create(&vec![name])
                .set(i64::from(p.max));
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
