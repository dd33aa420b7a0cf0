//! The flight: one attempt at a token at a time, its retries while the token is still good,
//! and how its waiters learn the outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use super::backoff::Failure;
use super::TokenState;
use crate::event::TokenEvent;
use crate::{Error, Exchange, Grant};

/// A boxed future: only on the cold path.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Performs an attempt: the service side implements it by sending requests through the
/// wrapped service, so the state machine never sees HTTP.
pub(crate) trait Fetch: Send + 'static {
    fn fetch(&self, plan: Plan) -> BoxFuture<Result<Grant, Error>>;
}

/// What the next attempt should do, decided from the current token.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The token to refresh, if there is one.
    pub(crate) current: Option<Grant>,
    /// The current token is expired or was refused: a refresh would only be refused too.
    pub(crate) login_first: bool,
}

/// What the waiters of an attempt learn when it ends.
#[derive(Debug, Clone)]
pub(crate) enum Settled {
    Pending,
    Installed,
    Failed(Error),
}

/// The end of the attempt a caller joined.
#[derive(Debug)]
pub(crate) struct Settlement(pub(super) watch::Receiver<Settled>);

impl Settlement {
    /// Waits for the attempt to end; `Ok` means a new token may be there.
    pub(crate) async fn wait(mut self) -> Result<(), Error> {
        // The sender lives in the token state, which the waiting request holds: `changed`
        // cannot fail.
        let _ = self.0.changed().await;
        let outcome = self.0.borrow_and_update().clone();
        match outcome {
            Settled::Failed(error) => Err(error),
            Settled::Pending | Settled::Installed => Ok(()),
        }
    }
}

/// Owns one flight: one attempt, and its retries while the token is still good.
///
/// If the flight ends without landing (a panic in the wrapped service, a runtime shutting
/// down), its `Drop` releases the waiters with an error, so nobody waits on a flight that
/// is gone.
#[derive(Debug)]
pub(crate) struct Flight {
    pub(super) state: Arc<TokenState>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) landed: bool,
}

impl Flight {
    pub(crate) fn launch(self, fetch: Box<dyn Fetch>) {
        let runtime = self.runtime.clone();
        let span = tracing::debug_span!("token_flight");
        runtime.spawn(tracing::Instrument::instrument(self.fly(fetch), span));
    }

    async fn fly(mut self, fetch: Box<dyn Fetch>) {
        loop {
            let plan = self.state.plan();
            let sent_at = Instant::now();
            let outcome = fetch.fetch(plan).await;
            let Some(retry_at) = self.settle(outcome, sent_at) else {
                return;
            };
            self.wait_out_backoff(retry_at).await;
        }
    }

    /// Sleeps until `retry_at`, or until the token is revoked: then only a new token helps,
    /// and callers are waiting for it.
    async fn wait_out_backoff(&self, retry_at: Instant) {
        let sleep = sleep_until(retry_at);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return,
                _ = self.state.wake_flight.notified() => {
                    // A wake-up can be stale: `Notify` keeps one for a flight that was not
                    // yet waiting, possibly from a revocation long since handled.
                    if self.state.current_is_revoked() {
                        return;
                    }
                }
            }
        }
    }

    /// Publishes an attempt's outcome; returns when to try again if the flight goes on.
    fn settle(&mut self, outcome: Result<Grant, Error>, sent_at: Instant) -> Option<Instant> {
        let state = &self.state;
        let mut cold = state.lock();
        let retry_at = match &outcome {
            Ok(grant) => {
                state.install(&mut cold, grant.clone(), sent_at);
                state.settled.send_replace(Settled::Installed);
                None
            }
            Err(error) => {
                let retry_at = state.record_failure(&mut cold, error.clone());
                state.settled.send_replace(Settled::Failed(error.clone()));
                retry_at
            }
        };
        if retry_at.is_none() {
            state.refreshing.store(false, Ordering::Release);
            self.landed = true;
        }
        let (generation, failures) = (cold.generation, cold.consecutive_failures);
        let retry_in = retry_in(retry_at.or(cold.failure.as_ref().map(|f| f.retry_after)));
        // Logs and the hook only once the lock is released: a subscriber or a hook may well
        // send requests through this very layer.
        drop(cold);
        match &outcome {
            Ok(grant) => {
                let lifetime_secs = grant.lifetime().as_secs_f64();
                tracing::debug!(generation, lifetime_secs, "new access token");
                state.report(TokenEvent::Obtained { generation, grant });
            }
            Err(error) => state.report_failure(error, failures, retry_in),
        }
        retry_at
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if self.landed {
            return;
        }
        let error = Error::transport(Exchange::Refresh, "the token refresh task ended early");
        let state = &self.state;
        let mut cold = state.lock();
        if let Some(retry_after) = state.record_failure(&mut cold, error.clone()) {
            // The token is still valid, but this flight will not retry: make the next one
            // wait out the backoff too, or a panicking inner service means a refresh storm.
            cold.failure = Some(Failure {
                error: error.clone(),
                retry_after,
            });
        }
        state.refreshing.store(false, Ordering::Release);
        state.settled.send_replace(Settled::Failed(error.clone()));
        let failures = cold.consecutive_failures;
        let retry_in = retry_in(cold.failure.as_ref().map(|f| f.retry_after));
        drop(cold);
        state.report_failure(&error, failures, retry_in);
    }
}

/// How long until `at`, for logs and the hook.
fn retry_in(at: Option<Instant>) -> Duration {
    at.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(Instant::now())
    })
}
