//! What only the cold path touches, behind the state's mutex: the token machine, generations,
//! the tasks that belong to the state, what it keeps for later, and the status it reports
//! from all that.

use std::mem;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::backoff::{Jitter, Timing};
use super::flight::Fetch;
use super::machine::{Event, Machine, Next};
use super::settlement::Ends;
use super::token::{Phase, Token};
use crate::grant::Grant;
use crate::status::{TokenPhase, TokenStatus};

/// A token handed in by the user: installed at its first use, counting from when it was
/// handed in, with the spread of its refresh point drawn once so that a status before
/// then shows it as it will be.
struct Initial {
    grant: Grant,
    given_at: Instant,
    spread: f64,
}

/// The cold state. Never held across an `.await`.
pub(super) struct Cold {
    jitter: Jitter,
    /// Every decision about the attempts.
    machine: Machine,
    generation: u64,
    /// The current token's timer.
    timer: Option<AbortHandle>,
    /// The flight's task, if one flies (it holds a clone of the wrapped service), or the
    /// task that will start the next one.
    flight: Option<AbortHandle>,
    /// A token handed in by the user, installed on first use: boxed, as most tokens have
    /// none, and none after their first use.
    initial: Option<Box<Initial>>,
    /// With `refresh_when_idle`: what the last flight fetched with, for the timer to start
    /// a refresh when no request comes. It holds a clone of the wrapped service.
    idle_fetch: Option<Box<dyn Fetch>>,
    /// How the attempts so far ended, for the callers waiting on them.
    ends: Ends,
}

impl Cold {
    pub(super) fn new(timing: Timing, initial: Option<Grant>, idle_refresh: bool) -> Self {
        let jitter = Jitter::new();
        let initial = initial.map(|grant| {
            Box::new(Initial {
                grant,
                given_at: Instant::now(),
                spread: jitter.next(),
            })
        });
        Cold {
            initial,
            machine: Machine::new(timing, idle_refresh),
            jitter,
            generation: 0,
            timer: None,
            flight: None,
            idle_fetch: None,
            ends: Ends::default(),
        }
    }

    /// Reports `event` to the machine: what to do next.
    pub(super) fn on(&mut self, event: Event) -> Next {
        self.machine.on(event, Instant::now())
    }

    /// A draw in `[0, 1)` to spread a backoff.
    pub(super) fn jitter(&self) -> f64 {
        self.jitter.next()
    }

    pub(super) fn ends(&self) -> &Ends {
        &self.ends
    }

    pub(super) fn ends_mut(&mut self) -> &mut Ends {
        &mut self.ends
    }

    pub(super) fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The token handed in by the user as the next generation's, once.
    pub(super) fn initial_token(&mut self) -> Option<Token> {
        let Initial {
            grant,
            given_at,
            spread,
        } = *self.initial.take()?;
        self.generation += 1;
        Some(self.token(grant, given_at, self.generation, spread))
    }

    /// `grant`, obtained by a request sent at `sent_at`, as the next generation's token.
    pub(super) fn next_token(&mut self, grant: Grant, sent_at: Instant) -> Token {
        self.generation += 1;
        self.token(grant, sent_at, self.generation, self.jitter.next())
    }

    fn token(&self, grant: Grant, sent_at: Instant, generation: u64, spread: f64) -> Token {
        let refresh_at = self.machine.timing().refresh_at;
        Token::new(grant, sent_at, generation, refresh_at, spread)
    }

    /// The token made by [`next_token`](Self::next_token) or
    /// [`initial_token`](Self::initial_token) is published, watched by `timer`: the
    /// previous token's timer stops.
    pub(super) fn installed(&mut self, timer: Option<AbortHandle>) {
        // Only now, with the new token published, stop the old one's timer: its drop
        // guard marks that old token dead, which must not be the current one.
        if let Some(old) = mem::replace(&mut self.timer, timer) {
            old.abort();
        }
    }

    /// The task of the flight under way, or the one that starts the next.
    pub(super) fn set_flight(&mut self, task: Option<AbortHandle>) {
        self.flight = task;
    }

    /// Keeps `fetch` for refreshes that no request starts (`refresh_when_idle`); returns
    /// the one it replaces, for the caller to drop once the lock is released.
    pub(super) fn keep_fetcher(&mut self, fetch: Box<dyn Fetch>) -> Option<Box<dyn Fetch>> {
        self.idle_fetch.replace(fetch)
    }

    /// Another of the fetcher kept for idle refreshes, if one was kept.
    pub(super) fn idle_fetcher(&self) -> Option<Box<dyn Fetch>> {
        self.idle_fetch.as_ref().map(|fetch| fetch.clone_box())
    }

    #[cfg(test)]
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// The failures in a row, and how long until the next attempt: for logs and the hook.
    pub(super) fn failures_and_wait(&self, retry_at: Option<Instant>) -> (u32, Duration) {
        self.machine.failures_and_wait(retry_at, Instant::now())
    }

    /// Where the token is: `current`, or else a token handed in and not yet used, shown as
    /// it will be installed (counting from when it was handed in) without installing it.
    pub(super) fn status(&self, current: Option<Arc<Token>>) -> TokenStatus {
        let now = Instant::now();
        let current = current.or_else(|| {
            let initial = self.initial.as_ref()?;
            let (grant, given_at) = (initial.grant.clone(), initial.given_at);
            let preview = self.token(grant, given_at, self.generation + 1, initial.spread);
            Some(Arc::new(preview))
        });
        let (generation, phase, expires_in) = match current {
            None => (self.generation, TokenPhase::Absent, None),
            Some(token) => {
                let phase = match token.phase_now(now) {
                    Phase::Fresh => TokenPhase::Fresh,
                    Phase::Due => TokenPhase::Due,
                    Phase::Dead => TokenPhase::Dead,
                    Phase::Revoked => TokenPhase::Revoked,
                };
                let left = token.expires_at.saturating_duration_since(now);
                (token.generation, phase, Some(left))
            }
        };
        TokenStatus {
            generation,
            phase,
            expires_in,
            refreshing: self.machine.is_under_way(),
            consecutive_failures: self.machine.consecutive_failures(),
            last_error: self.machine.last_error().cloned(),
        }
    }

    /// The machine retired this token (its answer to [`Event::Retired`] is `next`): stops
    /// its timer, and its flight's task if the machine says so, and gives back the fetcher
    /// kept for idle refreshes, for the caller to drop once the lock is released.
    pub(super) fn retired(&mut self, next: &Next) -> Option<Box<dyn Fetch>> {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
        if matches!(next, Next::Stop) {
            if let Some(task) = self.flight.take() {
                task.abort();
            }
        }
        self.idle_fetch.take()
    }

    /// Nobody is left to use a token: stops the timer and any flight backing off.
    pub(super) fn stop_tasks(&self) {
        for task in [&self.timer, &self.flight].into_iter().flatten() {
            task.abort();
        }
    }
}
