//! The flight: one attempt at a token at a time, its retries while the token is still good,
//! and how its waiters learn the outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::{sleep_until, Instant};

use crate::error::Error;
use crate::grant::Grant;

/// A boxed future: only on the cold path.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Performs an attempt: the service side implements it by sending requests through the
/// wrapped service, so the state machine never sees HTTP.
pub(crate) trait Fetch: Send + 'static {
    fn fetch(&self, plan: Plan) -> BoxFuture<Result<Grant, Setback>>;

    /// Another of the same, for a later flight.
    fn clone_box(&self) -> Box<dyn Fetch>;
}

/// What the next attempt should do, decided from the current token.
pub(crate) struct Plan {
    /// The token to refresh, if there is one.
    pub(crate) current: Option<Grant>,
    /// The current token is expired or revoked: a refresh would only be rejected.
    pub(crate) login_first: bool,
}

/// A failed attempt, and what it says about the next one.
#[derive(Debug)]
pub(crate) struct Setback {
    pub(crate) error: Error,
    pub(crate) cause: Cause,
    /// How long the server asked not to be asked again (`Retry-After`), if it did.
    pub(crate) server_wait: Option<Duration>,
}

impl Setback {
    /// A failure with no word from the server on when to come back.
    pub(crate) fn new(error: Error, cause: Cause) -> Self {
        Setback {
            error,
            cause,
            server_wait: None,
        }
    }
}

/// Why an attempt failed, as far as the next one is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The server could not be reached or could not answer (transport, timeout, a 5xx, a
    /// 429, the credentials provider): it may be back any moment.
    Outage,
    /// The server judged the credentials or the token and said no (wrong password, a token
    /// it will not refresh), or the layer will not send them: asking again unasked would
    /// only count against the account.
    Rejection,
    /// The server answered with something else the layer cannot use (an unusable body, a
    /// 404 from a gateway with no backend): it may change, but not within seconds.
    Unusable,
}

/// What a flight reports to: the shared token state (or, in tests, a dummy).
pub(crate) trait FlightControl: Send + Sync + 'static {
    /// The flight is about to start, fetching with `fetch` (the control may keep another
    /// of it, for later flights).
    fn launching(&self, fetch: &dyn Fetch);

    /// The flight is under way on `task`.
    fn launched(&self, task: AbortHandle);

    /// What the next attempt should do.
    fn plan(&self) -> Plan;

    /// Publishes an attempt's outcome; returns when to try again if the flight goes on.
    fn settle(&self, outcome: Result<Grant, Setback>, sent_at: Instant) -> Option<Instant>;

    /// The flight ended without landing: its waiters must not wait for it.
    fn abandon(&self);

    /// Notified when the flight may have to try again before its backoff ends (a wake-up
    /// can be stale).
    fn wake_ups(&self) -> Arc<Notify>;

    /// Whether to try again now: the current token was revoked (only a new one helps, and
    /// callers wait for it), or somebody asked for a new token now.
    fn retry_now(&self) -> bool;

    /// The backoff ran its course: the flight tries again.
    fn backoff_ended(&self);
}

/// Owns one flight: one attempt, and its retries while the token is still good.
///
/// It holds its control weakly: once nobody holds the state (the layer, its services and
/// every waiting request are gone) the flight has no one to fly for, and ends. If it ends
/// without landing otherwise (a panic in the wrapped service, a runtime shutting down), its
/// `Drop` abandons it, so nobody waits on a flight that is gone.
#[derive(Debug)]
pub(crate) struct Flight<C: FlightControl> {
    control: Weak<C>,
    wake_ups: Arc<Notify>,
    runtime: tokio::runtime::Handle,
    landed: bool,
}

impl<C: FlightControl> Flight<C> {
    /// A flight reporting to `control`, to be launched on `runtime`.
    pub(crate) fn new(control: &Arc<C>, runtime: tokio::runtime::Handle) -> Self {
        Flight {
            control: Arc::downgrade(control),
            wake_ups: control.wake_ups(),
            runtime,
            landed: false,
        }
    }

    /// Starts the flight on its own task, fetching with `fetch`, and tells the control.
    pub(crate) fn launch(self, fetch: Box<dyn Fetch>) {
        let control = self.control.upgrade();
        if let Some(control) = &control {
            control.launching(fetch.as_ref());
        }
        let runtime = self.runtime.clone();
        let span = tracing::debug_span!("token_flight");
        let task = runtime.spawn(tracing::Instrument::instrument(self.fly(fetch), span));
        if let Some(control) = control {
            control.launched(task.abort_handle());
        }
    }

    async fn fly(mut self, fetch: Box<dyn Fetch>) {
        loop {
            let Some(plan) = self.control.upgrade().map(|control| control.plan()) else {
                return self.land();
            };
            let sent_at = Instant::now();
            let outcome = fetch.fetch(plan).await;
            let Some(control) = self.control.upgrade() else {
                return self.land();
            };
            let Some(retry_at) = control.settle(outcome, sent_at) else {
                return self.land();
            };
            drop(control);
            self.wait_out_backoff(retry_at).await;
        }
    }

    fn land(&mut self) {
        self.landed = true;
    }

    /// Sleeps until `retry_at`, or until the control says to try now.
    async fn wait_out_backoff(&self, retry_at: Instant) {
        let sleep = sleep_until(retry_at);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => {
                    if let Some(control) = self.control.upgrade() {
                        control.backoff_ended();
                    }
                    return;
                }
                _ = self.wake_ups.notified() => {
                    // A wake-up can be stale: `Notify` keeps one for a flight that was not
                    // yet waiting, possibly from a revocation long since handled.
                    if self.control.upgrade().is_none_or(|control| control.retry_now()) {
                        return;
                    }
                }
            }
        }
    }
}

impl<C: FlightControl> Drop for Flight<C> {
    fn drop(&mut self) {
        if self.landed {
            return;
        }
        if let Some(control) = self.control.upgrade() {
            control.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;
    use crate::error::Exchange;

    /// A control that retries after the delays it is given, then lands; and counts.
    #[derive(Default)]
    struct Dummy {
        retries: Mutex<VecDeque<Duration>>,
        launched: AtomicUsize,
        settled: AtomicUsize,
        abandoned: AtomicUsize,
        backoffs_ended: AtomicUsize,
        revoked: AtomicBool,
        wake: Arc<Notify>,
    }

    impl FlightControl for Dummy {
        fn launching(&self, _: &dyn Fetch) {}

        fn launched(&self, _: AbortHandle) {
            self.launched.fetch_add(1, Ordering::SeqCst);
        }

        fn plan(&self) -> Plan {
            Plan {
                current: None,
                login_first: true,
            }
        }

        fn settle(&self, _: Result<Grant, Setback>, _: Instant) -> Option<Instant> {
            self.settled.fetch_add(1, Ordering::SeqCst);
            let retry_in = self.retries.lock().unwrap().pop_front()?;
            Some(Instant::now() + retry_in)
        }

        fn abandon(&self) {
            self.abandoned.fetch_add(1, Ordering::SeqCst);
        }

        fn wake_ups(&self) -> Arc<Notify> {
            Arc::clone(&self.wake)
        }

        fn retry_now(&self) -> bool {
            self.revoked.load(Ordering::SeqCst)
        }

        fn backoff_ended(&self) {
            self.backoffs_ended.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Answers every fetch with a transport error, or panics if told to.
    struct Failing {
        panics: bool,
    }

    impl Fetch for Failing {
        fn fetch(&self, _: Plan) -> BoxFuture<Result<Grant, Setback>> {
            let panics = self.panics;
            Box::pin(async move {
                assert!(!panics, "the wrapped service panicked");
                let error = Error::transport(Exchange::Login, "node down");
                Err(Setback::new(error, Cause::Outage))
            })
        }

        fn clone_box(&self) -> Box<dyn Fetch> {
            Box::new(Failing {
                panics: self.panics,
            })
        }
    }

    fn launch(retries: &[u64], panics: bool) -> Arc<Dummy> {
        let dummy = Arc::new(Dummy::default());
        let delays = retries.iter().map(|s| Duration::from_secs(*s));
        dummy.retries.lock().unwrap().extend(delays);
        let runtime = tokio::runtime::Handle::current();
        Flight::new(&dummy, runtime).launch(Box::new(Failing { panics }));
        dummy
    }

    async fn run_for(time: Duration) {
        tokio::time::advance(time).await;
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flight_retries_after_each_delay_then_lands() {
        let dummy = launch(&[10, 20], false);
        run_for(Duration::ZERO).await;
        assert_eq!(dummy.settled.load(Ordering::SeqCst), 1);
        run_for(Duration::from_secs(10)).await;
        assert_eq!(dummy.settled.load(Ordering::SeqCst), 2);
        run_for(Duration::from_secs(19)).await;
        assert_eq!(dummy.settled.load(Ordering::SeqCst), 2, "still backing off");
        run_for(Duration::from_secs(1)).await;
        assert_eq!(dummy.settled.load(Ordering::SeqCst), 3);
        run_for(Duration::from_secs(60)).await;
        assert_eq!(dummy.settled.load(Ordering::SeqCst), 3, "landed");
        assert_eq!(dummy.backoffs_ended.load(Ordering::SeqCst), 2);
        assert_eq!(dummy.abandoned.load(Ordering::SeqCst), 0);
        assert_eq!(
            dummy.launched.load(Ordering::SeqCst),
            1,
            "one launch, told once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_flight_whose_task_dies_is_abandoned_once() {
        let dummy = launch(&[], true);
        run_for(Duration::ZERO).await;
        assert_eq!(dummy.settled.load(Ordering::SeqCst), 0);
        assert_eq!(dummy.abandoned.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_that_asks_to_retry_now_cuts_the_backoff_short_and_a_stale_one_does_not() {
        let dummy = launch(&[30, 30], false);
        run_for(Duration::ZERO).await;
        dummy.wake.notify_one();
        run_for(Duration::ZERO).await;
        assert_eq!(
            dummy.settled.load(Ordering::SeqCst),
            1,
            "nothing was revoked"
        );

        dummy.revoked.store(true, Ordering::SeqCst);
        dummy.wake.notify_one();
        run_for(Duration::ZERO).await;
        assert_eq!(dummy.settled.load(Ordering::SeqCst), 2, "retried at once");
        let ended = dummy.backoffs_ended.load(Ordering::SeqCst);
        assert_eq!(ended, 0, "cut short, not run out");
    }
}
