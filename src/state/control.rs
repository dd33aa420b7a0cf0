//! How the shared token state launches its flight and answers to it: what to fetch, what an
//! outcome does to the token, its waiters and the backoff, and when to try again.

use std::mem;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::backoff::Failure;
use super::flight::{Cause, Fetch, Flight, FlightControl, Plan, Setback, Settled, Settlement};
use super::token::Phase;
use super::{Cold, TokenState};
use crate::error::{Error, Exchange};
use crate::event::TokenEvent;
use crate::grant::Grant;

impl TokenState {
    /// Launches a flight that `join`, `refresh_now` or `refresh_in_background` began,
    /// fetching with `fetch`.
    pub(crate) fn launch(&self, flight: Flight<TokenState>, fetch: Box<dyn Fetch>) {
        if self.refresh_when_idle {
            self.keep_fetcher(fetch.clone_box());
        }
        let task = flight.launch(fetch);
        self.lock().flight = Some(task);
    }

    /// Asks for a new token now, whatever the phase and however long the backoff: joins the
    /// attempt under way (hurrying a flight that is backing off), or begins one, which the
    /// caller must launch. Only the single flight is respected.
    pub(crate) fn refresh_now(
        self: &Arc<Self>,
    ) -> Result<(Settlement, Option<Flight<TokenState>>), Error> {
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut cold = self.lock();
        self.install_initial(&mut cold);
        let settled = Settlement(self.settled.subscribe());
        if !self.refreshing.load(Ordering::Acquire) {
            let flight = self.begin_flight(&mut cold)?;
            return Ok((settled, Some(flight)));
        }
        // Callers follow the hurried attempt rather than the last failure.
        cold.failure = None;
        cold.hurry = true;
        drop(cold);
        self.wake_flight.notify_one();
        Ok((settled, None))
    }

    /// Records a failed attempt; returns when to try again if the flight should go on.
    ///
    /// While the token is still good the flight retries on the full backoff, never later
    /// than the token's dead point. Once it is not (the layer is down), the backoff after an
    /// outage stays short, and with `refresh_when_idle` the flight keeps trying on its own
    /// through an outage, until a token is usable again. A server's `Retry-After` sets the
    /// earliest next attempt either way, capped at the largest backoff.
    pub(super) fn record_failure(&self, cold: &mut Cold, setback: Setback) -> Option<Instant> {
        let Setback {
            error,
            cause,
            server_wait,
        } = setback;
        cold.consecutive_failures = cold.consecutive_failures.saturating_add(1);
        cold.last_error = Some(error.clone());
        let now = Instant::now();
        let current = self.hot.current.load();
        // The clock is asked too: a late timer must not make the flight retry at once.
        let alive = current
            .as_deref()
            .filter(|token| token.phase() < Phase::Dead && now < token.dead_at);
        let down_after_outage = alive.is_none() && cause == Cause::Outage;
        let backoff = self.timing.backoff(
            cold.consecutive_failures,
            self.jitter.next(),
            down_after_outage,
        );
        // At most 1.25 x `MAX_LIFETIME` (the backoff is capped): no `Instant` overflows.
        let mut retry_after = now + backoff;
        if let Some(token) = alive {
            retry_after = retry_after.min(token.dead_at);
        }
        let asked = server_wait.map(|wait| now + wait.min(self.timing.max_backoff));
        if let Some(asked) = asked {
            retry_after = retry_after.max(asked);
        }
        if alive.is_none() || asked.is_some() {
            // Should the token die first, callers take this failure until then.
            cold.failure = Some(Failure { error, retry_after });
        }
        // While down, anything but a refusal is worth trying again unasked: a wrong password
        // repeated on its own could lock the account, and waits for a request.
        let keep_trying = alive.is_some() || (self.refresh_when_idle && cause != Cause::Rejection);
        keep_trying.then_some(retry_after)
    }
}

impl FlightControl for TokenState {
    fn plan(&self) -> Plan {
        let current = self.hot.current.load_full();
        let now = Instant::now();
        Plan {
            login_first: match current.as_deref() {
                None => true,
                Some(t) => t.phase() == Phase::Revoked || now >= t.expires_at,
            },
            current: current.map(|t| t.grant.clone()),
        }
    }

    fn settle(&self, outcome: Result<Grant, Setback>, sent_at: Instant) -> Option<Instant> {
        let mut cold = self.lock();
        // This attempt answers whoever asked for a new token now.
        cold.hurry = false;
        let (retry_at, outcome) = match outcome {
            Ok(grant) => {
                self.install(&mut cold, grant.clone(), sent_at);
                self.settled.send_replace(Settled::Installed);
                (None, Ok(grant))
            }
            Err(setback) => {
                let error = setback.error.clone();
                let retry_at = self.record_failure(&mut cold, setback);
                self.settled.send_replace(Settled::Failed(error.clone()));
                (retry_at, Err(error))
            }
        };
        if retry_at.is_none() {
            self.refreshing.store(false, Ordering::Release);
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
                self.report(TokenEvent::Obtained { generation, grant });
            }
            Err(error) => self.report_failure(error, failures, retry_in),
        }
        retry_at
    }

    fn abandon(&self) {
        let error = Error::transport(Exchange::Refresh, "the token refresh task ended early");
        let mut cold = self.lock();
        let setback = Setback::new(error.clone(), Cause::Outage);
        if let Some(retry_after) = self.record_failure(&mut cold, setback) {
            // This flight will not retry: make the next one wait out the backoff too, or a
            // panicking inner service means a refresh storm.
            cold.failure = Some(Failure {
                error: error.clone(),
                retry_after,
            });
        }
        cold.hurry = false;
        self.refreshing.store(false, Ordering::Release);
        self.settled.send_replace(Settled::Failed(error.clone()));
        if self.refresh_when_idle {
            // Nobody may ask (an idle service, a pod out of rotation): start again once the
            // backoff ends, as a request would.
            let retry_after = cold.failure.as_ref().map(|f| f.retry_after);
            cold.flight = retry_after.and_then(|at| self.idle_retry_at(at));
        }
        let failures = cold.consecutive_failures;
        let retry_in = retry_in(cold.failure.as_ref().map(|f| f.retry_after));
        drop(cold);
        self.report_failure(&error, failures, retry_in);
    }

    fn wake_ups(&self) -> Arc<Notify> {
        Arc::clone(&self.wake_flight)
    }

    fn retry_now(&self) -> bool {
        let current = self.hot.current.load();
        let revoked = current
            .as_deref()
            .is_some_and(|t| t.phase() == Phase::Revoked);
        let mut cold = self.lock();
        let now = mem::take(&mut cold.hurry) || revoked;
        if now {
            // Callers follow the attempt about to start, not the failure it supersedes.
            cold.failure = None;
        }
        now
    }
}

/// How long until `at`, for logs and the hook.
fn retry_in(at: Option<Instant>) -> Duration {
    at.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(Instant::now())
    })
}
