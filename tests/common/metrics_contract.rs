//! The names and label values of the layer's metrics (feature `metrics`), as README's
//! "Observability" promises them: the one list that the recorder tests and the demo's
//! Prometheus-page test both check against.
#![allow(dead_code)]

/// Every metric the layer registers, in alphabetical order.
pub const NAMES: [&str; 8] = [
    "token_expiry_timestamp_seconds",
    "token_failovers_total",
    "token_generation",
    "token_refresh_request_duration_seconds",
    "token_refresh_requests_total",
    "token_requests_turned_away_total",
    "token_revocations_total",
    "token_wait_duration_seconds",
];

/// The values of `kind`.
pub const KINDS: [&str; 2] = ["login", "refresh"];

/// The values of `reason`, and of `outcome` besides `ok`.
pub const FAILURES: [&str; 8] = [
    "rejected",
    "transport",
    "timeout",
    "invalid_answer",
    "credentials",
    "insecure",
    "no_runtime",
    "no_identity",
];

/// Every metric a `PerIdentityLayer` registers, in alphabetical order: no one token's
/// expiry or generation, and the identities it holds and dropped.
pub const PER_IDENTITY_NAMES: [&str; 8] = [
    "token_failovers_total",
    "token_identities",
    "token_identities_dropped_total",
    "token_refresh_request_duration_seconds",
    "token_refresh_requests_total",
    "token_requests_turned_away_total",
    "token_revocations_total",
    "token_wait_duration_seconds",
];

/// Whether the layer named `layer` may write `value` for `label`: nothing outside these
/// small fixed sets, so never a token, a user, a password or a path.
pub fn allowed(label: &str, value: &str, layer: &str) -> bool {
    match label {
        "layer" => value == layer,
        "kind" => KINDS.contains(&value),
        "outcome" => value == "ok" || FAILURES.contains(&value),
        "reason" => FAILURES.contains(&value),
        _ => false,
    }
}
