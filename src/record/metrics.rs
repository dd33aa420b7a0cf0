//! The metrics listener: what the layer records through the
//! [`metrics`](https://docs.rs/metrics) facade, with the `metrics` feature: the token's life,
//! never a request that went out with a fresh token.
//!
//! Each event looks its series up in the recorder in force when it happens (the global one,
//! or the thread's local default), so a recorder installed after the stack was built gets
//! everything from then on. The layer's first service also registers the counters and
//! histograms at zero, so that dashboards and alerts see them before the first failure.
//! Everything here is on the cold path. Without the feature the listener is empty and hears
//! nothing.

#[cfg(feature = "metrics")]
use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(feature = "metrics")]
use std::time::{Duration, SystemTime};

#[cfg(feature = "metrics")]
use metrics::{counter, gauge, histogram, SharedString};
#[cfg(feature = "metrics")]
use tokio::time::Instant;

#[cfg(feature = "metrics")]
use super::labels::{self, Failure};
use super::transition::Transition;
#[cfg(feature = "metrics")]
use crate::error::{Error, Exchange};

/// The metrics listener: the layer's metrics, labelled with its name.
pub(crate) struct Metrics {
    /// The `layer` label, cheap to clone for each event.
    #[cfg(feature = "metrics")]
    layer: SharedString,
    /// The generation whose expiry the gauges show: they never go back to an older token,
    /// whatever order the events come in.
    #[cfg(feature = "metrics")]
    shown: Mutex<u64>,
    /// The layer keeps one token, whose expiry and generation the gauges show; a layer
    /// that keeps one per identity has no such one token.
    #[cfg(feature = "metrics")]
    one_token: bool,
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
impl Metrics {
    /// The metrics of the layer named `layer`, its counters and histograms registered;
    /// with `one_token`, the gauges of its token too.
    pub(crate) fn new(layer: &str, one_token: bool) -> Metrics {
        #[cfg(feature = "metrics")]
        return Metrics::registered(SharedString::from_shared(Arc::from(layer)), one_token);
        #[cfg(not(feature = "metrics"))]
        Metrics {}
    }

    /// A layer that keeps a token per identity holds `held` of them, after dropping
    /// `dropped` (for its cap or their idleness).
    pub(crate) fn identities(&self, held: usize, dropped: usize) {
        #[cfg(feature = "metrics")]
        {
            gauge!(labels::IDENTITIES, "layer" => self.layer.clone()).set(held as f64);
            counter!(labels::DROPPED, "layer" => self.layer.clone()).increment(dropped as u64);
        }
    }

    /// Records what `transition` moves.
    pub(crate) fn hear(&self, transition: &Transition<'_>) {
        #[cfg(feature = "metrics")]
        match *transition {
            Transition::Installed {
                generation,
                expires_at,
                ..
            } => self.installed(generation, expires_at),
            Transition::Revoked { generation } => self.revoked(generation),
            Transition::Exchanged {
                exchange,
                outcome,
                took,
            } => self.exchanged(exchange, outcome, took),
            Transition::TurnedAway { error } => self.turned_away(error),
            Transition::Waited { took } => {
                histogram!(labels::WAIT, "layer" => self.layer.clone()).record(took.as_secs_f64());
            }
            Transition::FailedOver { .. } => {
                counter!(labels::FAILOVERS, "layer" => self.layer.clone()).increment(1);
            }
            Transition::Failed { .. } => {}
        }
    }
}

#[cfg(feature = "metrics")]
impl Metrics {
    /// Describes every metric, and registers each counter and histogram of the layer named
    /// `layer` at zero. The gauges appear with the first token: before it there is nothing
    /// to expire.
    fn registered(layer: SharedString, one_token: bool) -> Metrics {
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
        if !one_token {
            counter!(labels::DROPPED, "layer" => layer.clone()).increment(0);
        }
        Metrics {
            layer,
            shown: Mutex::new(0),
            one_token,
        }
    }

    fn shown(&self) -> MutexGuard<'_, u64> {
        self.shown
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The token of `generation`, which expires at `expires_at`, is now the one sent.
    fn installed(&self, generation: u64, expires_at: Instant) {
        if !self.one_token {
            return;
        }
        let mut shown = self.shown();
        if generation < *shown {
            return;
        }
        *shown = generation;
        gauge!(labels::GENERATION, "layer" => self.layer.clone()).set(generation as f64);
        let expiry = unix_seconds(expires_at);
        gauge!(labels::EXPIRY, "layer" => self.layer.clone()).set(expiry);
    }

    /// A 401 revoked the token of `generation`: unusable from now, which the expiry says
    /// until another replaces it (never over a newer token's).
    fn revoked(&self, generation: u64) {
        counter!(labels::REVOCATIONS, "layer" => self.layer.clone()).increment(1);
        let shown = self.shown();
        if self.one_token && *shown == generation {
            let now = unix_seconds(Instant::now());
            gauge!(labels::EXPIRY, "layer" => self.layer.clone()).set(now);
        }
    }

    /// A login or refresh ended with `outcome` after `took`.
    fn exchanged(&self, exchange: Exchange, outcome: Result<(), &Error>, took: Duration) {
        let outcome = labels::outcome(outcome);
        let (layer, kind) = (self.layer.clone(), labels::kind(exchange));
        counter!(labels::REQUESTS, "layer" => layer.clone(), "kind" => kind, "outcome" => outcome)
            .increment(1);
        histogram!(labels::DURATION, "layer" => layer, "kind" => kind).record(took.as_secs_f64());
    }

    /// A request was answered with `error` without being sent.
    fn turned_away(&self, error: &Error) {
        let reason = Failure::of(error).label();
        let layer = self.layer.clone();
        counter!(labels::TURNED_AWAY, "layer" => layer, "reason" => reason).increment(1);
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
#[path = "tests.rs"]
mod tests;
