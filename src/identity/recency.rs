//! Which held identity was used least recently, without a lock on the request path.
//!
//! A request writes only its identity's stamp: the tick of a coarse clock, in an atomic of
//! the identity's own (see `registry.rs`). The order lives here, in a heap read only when an
//! identity must go (the cap is reached, or the idle sweep runs), and corrected lazily: an
//! entry whose identity was used since it was stamped goes back in with its newer stamp.
//! Each held identity has exactly one entry (an identity leaves the map only when its entry
//! is taken out here), so the heap is as large as the map, and each entry is looked at again
//! only after its identity was used.
//!
//! The heap never touches the map or the clock: it asks the caller, through `stamp_of`, what
//! an identity's stamp is now, so it is tested here with plain numbers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// An identity as the heap last saw it. Ordered by stamp, then by when it was (re)entered,
/// so among identities last used in one tick the one entered first goes first.
#[derive(Debug)]
struct Entry<I> {
    tick: u64,
    order: u64,
    identity: I,
}

impl<I> Entry<I> {
    fn key(&self) -> (u64, u64) {
        (self.tick, self.order)
    }
}

impl<I> PartialEq for Entry<I> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<I> Eq for Entry<I> {}

impl<I> PartialOrd for Entry<I> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<I> Ord for Entry<I> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The held identities, least recently used first.
#[derive(Debug)]
pub(super) struct Recency<I> {
    heap: BinaryHeap<Reverse<Entry<I>>>,
    entered: u64,
}

impl<I> Default for Recency<I> {
    fn default() -> Self {
        Recency {
            heap: BinaryHeap::new(),
            entered: 0,
        }
    }
}

impl<I> Recency<I> {
    /// `identity` was used at `tick`: its entry, from when it is held.
    pub(super) fn arrived(&mut self, identity: I, tick: u64) {
        self.entered += 1;
        self.heap.push(Reverse(Entry {
            tick,
            order: self.entered,
            identity,
        }));
    }

    /// Takes out the least recently used identity; `stamp_of` says when an identity was
    /// last used, or `None` if it is not held.
    pub(super) fn least_recent(&mut self, stamp_of: impl Fn(&I) -> Option<u64>) -> Option<I> {
        self.take_first(stamp_of, |_| true)
    }

    /// Takes out an identity last used before `tick`, if any.
    pub(super) fn idle_before(
        &mut self,
        tick: u64,
        stamp_of: impl Fn(&I) -> Option<u64>,
    ) -> Option<I> {
        self.take_first(stamp_of, |stamp| stamp < tick)
    }

    /// Entries, one per identity held (and a few of identities gone, until they surface).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// The first identity, by its stamp now, if that stamp is `wanted`.
    fn take_first(
        &mut self,
        stamp_of: impl Fn(&I) -> Option<u64>,
        wanted: impl Fn(u64) -> bool,
    ) -> Option<I> {
        while let Some(Reverse(first)) = self.heap.peek() {
            if !wanted(first.tick) {
                return None;
            }
            let Reverse(entry) = self.heap.pop()?;
            match stamp_of(&entry.identity) {
                // Not held: nothing to drop (the caller's books and ours disagree).
                None => {}
                Some(now) if now > entry.tick => self.arrived(entry.identity, now),
                Some(_) => return Some(entry.identity),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Identities by name, each with its stamp now.
    struct Held(HashMap<&'static str, u64>);

    impl Held {
        fn stamp_of(&self) -> impl Fn(&&'static str) -> Option<u64> + '_ {
            |name| self.0.get(name).copied()
        }
    }

    fn held(entries: &[(&'static str, u64)]) -> (Recency<&'static str>, Held) {
        let mut recency = Recency::default();
        let mut held = HashMap::new();
        for &(name, tick) in entries {
            recency.arrived(name, tick);
            held.insert(name, tick);
        }
        (recency, Held(held))
    }

    #[test]
    fn the_least_recently_stamped_goes_first_and_ties_go_in_order_of_arrival() {
        let (mut recency, held) = held(&[("b", 5), ("a", 3), ("c", 5)]);
        let order: Vec<_> = std::iter::from_fn(|| recency.least_recent(held.stamp_of())).collect();
        assert_eq!(order, ["a", "b", "c"]);
        assert_eq!(recency.len(), 0);
    }

    #[test]
    fn an_identity_used_since_its_entry_goes_back_with_its_new_stamp() {
        let (mut recency, mut held) = held(&[("a", 1), ("b", 2)]);
        held.0.insert("a", 7);
        assert_eq!(recency.least_recent(held.stamp_of()), Some("b"));
        assert_eq!(recency.len(), 1, "a went back in");
        assert_eq!(recency.least_recent(held.stamp_of()), Some("a"));
        assert_eq!(recency.least_recent(held.stamp_of()), None);
    }

    #[test]
    fn an_entry_of_an_identity_not_held_is_passed_over() {
        let (mut recency, mut held) = held(&[("a", 1), ("b", 2)]);
        held.0.remove("a");
        assert_eq!(recency.least_recent(held.stamp_of()), Some("b"));
        assert_eq!(recency.len(), 0, "a's entry is gone too");
    }

    #[test]
    fn only_identities_unused_since_before_the_tick_are_idle() {
        let (mut recency, mut held) = held(&[("a", 1), ("b", 2), ("c", 4)]);
        held.0.insert("a", 6);
        assert_eq!(recency.idle_before(4, held.stamp_of()), Some("b"));
        assert_eq!(
            recency.idle_before(4, held.stamp_of()),
            None,
            "c at 4 is not before 4"
        );
        assert_eq!(recency.len(), 2, "a and c stay");
        assert_eq!(recency.idle_before(7, held.stamp_of()), Some("c"));
        assert_eq!(recency.idle_before(7, held.stamp_of()), Some("a"));
    }
}
