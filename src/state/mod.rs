//! The token state every clone of a service shares: the current token, one flight at a
//! time, generations, backoff.
//!
//! The hot path reads the current token and its phase from atomics and never takes the lock
//! or reads the clock: a timer task moves each token's phase forward (see [`token`]).
//! Everything else (starting a flight, recording a failure, waiting) is the cold path and
//! takes a plain mutex that is never held across an `.await`.
//!
//! Every decision of the cold path is the [`machine`]'s: the entry points here (a request
//! that finds the token due or has none, `refresh_now`, a 401, the flight's outcome, its
//! backoff, an idle timer) report an event and carry out what it answers.
//!
//! Each file owns its data: `hot.rs` the published token, `machine.rs` the attempt's status
//! and its failures, `cold.rs` what the mutex guards, `flight.rs` the flight, `token.rs` a
//! token's timeline; [`TokenState`], here, joins them.

mod backoff;
mod cold;
mod control;
mod flight;
mod hot;
mod machine;
mod settlement;
mod token;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub(crate) use backoff::Timing;
use cold::Cold;
#[cfg(test)]
pub(crate) use flight::Cause;
pub(crate) use flight::{BoxFuture, Fetch, Flight, Plan, Setback};
use hot::Hot;
pub(crate) use hot::Lookup;
pub(crate) use machine::{cause, fails_over, logs_in_after_refresh, refreshes_first};
use machine::{Event, Next};
pub(crate) use settlement::Settlement;
use token::OnDue;
pub(crate) use token::Token;

use crate::error::Error;
use crate::grant::Grant;
use crate::record::{Record, Transition};
use crate::status::TokenStatus;

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

/// One token, shared by every clone of a service.
pub(crate) struct TokenState {
    /// Read by every request on every core: on a cache line of its own (see [`Hot`]).
    hot: Hot,
    /// A flight is under way, or waiting out a backoff while the token is still valid.
    refreshing: AtomicBool,
    cold: Mutex<Cold>,
    /// Tells the callers waiting on an attempt that it ended (see [`settlement`]).
    attempt_ended: Notify,
    /// Cuts a flight's backoff short when its token is revoked under it, or when somebody
    /// asks for a new token now.
    wake_flight: Arc<Notify>,
    /// Refresh at the refresh point even when no request comes, and keep trying while the
    /// layer is down.
    refresh_when_idle: bool,
    /// Where every transition is told.
    record: Arc<Record>,
    /// This state itself, for the timers that start idle refreshes: weak, so a timer never
    /// keeps the state alive.
    me: Weak<TokenState>,
}

impl std::fmt::Debug for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.hot.current();
        f.debug_struct("TokenState")
            .field("generation", &token.as_ref().map(|t| t.generation))
            .field("phase", &token.as_ref().map(|t| t.phase()))
            .field("refreshing", &self.refreshing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TokenState {
    pub(crate) fn new(
        timing: Timing,
        initial: Option<Grant>,
        refresh_when_idle: bool,
        record: Arc<Record>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| TokenState {
            hot: Hot::new(refresh_when_idle),
            refreshing: AtomicBool::new(false),
            cold: Mutex::new(Cold::new(timing, initial, refresh_when_idle)),
            attempt_ended: Notify::new(),
            wake_flight: Arc::default(),
            refresh_when_idle,
            record,
            me: Weak::clone(me),
        })
    }

    /// The hot path: no lock, no clock, no allocation (see [`Hot::lookup`]).
    pub(crate) fn lookup(&self, seen: &mut Option<Arc<Token>>) -> Lookup {
        self.hot.lookup(seen)
    }

    /// The hot path for a caller that keeps no copy of the token (see [`Hot::lookup_loaded`]).
    pub(crate) fn lookup_loaded(&self) -> Lookup {
        self.hot.lookup_loaded()
    }

    /// The current token, for a caller without a copy of its own, by the clock too.
    pub(crate) fn lookup_now(&self) -> Lookup {
        self.hot.lookup_now()
    }

    /// Whether there is a token to send, by the clock as well as the phase.
    pub(crate) fn has_usable_token(&self) -> bool {
        self.hot.has_usable_token()
    }

    /// Whether the timer still needs a fetcher to refresh an idle token with: one relaxed
    /// load, so requests can ask it every time.
    pub(crate) fn wants_fetcher(&self) -> bool {
        self.hot.wants_fetcher()
    }

    /// Keeps `fetch` for refreshes that no request starts (`refresh_when_idle`).
    pub(crate) fn keep_fetcher(&self, fetch: Box<dyn Fetch>) {
        let replaced = self.lock().keep_fetcher(fetch);
        self.hot.fetcher_kept();
        // Dropped unlocked: it holds a clone of the user's service, whose drop may do anything.
        drop(replaced);
    }

    /// Starts a background refresh unless one is under way. The caller does not wait.
    pub(crate) fn refresh_in_background(self: &Arc<Self>, fetch: impl FnOnce() -> Box<dyn Fetch>) {
        // Lock-free for every request that finds the token due while a refresh runs.
        if self.refreshing.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(error = %Error::NoRuntime, "cannot start a token refresh");
            return;
        };
        let next = self.decide(&mut self.lock(), Event::Due);
        if matches!(next, Next::Start) {
            Flight::new(self, runtime).launch(fetch());
        }
    }

    /// Joins the wait for a usable token: there is one now, or the caller waits on the
    /// attempt under way, or it leads a new one (and must launch the returned flight).
    /// During a backoff after a failure with no usable token, the failure comes back at once.
    #[cfg(test)]
    pub(crate) fn join(self: &Arc<Self>) -> Result<Joined, Error> {
        self.join_after(0)
    }

    /// [`join`](Self::join), for a caller that has waited for `rounds` attempts already.
    pub(crate) fn join_after(self: &Arc<Self>, rounds: u8) -> Result<Joined, Error> {
        // Released waiters mostly find the new token here, without the lock.
        if self.has_usable_token() {
            return Ok(Joined::Usable);
        }
        // Without a runtime there is no timer to watch an initial token, nor a task to fetch one.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut cold = self.lock();
        let handed_in = self.install_initial(&mut cold);
        let usable = self.has_usable_token();
        // Counted under the lock: the flight settles under it too, so no outcome can slip
        // between our check and our wait.
        let settled = Settlement::after(self, cold.ends());
        let next = self.decide(&mut cold, Event::Wanted { usable, rounds });
        drop(cold);
        if let Some(installed) = handed_in {
            self.emit_installed(installed, None);
        }
        match next {
            Next::Send => Ok(Joined::Usable),
            Next::TurnAway(error) => Err(error),
            Next::Start => Ok(Joined::Lead(Flight::new(self, runtime), settled)),
            _ => Ok(Joined::Follow(settled)),
        }
    }

    /// Asks for a new token now, whatever the phase and however long the backoff: joins the
    /// attempt under way (hurrying a flight that is backing off), or begins one, which the
    /// caller must launch. Only the single flight is respected.
    pub(crate) fn refresh_now(
        self: &Arc<Self>,
    ) -> Result<(Settlement, Option<Flight<TokenState>>), Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut cold = self.lock();
        let handed_in = self.install_initial(&mut cold);
        let settled = Settlement::after(self, cold.ends());
        let next = self.decide(&mut cold, Event::RefreshNow);
        drop(cold);
        if let Some(installed) = handed_in {
            self.emit_installed(installed, None);
        }
        match next {
            Next::Start => Ok((settled, Some(Flight::new(self, runtime)))),
            next => {
                if matches!(next, Next::Follow { wake: true }) {
                    self.wake_flight.notify_one();
                }
                Ok((settled, None))
            }
        }
    }

    /// A request carrying `generation` was answered 401: that token is revoked.
    pub(crate) fn revoke(&self, generation: u64) {
        if self.hot.revoke(generation) {
            if matches!(self.decide(&mut self.lock(), Event::Revoked), Next::Wake) {
                self.wake_flight.notify_one();
            }
            self.record.emit(Transition::Revoked { generation });
        }
    }

    /// The layer let go of this token (its identity was dropped): whatever runs for it
    /// stops now, rather than when the last request that holds it is gone.
    pub(crate) fn retire(&self) {
        let mut cold = self.lock();
        let next = self.decide(&mut cold, Event::Retired);
        let fetch = cold.retired(&next);
        drop(cold);
        // Dropped unlocked: it holds a clone of the user's service.
        drop(fetch);
    }

    /// Where the token is now. Takes the cold lock briefly, which no request on the hot
    /// path ever waits for, and changes nothing.
    pub(crate) fn status(&self) -> TokenStatus {
        // Read under the lock, as the flight settles: the token and the attempt agree.
        self.lock().status(self.hot.current())
    }

    /// Reports `event` to the machine, and publishes whether an attempt is under way for
    /// the requests that ask without the lock.
    fn decide(&self, cold: &mut Cold, event: Event) -> Next {
        let next = cold.on(event);
        let under_way = cold.machine().is_under_way();
        self.refreshing.store(under_way, Ordering::Release);
        next
    }

    /// Tells the listeners that the token of `generation`, expiring at `expires_at`, is
    /// now the one sent. Never with the lock held (nor any other `emit`): the hook may use
    /// the layer.
    fn emit_installed(&self, (generation, expires_at): (u64, Instant), obtained: Option<&Grant>) {
        self.record.emit(Transition::Installed {
            generation,
            expires_at,
            obtained,
        });
    }

    fn emit_failure(&self, error: &Error, (consecutive_failures, retry_in): (u32, Duration)) {
        self.record.emit(Transition::Failed {
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

    /// Installs the token handed in by the user, at the first `join` or `refresh_now`:
    /// before either, no flight can have published a token it would replace. Its
    /// generation and expiry, to tell once the lock is released.
    fn install_initial(&self, cold: &mut Cold) -> Option<(u64, Instant)> {
        let token = cold.initial_token()?;
        Some(self.publish(cold, token))
    }

    /// Makes `grant`, obtained by a request sent at `sent_at`, the current token.
    fn install(&self, cold: &mut Cold, grant: Grant, sent_at: Instant) -> (u64, Instant) {
        let token = cold.next_token(grant, sent_at);
        self.publish(cold, token)
    }

    /// Makes `token`, the next generation's, the current token, and starts its timer.
    fn publish(&self, cold: &mut Cold, token: Token) -> (u64, Instant) {
        let token = Arc::new(token);
        let installed = (token.generation, token.expires_at);
        // A retired token's only users are requests already waiting for it, which read
        // the clock themselves: no timer outlives the layer's hold.
        let timer = match cold.machine().is_retired() {
            true => None,
            false => token.watch(self.idle_refresh()),
        };
        self.hot.publish(token);
        cold.installed(timer);
        installed
    }

    /// The dead point of the current token if it is still good, by the clock as well (a
    /// late timer must not make a flight retry at once).
    fn alive_until(&self) -> Option<Instant> {
        self.hot.living(Instant::now()).map(|t| t.dead_at)
    }

    /// What the timer does at the refresh point when no request comes.
    fn idle_refresh(&self) -> Option<OnDue> {
        let me = self.refresh_when_idle.then(|| Weak::clone(&self.me))?;
        Some(Box::new(move || {
            if let Some(state) = me.upgrade() {
                state.refresh_idle();
            }
        }))
    }

    /// Starts an idle refresh at `at`, on a task of its own holding the state weakly: after
    /// a flight that died while no token was usable, when no request may come to start one.
    fn idle_retry_at(&self, at: Instant) -> Option<AbortHandle> {
        let me = Weak::clone(&self.me);
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let task = runtime.spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(state) = me.upgrade() {
                state.refresh_idle();
            }
        });
        Some(task.abort_handle())
    }

    /// The refresh point came with no request: starts a refresh as a request would, if it
    /// can fetch.
    fn refresh_idle(self: &Arc<Self>) {
        let fetch = self.lock().idle_fetcher();
        if let Some(fetch) = fetch {
            tracing::debug!("refreshing an idle token at its refresh point");
            self.refresh_in_background(|| fetch);
        }
    }
}

impl Drop for TokenState {
    fn drop(&mut self) {
        // Nobody is left to use a token: stop the timer and any flight backing off.
        self.lock().stop_tasks();
    }
}
