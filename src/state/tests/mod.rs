//! The shared token state and its flights, on tokio's paused clock, through a fake `Fetch`
//! that answers from a script.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::token::Phase;
use super::{
    BoxFuture, Cause, Fetch, Joined, Lookup, Plan, Setback, Settlement, Timing, TokenState,
};
use crate::error::{Error, Exchange};
use crate::grant::{Grant, Secret};

mod late_timer;
mod recovery;

/// Reports a failed attempt to `state`'s machine as its flight would; when to try again.
fn record_failure(state: &TokenState, setback: Setback) -> Option<Instant> {
    let failed = super::machine::Event::Failed {
        setback,
        alive_until: state.alive_until(),
        jitter: 0.5,
    };
    match state.decide(&mut state.lock(), failed) {
        super::machine::Next::Settle { retry_at, .. } => retry_at,
        other => panic!("a failure settles, not {other:?}"),
    }
}

/// What the fake answers a fetch with.
enum Step {
    /// A token living that many seconds.
    Grant(u64),
    /// A transport error: an outage.
    Fail,
    /// A transport error after that many seconds.
    FailAfter(u64),
    /// A failure of that cause, the server asking for that many seconds, if any.
    Setback(Cause, Option<u64>),
    /// The wrapped service panics: the flight's task dies.
    Panic,
}

/// A `Fetch` that answers from a script and counts what it was asked.
#[derive(Clone, Default)]
struct Script {
    steps: Arc<Mutex<VecDeque<Step>>>,
    fetches: Arc<AtomicUsize>,
    plans: Arc<Mutex<Vec<(bool, bool)>>>,
}

impl Script {
    fn of(steps: impl IntoIterator<Item = Step>) -> Self {
        let script = Script::default();
        script.steps.lock().unwrap().extend(steps);
        script
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Each plan as (had a token to refresh, asked to log in first).
    fn plans(&self) -> Vec<(bool, bool)> {
        self.plans.lock().unwrap().clone()
    }

    fn boxed(&self) -> Box<dyn Fetch> {
        Box::new(self.clone())
    }
}

impl Fetch for Script {
    fn fetch(&self, plan: Plan) -> BoxFuture<Result<Grant, Setback>> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst);
        let plan = (plan.current.is_some(), plan.login_first);
        self.plans.lock().unwrap().push(plan);
        let step = self.steps.lock().unwrap().pop_front();
        Box::pin(async move {
            match step {
                Some(Step::Grant(secs)) => Ok(grant(n, secs)),
                Some(Step::Fail) => Err(outage()),
                Some(Step::FailAfter(n)) => {
                    tokio::time::sleep(secs(n)).await;
                    Err(outage())
                }
                Some(Step::Setback(cause, server_wait)) => Err(Setback {
                    error: Error::transport(Exchange::Refresh, "node down"),
                    cause,
                    server_wait: server_wait.map(Duration::from_secs),
                }),
                Some(Step::Panic) => panic!("the wrapped service panicked"),
                None => std::future::pending().await,
            }
        })
    }

    fn clone_box(&self) -> Box<dyn Fetch> {
        Box::new(self.clone())
    }
}

/// A transport error, as the flight reports it.
fn outage() -> Setback {
    Setback::new(
        Error::transport(Exchange::Refresh, "node down"),
        Cause::Outage,
    )
}

fn grant(n: usize, secs: u64) -> Grant {
    let token = Secret::new(format!("t0ken-{n}")).unwrap();
    Grant::new(token, Duration::from_secs(secs))
}

fn state(first_backoff: u64) -> Arc<TokenState> {
    TokenState::new(timing(first_backoff), None, false, record(None))
}

/// Where a state under test tells its transitions: `hook`, if any.
fn record(hook: Option<crate::event::Hook>) -> Arc<crate::record::Record> {
    Arc::new(crate::record::Record::new("test", hook))
}

/// Backoffs from `first_backoff` s to 600 s, or 2 s while down after an outage.
fn timing(first_backoff: u64) -> Timing {
    Timing {
        refresh_at: 0.5,
        first_backoff: secs(first_backoff),
        max_backoff: secs(600),
        max_backoff_while_down: secs(2),
    }
}

/// Moves the paused clock on, and lets the flight and timer tasks run.
async fn advance(by: Duration) {
    tokio::time::advance(by).await;
    settle().await;
}

async fn settle() {
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Leads the attempt for a state with no usable token.
fn lead(state: &Arc<TokenState>, script: &Script) -> Settlement {
    match state.join().unwrap() {
        Joined::Lead(flight, settlement) => {
            flight.launch(script.boxed());
            settlement
        }
        other => panic!("expected to lead, got {other:?}"),
    }
}

/// A state holding a 100 s token obtained now.
async fn with_token(first_backoff: u64, script: &Script) -> Arc<TokenState> {
    let state = state(first_backoff);
    lead(&state, script).wait().await.unwrap();
    state
}

fn due(state: &TokenState) -> Option<bool> {
    match state.lookup(&mut None) {
        Lookup::Send { due, .. } => Some(due),
        Lookup::Wait => None,
    }
}

#[tokio::test(start_paused = true)]
async fn an_installed_token_is_sent_fresh_then_due_then_not_at_all() {
    let script = Script::of([Step::Grant(100)]);
    let state = with_token(1, &script).await;
    assert_eq!(due(&state), Some(false), "fresh");
    advance(secs(61)).await;
    assert_eq!(due(&state), Some(true), "past the latest refresh point");
    advance(secs(34)).await;
    assert_eq!(due(&state), None, "at the dead point, 5 s before expiry");
    assert!(matches!(state.lookup_now(), Lookup::Wait));
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_flight() {
    let script = Script::of([Step::Grant(100)]);
    let state = state(1);
    let leader = lead(&state, &script);
    let followers: Vec<Settlement> = (0..9)
        .map(|_| match state.join().unwrap() {
            Joined::Follow(settlement) => settlement,
            other => panic!("expected to follow, got {other:?}"),
        })
        .collect();
    leader.wait().await.unwrap();
    for follower in followers {
        follower.wait().await.unwrap();
    }
    assert_eq!(script.fetches(), 1);
    assert!(matches!(state.join().unwrap(), Joined::Usable));
}

#[tokio::test(start_paused = true)]
async fn a_due_token_starts_one_background_refresh_however_often_asked() {
    let script = Script::of([Step::Grant(100), Step::Grant(100)]);
    let state = with_token(1, &script).await;
    advance(secs(61)).await;
    for _ in 0..10 {
        state.refresh_in_background(|| script.boxed());
    }
    settle().await;
    assert_eq!(script.fetches(), 2, "the login, then one refresh");
    assert_eq!(
        script.plans()[1],
        (true, false),
        "a refresh of the current token"
    );
    assert_eq!(due(&state), Some(false), "the new token is fresh");
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_token_and_retries_no_later_than_its_dead_point() {
    // A first backoff of 60 s (45-75 s) would retry after the dead point at 95 s.
    let script = Script::of([Step::Grant(100), Step::Fail, Step::Grant(100)]);
    let state = with_token(60, &script).await;
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    assert_eq!(script.fetches(), 2);
    assert_eq!(due(&state), Some(true), "still sent after the failure");

    advance(secs(95 - 61) - Duration::from_millis(1)).await;
    assert_eq!(script.fetches(), 2, "waiting out the backoff");
    advance(Duration::from_millis(1)).await;
    assert_eq!(script.fetches(), 3, "retried at the dead point");
    assert_eq!(due(&state), Some(false));
}

#[tokio::test(start_paused = true)]
async fn a_flight_is_backing_off_between_its_tries_and_running_during_them() {
    use super::machine::Attempt;
    let script = Script::of([Step::Grant(100), Step::Fail, Step::FailAfter(10)]);
    let state = with_token(1, &script).await;
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    let attempt = state.lock().machine().attempt();
    assert!(matches!(attempt, Attempt::BackingOff { .. }), "{attempt:?}");
    // The first backoff is 1 s, give or take a quarter.
    advance(secs(2)).await;
    assert_eq!(script.fetches(), 3, "the second try is under way");
    assert_eq!(state.lock().machine().attempt(), Attempt::Running);
}

#[tokio::test(start_paused = true)]
async fn a_flight_that_dies_releases_its_waiters_with_an_error() {
    let script = Script::of([Step::Panic]);
    let state = state(10);
    let settlement = lead(&state, &script);
    let error = tokio::time::timeout(secs(1), settlement.wait())
        .await
        .expect("released, not left waiting")
        .unwrap_err();
    assert!(error.to_string().contains("ended early"), "{error}");
    // No usable token, so callers during the backoff get that error without a new flight.
    assert!(state.join().is_err());
    assert_eq!(script.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_flight_dies_with_a_valid_token_the_next_refresh_waits_out_the_backoff() {
    let script = Script::of([Step::Grant(100), Step::Panic, Step::Grant(100)]);
    let state = with_token(10, &script).await;
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    assert_eq!(script.fetches(), 2);
    assert!(
        !state.refreshing.load(Ordering::SeqCst),
        "the dead flight let go"
    );

    // A panicking inner service must not mean a refresh per request.
    state.refresh_in_background(|| script.boxed());
    settle().await;
    assert_eq!(script.fetches(), 2, "no new refresh during the backoff");
    assert_eq!(due(&state), Some(true), "the token is still sent");

    advance(secs(13)).await; // past the longest 10 s backoff (+25%)
    state.refresh_in_background(|| script.boxed());
    settle().await;
    assert_eq!(script.fetches(), 3, "refreshed once the backoff is over");
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_cuts_the_flights_backoff_short() {
    let script = Script::of([Step::Grant(100), Step::Fail, Step::Grant(100)]);
    let state = with_token(30, &script).await;
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    assert_eq!(script.fetches(), 2, "failed, now backing off");

    state.revoke(state.hot.current().unwrap().generation);
    assert_eq!(due(&state), None, "a revoked token is not sent");
    settle().await;
    assert_eq!(
        script.fetches(),
        3,
        "retried at once, not after the backoff"
    );
    assert_eq!(script.plans()[2], (true, true), "by logging in again");
    assert_eq!(due(&state), Some(false));
}

#[tokio::test(start_paused = true)]
async fn a_401_for_an_older_token_revokes_nothing() {
    let script = Script::of([Step::Grant(100), Step::Grant(100)]);
    let state = with_token(1, &script).await;
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    state.revoke(1);
    assert_eq!(due(&state), Some(false), "generation 2 is still sent");
    state.revoke(2);
    assert_eq!(due(&state), None);
}

#[tokio::test(start_paused = true)]
async fn states_that_fail_together_retry_apart() {
    let mut retries = Vec::new();
    for _ in 0..4 {
        let state = state(10);
        assert!(lead(&state, &Script::of([Step::Fail]))
            .wait()
            .await
            .is_err());
        let wait = state.lock().machine().held_until().unwrap() - Instant::now();
        let spread = Duration::from_millis(7_500)..Duration::from_millis(12_500);
        assert!(
            spread.contains(&wait),
            "10 s, give or take a quarter: {wait:?}"
        );
        retries.push(wait);
    }
    retries.sort();
    retries.dedup();
    assert_eq!(retries.len(), 4, "each its own backoff: {retries:?}");
}

#[tokio::test(start_paused = true)]
async fn callers_get_the_last_failure_until_the_backoff_ends() {
    let script = Script::of([Step::Fail, Step::Grant(100)]);
    let state = state(10);
    assert!(lead(&state, &script).wait().await.is_err());
    let retry_after = state.lock().machine().held_until().unwrap();

    tokio::time::advance(retry_after - Instant::now() - Duration::from_nanos(1)).await;
    assert!(state.join().is_err(), "still backing off");
    assert_eq!(script.fetches(), 1);
    tokio::time::advance(Duration::from_nanos(1)).await;
    lead(&state, &script).wait().await.unwrap();
    assert_eq!(script.fetches(), 2, "a new attempt at the very instant");
}

#[tokio::test(start_paused = true)]
async fn the_hook_hears_when_the_next_attempt_may_start() {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    let hook: crate::event::Hook = Arc::new(move |event| {
        if let crate::event::TokenEvent::Failed { retry_in, .. } = event {
            log.lock().unwrap().push(*retry_in);
        }
    });
    let state = TokenState::new(timing(8), None, false, record(Some(hook)));
    let script = Script::of([Step::Fail]);
    assert!(lead(&state, &script).wait().await.is_err());
    let heard = heard.lock().unwrap().clone();
    assert_eq!(heard.len(), 1);
    assert!(
        (secs(6)..=secs(10)).contains(&heard[0]),
        "8 s give or take a quarter: {heard:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn debug_shows_the_generation_and_phase_but_never_the_token() {
    let script = Script::of([Step::Grant(100)]);
    let state = with_token(1, &script).await;
    let shown = format!("{state:?}");
    assert!(shown.contains("generation: Some(1)"), "{shown}");
    assert!(shown.contains("Fresh"), "{shown}");
    assert!(!shown.contains("t0ken"), "{shown}");
}

#[tokio::test(start_paused = true)]
async fn status_shows_a_handed_in_token_without_installing_it() {
    let handed_in = grant(0, 100);
    let state = TokenState::new(timing(1), Some(handed_in), true, record(None));
    advance(secs(60)).await;
    let status = state.status();
    assert_eq!(status.generation, 1);
    assert_eq!(status.phase, crate::status::TokenPhase::Due);
    assert_eq!(
        status.expires_in,
        Some(secs(40)),
        "counted from when it was handed in"
    );
    assert!(state.hot.current().is_none(), "nothing installed");
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert_eq!(tasks, 0, "no timer started, no idle refresh scheduled");
    assert!(
        matches!(state.join().unwrap(), Joined::Usable),
        "the first use installs it"
    );
    assert_eq!(due(&state), Some(true));
    assert_eq!(state.status().generation, 1);
}

// A token retired while its login is being sent: the login ends for its waiter, and its
// token starts no timer, as nothing of the layer holds it any more.
#[tokio::test(start_paused = true)]
async fn a_login_that_ends_after_its_token_was_retired_leaves_no_timer() {
    let script = Script::of([Step::Grant(100)]);
    let state = state(1);
    let waiting = lead(&state, &script);
    state.retire();
    waiting.wait().await.unwrap();
    settle().await;
    assert!(
        matches!(state.lookup_now(), Lookup::Send { .. }),
        "the waiter's token"
    );
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert_eq!(tasks, 0, "no flight, no timer");
}
