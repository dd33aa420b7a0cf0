//! One stream of what happens to the token, and its listeners: tracing, the user's
//! [`on_token`](crate::TokenRefreshLayer::on_token) hook, and (with the `metrics` feature)
//! the metrics.
//!
//! Each transition is reported once, with [`Record::emit`]; each listener takes what it
//! needs from it. Nothing here steers the layer, and nothing is emitted with the token
//! state's lock held: the hook may use the layer.

mod hook;
#[cfg(feature = "metrics")]
mod labels;
mod metrics;
mod trace;
mod transition;

use std::sync::Arc;

use tokio::time::Instant;

use crate::error::{Error, Exchange};
use crate::event::Hook;
use metrics::Metrics;
pub(crate) use transition::Transition;

/// The listeners of one token's transitions.
pub(crate) struct Record {
    hook: Option<Hook>,
    /// The layer's, whichever of its tokens this one is.
    metrics: Arc<Metrics>,
}

impl Record {
    /// The listeners of the one token of the layer named `layer`: tracing, `hook`, and the
    /// metrics.
    pub(crate) fn new(layer: &str, hook: Option<Hook>) -> Record {
        Record {
            hook,
            metrics: Arc::new(Metrics::new(layer, true)),
        }
    }

    /// The listeners of a layer named `layer` that keeps a token per identity: its metrics
    /// add up every token's, and show no one token's expiry or generation.
    pub(crate) fn per_identity(layer: &str) -> Record {
        Record {
            hook: None,
            metrics: Arc::new(Metrics::new(layer, false)),
        }
    }

    /// The listeners of one identity's token: `hook`, and the layer's metrics.
    pub(crate) fn for_identity(&self, hook: Option<Hook>) -> Record {
        let metrics = Arc::clone(&self.metrics);
        Record { hook, metrics }
    }

    /// The identities held changed to `held`, after dropping `dropped` of them.
    pub(crate) fn identities(&self, held: usize, dropped: usize) {
        self.metrics.identities(held, dropped);
    }

    /// Tells every listener. Never call it with the token state's lock held.
    pub(crate) fn emit(&self, transition: Transition<'_>) {
        trace::hear(&transition);
        self.metrics.hear(&transition);
        hook::hear(self.hook.as_ref(), &transition);
    }

    /// Times a login or refresh from now until it ends.
    pub(crate) fn exchange(&self, exchange: Exchange) -> ExchangeTimer<'_> {
        ExchangeTimer {
            record: self,
            running: Some((exchange, Instant::now())),
        }
    }

    /// Times the wait of a request without a usable token, called at `called`.
    pub(crate) fn wait(&self, called: Instant) -> WaitTimer<'_> {
        WaitTimer {
            rounds: 0,
            record: self,
            started: Some(called),
        }
    }
}

/// A login or refresh under way: reported when it ends, or, if it never does (its task was
/// aborted, or a panic went through it), as the transport failure its flight reports.
#[must_use]
pub(crate) struct ExchangeTimer<'a> {
    record: &'a Record,
    running: Option<(Exchange, Instant)>,
}

impl ExchangeTimer<'_> {
    /// The exchange ended with `outcome`.
    pub(crate) fn ended<T>(mut self, outcome: &Result<T, Error>) {
        if let Some((exchange, started)) = self.running.take() {
            let outcome = outcome.as_ref().map(|_| ());
            let took = started.elapsed();
            let exchanged = Transition::Exchanged {
                exchange,
                outcome,
                took,
            };
            self.record.emit(exchanged);
        }
    }
}

impl Drop for ExchangeTimer<'_> {
    fn drop(&mut self) {
        if let Some((exchange, started)) = self.running.take() {
            let error = Error::transport(exchange, "the token request ended early");
            let exchanged = Transition::Exchanged {
                exchange,
                outcome: Err(&error),
                took: started.elapsed(),
            };
            self.record.emit(exchanged);
        }
    }
}

/// A request waiting for a token: reported once it has one or is turned away, or when its
/// caller gives up and drops it; not at all if it never waited for an attempt.
pub(crate) struct WaitTimer<'a> {
    /// The attempts waited for so far.
    pub(crate) rounds: u8,
    record: &'a Record,
    /// Until the wait is reported.
    started: Option<Instant>,
}

impl WaitTimer<'_> {
    /// The wait is over: a token came, or the layer's error. Only the first call counts: a
    /// request whose token dies before it is sent waits again, uncounted (rare, and still
    /// one request).
    pub(crate) fn over(&mut self) {
        if let Some(called) = self.started.take() {
            if self.rounds > 0 {
                let took = called.elapsed();
                self.record.emit(Transition::Waited { took });
            }
        }
    }
}

impl Drop for WaitTimer<'_> {
    fn drop(&mut self) {
        self.over();
    }
}
