//! How the shared token state launches its flight and answers to it: what to fetch, and
//! what an outcome does to the token, its waiters and the backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::backoff::Failure;
use super::flight::{Fetch, Flight, FlightControl, Plan, Settled};
use super::token::Phase;
use super::TokenState;
use crate::error::{Error, Exchange};
use crate::event::TokenEvent;
use crate::grant::Grant;

impl TokenState {
    /// Launches a flight that `join` or `refresh_in_background` began, fetching with `fetch`.
    pub(crate) fn launch(&self, flight: Flight<TokenState>, fetch: Box<dyn Fetch>) {
        if self.refresh_when_idle {
            self.keep_fetcher(fetch.clone_box());
        }
        let task = flight.launch(fetch);
        self.lock().flight = Some(task);
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

    fn settle(&self, outcome: Result<Grant, Error>, sent_at: Instant) -> Option<Instant> {
        let mut cold = self.lock();
        let retry_at = match &outcome {
            Ok(grant) => {
                self.install(&mut cold, grant.clone(), sent_at);
                self.settled.send_replace(Settled::Installed);
                None
            }
            Err(error) => {
                let retry_at = self.record_failure(&mut cold, error.clone());
                self.settled.send_replace(Settled::Failed(error.clone()));
                retry_at
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
        if let Some(retry_after) = self.record_failure(&mut cold, error.clone()) {
            // The token is still valid, but this flight will not retry: make the next one
            // wait out the backoff too, or a panicking inner service means a refresh storm.
            cold.failure = Some(Failure {
                error: error.clone(),
                retry_after,
            });
        }
        self.refreshing.store(false, Ordering::Release);
        self.settled.send_replace(Settled::Failed(error.clone()));
        let failures = cold.consecutive_failures;
        let retry_in = retry_in(cold.failure.as_ref().map(|f| f.retry_after));
        drop(cold);
        self.report_failure(&error, failures, retry_in);
    }

    fn revocations(&self) -> Arc<Notify> {
        Arc::clone(&self.wake_flight)
    }

    fn is_revoked(&self) -> bool {
        let current = self.hot.current.load();
        current
            .as_deref()
            .is_some_and(|t| t.phase() == Phase::Revoked)
    }
}

/// How long until `at`, for logs and the hook.
fn retry_in(at: Option<Instant>) -> Duration {
    at.map_or(Duration::ZERO, |at| {
        at.saturating_duration_since(Instant::now())
    })
}
