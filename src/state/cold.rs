//! What only the cold path touches, behind the state's mutex: generations, failures and the
//! backoff they earn, the tasks that belong to the state, what it keeps for later, and the
//! status it reports from all that.

use std::mem;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::backoff::{Failure, Jitter, Timing};
use super::flight::{Cause, Fetch, Setback};
use super::token::{Phase, Token};
use crate::error::Error;
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
    timing: Timing,
    jitter: Jitter,
    /// The last failure while no token was usable (or one after which the server asked for
    /// time), and when trying again is allowed: callers get it at once until then.
    failure: Option<Failure>,
    /// Somebody asked for a new token now: the flight backing off tries again at once.
    hurry: bool,
    consecutive_failures: u32,
    generation: u64,
    /// The current token's timer.
    timer: Option<AbortHandle>,
    /// The flight's task, if one flies (it holds a clone of the wrapped service), or the
    /// task that will start the next one.
    flight: Option<AbortHandle>,
    /// A token handed in by the user, installed on first use.
    initial: Option<Initial>,
    /// Why the last attempt failed, until one succeeds.
    last_error: Option<Error>,
    /// With `refresh_when_idle`: what the last flight fetched with, for the timer to start
    /// a refresh when no request comes. It holds a clone of the wrapped service.
    idle_fetch: Option<Box<dyn Fetch>>,
}

impl Cold {
    pub(super) fn new(timing: Timing, initial: Option<Grant>) -> Self {
        let jitter = Jitter::new();
        let initial = initial.map(|grant| Initial {
            grant,
            given_at: Instant::now(),
            spread: jitter.next(),
        });
        Cold {
            initial,
            timing,
            jitter,
            failure: None,
            hurry: false,
            consecutive_failures: 0,
            generation: 0,
            timer: None,
            flight: None,
            last_error: None,
            idle_fetch: None,
        }
    }

    /// The failure callers still take at `now`, rather than start a new attempt.
    pub(super) fn failure_at(&self, now: Instant) -> Option<&Error> {
        let failure = self.failure.as_ref()?;
        failure.holds_at(now).then_some(&failure.error)
    }

    /// When the held failure lets callers try again, if one is held.
    pub(super) fn retry_after(&self) -> Option<Instant> {
        self.failure.as_ref().map(|f| f.retry_after)
    }

    /// A new attempt begins: callers follow it, not the failure it supersedes.
    pub(super) fn forget_failure(&mut self) {
        self.failure = None;
    }

    /// Somebody wants a new token now: the flight backing off tries at once.
    pub(super) fn hurry(&mut self) {
        self.failure = None;
        self.hurry = true;
    }

    /// An attempt ended: it answered whoever asked for a new token now.
    pub(super) fn attempt_ended(&mut self) {
        self.hurry = false;
    }

    /// Whether the flight should try again before its backoff ends: somebody hurried it,
    /// or `revoked` (callers wait for the new token). Callers then follow the new attempt.
    pub(super) fn retry_now(&mut self, revoked: bool) -> bool {
        let now = mem::take(&mut self.hurry) || revoked;
        if now {
            self.failure = None;
        }
        now
    }

    /// The token handed in by the user as the next generation's, once.
    pub(super) fn initial_token(&mut self) -> Option<Token> {
        let Initial {
            grant,
            given_at,
            spread,
        } = self.initial.take()?;
        self.generation += 1;
        Some(self.token(grant, given_at, self.generation, spread))
    }

    /// `grant`, obtained by a request sent at `sent_at`, as the next generation's token.
    pub(super) fn next_token(&mut self, grant: Grant, sent_at: Instant) -> Token {
        self.generation += 1;
        self.token(grant, sent_at, self.generation, self.jitter.next())
    }

    fn token(&self, grant: Grant, sent_at: Instant, generation: u64, spread: f64) -> Token {
        Token::new(grant, sent_at, generation, self.timing.refresh_at, spread)
    }

    /// The token made by [`next_token`](Self::next_token) or
    /// [`initial_token`](Self::initial_token) is published, watched by `timer`: the
    /// previous token's timer stops, and the failures are over.
    pub(super) fn installed(&mut self, timer: Option<AbortHandle>) {
        // Only now, with the new token published, stop the old one's timer: its drop
        // guard marks that old token dead, which must not be the current one.
        if let Some(old) = mem::replace(&mut self.timer, timer) {
            old.abort();
        }
        self.failure = None;
        self.consecutive_failures = 0;
        self.last_error = None;
    }

    /// Records a failed attempt; returns when to try again if the flight should go on.
    ///
    /// `alive_until` is the dead point of a token still good. While there is one, the
    /// flight retries on the full backoff, never later than that. Once there is none (the
    /// layer is down), the backoff after an outage stays short, and with `idle_refresh`
    /// the flight keeps trying on its own through anything but a rejection. A server's
    /// `Retry-After` sets the earliest next attempt either way, capped at the largest
    /// backoff.
    pub(super) fn record_failure(
        &mut self,
        setback: Setback,
        alive_until: Option<Instant>,
        idle_refresh: bool,
    ) -> Option<Instant> {
        let Setback {
            error,
            cause,
            server_wait,
        } = setback;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(error.clone());
        let now = Instant::now();
        let down_after_outage = alive_until.is_none() && cause == Cause::Outage;
        let backoff = self.timing.backoff(
            self.consecutive_failures,
            self.jitter.next(),
            down_after_outage,
        );
        // At most 1.25 x the longest lifetime (the backoff is capped): no `Instant` overflows.
        let mut retry_after = now + backoff;
        if let Some(dead_at) = alive_until {
            retry_after = retry_after.min(dead_at);
        }
        let asked = server_wait.map(|wait| now + wait.min(self.timing.max_backoff));
        if let Some(asked) = asked {
            retry_after = retry_after.max(asked);
        }
        if alive_until.is_none() || asked.is_some() {
            // Should the token die first, callers take this failure until then.
            self.failure = Some(Failure { error, retry_after });
        }
        // While down, anything but a rejection is worth trying again unasked: a wrong password
        // repeated on its own could lock the account, and waits for a request.
        let keep_trying = alive_until.is_some() || (idle_refresh && cause != Cause::Rejection);
        keep_trying.then_some(retry_after)
    }

    /// A flight ended without landing, after [`record_failure`](Self::record_failure)
    /// said when to try again if it did: the next flight waits that out too, or a
    /// panicking inner service means a refresh storm.
    pub(super) fn abandoned(&mut self, error: Error, retry_after: Option<Instant>) {
        if let Some(retry_after) = retry_after {
            self.failure = Some(Failure { error, retry_after });
        }
        self.hurry = false;
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

    /// The failures in a row, and how long until the next attempt (at `retry_at`, or when
    /// the held failure lets callers try again): for logs and the hook.
    pub(super) fn failures_and_wait(&self, retry_at: Option<Instant>) -> (u32, Duration) {
        let at = retry_at.or(self.retry_after());
        let wait = at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        });
        (self.consecutive_failures, wait)
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Where the token is: `current`, or else a token handed in and not yet used, shown as
    /// it will be installed (counting from when it was handed in) without installing it.
    pub(super) fn status(&self, current: Option<Arc<Token>>, refreshing: bool) -> TokenStatus {
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
            refreshing,
            consecutive_failures: self.consecutive_failures,
            last_error: self.last_error.clone(),
        }
    }

    /// Nobody is left to use a token: stops the timer and any flight backing off.
    pub(super) fn stop_tasks(&self) {
        for task in [&self.timer, &self.flight].into_iter().flatten() {
            task.abort();
        }
    }
}
