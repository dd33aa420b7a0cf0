//! The names of the layer's metrics and the values of their labels: a small fixed set, so
//! that no label ever holds what the server or the user wrote.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

#[cfg(feature = "ocient")]
use crate::error::DeviceGrantEnd;
use crate::error::{Error, Exchange};

pub(super) const REQUESTS: &str = "token_refresh_requests_total";
pub(super) const DURATION: &str = "token_refresh_request_duration_seconds";
pub(super) const EXPIRY: &str = "token_expiry_timestamp_seconds";
pub(super) const GENERATION: &str = "token_generation";
pub(super) const REVOCATIONS: &str = "token_revocations_total";
pub(super) const WAIT: &str = "token_wait_duration_seconds";
pub(super) const TURNED_AWAY: &str = "token_requests_turned_away_total";
pub(super) const FAILOVERS: &str = "token_failovers_total";
pub(super) const IDENTITIES: &str = "token_identities";
pub(super) const DROPPED: &str = "token_identities_dropped_total";

/// The `kind` of an exchange.
pub(super) fn kind(exchange: Exchange) -> &'static str {
    match exchange {
        Exchange::Login => "login",
        Exchange::Refresh => "refresh",
    }
}

/// The `outcome` of a login or refresh that ended in `outcome`.
pub(super) fn outcome(outcome: Result<(), &Error>) -> &'static str {
    outcome.map_or_else(|e| Failure::of(e).label(), |()| "ok")
}

/// Why a login or refresh failed, or why a request was turned away: the values of the
/// `outcome` (besides `ok`) and `reason` labels. This sorts errors for people reading a
/// dashboard; how the layer retries is sorted apart (`FailureKind`), by what a next attempt
/// may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    Rejected,
    Transport,
    Timeout,
    InvalidAnswer,
    Credentials,
    Insecure,
    NoRuntime,
    NoIdentity,
}

impl Failure {
    /// Every reason a request is turned away for.
    pub(super) const ALL: [Failure; 8] = [
        Failure::Rejected,
        Failure::Transport,
        Failure::Timeout,
        Failure::InvalidAnswer,
        Failure::Credentials,
        Failure::Insecure,
        Failure::NoRuntime,
        Failure::NoIdentity,
    ];

    pub(super) fn of(error: &Error) -> Failure {
        match error {
            Error::Rejected { .. } => Failure::Rejected,
            #[cfg(feature = "ocient")]
            Error::DeviceGrant { ended, .. } if *ended == DeviceGrantEnd::TimedOut => {
                Failure::Timeout
            }
            #[cfg(feature = "ocient")]
            Error::DeviceGrant { .. } => Failure::Rejected,
            Error::Transport { .. } => Failure::Transport,
            Error::Timeout { .. } => Failure::Timeout,
            Error::InvalidResponse { .. } => Failure::InvalidAnswer,
            Error::MissingCredentials | Error::Provider { .. } => Failure::Credentials,
            Error::InsecureTransport { .. } => Failure::Insecure,
            Error::NoRuntime => Failure::NoRuntime,
            Error::NoIdentity => Failure::NoIdentity,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Failure::Rejected => "rejected",
            Failure::Transport => "transport",
            Failure::Timeout => "timeout",
            Failure::InvalidAnswer => "invalid_answer",
            Failure::Credentials => "credentials",
            Failure::Insecure => "insecure",
            Failure::NoRuntime => "no_runtime",
            Failure::NoIdentity => "no_identity",
        }
    }

    /// Whether a login or refresh can end so: one runs on the layer's own task, so never
    /// outside a runtime, and for an identity already told.
    pub(super) fn ends_exchanges(self) -> bool {
        !matches!(self, Failure::NoRuntime | Failure::NoIdentity)
    }
}

/// Describes every metric to the recorder, with its unit (a generation has none).
pub(super) fn describe() {
    let count = Unit::Count;
    describe_counter!(
        REQUESTS,
        count,
        "Logins and refreshes, by kind and outcome."
    );
    describe_histogram!(
        DURATION,
        Unit::Seconds,
        "How long each login or refresh took."
    );
    describe_gauge!(
        EXPIRY,
        Unit::Seconds,
        "Unix time at which the current token expires."
    );
    describe_gauge!(
        GENERATION,
        "The current token's generation, counting from 1."
    );
    describe_counter!(REVOCATIONS, count, "Tokens revoked by a 401 answer.");
    describe_histogram!(WAIT, Unit::Seconds, "How long requests waited for a token.");
    describe_counter!(
        TURNED_AWAY,
        count,
        "Requests answered with the layer's error unsent."
    );
    describe_counter!(
        FAILOVERS,
        count,
        "Switches of token requests to another SQL node."
    );
    describe_gauge!(
        IDENTITIES,
        count,
        "Identities a per-identity layer holds a token for."
    );
    describe_counter!(
        DROPPED,
        count,
        "Identities dropped for the cap or for idleness."
    );
}
