//! The token state machine: fresh, due, dead; one flight at a time; generations; backoff.
//!
//! The hot path reads the current token and its phase from atomics and never takes the lock
//! or reads the clock: a timer task moves each token's phase forward at its refresh point
//! and at its dead point. Everything else (starting a flight, recording a failure, waiting)
//! is the cold path and takes a plain mutex that is never held across an `.await`.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;
use tokio::time::{sleep_until, Instant};

use crate::event::{Hook, TokenEvent};
use crate::registry::{self, CacheId};
use crate::{Error, Exchange, Grant, MAX_LIFETIME};

/// How much earlier than its expiry a token stops being sent, at most.
const MAX_MARGIN: Duration = Duration::from_secs(5);
/// The share of a lifetime over which the refresh point is spread, so a fleet started
/// together does not refresh in lockstep.
const SPREAD: f64 = 0.1;
/// Rounds a waiter makes before concluding that tokens die faster than they arrive.
pub(crate) const MAX_WAIT_ROUNDS: u8 = 3;

/// Where a token is on its timeline. Phases only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Send it.
    Fresh = 0,
    /// Send it, and make sure a refresh is under way.
    Due = 1,
    /// Too close to expiry to send: wait for a new one.
    Dead = 2,
    /// The server refused it: wait for a new one, from a new login if possible.
    Revoked = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Fresh,
            1 => Phase::Due,
            2 => Phase::Dead,
            _ => Phase::Revoked,
        }
    }
}

/// One token with its timeline.
pub(crate) struct Token {
    grant: Grant,
    header: HeaderValue,
    generation: u64,
    phase: AtomicU8,
    refresh_at: Instant,
    dead_at: Instant,
    expires_at: Instant,
}

impl Token {
    fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves the phase forward to `to`; returns whether it moved.
    fn advance(&self, to: Phase) -> bool {
        self.phase.fetch_max(to as u8, Ordering::AcqRel) < to as u8
    }

    fn phase_at(&self, now: Instant) -> Phase {
        if now >= self.dead_at {
            Phase::Dead
        } else if now >= self.refresh_at {
            Phase::Due
        } else {
            Phase::Fresh
        }
    }
}

/// When a token should be refreshed: `refresh_at` is the share of the lifetime left at
/// the refresh point; after a failure the next attempt waits `first_backoff`, doubling up to
/// `max_backoff`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) refresh_at: f64,
    pub(crate) first_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

/// What the next attempt should do, decided under the lock from the current token.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The token to refresh, if there is one.
    pub(crate) current: Option<Grant>,
    /// The current token is expired or was refused: a refresh would only be refused too.
    pub(crate) login_first: bool,
}

/// A boxed future: only on the cold path.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Performs an attempt: the service side implements it by sending requests through the
/// wrapped service, so the cache never sees HTTP.
pub(crate) trait Fetch: Send + 'static {
    fn fetch(&self, plan: Plan) -> BoxFuture<Result<Grant, Error>>;
}

/// What the waiters of an attempt learn when it ends.
#[derive(Debug, Clone)]
enum Settled {
    Pending,
    Installed,
    Failed(Error),
}

/// How a caller without a usable token takes part in getting one.
pub(crate) enum Joined {
    /// There is one after all.
    Usable,
    /// An attempt is under way: wait for it to settle.
    Follow(Settlement),
    /// Nobody is trying: launch this flight, then wait for it to settle.
    Lead(Flight, Settlement),
}

/// The end of the attempt a caller joined.
pub(crate) struct Settlement(watch::Receiver<Settled>);

impl Settlement {
    /// Waits for the attempt to end; `Ok` means a new token may be there.
    pub(crate) async fn wait(mut self) -> Result<(), Error> {
        // The sender lives in the cache, which the waiting request holds: `changed` cannot
        // fail.
        let _ = self.0.changed().await;
        let outcome = self.0.borrow_and_update().clone();
        match outcome {
            Settled::Failed(error) => Err(error),
            Settled::Pending | Settled::Installed => Ok(()),
        }
    }
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
    /// No usable token: [`Cache::join`] the attempt that gets one.
    Wait,
}

struct Failure {
    error: Error,
    retry_after: Instant,
}

/// The cold state, behind the mutex.
#[derive(Default)]
struct Cold {
    /// The last failure while no token was usable, and when trying again is allowed.
    failure: Option<Failure>,
    consecutive_failures: u32,
    generation: u64,
    timer: Option<AbortHandle>,
    /// A token handed in by the user, installed on first use, with when it was handed in.
    initial: Option<(Grant, Instant)>,
}

impl Cold {
    fn backing_off(&self, now: Instant) -> bool {
        self.failure.as_ref().is_some_and(|f| now < f.retry_after)
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
}

/// One token, shared by every clone of a service.
pub(crate) struct Cache {
    id: CacheId,
    /// Read by every request on every core: kept on cache lines of their own, away from
    /// the `Arc`'s reference counts that every request writes.
    hot: CachePadded<Hot>,
    /// A flight is under way, or waiting out a backoff while the token is still valid.
    refreshing: AtomicBool,
    cold: Mutex<Cold>,
    settled: watch::Sender<Settled>,
    /// Cuts a flight's backoff short when its token is revoked under it.
    wake_flight: Notify,
    timing: Timing,
    rng: AtomicU64,
    hook: Option<Hook>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.hot.current.load();
        let token = current.as_deref();
        f.debug_struct("Cache")
            .field("generation", &token.map(|t| t.generation))
            .field("phase", &token.map(Token::phase))
            .field("refreshing", &self.refreshing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// A new cache, registered so response futures can find it by its id.
    pub(crate) fn new(timing: Timing, initial: Option<Grant>, hook: Option<Hook>) -> Arc<Self> {
        let cold = Cold {
            initial: initial.map(|grant| (grant, Instant::now())),
            ..Cold::default()
        };
        let id = registry::next_id();
        let cache = Arc::new(Cache {
            id,
            hot: CachePadded(Hot {
                current: ArcSwapOption::empty(),
                generation: AtomicU64::new(0),
            }),
            refreshing: AtomicBool::new(false),
            cold: Mutex::new(cold),
            settled: watch::Sender::new(Settled::Pending),
            wake_flight: Notify::new(),
            timing,
            rng: AtomicU64::new(seed()),
            hook,
        });
        registry::register(id, &cache);
        cache
    }

    pub(crate) fn id(&self) -> CacheId {
        self.id
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

    /// Whether a waiter should go and send: the phase suffices, since `lookup_now` asks the
    /// clock as well right before the request leaves.
    fn has_usable_token(&self) -> bool {
        let current = self.hot.current.load();
        current.as_deref().is_some_and(|t| t.phase() <= Phase::Due)
    }

    fn usable(token: Option<&Token>) -> Lookup {
        let Some(token) = token else {
            return Lookup::Wait;
        };
        match token.phase() {
            phase @ (Phase::Fresh | Phase::Due) => Lookup::Send {
                header: token.header.clone(),
                generation: token.generation,
                due: phase == Phase::Due,
            },
            Phase::Dead | Phase::Revoked => Lookup::Wait,
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
            Ok(flight) => flight.launch(fetch()),
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
        if self.refreshing.load(Ordering::Acquire) {
            return Ok(Joined::Follow(settled));
        }
        if let Some(failure) = cold.failure.as_ref() {
            if Instant::now() < failure.retry_after {
                return Err(failure.error.clone());
            }
        }
        let flight = self.begin_flight(&mut cold)?;
        Ok(Joined::Lead(flight, settled))
    }

    /// A request carrying `generation` was answered 401: that token is no good.
    pub(crate) fn invalidate(&self, generation: u64) {
        let current = self.hot.current.load();
        if let Some(token) = current.as_deref() {
            if token.generation == generation && token.advance(Phase::Revoked) {
                tracing::debug!(generation, "token refused by the server; replacing it");
                self.wake_flight.notify_one();
                self.report(TokenEvent::Invalidated { generation });
            }
        }
    }

    fn current_is_revoked(&self) -> bool {
        let current = self.hot.current.load();
        current
            .as_deref()
            .is_some_and(|t| t.phase() == Phase::Revoked)
    }

    /// Tells the user's hook; never called with the lock held, so the hook may use the layer.
    fn report(&self, event: TokenEvent<'_>) {
        if let Some(hook) = &self.hook {
            // A panicking hook must not take a flight or a response down with it.
            let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&event)));
            if called.is_err() {
                tracing::warn!("the on_token hook panicked");
            }
        }
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
    fn begin_flight(self: &Arc<Self>, cold: &mut Cold) -> Result<Flight, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        cold.failure = None;
        self.refreshing.store(true, Ordering::Release);
        Ok(Flight {
            cache: Arc::clone(self),
            runtime,
            landed: false,
        })
    }

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

    /// Makes `grant`, obtained by a request sent at `sent_at`, the current token.
    fn install(&self, cold: &mut Cold, grant: Grant, sent_at: Instant) {
        let lifetime = grant.lifetime();
        let expires_at = sent_at + lifetime;
        let dead_at = expires_at - lifetime.min(MAX_MARGIN * 10) / 10;
        let due_at = (sent_at + lifetime.mul_f64(1.0 - self.timing.refresh_at)).min(dead_at);
        // The spread never eats more than half of the due window, so there is always a
        // stretch where the token is sent while the refresh runs.
        let spread = lifetime.mul_f64(SPREAD).min((dead_at - due_at) / 2);
        let refresh_at = due_at + spread.mul_f64(self.random());
        cold.generation += 1;
        let token = Token {
            header: grant.bearer_header(),
            grant,
            generation: cold.generation,
            phase: AtomicU8::new(Phase::Fresh as u8),
            refresh_at,
            dead_at,
            expires_at,
        };
        token.advance(token.phase_at(Instant::now()));
        let token = Arc::new(token);
        let timer = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(runtime.spawn(follow_timeline(Arc::downgrade(&token)))),
            // Nothing would ever mark it due or dead: a token nobody watches is not sent.
            Err(_) => {
                token.advance(Phase::Dead);
                None
            }
        };
        let generation = token.generation;
        self.hot.current.store(Some(token));
        self.hot.generation.store(generation, Ordering::Release);
        // Only now, with the new token published, retire the old one's timer: its drop
        // guard marks that old token dead, which must not be the current one.
        if let Some(old) = mem::replace(&mut cold.timer, timer.map(|t| t.abort_handle())) {
            old.abort();
        }
        cold.failure = None;
        cold.consecutive_failures = 0;
    }

    /// Records a failed attempt; returns when to try again if the flight should go on.
    fn record_failure(&self, cold: &mut Cold, error: Error) -> Option<Instant> {
        cold.consecutive_failures = cold.consecutive_failures.saturating_add(1);
        let now = Instant::now();
        let backoff = self.backoff(cold.consecutive_failures);
        let retry_after = now.checked_add(backoff).unwrap_or(now + MAX_LIFETIME);
        let current = self.hot.current.load();
        match current.as_deref() {
            // The token is still good: keep serving it and retry in the background, but
            // never later than the moment it dies.
            // The clock is asked too: a late timer must not make the flight retry at once.
            Some(token) if token.phase() < Phase::Dead && now < token.dead_at => {
                Some(retry_after.min(token.dead_at))
            }
            _ => {
                cold.failure = Some(Failure { error, retry_after });
                None
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        let Timing {
            first_backoff: first,
            max_backoff: max,
            ..
        } = self.timing;
        let step = first.saturating_mul(1 << doublings).min(max);
        // ±25%, so clients that failed together do not retry together.
        step.mul_f64(0.75 + 0.5 * self.random())
    }

    /// A number in `[0, 1)`, from splitmix64: cheap, and good enough to spread timers.
    fn random(&self) -> f64 {
        let mut z = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        registry::unregister(self.id);
        if let Some(timer) = self.lock().timer.take() {
            timer.abort();
        }
    }
}

/// Owns one flight: one attempt, and its retries while the token is still good.
///
/// If the flight ends without landing (a panic in the wrapped service, a runtime shutting
/// down), its `Drop` releases the waiters with an error, so nobody waits on a flight that
/// is gone.
pub(crate) struct Flight {
    cache: Arc<Cache>,
    runtime: tokio::runtime::Handle,
    landed: bool,
}

impl Flight {
    pub(crate) fn launch(self, fetch: Box<dyn Fetch>) {
        let runtime = self.runtime.clone();
        let span = tracing::debug_span!("token_flight");
        runtime.spawn(tracing::Instrument::instrument(self.fly(fetch), span));
    }

    async fn fly(mut self, fetch: Box<dyn Fetch>) {
        loop {
            let plan = self.cache.plan();
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
                _ = self.cache.wake_flight.notified() => {
                    // A wake-up can be stale: `Notify` keeps one for a flight that was not
                    // yet waiting, possibly from a revocation long since handled.
                    if self.cache.current_is_revoked() {
                        return;
                    }
                }
            }
        }
    }

    /// Publishes an attempt's outcome; returns when to try again if the flight goes on.
    fn settle(&mut self, outcome: Result<Grant, Error>, sent_at: Instant) -> Option<Instant> {
        let cache = &self.cache;
        let mut cold = cache.lock();
        let retry_at = match &outcome {
            Ok(grant) => {
                cache.install(&mut cold, grant.clone(), sent_at);
                cache.settled.send_replace(Settled::Installed);
                None
            }
            Err(error) => {
                let retry_at = cache.record_failure(&mut cold, error.clone());
                cache.settled.send_replace(Settled::Failed(error.clone()));
                retry_at
            }
        };
        if retry_at.is_none() {
            cache.refreshing.store(false, Ordering::Release);
            self.landed = true;
        }
        let (generation, failures, retry_after) = (
            cold.generation,
            cold.consecutive_failures,
            cold.failure.as_ref().map(|f| f.retry_after),
        );
        // Logs and the hook only once the lock is released: a subscriber or a hook may well
        // send requests through this very layer.
        drop(cold);
        let retry_in = retry_at.or(retry_after).map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        });
        match &outcome {
            Ok(grant) => {
                let lifetime_secs = grant.lifetime().as_secs_f64();
                tracing::debug!(generation, lifetime_secs, "new access token");
                cache.report(TokenEvent::Obtained { generation, grant });
            }
            Err(error) => {
                let retry_in_ms = retry_in.as_millis() as u64;
                tracing::warn!(%error, failures, retry_in_ms, "token request failed");
                cache.report(TokenEvent::Failed {
                    error,
                    consecutive_failures: failures,
                    retry_in,
                });
            }
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
        let mut cold = self.cache.lock();
        if let Some(retry_after) = self.cache.record_failure(&mut cold, error.clone()) {
            // The token is still valid, but this flight will not retry: make the next one
            // wait out the backoff too, or a panicking inner service means a refresh storm.
            cold.failure = Some(Failure {
                error: error.clone(),
                retry_after,
            });
        }
        self.cache.refreshing.store(false, Ordering::Release);
        self.cache
            .settled
            .send_replace(Settled::Failed(error.clone()));
        let failures = cold.consecutive_failures;
        let retry_in = cold.failure.as_ref().map_or(Duration::ZERO, |f| {
            f.retry_after.saturating_duration_since(Instant::now())
        });
        drop(cold);
        tracing::warn!(%error, failures, "token request failed");
        self.cache.report(TokenEvent::Failed {
            error: &error,
            consecutive_failures: failures,
            retry_in,
        });
    }
}

/// Moves a token to `Due` at its refresh point and to `Dead` at its dead point.
///
/// If the task ends early (aborted when the token is replaced, or its runtime shut down,
/// even before its first poll), the token is marked dead: a phase nobody will move again
/// must not keep a token alive.
fn follow_timeline(token: Weak<Token>) -> impl Future<Output = ()> + Send {
    let guard = KillOnDrop(token);
    async move {
        let token = &guard.0;
        let Some((refresh_at, dead_at)) = token.upgrade().map(|t| (t.refresh_at, t.dead_at)) else {
            return;
        };
        for (at, phase) in [(refresh_at, Phase::Due), (dead_at, Phase::Dead)] {
            sleep_until(at).await;
            match token.upgrade() {
                Some(token) => {
                    token.advance(phase);
                }
                None => return,
            }
        }
    }
}

struct KillOnDrop(Weak<Token>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.0.upgrade() {
            token.advance(Phase::Dead);
        }
    }
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // Each `RandomState` is keyed differently, which is all the spread needs.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
