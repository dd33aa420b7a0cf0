//! One token and its timeline: fresh, due, dead (or revoked), moved forward by a timer.
//!
//! The hot path reads a token's phase from an atomic and never reads the clock: the timer
//! task [`follow_timeline`] moves the phase at the refresh point and at the dead point.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::HeaderValue;
use tokio::task::AbortHandle;
use tokio::time::{sleep_until, Instant};

use crate::grant::Grant;

/// What a token's timer does at its refresh point, besides marking it due.
pub(crate) type OnDue = Box<dyn FnOnce() + Send>;

/// How much earlier than its expiry a token stops being sent, at most.
const MAX_MARGIN: Duration = Duration::from_secs(5);
/// The share of a lifetime over which the refresh point is spread, so a fleet started
/// together does not refresh in lockstep.
pub(crate) const SPREAD: f64 = 0.1;

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
    /// Revoked (a request carrying it was answered 401): wait for a new one, from a new login
    /// if possible.
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
    pub(crate) grant: Grant,
    pub(crate) header: HeaderValue,
    pub(crate) generation: u64,
    phase: AtomicU8,
    pub(crate) due_at: Instant,
    pub(crate) dead_at: Instant,
    pub(crate) expires_at: Instant,
}

impl Token {
    /// `grant`, obtained by a request sent at `sent_at`: its lifetime counts from then.
    ///
    /// `refresh_at` is the share of the lifetime left at the refresh point; `spread`, in
    /// `[0, 1)`, moves that point later by up to [`SPREAD`] of the lifetime.
    pub(crate) fn new(
        grant: Grant,
        sent_at: Instant,
        generation: u64,
        refresh_at: f64,
        spread: f64,
    ) -> Token {
        let lifetime = grant.lifetime();
        let expires_at = sent_at + lifetime;
        let dead_at = expires_at - lifetime.min(MAX_MARGIN * 10) / 10;
        let due_at = (sent_at + lifetime.mul_f64(1.0 - refresh_at)).min(dead_at);
        // The spread never eats more than half of the due window, so there is always a
        // stretch where the token is sent while the refresh runs.
        let most = lifetime.mul_f64(SPREAD).min((dead_at - due_at) / 2);
        let token = Token {
            header: grant.bearer_header(),
            grant,
            generation,
            phase: AtomicU8::new(Phase::Fresh as u8),
            due_at: due_at + most.mul_f64(spread),
            dead_at,
            expires_at,
        };
        token.advance(token.phase_at(Instant::now()));
        token
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Whether it may be sent, by its phase alone (the hot path's question).
    pub(crate) fn is_usable(&self) -> bool {
        self.phase() <= Phase::Due
    }

    /// Moves the phase forward to `to`; returns whether it moved.
    pub(crate) fn advance(&self, to: Phase) -> bool {
        self.phase.fetch_max(to as u8, Ordering::AcqRel) < to as u8
    }

    /// The phase the clock says it is in, should its timer run late.
    pub(crate) fn phase_now(&self, now: Instant) -> Phase {
        self.phase().max(self.phase_at(now))
    }

    fn phase_at(&self, now: Instant) -> Phase {
        if now >= self.dead_at {
            Phase::Dead
        } else if now >= self.due_at {
            Phase::Due
        } else {
            Phase::Fresh
        }
    }

    /// Starts the timer that moves this token along its timeline, on the current runtime,
    /// and calls `on_due` at the refresh point.
    ///
    /// Without a runtime nothing would ever mark it due or dead: a token nobody watches is
    /// marked dead at once, and never sent.
    pub(crate) fn watch(self: &Arc<Self>, on_due: Option<OnDue>) -> Option<AbortHandle> {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Some(
                runtime
                    .spawn(follow_timeline(Arc::downgrade(self), on_due))
                    .abort_handle(),
            ),
            Err(_) => {
                self.advance(Phase::Dead);
                None
            }
        }
    }
}

/// Moves a token to `Due` at its refresh point and to `Dead` at its dead point.
///
/// If the task ends early (aborted when the token is replaced, or its runtime shut down,
/// even before its first poll), the token is marked dead: a phase nobody will move again
/// must not keep a token alive.
fn follow_timeline(
    token: Weak<Token>,
    mut on_due: Option<OnDue>,
) -> impl Future<Output = ()> + Send {
    let guard = KillOnDrop(token);
    async move {
        let token = &guard.0;
        let Some((due_at, dead_at)) = token.upgrade().map(|t| (t.due_at, t.dead_at)) else {
            return;
        };
        for (at, phase) in [(due_at, Phase::Due), (dead_at, Phase::Dead)] {
            sleep_until(at).await;
            match token.upgrade() {
                Some(token) => {
                    token.advance(phase);
                }
                None => return,
            }
            if let Some(on_due) = on_due.take() {
                on_due();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Secret;

    /// Moves the paused clock on, and lets the timer task run.
    async fn advance(by: Duration) {
        tokio::time::advance(by).await;
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
    }

    fn grant(lifetime_secs: u64) -> Grant {
        Grant::new(
            Secret::new("t0ken").unwrap(),
            Duration::from_secs(lifetime_secs),
        )
    }

    fn token(lifetime_secs: u64, spread: f64) -> Arc<Token> {
        Arc::new(Token::new(
            grant(lifetime_secs),
            Instant::now(),
            1,
            0.5,
            spread,
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_watched_token_goes_fresh_then_due_then_dead() {
        let token = token(100, 0.0);
        let _timer = token.watch(None).expect("inside a runtime");
        assert_eq!(token.phase(), Phase::Fresh);
        advance(Duration::from_secs(49)).await;
        assert_eq!(token.phase(), Phase::Fresh);
        advance(Duration::from_secs(1)).await;
        assert_eq!(token.phase(), Phase::Due, "half the lifetime left");
        assert!(token.is_usable());
        advance(Duration::from_secs(44)).await;
        assert_eq!(token.phase(), Phase::Due);
        advance(Duration::from_secs(1)).await;
        assert_eq!(token.phase(), Phase::Dead, "5 s before expiry");
        assert!(!token.is_usable());
    }

    #[tokio::test(start_paused = true)]
    async fn the_margin_is_a_tenth_of_a_short_lifetime() {
        let token = token(20, 0.0);
        assert_eq!(token.dead_at - token.due_at, Duration::from_secs(8));
        assert_eq!(token.expires_at - token.dead_at, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_spread_moves_the_refresh_point_by_at_most_a_tenth() {
        let sent_at = Instant::now();
        let early = token(100, 0.0);
        let late = token(100, 0.999_999);
        assert_eq!(early.due_at - sent_at, Duration::from_secs(50));
        let moved = late.due_at - early.due_at;
        assert!(
            moved > Duration::from_millis(9_999) && moved < Duration::from_secs(10),
            "{moved:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_spread_leaves_half_the_due_window() {
        // refresh_at 0.06 puts the due point at 94 s of 100 s, 1 s before the dead point:
        // the spread may take half a second of that, not the 10 s of a tenth.
        let token = Arc::new(Token::new(grant(100), Instant::now(), 1, 0.06, 0.999_999));
        let window = token.dead_at - token.due_at;
        assert!(window >= Duration::from_millis(500), "{window:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_obtained_long_ago_starts_in_its_phase() {
        let sent_at = Instant::now();
        advance(Duration::from_secs(60)).await;
        let due = Token::new(grant(100), sent_at, 1, 0.5, 0.0);
        assert_eq!(due.phase(), Phase::Due);
        advance(Duration::from_secs(40)).await;
        let dead = Token::new(grant(100), sent_at, 1, 0.5, 0.0);
        assert_eq!(dead.phase(), Phase::Dead);
    }

    #[tokio::test(start_paused = true)]
    async fn phases_only_move_forward() {
        let token = token(100, 0.0);
        assert!(token.advance(Phase::Due));
        assert!(!token.advance(Phase::Due), "already there: it did not move");
        assert!(token.advance(Phase::Revoked));
        assert!(!token.advance(Phase::Due), "a revoked token stays revoked");
        assert_eq!(token.phase(), Phase::Revoked);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_whose_timer_is_gone_is_dead() {
        let token = token(100, 0.0);
        let timer = token.watch(None).unwrap();
        timer.abort();
        tokio::task::yield_now().await;
        assert_eq!(token.phase(), Phase::Dead);
    }

    #[test]
    fn a_token_nobody_can_watch_is_dead() {
        let token = Arc::new(Token::new(grant(100), Instant::now(), 1, 0.5, 0.0));
        assert!(token.watch(None).is_none(), "no runtime here");
        assert_eq!(token.phase(), Phase::Dead);
    }
}
