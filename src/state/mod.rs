//! The token state every clone of a service shares: the current token, one flight at a
//! time, generations, backoff.
//!
//! The hot path reads the current token and its phase from atomics and never takes the lock
//! or reads the clock: a timer task moves each token's phase forward (see [`token`]).
//! Everything else (starting a flight, recording a failure, waiting) is the cold path and
//! takes a plain mutex that is never held across an `.await`.

mod backoff;
mod control;
mod flight;
mod idle;
mod retire;
mod snapshot;
mod token;

#[cfg(test)]
mod tests;

use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub(crate) use backoff::Timing;
use backoff::{Failure, Jitter};
use flight::Settled;
pub(crate) use flight::{BoxFuture, Cause, Fetch, Flight, Plan, Setback, Settlement};
use retire::Invalidate;
pub(crate) use retire::Retirer;
use token::Phase;
pub(crate) use token::Token;

use crate::error::Error;
use crate::event::{self, Hook, TokenEvent};
use crate::grant::Grant;

/// Rounds a waiter makes before concluding that tokens die faster than they arrive.
pub(crate) const MAX_WAIT_ROUNDS: u8 = 3;

/// How a caller without a usable token takes part in getting one.
#[derive(Debug)]
pub(crate) enum Joined {
    /// There is one after all.
    Usable,
    /// An attempt is under way: wait for it to settle.
    Follow(Settlement),
    /// Nobody is trying: launch this flight, then wait for it to settle.
    Lead(Flight<TokenState>, Settlement),
}

/// The hot path's answer.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A usable token; `due` asks the caller to make sure a refresh is under way.
    Send {
        header: HeaderValue,
        generation: u64,
        due: bool,
    },
    /// No usable token: [`TokenState::join`] the attempt that gets one.
    Wait,
}

/// The cold state, behind the mutex.
#[derive(Default)]
struct Cold {
    /// The last failure while no token was usable (or one after which the server asked for
    /// time), and when trying again is allowed: callers get it at once until then.
    failure: Option<Failure>,
    /// Somebody asked for a new token now: the flight backing off tries again at once.
    hurry: bool,
    consecutive_failures: u32,
    generation: u64,
    timer: Option<AbortHandle>,
    /// The flight's task, if one flies: it holds a clone of the wrapped service.
    flight: Option<AbortHandle>,
    /// A token handed in by the user, installed on first use, with when it was handed in.
    initial: Option<(Grant, Instant)>,
    /// Why the last attempt failed, until one succeeds.
    last_error: Option<Error>,
    /// With `refresh_when_idle`: what the last flight fetched with, for the timer to start
    /// a refresh when no request comes. It holds a clone of the wrapped service.
    idle_fetch: Option<Box<dyn Fetch>>,
}

impl Cold {
    fn backing_off(&self, now: Instant) -> bool {
        self.failure.as_ref().is_some_and(|f| f.holds_at(now))
    }
}

/// Aligns its value to 128 bytes (two cache lines, for adjacent-line prefetching), so no
/// other data shares its lines.
#[repr(align(128))]
struct CachePadded<T>(T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// What the hot path reads.
struct Hot {
    current: ArcSwapOption<Token>,
    /// The generation of `current`, published after it: a service that holds this
    /// generation already need not touch `current` at all.
    generation: AtomicU64,
    /// With `refresh_when_idle`, until a request has handed over a fetcher for the timer.
    wants_fetcher: AtomicBool,
}

/// One token, shared by every clone of a service.
pub(crate) struct TokenState {
    /// Read by every request on every core: kept on cache lines of their own, away from
    /// the `Arc`'s reference counts that requests write.
    hot: CachePadded<Hot>,
    /// A flight is under way, or waiting out a backoff while the token is still valid.
    refreshing: AtomicBool,
    cold: Mutex<Cold>,
    settled: watch::Sender<Settled>,
    /// Cuts a flight's backoff short when its token is revoked under it, or when somebody
    /// asks for a new token now.
    wake_flight: Arc<Notify>,
    timing: Timing,
    jitter: Jitter,
    hook: Option<Hook>,
    /// Refresh at the refresh point even when no request comes, and keep trying while the
    /// layer is down.
    refresh_when_idle: bool,
    /// This state itself, for the timers that start idle refreshes: weak, so a timer never
    /// keeps the state alive.
    me: Weak<TokenState>,
    /// What response futures hold to retire a token on a 401.
    retirers: [Arc<Retirer>; retire::STRIPES],
}

impl std::fmt::Debug for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.hot.current.load();
        let token = current.as_deref();
        f.debug_struct("TokenState")
            .field("generation", &token.map(|t| t.generation))
            .field("phase", &token.map(Token::phase))
            .field("refreshing", &self.refreshing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TokenState {
    pub(crate) fn new(
        timing: Timing,
        initial: Option<Grant>,
        hook: Option<Hook>,
        refresh_when_idle: bool,
    ) -> Arc<Self> {
        let cold = Cold {
            initial: initial.map(|grant| (grant, Instant::now())),
            ..Cold::default()
        };
        Arc::new_cyclic(|me| TokenState {
            hot: CachePadded(Hot {
                current: ArcSwapOption::empty(),
                generation: AtomicU64::new(0),
                wants_fetcher: AtomicBool::new(refresh_when_idle),
            }),
            refreshing: AtomicBool::new(false),
            cold: Mutex::new(cold),
            settled: watch::Sender::new(Settled::Pending),
            wake_flight: Arc::default(),
            timing,
            jitter: Jitter::new(),
            hook,
            refresh_when_idle,
            me: Weak::clone(me),
            retirers: Retirer::stripes(&(Weak::clone(me) as Weak<dyn Invalidate>)),
        })
    }

    /// The hot path: no lock, no clock, no allocation.
    ///
    /// `seen` is the caller's copy of the current token: while no newer one has been
    /// published it is used as it is, which costs one atomic load.
    pub(crate) fn lookup(&self, seen: &mut Option<Arc<Token>>) -> Lookup {
        let published = self.hot.generation.load(Ordering::Acquire);
        if seen.as_ref().map(|t| t.generation) != Some(published) {
            *seen = self.hot.current.load_full();
        }
        Self::usable(seen.as_deref())
    }

    /// The current token, for a caller without a copy of its own (a request that waited).
    ///
    /// Off the hot path, the clock is asked as well as the phase: a token whose timer runs
    /// late is not sent past its dead point.
    pub(crate) fn lookup_now(&self) -> Lookup {
        let current = self.hot.current.load();
        if let Some(token) = current.as_deref() {
            if Instant::now() >= token.dead_at {
                token.advance(Phase::Dead);
            }
        }
        Self::usable(current.as_deref())
    }

    /// Whether there is a token to send, off the hot path: by the clock as well as the
    /// phase, as `lookup_now` judges, so a late timer never makes a dead token look usable.
    pub(crate) fn has_usable_token(&self) -> bool {
        let current = self.hot.current.load();
        let now = Instant::now();
        current
            .as_deref()
            .is_some_and(|token| token.phase_now(now) <= Phase::Due)
    }

    fn usable(token: Option<&Token>) -> Lookup {
        match token {
            Some(token) if token.is_usable() => Lookup::Send {
                header: token.header.clone(),
                generation: token.generation,
                due: token.phase() == Phase::Due,
            },
            _ => Lookup::Wait,
        }
    }

    /// Starts a background refresh unless one is under way. The caller does not wait.
    pub(crate) fn refresh_in_background(self: &Arc<Self>, fetch: impl FnOnce() -> Box<dyn Fetch>) {
        if self.refreshing.load(Ordering::Acquire) {
            return;
        }
        let flight = {
            let mut cold = self.lock();
            if self.refreshing.load(Ordering::Acquire) || cold.backing_off(Instant::now()) {
                return;
            }
            self.begin_flight(&mut cold)
        };
        match flight {
            Ok(flight) => self.launch(flight, fetch()),
            Err(error) => tracing::debug!(%error, "cannot start a token refresh"),
        }
    }

    /// Joins the wait for a usable token: there is one now, or the caller waits on the
    /// attempt under way, or it leads a new one (and must launch the returned flight).
    /// During a backoff after a failure with no usable token, the failure comes back at once.
    pub(crate) fn join(self: &Arc<Self>) -> Result<Joined, Error> {
        // Released waiters mostly find the new token here, without the lock.
        if self.has_usable_token() {
            return Ok(Joined::Usable);
        }
        // Without a runtime there is no timer to watch an initial token, nor a task to fetch one.
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut cold = self.lock();
        self.install_initial(&mut cold);
        if self.has_usable_token() {
            return Ok(Joined::Usable);
        }
        // Subscribed under the lock: the flight settles under it too, so no outcome can slip
        // between our check and our wait.
        let settled = Settlement(self.settled.subscribe());
        // A flight that keeps trying while the layer is down backs off like any other: until
        // its next attempt, callers are turned away at once rather than held.
        if let Some(failure) = cold.failure.as_ref() {
            if failure.holds_at(Instant::now()) {
                return Err(failure.error.clone());
            }
        }
        if self.refreshing.load(Ordering::Acquire) {
            return Ok(Joined::Follow(settled));
        }
        let flight = self.begin_flight(&mut cold)?;
        Ok(Joined::Lead(flight, settled))
    }

    /// A retirer for a request sent from `place` (see [`Retirer`]).
    pub(crate) fn retirer(&self, place: usize) -> Arc<Retirer> {
        retire::pick(&self.retirers, place)
    }

    /// Tells the user's hook; never called with the lock held, so the hook may use the layer.
    fn report(&self, event: TokenEvent<'_>) {
        event::tell(self.hook.as_ref(), &event);
    }

    fn report_failure(&self, error: &Error, consecutive_failures: u32, retry_in: Duration) {
        let retry_in_ms = retry_in.as_millis() as u64;
        tracing::warn!(%error, failures = consecutive_failures, retry_in_ms, "token request failed");
        self.report(TokenEvent::Failed {
            error,
            consecutive_failures,
            retry_in,
        });
    }

    fn lock(&self) -> MutexGuard<'_, Cold> {
        // The state stays consistent at every await-free step, so a poisoned lock is usable.
        self.cold
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn install_initial(&self, cold: &mut Cold) {
        if self.hot.current.load().is_none() {
            if let Some((grant, given_at)) = cold.initial.take() {
                self.install(cold, grant, given_at);
            }
        }
    }

    /// Marks a flight as under way; the caller launches it once the lock is released
    /// (a task dropped by a shutting-down runtime must not find the lock held).
    fn begin_flight(self: &Arc<Self>, cold: &mut Cold) -> Result<Flight<TokenState>, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        cold.failure = None;
        self.refreshing.store(true, Ordering::Release);
        Ok(Flight::new(self, runtime))
    }

    /// Makes `grant`, obtained by a request sent at `sent_at`, the current token.
    fn install(&self, cold: &mut Cold, grant: Grant, sent_at: Instant) {
        cold.generation += 1;
        let token = Token::new(
            grant,
            sent_at,
            cold.generation,
            self.timing.refresh_at,
            self.jitter.next(),
        );
        let token = Arc::new(token);
        let timer = token.watch(self.idle_refresh());
        let generation = token.generation;
        self.hot.current.store(Some(token));
        self.hot.generation.store(generation, Ordering::Release);
        // Only now, with the new token published, retire the old one's timer: its drop
        // guard marks that old token dead, which must not be the current one.
        if let Some(old) = mem::replace(&mut cold.timer, timer) {
            old.abort();
        }
        cold.failure = None;
        cold.consecutive_failures = 0;
        cold.last_error = None;
    }
}

impl Invalidate for TokenState {
    /// A request carrying `generation` was answered 401: that token is no good.
    fn invalidate(&self, generation: u64) {
        let current = self.hot.current.load();
        if let Some(token) = current.as_deref() {
            if token.generation == generation && token.advance(Phase::Revoked) {
                tracing::debug!(generation, "token refused by the server; replacing it");
                self.wake_flight.notify_one();
                self.report(TokenEvent::Invalidated { generation });
            }
        }
    }
}

impl Drop for TokenState {
    fn drop(&mut self) {
        let cold = self.lock();
        // Nobody is left to use a token: stop the timer and any flight backing off.
        for task in [&cold.timer, &cold.flight].into_iter().flatten() {
            task.abort();
        }
    }
}
