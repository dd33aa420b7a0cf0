//! How a response answered 401 reaches the state to revoke its token, without every request
//! on every core writing one reference count.
//!
//! A response future holds an `Arc` of one of several revokers instead of the state itself:
//! each sits on cache lines of its own, and requests from different places pick different
//! ones, so two cores sending at once rarely touch the same count. (One shared count made
//! the two-worker hot path three times slower.)

use std::sync::{Arc, Weak};

use crate::state::TokenState;

/// Revokes tokens of one state; aligned to a cache line, so that its reference counts (at
/// the start of its `Arc`) share their line with no other revoker's.
#[repr(align(64))]
pub(crate) struct Revoker {
    state: Weak<TokenState>,
}

impl Revoker {
    /// A request carrying `generation` was answered 401: that token is no good.
    pub(crate) fn revoke(&self, generation: u64) {
        if let Some(state) = self.state.upgrade() {
            state.revoke(generation);
        }
    }
}

/// A set of revokers for one state, which they hold weakly: a response never keeps it
/// alive. A layer's one token has enough that two busy cores seldom share one; a token
/// among thousands (one per identity) has one, as its requests are few beside the layer's,
/// kept inline so that a request reads no further pointer to reach it.
pub(crate) struct Revokers {
    first: Arc<Revoker>,
    others: Box<[Arc<Revoker>]>,
}

impl Revokers {
    /// `stripes` revokers (at least one) of `state`.
    pub(crate) fn new(state: &Arc<TokenState>, stripes: usize) -> Self {
        Self::of(Arc::downgrade(state), stripes)
    }

    /// Revokers of no state, for a configuration under test.
    #[cfg(test)]
    pub(crate) fn none() -> Self {
        Self::of(Weak::new(), 1)
    }

    fn of(state: Weak<TokenState>, stripes: usize) -> Self {
        let revoker = || {
            let state = Weak::clone(&state);
            Arc::new(Revoker { state })
        };
        Revokers {
            first: revoker(),
            others: (1..stripes).map(|_| revoker()).collect(),
        }
    }

    /// The revoker for a request sent from `place` (any number that differs between
    /// callers that run at once, such as the calling clone's address).
    pub(crate) fn pick(&self, place: usize) -> Arc<Revoker> {
        // Clones sit at least a few cache lines apart; the low bits say nothing.
        let stripe = (place >> 7) % (self.others.len() + 1);
        Arc::clone(match stripe {
            0 => &self.first,
            n => &self.others[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn picked(revokers: &Revokers) -> HashSet<*const Revoker> {
        (0..64usize)
            .map(|clone| Arc::as_ptr(&revokers.pick(0x1000 + clone * 128)))
            .collect()
    }

    #[test]
    fn clones_in_different_places_pick_every_stripe_and_one_stripe_is_always_picked() {
        assert_eq!(picked(&Revokers::of(Weak::new(), 16)).len(), 16);
        assert_eq!(picked(&Revokers::of(Weak::new(), 1)).len(), 1);
        assert_eq!(
            picked(&Revokers::of(Weak::new(), 0)).len(),
            1,
            "at least one"
        );
    }
}
