//! What one client, one address or everyone together may ask of the issuer:
//! request rates, requests in flight, connections and body size.

use super::{ConfigArgs, ConfigError, invalid};

/// The resolved limits; 0 turns off those that say so in their flag's help.
pub(super) struct Limits {
    pub max_body_bytes: usize,
    pub auth_failure_limit: u32,
    pub address_rate_limit: u32,
    pub max_concurrency: usize,
    pub max_in_flight_per_address: usize,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
}

pub(super) fn resolve(layer: &ConfigArgs) -> Result<Limits, ConfigError> {
    let max_body_bytes = layer.max_body_bytes.unwrap_or(16 * 1024);
    if !(1024..=1024 * 1024).contains(&max_body_bytes) {
        return Err(invalid("max_body_bytes", "use 1024-1048576 bytes"));
    }
    let auth_failure_limit = layer.auth_failure_limit.unwrap_or(20);
    let address_rate_limit = layer.address_rate_limit.unwrap_or(200);
    let max_concurrency = layer.max_concurrency.unwrap_or(1024);
    if !(1..=100_000).contains(&max_concurrency) {
        return Err(invalid("max_concurrency", "use 1-100000"));
    }
    let max_in_flight_per_address = layer.max_in_flight_per_address.unwrap_or(128);
    let max_connections = layer.max_connections.unwrap_or(10_000);
    if !(16..=1_000_000).contains(&max_connections) {
        return Err(invalid("max_connections", "use 16-1000000"));
    }
    let max_connections_per_address = layer.max_connections_per_address.unwrap_or(256);
    if max_connections_per_address > max_connections {
        return Err(invalid(
            "max_connections_per_address",
            format!(
                "{max_connections_per_address} is more than max_connections ({max_connections}): one address could take every connection"
            ),
        ));
    }
    Ok(Limits {
        max_body_bytes,
        auth_failure_limit,
        address_rate_limit,
        max_concurrency,
        max_in_flight_per_address,
        max_connections,
        max_connections_per_address,
    })
}
