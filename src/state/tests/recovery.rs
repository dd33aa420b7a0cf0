//! Recovering from an outage: the short backoff while down, idle refresh that keeps trying,
//! the server's `Retry-After`, and a new token asked for now.

use super::*;

/// A state that refreshes when idle (and so keeps trying while down), backoff from 1 s.
fn idle_state() -> Arc<TokenState> {
    TokenState::new(timing(1), None, true, record(None))
}

/// How long from now the next attempt may start, by the failure callers are given.
fn held_for(state: &TokenState) -> Duration {
    let retry_after = state.lock().machine().held_until().expect("a failure");
    retry_after - Instant::now()
}

/// Moves the clock just past `wait`: timers fire on whole milliseconds.
async fn advance_past(wait: Duration) {
    advance(wait + Duration::from_millis(1)).await;
}

/// Moves the clock on by `total`, a tenth of a second at a time, so a flight backing off
/// runs at each of its retry instants.
async fn run_for(total: Duration) {
    let step = Duration::from_millis(100);
    for _ in 0..(total.as_millis() / step.as_millis()) {
        advance(step).await;
    }
}

/// Fails `n` attempts in a row for a state with no token, each led by a caller once the
/// last backoff ended; returns each backoff.
async fn fail_while_down(state: &Arc<TokenState>, script: &Script, n: usize) -> Vec<Duration> {
    let mut waits = Vec::new();
    for _ in 0..n {
        assert!(lead(state, script).wait().await.is_err());
        waits.push(held_for(state));
        advance(*waits.last().unwrap()).await;
    }
    waits
}

#[tokio::test(start_paused = true)]
async fn while_down_after_an_outage_the_backoff_stops_at_its_short_cap() {
    let script = Script::of((0..8).map(|_| Step::Fail));
    let state = state(1);
    let waits = fail_while_down(&state, &script, 8).await;
    // 1 s, then 2 s, each give or take a quarter: never the 4, 8, 16... of the full backoff.
    assert!(waits[0] <= Duration::from_millis(1250), "{waits:?}");
    assert!(
        waits[1..]
            .iter()
            .all(|w| *w >= Duration::from_millis(1500) && *w <= Duration::from_millis(2500)),
        "{waits:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn while_down_a_rejection_gets_the_full_backoff() {
    let script = Script::of((0..5).map(|_| Step::Setback(Cause::Rejection, None)));
    let state = state(1);
    let waits = fail_while_down(&state, &script, 5).await;
    // 16 s give or take a quarter: a wrong password is not an outage.
    assert!(waits[4] >= secs(12), "{waits:?}");
}

#[tokio::test(start_paused = true)]
async fn with_idle_refresh_the_flight_keeps_trying_while_down_until_a_token_comes() {
    let mut steps: Vec<Step> = (0..20).map(|_| Step::Fail).collect();
    steps.push(Step::Grant(100));
    let script = Script::of(steps);
    let state = idle_state();
    assert!(lead(&state, &script).wait().await.is_err());
    // No caller from here on: the flight alone tries, about every 2 s.
    run_for(secs(30)).await;
    let tried = script.fetches();
    assert!((11..=21).contains(&tried), "{tried} attempts in 30 s");
    run_for(secs(30)).await;
    assert_eq!(script.fetches(), 21);
    assert!(state.has_usable_token(), "usable again with no request");
    assert!(
        !state.refreshing.load(Ordering::SeqCst),
        "and the flight landed"
    );
}

#[tokio::test(start_paused = true)]
async fn without_idle_refresh_nobody_tries_while_nobody_asks() {
    let script = Script::of([Step::Fail, Step::Grant(100)]);
    let state = state(1);
    assert!(lead(&state, &script).wait().await.is_err());
    advance(secs(600)).await;
    assert_eq!(script.fetches(), 1);
    assert!(!state.refreshing.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn while_the_flight_keeps_trying_callers_are_turned_away_during_its_backoff() {
    let script = Script::of([Step::Fail, Step::Fail, Step::Grant(100)]);
    let state = idle_state();
    assert!(lead(&state, &script).wait().await.is_err());
    assert!(state.join().is_err(), "the last error, at once");
    assert_eq!(script.fetches(), 1, "and no request for it");
    advance_past(held_for(&state)).await;
    assert_eq!(script.fetches(), 2, "the flight tried again by itself");
    advance_past(held_for(&state)).await;
    assert!(matches!(state.join().unwrap(), Joined::Usable));
}

#[tokio::test(start_paused = true)]
async fn with_idle_refresh_a_rejection_ends_the_flight() {
    let script = Script::of([Step::Setback(Cause::Rejection, None), Step::Grant(100)]);
    let state = idle_state();
    assert!(lead(&state, &script).wait().await.is_err());
    advance(secs(600)).await;
    assert_eq!(script.fetches(), 1, "not tried again unasked");
    assert!(!state.refreshing.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn with_idle_refresh_a_flight_that_dies_while_down_is_started_again_after_its_backoff() {
    let script = Script::of([Step::Fail, Step::Panic, Step::Grant(100)]);
    let state = idle_state();
    assert!(lead(&state, &script).wait().await.is_err());
    run_for(secs(10)).await;
    assert_eq!(
        script.fetches(),
        3,
        "the flight died, and a new one came unasked"
    );
    assert!(state.has_usable_token());
}

#[tokio::test(start_paused = true)]
async fn a_revocation_that_cuts_a_servers_wait_short_lets_callers_follow_the_new_attempt() {
    // The refresh after the server's 503 (Retry-After: 40) hangs: the script has no step.
    let script = Script::of([Step::Grant(100), Step::Setback(Cause::Outage, Some(40))]);
    let state = with_token(1, &script).await;
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    state.revoke(1);
    settle().await;
    assert_eq!(script.fetches(), 3, "retried at once for the callers");
    assert!(
        matches!(state.join().unwrap(), Joined::Follow(_)),
        "callers follow that attempt, not the server's old answer"
    );
}

#[tokio::test(start_paused = true)]
async fn the_servers_wait_sets_the_earliest_next_attempt_capped_at_the_largest_backoff() {
    let script = Script::of([
        Step::Setback(Cause::Outage, Some(10)),
        Step::Setback(Cause::Outage, Some(100_000)),
    ]);
    let state = state(1);
    assert!(lead(&state, &script).wait().await.is_err());
    assert_eq!(held_for(&state), secs(10), "not the 1 s backoff");
    advance(secs(10)).await;
    assert!(lead(&state, &script).wait().await.is_err());
    assert_eq!(held_for(&state), secs(600), "no more than max_backoff");
}

#[tokio::test(start_paused = true)]
async fn the_servers_wait_holds_a_background_retry_even_past_the_dead_point() {
    let script = Script::of([
        Step::Grant(100),
        Step::Setback(Cause::Outage, Some(40)),
        Step::Grant(100),
    ]);
    let state = with_token(1, &script).await;
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    assert_eq!(script.fetches(), 2);
    // The token dies at 95 s; the server asked for nothing before 101 s.
    advance(secs(39)).await;
    assert_eq!(due(&state), None, "dead");
    assert!(
        state.join().is_err(),
        "callers get the server's answer meanwhile"
    );
    assert_eq!(script.fetches(), 2);
    advance(secs(1)).await;
    assert_eq!(script.fetches(), 3);
    assert_eq!(due(&state), Some(false));
}

#[tokio::test(start_paused = true)]
async fn refresh_now_while_fresh_begins_a_refresh_and_the_token_stays_usable() {
    let script = Script::of([Step::Grant(100), Step::Grant(100)]);
    let state = with_token(1, &script).await;
    let (settlement, flight) = state.refresh_now().unwrap();
    flight.expect("nobody was trying").launch(script.boxed());
    assert_eq!(due(&state), Some(false), "still sent meanwhile");
    settlement.wait().await.unwrap();
    assert_eq!(script.fetches(), 2);
    assert_eq!(script.plans()[1], (true, false), "a refresh, not a login");
    assert_eq!(state.lock().generation(), 2);
}

#[tokio::test(start_paused = true)]
async fn refresh_now_ignores_the_backoff_callers_are_held_to() {
    let script = Script::of([Step::Fail, Step::Grant(100)]);
    let state = state(60);
    assert!(lead(&state, &script).wait().await.is_err());
    assert!(state.join().is_err(), "callers wait out the backoff");
    let (settlement, flight) = state.refresh_now().unwrap();
    flight
        .expect("no flight was under way")
        .launch(script.boxed());
    assert!(
        matches!(state.join(), Ok(Joined::Follow(_))),
        "callers follow the new attempt, not the failure it supersedes"
    );
    settlement.wait().await.unwrap();
    assert!(state.has_usable_token());
}

#[tokio::test(start_paused = true)]
async fn refresh_now_hurries_a_flight_backing_off_and_joins_it() {
    let script = Script::of([Step::Grant(100), Step::Fail, Step::Grant(100)]);
    let state = with_token(60, &script).await;
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    assert_eq!(script.fetches(), 2, "failed; backing off for 45 s or more");
    let asked_at = Instant::now();
    let (settlement, flight) = state.refresh_now().unwrap();
    assert!(flight.is_none(), "the flight under way is joined");
    settlement.wait().await.unwrap();
    assert_eq!(
        Instant::now(),
        asked_at,
        "tried at once, not after the backoff"
    );
    assert_eq!(script.fetches(), 3);
    assert_eq!(state.lock().generation(), 2);
}

#[tokio::test(start_paused = true)]
async fn refresh_now_during_an_attempt_joins_it_and_asks_for_no_second_one() {
    let script = Script::of([Step::Grant(100), Step::FailAfter(5), Step::Grant(100)]);
    let state = with_token(60, &script).await;
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    let (settlement, flight) = state.refresh_now().unwrap();
    assert!(flight.is_none(), "the attempt under way is joined");
    advance(secs(5)).await;
    assert!(
        settlement.wait().await.is_err(),
        "its outcome is the answer"
    );
    // The failure came at 66 s; the next try is at the dead point, 95 s.
    advance(secs(28)).await;
    assert_eq!(
        script.fetches(),
        2,
        "the flight waits out its backoff as usual"
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_now_while_the_flight_keeps_trying_lets_callers_follow_the_hurried_attempt() {
    let script = Script::of([Step::Fail, Step::FailAfter(1), Step::Grant(100)]);
    let state = idle_state();
    assert!(lead(&state, &script).wait().await.is_err());
    assert!(state.join().is_err(), "turned away during the backoff");
    let (settlement, flight) = state.refresh_now().unwrap();
    assert!(flight.is_none());
    let follower = match state.join().unwrap() {
        Joined::Follow(settlement) => settlement,
        other => panic!("expected to follow the hurried attempt, got {other:?}"),
    };
    advance_past(secs(1)).await;
    assert!(settlement.wait().await.is_err());
    assert!(follower.wait().await.is_err(), "both hear the same attempt");
    assert_eq!(script.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn with_idle_refresh_a_refresh_that_dies_is_started_again_after_its_backoff() {
    let script = Script::of([Step::Grant(100), Step::Panic, Step::Grant(100)]);
    let state = idle_state();
    lead(&state, &script).wait().await.unwrap();
    advance(secs(61)).await;
    state.refresh_in_background(|| script.boxed());
    settle().await;
    assert_eq!(script.fetches(), 2, "the refresh died");
    run_for(secs(3)).await;
    assert_eq!(script.fetches(), 3, "and a new one came unasked");
    assert_eq!(state.lock().generation(), 2);
}

#[tokio::test(start_paused = true)]
async fn with_idle_refresh_an_unusable_answer_is_tried_again_on_the_full_backoff() {
    let mut steps: Vec<Step> = (0..5)
        .map(|_| Step::Setback(Cause::Unusable, None))
        .collect();
    steps.push(Step::Grant(100));
    let script = Script::of(steps);
    let state = idle_state();
    assert!(lead(&state, &script).wait().await.is_err());
    run_for(secs(10)).await;
    // 1, 2, 4 s give or take a quarter: not the 2 s cap of an outage.
    assert!((3..=4).contains(&script.fetches()), "{}", script.fetches());
    run_for(secs(60)).await;
    assert!(state.has_usable_token(), "usable again with no request");
}
