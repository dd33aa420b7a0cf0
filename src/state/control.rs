//! What a flight reports to the token state it flies for: its start, its plan, its outcome,
//! its backoff, its death. Each report is an event for the machine.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::flight::{Fetch, FlightControl, Plan};
use super::machine::{self, Event, Next};
use super::settlement::{told, Settled};
use super::{Setback, TokenState};
use crate::grant::Grant;

impl FlightControl for TokenState {
    fn launching(&self, fetch: &dyn Fetch) {
        if self.refresh_when_idle {
            self.keep_fetcher(fetch.clone_box());
        }
    }

    fn launched(&self, task: AbortHandle) {
        self.lock().set_flight(Some(task));
    }

    fn plan(&self) -> Plan {
        let current = self.hot.current();
        Plan {
            login_first: machine::login_first(current.as_deref(), Instant::now()),
            current: current.map(|t| t.grant.clone()),
        }
    }

    fn settle(&self, outcome: Result<Grant, Setback>, sent_at: Instant) -> Option<Instant> {
        let mut cold = self.lock();
        let (retry_at, outcome) = match outcome {
            Ok(grant) => {
                self.decide(&mut cold, Event::Obtained);
                let installed = self.install(&mut cold, grant.clone(), sent_at);
                cold.ends_mut().record(Settled::Installed);
                (None, Ok((grant, installed)))
            }
            Err(setback) => {
                let failed = Event::Failed {
                    setback,
                    alive_until: self.alive_until(),
                    jitter: cold.jitter(),
                };
                let Next::Settle {
                    error, retry_at, ..
                } = self.decide(&mut cold, failed)
                else {
                    unreachable!("a failure settles")
                };
                cold.ends_mut().record(Settled::Failed(error.clone()));
                (retry_at, Err(error))
            }
        };
        let failures = cold.failures_and_wait(retry_at);
        // Told only once the lock is released: a subscriber or a hook may well send requests
        // through this very layer.
        drop(cold);
        told(&self.attempt_ended);
        match &outcome {
            Ok((grant, installed)) => self.emit_installed(*installed, Some(grant)),
            Err(error) => self.emit_failure(error, failures),
        }
        retry_at
    }

    fn abandon(&self) {
        let mut cold = self.lock();
        let died = Event::Died {
            alive_until: self.alive_until(),
            jitter: cold.jitter(),
        };
        let Next::Settle {
            error,
            idle_retry_at,
            ..
        } = self.decide(&mut cold, died)
        else {
            unreachable!("a death settles")
        };
        cold.ends_mut().record(Settled::Failed(error.clone()));
        if let Some(at) = idle_retry_at {
            let next = self.idle_retry_at(at);
            cold.set_flight(next);
        }
        let failures = cold.failures_and_wait(None);
        drop(cold);
        told(&self.attempt_ended);
        self.emit_failure(&error, failures);
    }

    fn wake_ups(&self) -> Arc<Notify> {
        Arc::clone(&self.wake_flight)
    }

    fn retry_now(&self) -> bool {
        let revoked = self.hot.is_revoked();
        let next = self.decide(&mut self.lock(), Event::WokenUp { revoked });
        matches!(next, Next::RetryNow)
    }

    fn backoff_ended(&self) {
        self.decide(&mut self.lock(), Event::BackoffEnded);
    }
}
