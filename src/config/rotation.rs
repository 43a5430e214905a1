//! The signing keys' rotation policy, and the token lifetimes it is sized by.

use std::time::Duration;

use super::duration::{duration, seconds};
use super::{ConfigArgs, ConfigError, invalid};
use crate::keys::Alg;
use crate::keys::rotation::Policy;
use crate::principal::MAX_TOKEN_TTL;

/// The resolved rotation settings.
pub(super) struct Rotation {
    pub policy: Policy,
    pub key_check_interval: Duration,
    pub token_ttl: u32,
}

/// The policy's own rules (`Policy::validate`) come last, once each value is
/// valid alone.
pub(super) fn resolve(layer: &ConfigArgs) -> Result<Rotation, ConfigError> {
    let alg_text = layer.signing_alg.clone().unwrap_or_else(|| "ES256".into());
    let signing_alg: Alg = alg_text.parse().map_err(|e| invalid("signing_alg", e))?;
    let token_ttl = seconds("token_ttl", layer.token_ttl.as_ref(), 300)?;
    if token_ttl == 0 || token_ttl > MAX_TOKEN_TTL {
        return Err(invalid(
            "token_ttl",
            format!("{token_ttl} is outside 1-{MAX_TOKEN_TTL} seconds"),
        ));
    }
    let jwks_max_age = seconds("jwks_max_age", layer.jwks_max_age.as_ref(), 300)?;
    if jwks_max_age > 86_400 {
        return Err(invalid("jwks_max_age", "at most 86400 seconds"));
    }
    let max_token_lifetime = seconds(
        "max_token_lifetime",
        layer.max_token_lifetime.as_ref(),
        MAX_TOKEN_TTL,
    )?;
    if max_token_lifetime == 0 || max_token_lifetime > MAX_TOKEN_TTL {
        return Err(invalid(
            "max_token_lifetime",
            format!("{max_token_lifetime} is outside 1-{MAX_TOKEN_TTL} seconds"),
        ));
    }
    if token_ttl > max_token_lifetime {
        return Err(invalid(
            "token_ttl",
            format!(
                "token_ttl ({token_ttl} s) is longer than max_token_lifetime ({max_token_lifetime} s), which sizes how long old keys stay published"
            ),
        ));
    }
    let verifier_skew = seconds("verifier_skew", layer.verifier_skew.as_ref(), 300)?;
    if verifier_skew > 3600 {
        return Err(invalid("verifier_skew", "at most 3600 seconds"));
    }
    let rotation_period = duration("rotation_period", layer.rotation_period.as_ref(), "7d")?;
    let rotation_margin = duration("rotation_margin", layer.rotation_margin.as_ref(), "5m")?;
    if rotation_margin.as_secs() < 1 {
        return Err(invalid(
            "rotation_margin",
            "at least 1s: key timestamps are whole seconds",
        ));
    }
    let key_check_interval = duration(
        "key_check_interval",
        layer.key_check_interval.as_ref(),
        "10s",
    )?;
    if key_check_interval.is_zero() || key_check_interval > Duration::from_secs(600) {
        return Err(invalid("key_check_interval", "use 1s to 10m"));
    }
    let policy = Policy {
        alg: signing_alg,
        rotation_period: rotation_period.as_secs() as i64,
        jwks_max_age: i64::from(jwks_max_age),
        margin: rotation_margin.as_secs() as i64,
        max_token_lifetime: i64::from(max_token_lifetime),
        verifier_skew: i64::from(verifier_skew),
    };
    policy
        .validate()
        .map_err(|(name, why)| invalid(&name, why))?;
    Ok(Rotation {
        policy,
        key_check_interval,
        token_ttl,
    })
}
