//! The timing policy of rotation, its validation and the durations derived from it.

use crate::keys::Alg;

/// The timing policy. All durations in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The algorithm that should sign.
    pub alg: Alg,
    /// How long a key signs before its successor takes over (default 7 days).
    pub rotation_period: i64,
    /// The longest any verifier may cache the JWKS (and our `Cache-Control` max-age).
    pub jwks_max_age: i64,
    /// Safety margin added to every wait.
    pub margin: i64,
    /// The longest lifetime any token can have.
    pub max_token_lifetime: i64,
    /// Clock skew verifiers allow past `exp` (AWS: 300 s).
    pub verifier_skew: i64,
}

/// The most keys of one algorithm the JWKS may hold under any accepted policy.
pub const MAX_PUBLISHED_PER_ALG: i64 = 10;

impl Policy {
    /// How long a `next` key must have been published before it may sign.
    pub fn publish_lead(&self) -> i64 {
        self.jwks_max_age + self.margin
    }

    /// How long a key stays published after it stopped signing.
    pub fn retention(&self) -> i64 {
        self.max_token_lifetime + self.verifier_skew + self.margin
    }

    /// The most keys of one algorithm published at once: current, next, and the
    /// previous keys still inside the retention window, counting manual rotations,
    /// which may come as often as every publish lead. On the schedule alone it is
    /// 2 or 3.
    pub fn max_published(&self) -> i64 {
        let lead = self.publish_lead().max(1);
        2 + (self.retention() + lead - 1) / lead
    }

    /// Refuses a policy that would break the invariant, naming the settings involved.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |name: &str, why: String| Err((name.to_owned(), why));
        if self.rotation_period <= 0 || self.jwks_max_age < 0 || self.margin < 0 {
            return bad("rotation_period", "durations must be positive".into());
        }
        if self.rotation_period < self.publish_lead() {
            return bad(
                "rotation_period",
                format!(
                    "rotation_period ({} s) is shorter than jwks_max_age ({} s) + rotation_margin ({} s): a next key could not be in every cached JWKS before it signs",
                    self.rotation_period, self.jwks_max_age, self.margin
                ),
            );
        }
        if self.max_published() > MAX_PUBLISHED_PER_ALG {
            return bad(
                "jwks_max_age",
                format!(
                    "jwks_max_age ({} s) + rotation_margin is so short against max_token_lifetime ({} s) + verifier_skew ({} s) + rotation_margin ({} s) that rotations as often as allowed would keep {} keys in the JWKS; at most {MAX_PUBLISHED_PER_ALG} are allowed",
                    self.jwks_max_age,
                    self.max_token_lifetime,
                    self.verifier_skew,
                    self.margin,
                    self.max_published()
                ),
            );
        }
        Ok(())
    }
}
