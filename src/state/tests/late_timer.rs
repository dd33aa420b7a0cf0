//! A token whose timer runs late: the clock, not only the phase, decides whether it may
//! still be sent or retried.

use super::*;

/// A runtime nobody drives: a timer spawned there never runs.
struct Idle(Option<tokio::runtime::Runtime>);

impl Drop for Idle {
    fn drop(&mut self) {
        // Dropped inside a test's runtime, which may not block.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Installs a 100 s token whose timer never runs, as if it were late: its phase stays
/// fresh whatever the clock says, for as long as the returned runtime lives.
fn install_unwatched(state: &TokenState) -> Idle {
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let sent_at = Instant::now();
    let in_idle = idle.enter();
    state.install(&mut state.lock(), grant(0, 100), sent_at);
    drop(in_idle);
    Idle(Some(idle))
}

#[tokio::test(start_paused = true)]
async fn a_waiter_never_takes_a_token_past_its_dead_point_even_if_its_timer_is_late() {
    let state = state(1);
    let _idle = install_unwatched(&state);
    advance(secs(95)).await;
    assert_eq!(due(&state), Some(false), "the phase has not moved");
    assert!(
        matches!(state.lookup_now(), Lookup::Wait),
        "but the clock says dead"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_at_the_very_dead_point_is_not_retried_in_the_background() {
    let state = state(1);
    let _idle = install_unwatched(&state);
    let dead_at = state.hot.current().unwrap().dead_at;
    tokio::time::advance(dead_at - Instant::now() - Duration::from_nanos(1)).await;
    let just_before = record_failure(&state, outage());
    assert_eq!(
        just_before,
        Some(dead_at),
        "retried no later than the dead point"
    );
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_eq!(record_failure(&state, outage()), None);
    assert!(
        state.lock().machine().held_until().is_some(),
        "callers get the failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_for_a_token_marked_dead_early_is_not_retried_in_the_background() {
    let state = state(1);
    let _idle = install_unwatched(&state);
    // Marked dead before its time, as when its timer is gone.
    state.hot.current().unwrap().advance(Phase::Dead);
    assert_eq!(record_failure(&state, outage()), None);
    assert!(
        state.lock().machine().held_until().is_some(),
        "callers get the failure"
    );
}
