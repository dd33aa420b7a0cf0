//! How a response answered 401 reaches the state to retire its token, without every request
//! on every core writing one reference count.
//!
//! A response future holds an `Arc` of one of several retirers instead of the state itself:
//! each sits on cache lines of its own, and requests from different places pick different
//! ones, so two cores sending at once rarely touch the same count. (One shared count made
//! the two-worker hot path three times slower.)

use std::sync::{Arc, Weak};

/// Retirers per state: enough that two busy cores seldom share one.
pub(super) const STRIPES: usize = 16;

/// What retires a token: the shared state.
pub(super) trait Invalidate: Send + Sync {
    /// A request carrying `generation` was answered 401: that token is no good.
    fn invalidate(&self, generation: u64);
}

/// Retires tokens of one state; padded so that its reference counts share no cache line.
#[repr(align(128))]
pub(crate) struct Retirer {
    state: Weak<dyn Invalidate>,
}

impl Retirer {
    /// A full set for `state`, which they hold weakly: a response never keeps it alive.
    pub(super) fn stripes(state: &Weak<dyn Invalidate>) -> [Arc<Retirer>; STRIPES] {
        std::array::from_fn(|_| {
            Arc::new(Retirer {
                state: Weak::clone(state),
            })
        })
    }

    /// A request carrying `generation` was answered 401: that token is no good.
    pub(crate) fn retire(&self, generation: u64) {
        if let Some(state) = self.state.upgrade() {
            state.invalidate(generation);
        }
    }
}

/// The retirer for a request sent from `place` (any number that differs between callers
/// that run at once, such as the calling clone's address).
pub(super) fn pick(retirers: &[Arc<Retirer>; STRIPES], place: usize) -> Arc<Retirer> {
    // Clones sit at least a few cache lines apart; the low bits say nothing.
    Arc::clone(&retirers[(place >> 7) % STRIPES])
}
