//! What the layer records through the [`metrics`](https://docs.rs/metrics) facade, with the
//! `metrics` feature: the token's life, never a request that went out with a fresh token.
//!
//! Each event looks its series up in the recorder in force when it happens (the global one,
//! or the thread's local default), so a recorder installed after the stack was built gets
//! everything from then on. The layer's first service also registers the counters and
//! histograms at zero, so that dashboards and alerts see them before the first failure.
//! Everything here is on the cold path. Without the feature the types are empty, their
//! methods do nothing, and no clock is read for them.

#[cfg(feature = "metrics")]
mod labels;

use std::marker::PhantomData;
#[cfg(feature = "metrics")]
use std::sync::Arc;
#[cfg(feature = "metrics")]
use std::time::{Duration, SystemTime};

#[cfg(feature = "metrics")]
use metrics::{counter, gauge, histogram, SharedString};
use tokio::time::Instant;

use crate::error::{Error, Exchange};
#[cfg(feature = "metrics")]
use labels::Failure;

/// The layer's metrics, labelled with its name.
pub(crate) struct Metrics {
    /// The `layer` label, cheap to clone for each event.
    #[cfg(feature = "metrics")]
    layer: SharedString,
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
impl Metrics {
    /// The metrics of the layer named `layer`, its counters and histograms registered.
    pub(crate) fn new(layer: &str) -> Metrics {
        #[cfg(feature = "metrics")]
        return Metrics::registered(SharedString::from_shared(Arc::from(layer)));
        #[cfg(not(feature = "metrics"))]
        Metrics {}
    }

    /// Times a login or refresh from now until it ends.
    pub(crate) fn exchange(&self, exchange: Exchange) -> ExchangeTimer<'_> {
        ExchangeTimer {
            #[cfg(feature = "metrics")]
            running: Some((self, exchange, Instant::now())),
            _metrics: PhantomData,
        }
    }

    /// The token of `generation`, which expires at `expires_at`, is now the one sent.
    pub(crate) fn installed(&self, generation: u64, expires_at: Instant) {
        #[cfg(feature = "metrics")]
        {
            gauge!(labels::GENERATION, "layer" => self.layer.clone()).set(generation as f64);
            let expiry = unix_seconds(expires_at);
            gauge!(labels::EXPIRY, "layer" => self.layer.clone()).set(expiry);
        }
    }

    /// A 401 revoked the current token.
    pub(crate) fn revoked(&self) {
        #[cfg(feature = "metrics")]
        counter!(labels::REVOCATIONS, "layer" => self.layer.clone()).increment(1);
    }

    /// Times the wait of a request without a usable token, `called` then.
    pub(crate) fn wait(&self, called: Called) -> WaitTimer<'_> {
        WaitTimer {
            rounds: 0,
            #[cfg(feature = "metrics")]
            started: Some((self, called.0)),
            _metrics: PhantomData,
        }
    }

    /// A request was answered with `error` without being sent.
    pub(crate) fn turned_away(&self, error: &Error) {
        #[cfg(feature = "metrics")]
        {
            let reason = Failure::of(error).label();
            let layer = self.layer.clone();
            counter!(labels::TURNED_AWAY, "layer" => layer, "reason" => reason).increment(1);
        }
    }

    /// Token requests moved to another node.
    pub(crate) fn failed_over(&self) {
        #[cfg(feature = "metrics")]
        counter!(labels::FAILOVERS, "layer" => self.layer.clone()).increment(1);
    }
}

#[cfg(feature = "metrics")]
impl Metrics {
    /// Describes every metric, and registers each counter and histogram of the layer named
    /// `layer` at zero. The gauges appear with the first token: before it there is nothing
    /// to expire.
    fn registered(layer: SharedString) -> Metrics {
        labels::describe();
        // A counter increased by nothing, a histogram registered: each series exists, at 0.
        for exchange in [Exchange::Login, Exchange::Refresh] {
            let kind = labels::kind(exchange);
            let outcomes = Failure::ALL.iter().filter(|f| f.ends_exchanges());
            for outcome in ["ok"].into_iter().chain(outcomes.map(|f| f.label())) {
                counter!(labels::REQUESTS,
                    "layer" => layer.clone(), "kind" => kind, "outcome" => outcome)
                .increment(0);
            }
            let _ = histogram!(labels::DURATION, "layer" => layer.clone(), "kind" => kind);
        }
        for reason in Failure::ALL.map(Failure::label) {
            counter!(labels::TURNED_AWAY, "layer" => layer.clone(), "reason" => reason)
                .increment(0);
        }
        counter!(labels::REVOCATIONS, "layer" => layer.clone()).increment(0);
        counter!(labels::FAILOVERS, "layer" => layer.clone()).increment(0);
        let _ = histogram!(labels::WAIT, "layer" => layer.clone());
        Metrics { layer }
    }

    /// The current token is no longer usable from now (revoked), which the expiry says
    /// until another replaces it.
    pub(crate) fn unusable_now(&self) {
        let now = unix_seconds(Instant::now());
        gauge!(labels::EXPIRY, "layer" => self.layer.clone()).set(now);
    }

    /// A login or refresh ended with `outcome` after `took`.
    fn exchanged(&self, exchange: Exchange, outcome: &'static str, took: Duration) {
        let (layer, kind) = (self.layer.clone(), labels::kind(exchange));
        counter!(labels::REQUESTS, "layer" => layer.clone(), "kind" => kind, "outcome" => outcome)
            .increment(1);
        histogram!(labels::DURATION, "layer" => layer, "kind" => kind).record(took.as_secs_f64());
    }
}

/// A login or refresh under way: recorded when it ends, or, if it never does (its task was
/// aborted, or a panic went through it), as the transport failure its flight reports.
#[must_use]
pub(crate) struct ExchangeTimer<'a> {
    #[cfg(feature = "metrics")]
    running: Option<(&'a Metrics, Exchange, Instant)>,
    _metrics: PhantomData<&'a Metrics>,
}

impl ExchangeTimer<'_> {
    /// The exchange ended with `outcome`.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, unused_mut))]
    pub(crate) fn ended<T>(mut self, outcome: &Result<T, Error>) {
        #[cfg(feature = "metrics")]
        if let Some((metrics, exchange, started)) = self.running.take() {
            metrics.exchanged(exchange, labels::outcome(outcome), started.elapsed());
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for ExchangeTimer<'_> {
    fn drop(&mut self) {
        if let Some((metrics, exchange, started)) = self.running.take() {
            let outcome = Failure::Transport.label();
            metrics.exchanged(exchange, outcome, started.elapsed());
        }
    }
}

/// When a request without a usable token was called: read only with the feature.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Called(#[cfg(feature = "metrics")] Instant);

impl Called {
    pub(crate) fn now() -> Called {
        Called(
            #[cfg(feature = "metrics")]
            Instant::now(),
        )
    }
}

/// A request waiting for a token: records how long once it has one or is turned away, or
/// when its caller gives up and drops it; nothing if it never waited for an attempt.
pub(crate) struct WaitTimer<'a> {
    /// The attempts waited for so far.
    pub(crate) rounds: u8,
    /// Until the wait is recorded.
    #[cfg(feature = "metrics")]
    started: Option<(&'a Metrics, Instant)>,
    _metrics: PhantomData<&'a Metrics>,
}

impl WaitTimer<'_> {
    /// The wait is over: a token came, or the layer's error. Only the first call counts: a
    /// request whose token dies before it is sent waits again, uncounted (rare, and still
    /// one request).
    pub(crate) fn over(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some((metrics, called)) = self.started.take() {
            if self.rounds > 0 {
                let waited = called.elapsed().as_secs_f64();
                histogram!(labels::WAIT, "layer" => metrics.layer.clone()).record(waited);
            }
        }
    }
}

#[cfg(feature = "metrics")]
impl Drop for WaitTimer<'_> {
    fn drop(&mut self) {
        self.over();
    }
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

#[cfg(all(test, feature = "metrics"))]
mod tests;
