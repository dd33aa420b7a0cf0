//! What the layer records through the [`metrics`](https://docs.rs/metrics) facade, with the
//! `metrics` feature: the token's life, never a request that went out with a fresh token.
//!
//! Every handle is registered once, when the layer makes its first service, with the
//! recorder in force then (a local one included); recording is then a handle's atomic
//! update, on the cold path only. Without the feature this is an empty type whose methods
//! do nothing, and the compiler removes their calls.

use std::time::Duration;
#[cfg(feature = "metrics")]
use std::time::SystemTime;

use tokio::time::Instant;

use crate::error::{Error, Exchange};

/// The layer's metrics, labelled with its name.
pub(crate) struct Metrics {
    #[cfg(feature = "metrics")]
    handles: Handles,
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
impl Metrics {
    /// Registers every metric of the layer named `layer`.
    pub(crate) fn new(layer: &str) -> Metrics {
        Metrics {
            #[cfg(feature = "metrics")]
            handles: Handles::register(layer),
        }
    }

    /// One login or refresh ended with `outcome` after `took`.
    pub(crate) fn exchanged<T>(
        &self,
        exchange: Exchange,
        outcome: &Result<T, Error>,
        took: Duration,
    ) {
        #[cfg(feature = "metrics")]
        {
            let kind = Handles::kind(exchange);
            self.handles.requests[kind][outcome_index(outcome)].increment(1);
            self.handles.durations[kind].record(took.as_secs_f64());
        }
    }

    /// The token of `generation`, which expires at `expires_at`, is now the one sent.
    pub(crate) fn installed(&self, generation: u64, expires_at: Instant) {
        #[cfg(feature = "metrics")]
        {
            self.handles.generation.set(generation as f64);
            self.handles.expiry.set(unix_seconds(expires_at));
        }
    }

    /// A 401 revoked the current token.
    pub(crate) fn revoked(&self) {
        #[cfg(feature = "metrics")]
        self.handles.revocations.increment(1);
    }

    /// A request waited `waited` for a token (and got one, or the layer's error).
    pub(crate) fn waited(&self, waited: Duration) {
        #[cfg(feature = "metrics")]
        self.handles.wait.record(waited.as_secs_f64());
    }

    /// A request was answered with `error` without being sent.
    pub(crate) fn turned_away(&self, error: &Error) {
        #[cfg(feature = "metrics")]
        self.handles.turned_away[Failure::of(error) as usize].increment(1);
    }

    /// Token requests moved to another node.
    pub(crate) fn failed_over(&self) {
        #[cfg(feature = "metrics")]
        self.handles.failovers.increment(1);
    }
}

/// Why a login or refresh failed, or why a request was turned away: the values of the
/// `outcome` (besides `ok`) and `reason` labels. A small fixed set, so that no label ever
/// holds what the server or the user wrote, and every error has its series.
#[cfg(feature = "metrics")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Rejected,
    Transport,
    Timeout,
    InvalidAnswer,
    Credentials,
    Insecure,
    NoRuntime,
}

#[cfg(feature = "metrics")]
impl Failure {
    /// Every failure, in the order of its discriminant (each series' index).
    const ALL: [Failure; 7] = [
        Failure::Rejected,
        Failure::Transport,
        Failure::Timeout,
        Failure::InvalidAnswer,
        Failure::Credentials,
        Failure::Insecure,
        Failure::NoRuntime,
    ];

    fn of(error: &Error) -> Failure {
        use crate::error::DeviceGrantEnd;
        match error {
            Error::Rejected { .. } => Failure::Rejected,
            Error::DeviceGrant { ended, .. } if *ended == DeviceGrantEnd::TimedOut => {
                Failure::Timeout
            }
            Error::DeviceGrant { .. } => Failure::Rejected,
            Error::Transport { .. } => Failure::Transport,
            Error::Timeout { .. } => Failure::Timeout,
            Error::InvalidResponse { .. } => Failure::InvalidAnswer,
            Error::MissingCredentials | Error::Provider { .. } => Failure::Credentials,
            Error::InsecureTransport { .. } => Failure::Insecure,
            Error::NoRuntime => Failure::NoRuntime,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Failure::Rejected => "rejected",
            Failure::Transport => "transport",
            Failure::Timeout => "timeout",
            Failure::InvalidAnswer => "invalid_answer",
            Failure::Credentials => "credentials",
            Failure::Insecure => "insecure",
            Failure::NoRuntime => "no_runtime",
        }
    }
}

/// How many values the `outcome` label takes: `ok`, then every failure.
#[cfg(feature = "metrics")]
const OUTCOMES: usize = 1 + Failure::ALL.len();

/// The `outcome` of index `index`: `ok`, then the failures in order.
#[cfg(feature = "metrics")]
fn outcome_label(index: usize) -> &'static str {
    match index.checked_sub(1) {
        None => "ok",
        Some(failure) => Failure::ALL[failure].label(),
    }
}

/// The index of the `outcome` of a login or refresh that ended in `outcome`.
#[cfg(feature = "metrics")]
fn outcome_index<T>(outcome: &Result<T, Error>) -> usize {
    outcome
        .as_ref()
        .map_or_else(|error| 1 + Failure::of(error) as usize, |_| 0)
}

/// `at` as seconds since the Unix epoch, by the system clock now.
#[cfg(feature = "metrics")]
fn unix_seconds(at: Instant) -> f64 {
    let now = Instant::now();
    let system = if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    };
    system
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

#[cfg(feature = "metrics")]
struct Handles {
    /// By kind (login, refresh), then outcome.
    requests: [[metrics::Counter; OUTCOMES]; 2],
    durations: [metrics::Histogram; 2],
    expiry: metrics::Gauge,
    generation: metrics::Gauge,
    revocations: metrics::Counter,
    wait: metrics::Histogram,
    /// By reason, a failure's index.
    turned_away: [metrics::Counter; Failure::ALL.len()],
    failovers: metrics::Counter,
}

#[cfg(feature = "metrics")]
impl Handles {
    const KINDS: [(Exchange, &'static str); 2] =
        [(Exchange::Login, "login"), (Exchange::Refresh, "refresh")];

    fn kind(exchange: Exchange) -> usize {
        usize::from(exchange == Exchange::Refresh)
    }

    fn register(layer: &str) -> Handles {
        use metrics::{counter, gauge, histogram};
        describe();
        let layer = layer.to_owned();
        let requests = Self::KINDS.map(|(_, kind)| {
            std::array::from_fn(|outcome| {
                counter!("token_refresh_requests_total",
                    "layer" => layer.clone(), "kind" => kind, "outcome" => outcome_label(outcome))
            })
        });
        let durations = Self::KINDS.map(|(_, kind)| {
            histogram!("token_refresh_request_duration_seconds",
                "layer" => layer.clone(), "kind" => kind)
        });
        let turned_away = Failure::ALL.map(|reason| {
            counter!("token_requests_turned_away_total",
                "layer" => layer.clone(), "reason" => reason.label())
        });
        Handles {
            requests,
            durations,
            expiry: gauge!("token_expiry_timestamp_seconds", "layer" => layer.clone()),
            generation: gauge!("token_generation", "layer" => layer.clone()),
            revocations: counter!("token_revocations_total", "layer" => layer.clone()),
            wait: histogram!("token_wait_duration_seconds", "layer" => layer.clone()),
            turned_away,
            failovers: counter!("token_failovers_total", "layer" => layer),
        }
    }
}

/// Describes every metric to the recorder, with its unit.
#[cfg(feature = "metrics")]
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "token_refresh_requests_total",
        Unit::Count,
        "Logins and refreshes attempted, by kind and outcome."
    );
    describe_histogram!(
        "token_refresh_request_duration_seconds",
        Unit::Seconds,
        "How long each login or refresh took."
    );
    describe_gauge!(
        "token_expiry_timestamp_seconds",
        Unit::Seconds,
        "Unix time at which the current token expires."
    );
    describe_gauge!(
        "token_generation",
        Unit::Count,
        "The current token's generation, counting from 1."
    );
    describe_counter!(
        "token_revocations_total",
        Unit::Count,
        "Tokens revoked because a request carrying them was answered 401."
    );
    describe_histogram!(
        "token_wait_duration_seconds",
        Unit::Seconds,
        "How long requests without a usable token waited for one."
    );
    describe_counter!(
        "token_requests_turned_away_total",
        Unit::Count,
        "Requests answered with the layer's error without being sent, by reason."
    );
    describe_counter!(
        "token_failovers_total",
        Unit::Count,
        "Switches of token requests to another SQL node."
    );
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use std::time::Duration;

    use http::StatusCode;

    use super::*;
    use crate::error::{DeviceGrantEnd, ProviderError};

    #[test]
    fn every_error_has_its_label_as_an_outcome_and_as_a_reason() {
        let login = Exchange::Login;
        let labelled = [
            (
                Error::rejected(login, StatusCode::UNAUTHORIZED, None, ""),
                "rejected",
            ),
            (Error::device_grant(DeviceGrantEnd::Denied, ""), "rejected"),
            (Error::device_grant(DeviceGrantEnd::TimedOut, ""), "timeout"),
            (Error::transport(login, "refused"), "transport"),
            (
                Error::Timeout {
                    exchange: login,
                    after: Duration::from_secs(1),
                },
                "timeout",
            ),
            (Error::invalid_response(login, "not JSON"), "invalid_answer"),
            (Error::MissingCredentials, "credentials"),
            (
                Error::Provider {
                    source: ProviderError::new("vault sealed".into()),
                },
                "credentials",
            ),
            (
                Error::InsecureTransport {
                    origin: "http://sql-node".into(),
                },
                "insecure",
            ),
            (Error::NoRuntime, "no_runtime"),
        ];
        for (error, label) in labelled {
            let failure = Failure::of(&error);
            assert_eq!(failure.label(), label, "{error}");
            assert_eq!(
                Failure::ALL[failure as usize],
                failure,
                "its reason's index"
            );
            let outcome = outcome_index::<()>(&Err(error));
            assert_eq!(outcome_label(outcome), label, "its outcome's index");
        }
        assert_eq!(outcome_label(outcome_index(&Ok(()))), "ok");
    }

    #[test]
    fn an_instant_reads_as_unix_seconds_by_the_system_clock() {
        let unix_now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let now = Instant::now();
        let ahead = unix_seconds(now + Duration::from_secs(60)) - unix_now;
        let behind = unix_seconds(now - Duration::from_secs(60)) - unix_now;
        assert!((ahead - 60.0).abs() < 1.0, "{ahead}");
        assert!((behind + 60.0).abs() < 1.0, "{behind}");
    }
}
