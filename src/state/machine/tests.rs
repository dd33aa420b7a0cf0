//! The machine as a table: one test per (attempt status, event), with no runtime, no clock
//! and no HTTP. Each row names where the machine starts, what happens, what it decides and
//! where it ends.

use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// Where the machine starts: the attempt's status, and whether a failure is held.
#[derive(Debug, Clone, Copy)]
enum From {
    Idle,
    Running,
    BackingOff,
    /// No usable token, the last failure held: callers are turned away until it ends.
    Down,
    /// Down, and with idle refresh the attempt keeps trying.
    DownRetrying,
}

fn timing() -> Timing {
    Timing {
        refresh_at: 0.5,
        first_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(30),
        max_backoff_while_down: Duration::from_secs(2),
    }
}

fn outage() -> Setback {
    Setback::new(Error::transport(Exchange::Login, "refused"), Cause::Outage)
}

fn refusal() -> Setback {
    let refused = Error::MissingCredentials;
    Setback::new(refused, Cause::Rejection)
}

fn failed(setback: Setback, alive_until: Option<Instant>) -> Event {
    Event::Failed {
        setback,
        alive_until,
        jitter: 0.5,
    }
}

/// A machine in `from`, at `now`.
fn machine(from: From, now: Instant) -> Machine {
    let idle_refresh = matches!(from, From::DownRetrying);
    let mut machine = Machine::new(timing(), idle_refresh);
    let alive = Some(now + Duration::from_secs(60));
    let steps: Vec<Event> = match from {
        From::Idle => vec![],
        From::Running => vec![Event::RefreshNow],
        From::BackingOff => vec![Event::RefreshNow, failed(outage(), alive)],
        From::Down | From::DownRetrying => vec![Event::RefreshNow, failed(outage(), None)],
    };
    for step in steps {
        machine.on(step, now);
    }
    machine
}

/// What the machine decided, in a word.
fn decided(next: &Next) -> &'static str {
    match next {
        Next::Stay => "stay",
        Next::Send => "send",
        Next::Start => "start",
        Next::Follow { wake: false } => "follow",
        Next::Follow { wake: true } => "follow, waking it",
        Next::TurnAway(error) if error.to_string().contains("dead on arrival") => {
            "turn away: dead on arrival"
        }
        Next::TurnAway(_) => "turn away: the held failure",
        Next::Install => "install",
        Next::Settle {
            retry_at: Some(_), ..
        } => "settle, retry later",
        Next::Settle {
            idle_retry_at: Some(_),
            ..
        } => "settle, a task retries later",
        Next::Settle { .. } => "settle, end",
        Next::RetryNow => "retry now",
        Next::Wake => "wake",
        Next::Stop => "stop its task",
    }
}

/// Where the machine is, in a word.
fn status(machine: &Machine, now: Instant) -> &'static str {
    let held = machine.held_at(now).is_some();
    match (machine.attempt(), held) {
        (Attempt::Idle, false) => "idle",
        (Attempt::Idle, true) => "down",
        (Attempt::Running, false) => "running",
        (Attempt::BackingOff { .. }, false) => "backing off",
        (Attempt::BackingOff { .. }, true) => "down, backing off",
        (Attempt::Running, true) => unreachable!("a running attempt holds no failure"),
    }
}

macro_rules! rows {
    ($($name:ident: $from:ident, $event:expr => $decided:literal, $to:literal;)*) => {$(
        #[test]
        fn $name() {
            let now = Instant::now();
            let mut machine = machine(From::$from, now);
            let event: fn(Instant) -> Event = $event;
            let next = machine.on(event(now), now);
            assert_eq!(
                (decided(&next), status(&machine, now)),
                ($decided, $to),
                "from {:?}",
                From::$from
            );
        }
    )*};
}

rows! {
    // A request finds the token due, or the refresh point passes with no request.
    idle_due: Idle, |_| Event::Due => "start", "running";
    running_due: Running, |_| Event::Due => "stay", "running";
    backing_off_due: BackingOff, |_| Event::Due => "stay", "backing off";
    down_due: Down, |_| Event::Due => "stay", "down";
    down_retrying_due: DownRetrying, |_| Event::Due => "stay", "down, backing off";

    // A caller with no token to send.
    idle_wanted: Idle, |_| Event::Wanted { usable: false, rounds: 0 } => "start", "running";
    running_wanted: Running, |_| Event::Wanted { usable: false, rounds: 0 } => "follow", "running";
    backing_off_wanted: BackingOff, |_| Event::Wanted { usable: false, rounds: 0 } => "follow", "backing off";
    down_wanted: Down, |_| Event::Wanted { usable: false, rounds: 0 } => "turn away: the held failure", "down";
    down_retrying_wanted: DownRetrying, |_| Event::Wanted { usable: false, rounds: 0 } => "turn away: the held failure", "down, backing off";

    // ... that finds one after all.
    idle_wanted_usable: Idle, |_| Event::Wanted { usable: true, rounds: 0 } => "send", "idle";
    running_wanted_usable: Running, |_| Event::Wanted { usable: true, rounds: 1 } => "send", "running";
    down_wanted_usable: Down, |_| Event::Wanted { usable: true, rounds: 0 } => "send", "down";

    // ... after waiting for as many attempts as it will.
    idle_wanted_too_often: Idle, |_| Event::Wanted { usable: false, rounds: MAX_WAIT_ROUNDS } => "turn away: dead on arrival", "idle";
    running_wanted_too_often: Running, |_| Event::Wanted { usable: false, rounds: MAX_WAIT_ROUNDS } => "turn away: dead on arrival", "running";
    idle_wanted_once_more: Idle, |_| Event::Wanted { usable: false, rounds: MAX_WAIT_ROUNDS - 1 } => "start", "running";

    // Somebody asks for a new token now.
    idle_refresh_now: Idle, |_| Event::RefreshNow => "start", "running";
    running_refresh_now: Running, |_| Event::RefreshNow => "follow, waking it", "running";
    backing_off_refresh_now: BackingOff, |_| Event::RefreshNow => "follow, waking it", "backing off";
    down_refresh_now: Down, |_| Event::RefreshNow => "start", "running";
    down_retrying_refresh_now: DownRetrying, |_| Event::RefreshNow => "follow, waking it", "backing off";

    // A 401 revokes the current token.
    idle_revoked: Idle, |_| Event::Revoked => "wake", "idle";
    running_revoked: Running, |_| Event::Revoked => "wake", "running";
    backing_off_revoked: BackingOff, |_| Event::Revoked => "wake", "backing off";
    down_revoked: Down, |_| Event::Revoked => "wake", "down";
    down_retrying_revoked: DownRetrying, |_| Event::Revoked => "wake", "down, backing off";

    // The attempt obtains a token.
    running_obtained: Running, |_| Event::Obtained => "install", "idle";
    down_retrying_obtained: DownRetrying, |_| Event::Obtained => "install", "idle";
    // Only a running attempt obtains anything; the machine answers the rest alike.
    idle_obtained: Idle, |_| Event::Obtained => "install", "idle";
    backing_off_obtained: BackingOff, |_| Event::Obtained => "install", "idle";
    down_obtained: Down, |_| Event::Obtained => "install", "idle";

    // The attempt fails.
    running_fails_with_a_token_left: Running, |now| failed(outage(), Some(now + Duration::from_secs(60))) => "settle, retry later", "backing off";
    running_fails_with_no_token: Running, |_| failed(outage(), None) => "settle, end", "down";
    running_is_refused_with_a_token_left: Running, |now| failed(refusal(), Some(now + Duration::from_secs(60))) => "settle, retry later", "backing off";
    running_is_refused_with_no_token: Running, |_| failed(refusal(), None) => "settle, end", "down";
    down_retrying_fails_again: DownRetrying, |_| failed(outage(), None) => "settle, retry later", "down, backing off";
    down_retrying_is_refused: DownRetrying, |_| failed(refusal(), None) => "settle, end", "down";
    idle_fails: Idle, |_| failed(outage(), None) => "settle, end", "down";
    backing_off_fails: BackingOff, |now| failed(outage(), Some(now + Duration::from_secs(60))) => "settle, retry later", "backing off";
    down_fails: Down, |_| failed(refusal(), None) => "settle, end", "down";

    // The attempt's task dies.
    running_dies_with_a_token_left: Running, |now| Event::Died { alive_until: Some(now + Duration::from_secs(60)), jitter: 0.5 } => "settle, end", "down";
    running_dies_with_no_token: Running, |_| Event::Died { alive_until: None, jitter: 0.5 } => "settle, end", "down";
    down_retrying_dies: DownRetrying, |_| Event::Died { alive_until: None, jitter: 0.5 } => "settle, a task retries later", "down";
    idle_dies: Idle, |_| Event::Died { alive_until: None, jitter: 0.5 } => "settle, end", "down";
    backing_off_dies: BackingOff, |now| Event::Died { alive_until: Some(now + Duration::from_secs(60)), jitter: 0.5 } => "settle, end", "down";
    down_dies: Down, |_| Event::Died { alive_until: None, jitter: 0.5 } => "settle, end", "down";

    // The backoff ends, or is cut short.
    backing_off_backoff_ends: BackingOff, |_| Event::BackoffEnded => "stay", "running";
    down_retrying_backoff_ends: DownRetrying, |_| Event::BackoffEnded => "stay", "running";
    // Only an attempt backing off has a backoff to end: anything else stays as it is.
    idle_backoff_ends: Idle, |_| Event::BackoffEnded => "stay", "idle";
    running_backoff_ends: Running, |_| Event::BackoffEnded => "stay", "running";
    down_backoff_ends: Down, |_| Event::BackoffEnded => "stay", "down";
    backing_off_woken_stale: BackingOff, |_| Event::WokenUp { revoked: false } => "stay", "backing off";
    backing_off_woken_revoked: BackingOff, |_| Event::WokenUp { revoked: true } => "retry now", "running";
    down_retrying_woken_revoked: DownRetrying, |_| Event::WokenUp { revoked: true } => "retry now", "running";
    idle_woken: Idle, |_| Event::WokenUp { revoked: true } => "stay", "idle";
    running_woken: Running, |_| Event::WokenUp { revoked: true } => "stay", "running";
    down_woken: Down, |_| Event::WokenUp { revoked: true } => "stay", "down";

    // The layer lets go of the token (its identity was dropped): a login being sent ends
    // for its waiters; anything else waiting to try has nobody to try for.
    idle_retired: Idle, |_| Event::Retired => "stop its task", "idle";
    running_retired: Running, |_| Event::Retired => "stay", "running";
    backing_off_retired: BackingOff, |_| Event::Retired => "stop its task", "idle";
    down_retired: Down, |_| Event::Retired => "stop its task", "down";
    down_retrying_retired: DownRetrying, |_| Event::Retired => "stop its task", "down";
}

#[test]
fn a_retired_token_is_tried_for_only_by_callers_already_waiting() {
    let now = Instant::now();
    let alive = Some(now + Duration::from_secs(60));
    let mut running = machine(From::Running, now);
    running.on(Event::Retired, now);
    let next = running.on(failed(outage(), alive), now);
    assert_eq!(decided(&next), "settle, end", "no retry with a token left");
    assert_eq!(
        decided(&running.on(Event::Due, now)),
        "stay",
        "no due refresh"
    );
    let wanted = Event::Wanted {
        usable: false,
        rounds: 0,
    };
    let mut idle = machine(From::Idle, now);
    idle.on(Event::Retired, now);
    assert_eq!(
        decided(&idle.on(wanted, now)),
        "start",
        "a waiting caller still may"
    );

    let mut retrying = machine(From::DownRetrying, now);
    retrying.on(Event::BackoffEnded, now);
    retrying.on(Event::Retired, now);
    let died = Event::Died {
        alive_until: None,
        jitter: 0.5,
    };
    assert_eq!(
        decided(&retrying.on(died, now)),
        "settle, end",
        "no idle retry"
    );
}

#[test]
fn a_hurried_backoff_retries_at_its_next_wake_up_once() {
    let now = Instant::now();
    let mut machine = machine(From::BackingOff, now);
    machine.on(Event::RefreshNow, now);
    let next = machine.on(Event::WokenUp { revoked: false }, now);
    assert_eq!(decided(&next), "retry now");
    machine.on(failed(outage(), Some(now + Duration::from_secs(60))), now);
    let next = machine.on(Event::WokenUp { revoked: false }, now);
    assert_eq!(decided(&next), "stay", "the hurry was spent");
}

#[test]
fn a_held_failure_ends_at_its_retry_instant_and_the_next_caller_starts() {
    let now = Instant::now();
    let mut machine = machine(From::Down, now);
    let (_, wait) = machine.failures_and_wait(None, now);
    // The second... first failure, down after an outage: 1 s, at the jitter's midpoint.
    assert_eq!(wait, Duration::from_secs(1));
    let later = now + wait;
    let next = machine.on(
        Event::Wanted {
            usable: false,
            rounds: 0,
        },
        later,
    );
    assert_eq!(
        (decided(&next), status(&machine, later)),
        ("start", "running")
    );
}

#[test]
fn a_token_obtained_forgets_the_failures() {
    let now = Instant::now();
    let mut machine = machine(From::DownRetrying, now);
    assert_eq!(machine.consecutive_failures(), 1);
    assert!(machine.last_error().is_some());
    machine.on(Event::BackoffEnded, now);
    machine.on(Event::Obtained, now);
    assert_eq!(machine.consecutive_failures(), 0);
    assert!(machine.last_error().is_none());
    assert_eq!(machine.failures_and_wait(None, now), (0, Duration::ZERO));
}

#[test]
fn the_next_attempt_logs_in_without_a_live_token() {
    use crate::grant::{Grant, Secret};
    let now = Instant::now();
    assert!(login_first(None, now));
    let grant = Grant::new(Secret::new("t").unwrap(), Duration::from_secs(60));
    let token = Token::new(grant, now, 1, 0.5, 0.0);
    assert!(!login_first(Some(&token), now));
    assert!(
        !login_first(Some(&token), now + Duration::from_secs(59)),
        "dead, not expired"
    );
    assert!(
        login_first(Some(&token), now + Duration::from_secs(60)),
        "expired"
    );
    token.advance(Phase::Revoked);
    assert!(login_first(Some(&token), now), "revoked");
}

#[test]
fn within_an_attempt_a_refresh_comes_first_unless_only_a_login_can_help() {
    assert!(refreshes_first(false, true));
    assert!(refreshes_first(false, false));
    assert!(
        refreshes_first(true, false),
        "no login to fall back on: refresh what there is"
    );
    assert!(!refreshes_first(true, true));
    for kind in [
        FailureKind::Away,
        FailureKind::Refused,
        FailureKind::Unusable,
    ] {
        assert!(!logs_in_after_refresh(kind, true), "{kind:?}");
    }
    assert!(logs_in_after_refresh(FailureKind::Revoked, true));
    assert!(!logs_in_after_refresh(FailureKind::Revoked, false));
}

#[test]
fn only_a_node_that_was_away_or_in_the_clear_is_failed_over_from() {
    let away = Error::transport(Exchange::Login, "refused");
    assert!(fails_over(&away, FailureKind::Away));
    for kind in [
        FailureKind::Refused,
        FailureKind::Revoked,
        FailureKind::Unusable,
    ] {
        assert!(!fails_over(&away, kind), "{kind:?}");
    }
    let provider = Error::provider("vault sealed");
    assert!(
        !fails_over(&provider, FailureKind::Away),
        "every node meets the same provider"
    );
    let plain = Error::InsecureTransport {
        origin: "http://sql-node".into(),
    };
    assert!(
        fails_over(&plain, FailureKind::Refused),
        "the next node may be https"
    );
}

#[test]
fn each_kind_of_failure_has_its_cause() {
    assert_eq!(cause(FailureKind::Away), Cause::Outage);
    assert_eq!(cause(FailureKind::Refused), Cause::Rejection);
    assert_eq!(cause(FailureKind::Revoked), Cause::Rejection);
    assert_eq!(cause(FailureKind::Unusable), Cause::Unusable);
}
