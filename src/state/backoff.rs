//! When to try again: the refresh schedule, the backoff after a failure, and the jitter
//! that keeps a fleet from doing either in lockstep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;

/// When a token should be refreshed: `refresh_at` is the share of the lifetime left at
/// the refresh point; after a failure the next attempt waits `first_backoff`, doubling up to
/// `max_backoff`, or up to `max_backoff_while_down` while the layer is down.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) refresh_at: f64,
    pub(crate) first_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_backoff_while_down: Duration,
}

impl Timing {
    /// The wait after `failures` failures in a row: `first_backoff` doubled each time, up
    /// to `max_backoff`, then varied by ±25% with `jitter` in `[0, 1)`, so clients that
    /// failed together do not retry together.
    ///
    /// `down` caps the wait at `max_backoff_while_down` instead (never below
    /// `first_backoff`, never above `max_backoff`): with no usable token and a server that
    /// could not answer, every second of backoff past the server's return is an outage of
    /// ours, so the layer keeps asking, spaced, rather than backing off further.
    pub(crate) fn backoff(&self, failures: u32, jitter: f64, down: bool) -> Duration {
        let cap = match down {
            true => self
                .max_backoff_while_down
                .max(self.first_backoff)
                .min(self.max_backoff),
            false => self.max_backoff,
        };
        let doublings = failures.saturating_sub(1).min(16);
        let step = self.first_backoff.saturating_mul(1 << doublings).min(cap);
        step.mul_f64(0.75 + 0.5 * jitter)
    }
}

/// The last failure while no token was usable, and when trying again is allowed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) retry_after: Instant,
}

impl Failure {
    /// Whether callers must still take this failure rather than start a new attempt.
    pub(crate) fn holds_at(&self, now: Instant) -> bool {
        now < self.retry_after
    }
}

/// Numbers in `[0, 1)` from splitmix64: cheap, lock-free, and good enough to spread timers.
#[derive(Debug)]
pub(crate) struct Jitter(AtomicU64);

impl Jitter {
    /// Seeded differently for each value, so caches started together draw differently.
    pub(crate) fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // Each `RandomState` is keyed differently, which is all the spread needs.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Jitter(AtomicU64::new(seed))
    }

    pub(crate) fn next(&self) -> f64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .0
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(first: u64, max: u64) -> Timing {
        Timing {
            refresh_at: 0.5,
            first_backoff: Duration::from_secs(first),
            max_backoff: Duration::from_secs(max),
            max_backoff_while_down: Duration::from_secs(2),
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let timing = timing(1, 30);
        let waits: Vec<u64> = (1..=7)
            .map(|n| timing.backoff(n, 0.5, false).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            timing.backoff(u32::MAX, 0.5, false),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn while_down_the_backoff_stops_growing_at_its_own_cap() {
        let timing = timing(1, 30);
        let waits: Vec<u64> = (1..=7)
            .map(|n| timing.backoff(n, 0.5, true).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 2, 2, 2, 2, 2]);
        assert_eq!(timing.backoff(u32::MAX, 0.5, true), Duration::from_secs(2));
    }

    #[test]
    fn the_cap_while_down_stays_between_the_first_and_the_largest_backoff() {
        let above_first = timing(5, 30);
        assert_eq!(above_first.backoff(3, 0.5, true), Duration::from_secs(5));
        let mut below_max = timing(1, 30);
        below_max.max_backoff = Duration::from_millis(1500);
        assert_eq!(below_max.backoff(3, 0.5, true), Duration::from_millis(1500));
    }

    #[test]
    fn the_backoff_varies_by_a_quarter_either_way() {
        let timing = timing(4, 30);
        assert_eq!(timing.backoff(1, 0.0, false), Duration::from_secs(3));
        assert_eq!(timing.backoff(1, 0.5, false), Duration::from_secs(4));
        let most = timing.backoff(1, 0.999_999, false);
        assert!(most > Duration::from_millis(4_999) && most < Duration::from_secs(5));
    }

    #[test]
    fn a_failure_holds_until_its_retry_instant_exclusive() {
        let now = Instant::now();
        let failure = Failure {
            error: Error::MissingCredentials,
            retry_after: now + Duration::from_secs(1),
        };
        assert!(failure.holds_at(now));
        assert!(!failure.holds_at(failure.retry_after));
    }

    #[test]
    fn jitter_stays_in_the_unit_interval_and_spreads() {
        let jitter = Jitter::new();
        let draws: Vec<f64> = (0..10_000).map(|_| jitter.next()).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        // Each tenth of the interval gets its share, give or take.
        for decile in 0..10 {
            let lo = f64::from(decile) / 10.0;
            let hits = draws.iter().filter(|x| (lo..lo + 0.1).contains(*x)).count();
            assert!((800..1200).contains(&hits), "decile {decile}: {hits}");
        }
    }

    #[test]
    fn two_jitters_draw_differently() {
        let (a, b) = (Jitter::new(), Jitter::new());
        let a: Vec<f64> = (0..4).map(|_| a.next()).collect();
        let b: Vec<f64> = (0..4).map(|_| b.next()).collect();
        assert_ne!(a, b);
    }
}
