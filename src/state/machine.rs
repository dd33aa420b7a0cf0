//! The token machine: every decision about the attempts at a token, in one place.
//!
//! A token's life has two axes. The **token's phase** is published on the hot path and moved
//! by its timer (see [`token`](super::token)); the machine reads it. The **attempt's status**
//! is the machine's own:
//!
//! ```text
//!                 token phase →   absent   fresh   due     dead    revoked
//! attempt status ↓
//!   idle                          start*   send    send+   start*  start*
//!                                                  start
//!   running                       follow   send    send    follow  follow
//!   backing off                   follow   send    send    follow  follow (wakes it)
//!   down (a failure held)         turn     send    send    turn    turn
//!                                 away                     away    away
//!
//! * a caller that finds no usable token starts the attempt and follows it
//! ```
//!
//! Transitions of the attempt's status, on the events the entry points report:
//!
//! ```text
//!  idle ──due / wanted / refresh_now──▶ running ──obtained──▶ idle (failures forgotten)
//!                                          │
//!                                          └──failed──▶ backing off ──backoff ends──▶ running
//!                                                  │     (a usable token left,    ──woken: revoked
//!                                                  │      or idle refresh and        or hurried──▶ running
//!                                                  │      not refused)
//!                                                  └──▶ idle, the failure held until its retry
//!                                                       instant: "down" while no token is usable
//!  running ──died (its task ended)──▶ idle, the failure held (and with idle refresh, a task
//!                                     that starts the next attempt when it ends)
//! ```
//!
//! Within one attempt, the free functions below decide the rest: whether it refreshes or
//! logs in first, whether a rejected refresh is followed by a login, whether a failure
//! moves to another node, and what a failure's kind means for the next try.
//!
//! The machine sees no HTTP, no task and no lock: it is data in, decisions out
//! ([`Next`]), so its tests are a table. [`TokenState`](super::TokenState) holds it under
//! its cold lock, reports each event, and carries out the decision.

use std::time::Duration;

use tokio::time::Instant;

use super::backoff::{Failure, Timing};
use super::flight::{Cause, Setback};
use super::token::{Phase, Token};
use crate::endpoint::FailureKind;
use crate::error::{Error, Exchange};

/// Rounds a waiter makes before concluding that tokens die faster than they arrive.
pub(crate) const MAX_WAIT_ROUNDS: u8 = 3;

/// Whether the next attempt logs in rather than refreshes `current`: there is no token, or
/// it is revoked or expired, so a refresh would only be rejected.
pub(crate) fn login_first(current: Option<&Token>, now: Instant) -> bool {
    current.is_none_or(|token| token.phase() == Phase::Revoked || now >= token.expires_at)
}

/// Whether an attempt with a token to trade refreshes it first, rather than logging in:
/// unless the plan says a refresh would only be rejected and the endpoint can log in.
pub(crate) fn refreshes_first(login_first: bool, can_log_in: bool) -> bool {
    !(login_first && can_log_in)
}

/// Whether a refresh that failed as `kind` is followed, in the same attempt, by a login.
pub(crate) fn logs_in_after_refresh(kind: FailureKind, can_log_in: bool) -> bool {
    can_log_in && kind == FailureKind::Revoked
}

/// Whether a token request that failed with `error`, classified `kind`, moves to the
/// endpoint's next node: the node was away (not a credentials provider, which every node
/// would meet alike), or the layer will not talk to it in the clear.
pub(crate) fn fails_over(error: &Error, kind: FailureKind) -> bool {
    match error {
        Error::InsecureTransport { .. } => true,
        Error::Provider { .. } => false,
        _ => kind == FailureKind::Away,
    }
}

/// What a failure classified `kind` means for the attempt's next try.
pub(crate) fn cause(kind: FailureKind) -> Cause {
    match kind {
        FailureKind::Away => Cause::Outage,
        FailureKind::Refused | FailureKind::Revoked => Cause::Rejection,
        FailureKind::Unusable => Cause::Unusable,
    }
}

/// The attempt's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// No attempt is under way.
    Idle,
    /// An attempt is sending its requests.
    Running,
    /// The attempt failed and tries again at `until` (or sooner, when woken).
    BackingOff { until: Instant },
}

/// What happened, as an entry point reports it.
#[derive(Debug)]
pub(crate) enum Event {
    /// A request found the token due, or its refresh point passed with no request (idle
    /// refresh): make sure a refresh is under way, without waiting for it.
    Due,
    /// A caller has no token to send (a request, `warm_up`), after waiting for `rounds`
    /// attempts; `usable` says whether one is there after all.
    Wanted { usable: bool, rounds: u8 },
    /// Somebody asked for a new token now (`refresh_now`).
    RefreshNow,
    /// A request carrying the current token was answered 401.
    Revoked,
    /// The attempt obtained a token.
    Obtained,
    /// The attempt failed; `alive_until` is the dead point of a token still usable, and
    /// `jitter` a draw in `[0, 1)` that spreads the backoff.
    Failed {
        setback: Setback,
        alive_until: Option<Instant>,
        jitter: f64,
    },
    /// The layer let go of the token (its identity was dropped): a login under way ends
    /// for the callers waiting on it, and nothing more starts on its own.
    Retired,
    /// The attempt's task ended without reporting (a panic, a runtime shutting down).
    Died {
        alive_until: Option<Instant>,
        jitter: f64,
    },
    /// The attempt's backoff ended.
    BackoffEnded,
    /// The attempt was woken during its backoff; `revoked` says whether the current token is
    /// revoked (a wake-up can be stale).
    WokenUp { revoked: bool },
}

/// What the entry point does next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Nothing.
    Stay,
    /// Send the request with the token there is.
    Send,
    /// Begin an attempt; a caller that asked follows it.
    Start,
    /// Follow the attempt under way; `wake` it first if it is backing off.
    Follow { wake: bool },
    /// Answer the caller with this error, sending nothing.
    TurnAway(Error),
    /// Install the token, and tell its waiters.
    Install,
    /// Tell the waiters the attempt failed with `error`; the attempt tries again at
    /// `retry_at`, or ends. `idle_retry_at`: a task starts the next attempt then.
    Settle {
        error: Error,
        retry_at: Option<Instant>,
        idle_retry_at: Option<Instant>,
    },
    /// The attempt backing off tries again now.
    RetryNow,
    /// Wake the attempt backing off: it asks again with [`Event::WokenUp`].
    Wake,
    /// Stop the task of the attempt, which has nobody left to try for.
    Stop,
}

/// The attempts at a token: their status, their failures, and when to try again.
#[derive(Debug)]
pub(crate) struct Machine {
    timing: Timing,
    /// Refresh at the refresh point even when no request comes, and keep trying while down.
    idle_refresh: bool,
    attempt: Attempt,
    /// The last failure while no token was usable (or after which the server asked for
    /// time): callers get it at once until its retry instant.
    held: Option<Failure>,
    /// Somebody asked for a new token now: an attempt backing off tries again at once.
    hurry: bool,
    consecutive_failures: u32,
    /// Why the last attempt failed, until one succeeds.
    last_error: Option<Error>,
    /// The layer let go of the token: no retry, no idle refresh, no due refresh.
    retired: bool,
}

impl Machine {
    pub(crate) fn new(timing: Timing, idle_refresh: bool) -> Self {
        Machine {
            timing,
            idle_refresh,
            attempt: Attempt::Idle,
            held: None,
            hurry: false,
            consecutive_failures: 0,
            last_error: None,
            retired: false,
        }
    }

    /// What `event`, at `now`, leads to.
    pub(crate) fn on(&mut self, event: Event, now: Instant) -> Next {
        match event {
            Event::Due => self.due(now),
            Event::Wanted { usable, rounds } => self.wanted(usable, rounds, now),
            Event::RefreshNow => self.refresh_now(),
            // Told whatever the status: an attempt running now, or the next one, that fails
            // does not wait out a backoff for a token nobody can send.
            Event::Revoked => Next::Wake,
            Event::Obtained => self.obtained(),
            Event::Failed {
                setback,
                alive_until,
                jitter,
            } => self.failed(setback, alive_until, jitter, now),
            Event::Died {
                alive_until,
                jitter,
            } => self.died(alive_until, jitter, now),
            // The try it was waiting for begins: callers follow it now (its held failure,
            // if any, lapses at this very instant).
            Event::BackoffEnded => {
                if let Attempt::BackingOff { .. } = self.attempt {
                    self.held = None;
                    self.attempt = Attempt::Running;
                }
                Next::Stay
            }
            Event::WokenUp { revoked } => self.woken_up(revoked),
            Event::Retired => self.retired(),
        }
    }

    /// The timing it decides by, which the tokens share.
    pub(crate) fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Whether an attempt is under way (running or backing off).
    pub(crate) fn is_under_way(&self) -> bool {
        self.attempt != Attempt::Idle
    }

    /// Whether the layer let go of the token.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired
    }

    #[cfg(test)]
    pub(crate) fn attempt(&self) -> Attempt {
        self.attempt
    }

    /// The failures in a row, and how long until the next attempt (at `retry_at`, or when
    /// the held failure lets callers try again): for logs and the hook.
    pub(crate) fn failures_and_wait(
        &self,
        retry_at: Option<Instant>,
        now: Instant,
    ) -> (u32, Duration) {
        let at = retry_at.or(self.held.as_ref().map(|f| f.retry_after));
        let wait = at.map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        (self.consecutive_failures, wait)
    }

    /// When the held failure stops turning callers away, if one is held.
    #[cfg(test)]
    pub(crate) fn held_until(&self) -> Option<Instant> {
        self.held.as_ref().map(|held| held.retry_after)
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub(crate) fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref()
    }

    /// The failure callers still take at `now`, rather than start a new attempt.
    fn held_at(&self, now: Instant) -> Option<&Error> {
        let held = self.held.as_ref()?;
        held.holds_at(now).then_some(&held.error)
    }

    fn due(&mut self, now: Instant) -> Next {
        if self.retired || self.is_under_way() || self.held_at(now).is_some() {
            return Next::Stay;
        }
        self.start()
    }

    fn wanted(&mut self, usable: bool, rounds: u8, now: Instant) -> Next {
        if usable {
            return Next::Send;
        }
        if rounds >= MAX_WAIT_ROUNDS {
            let error = "every new token was dead on arrival";
            return Next::TurnAway(Error::invalid_response(Exchange::Refresh, error));
        }
        // An attempt that keeps trying while down backs off like any other: until its next
        // try, callers are turned away at once rather than held.
        if let Some(error) = self.held_at(now) {
            return Next::TurnAway(error.clone());
        }
        match self.attempt {
            Attempt::Idle => self.start(),
            Attempt::Running | Attempt::BackingOff { .. } => Next::Follow { wake: false },
        }
    }

    /// Whatever the phase and however long the backoff: only the single attempt is kept.
    fn refresh_now(&mut self) -> Next {
        match self.attempt {
            Attempt::Idle => self.start(),
            Attempt::Running | Attempt::BackingOff { .. } => {
                // Callers follow the hurried attempt rather than the last failure.
                self.held = None;
                self.hurry = true;
                Next::Follow { wake: true }
            }
        }
    }

    /// A new attempt begins: callers follow it, not the failure it supersedes.
    fn start(&mut self) -> Next {
        self.held = None;
        self.attempt = Attempt::Running;
        Next::Start
    }

    fn obtained(&mut self) -> Next {
        self.attempt = Attempt::Idle;
        self.hurry = false;
        self.held = None;
        self.consecutive_failures = 0;
        self.last_error = None;
        Next::Install
    }

    fn failed(
        &mut self,
        setback: Setback,
        alive_until: Option<Instant>,
        jitter: f64,
        now: Instant,
    ) -> Next {
        self.hurry = false;
        let error = setback.error.clone();
        let retry_at = self.record_failure(setback, alive_until, jitter, now);
        // A retired token is not tried for again: its waiting callers have their answer.
        let retry_at = retry_at.filter(|_| !self.retired);
        self.attempt = match retry_at {
            Some(until) => Attempt::BackingOff { until },
            None => Attempt::Idle,
        };
        Next::Settle {
            error,
            retry_at,
            idle_retry_at: None,
        }
    }

    /// An attempt whose task died: the next one waits out the backoff too, or a panicking
    /// inner service means a refresh storm.
    fn died(&mut self, alive_until: Option<Instant>, jitter: f64, now: Instant) -> Next {
        let error = Error::transport(Exchange::Refresh, "the token refresh task ended early");
        let setback = Setback::new(error.clone(), Cause::Outage);
        if let Some(retry_after) = self.record_failure(setback, alive_until, jitter, now) {
            self.held = Some(Failure {
                error: error.clone(),
                retry_after,
            });
        }
        self.hurry = false;
        self.attempt = Attempt::Idle;
        // Nobody may ask (an idle service, a pod out of rotation): start again once the
        // backoff ends, as a request would.
        let idle_retry_at = match self.idle_refresh && !self.retired {
            true => self.held.as_ref().map(|held| held.retry_after),
            false => None,
        };
        Next::Settle {
            error,
            retry_at: None,
            idle_retry_at,
        }
    }

    /// A login or refresh being sent is left to end, for the callers waiting on it; an
    /// attempt waiting out a backoff (or an idle retry to come) has nobody to try for.
    fn retired(&mut self) -> Next {
        self.retired = true;
        match self.attempt {
            Attempt::Running => Next::Stay,
            Attempt::Idle | Attempt::BackingOff { .. } => {
                self.attempt = Attempt::Idle;
                Next::Stop
            }
        }
    }

    fn woken_up(&mut self, revoked: bool) -> Next {
        let Attempt::BackingOff { .. } = self.attempt else {
            return Next::Stay;
        };
        // A wake-up can be stale: only a revoked token (callers wait for the new one) or a
        // hurry cuts the backoff short. Callers then follow the new try.
        if !(std::mem::take(&mut self.hurry) || revoked) {
            return Next::Stay;
        }
        self.held = None;
        self.attempt = Attempt::Running;
        Next::RetryNow
    }

    /// Records a failed attempt; returns when to try again if the attempt should go on.
    ///
    /// `alive_until` is the dead point of a token still good. While there is one, the
    /// attempt retries on the full backoff, never later than that. Once there is none (the
    /// layer is down), the backoff after an outage stays short, and with idle refresh the
    /// attempt keeps trying on its own through anything but a rejection. A server's
    /// `Retry-After` sets the earliest next try either way, capped at the largest backoff.
    fn record_failure(
        &mut self,
        setback: Setback,
        alive_until: Option<Instant>,
        jitter: f64,
        now: Instant,
    ) -> Option<Instant> {
        let Setback {
            error,
            cause,
            server_wait,
        } = setback;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(error.clone());
        let down_after_outage = alive_until.is_none() && cause == Cause::Outage;
        let backoff = self
            .timing
            .backoff(self.consecutive_failures, jitter, down_after_outage);
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
            self.held = Some(Failure { error, retry_after });
        }
        // While down, anything but a rejection is worth trying again unasked: a wrong password
        // repeated on its own could lock the account, and waits for a request.
        let keep_trying = alive_until.is_some() || (self.idle_refresh && cause != Cause::Rejection);
        keep_trying.then_some(retry_after)
    }
}

#[cfg(test)]
mod tests;
